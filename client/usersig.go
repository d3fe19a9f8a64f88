package client

import (
	"fmt"
	"sync"
	"time"

	"github.com/tencentyun/tls-sig-api-v2-golang/tencentyun"
)

// signFunc generates a UserSig; tencentyun.GenUserSig in production.
type signFunc func(sdkappid int, key, identifier string, expireSeconds int) (string, error)

// signer caches the admin's UserSig and renews it once half of its validity
// has passed, or on demand after the server rejected it. Safe for concurrent
// use: concurrent callers share one renewal.
type signer struct {
	appID int
	key   string
	admin string
	ttl   time.Duration
	now   func() time.Time
	gen   signFunc
	// onRenew is called (outside the lock) after every renewal, with the
	// reason ("initial", "age", "rejected"). Never given the signature.
	onRenew func(reason string)

	mu       sync.Mutex
	sig      string
	issuedAt time.Time
	gens     int // signatures generated so far
}

func newSigner(appID int, key, admin string, ttl time.Duration, now func() time.Time) *signer {
	return &signer{appID: appID, key: key, admin: admin, ttl: ttl, now: now, gen: tencentyun.GenUserSig}
}

// renewAfter is the age at which a cached UserSig is replaced: half its validity.
func (s *signer) renewAfter() time.Duration { return s.ttl / 2 }

// get returns a valid UserSig, generating one if none is cached or the
// cached one is older than renewAfter.
func (s *signer) get() (string, error) {
	s.mu.Lock()
	now := s.now()
	reason := ""
	switch {
	case s.sig == "":
		reason = "initial"
	case now.Sub(s.issuedAt) >= s.renewAfter() || now.Before(s.issuedAt):
		reason = "age"
	}
	if reason == "" {
		sig := s.sig
		s.mu.Unlock()
		return sig, nil
	}
	sig, err := s.renewLocked(now)
	s.mu.Unlock()
	if err != nil {
		return "", err
	}
	s.notify(reason)
	return sig, nil
}

// invalidate forces a renewal if rejected is still the cached UserSig, and
// returns the UserSig to use next. Concurrent callers that saw the same
// rejected signature trigger a single renewal.
func (s *signer) invalidate(rejected string) (string, error) {
	s.mu.Lock()
	if s.sig != rejected && s.sig != "" {
		sig := s.sig
		s.mu.Unlock()
		return sig, nil
	}
	sig, err := s.renewLocked(s.now())
	s.mu.Unlock()
	if err != nil {
		return "", err
	}
	s.notify("rejected")
	return sig, nil
}

func (s *signer) renewLocked(now time.Time) (string, error) {
	sig, err := s.gen(s.appID, s.key, s.admin, int(s.ttl/time.Second))
	if err != nil {
		// The library's errors come from JSON/zlib and carry no key material.
		return "", fmt.Errorf("client: generate UserSig: %w", err)
	}
	s.sig, s.issuedAt = sig, now
	s.gens++
	return sig, nil
}

func (s *signer) notify(reason string) {
	if s.onRenew != nil {
		s.onRenew(reason)
	}
}

// generations returns how many UserSigs were generated.
func (s *signer) generations() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gens
}
