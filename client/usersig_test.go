package client

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tencentyun/tls-sig-api-v2-golang/tencentyun"

	"github.com/tencentchat-enricher/enricher/internal/testsupport"
)

func newFakeClock() *testsupport.Clock {
	return testsupport.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
}

// countingGen returns distinct signatures "sig-1", "sig-2", … and records
// the expiry requested.
type countingGen struct {
	n      atomic.Int64
	expire atomic.Int64
}

func (g *countingGen) gen(appID int, key, id string, expire int) (string, error) {
	g.expire.Store(int64(expire))
	return fmt.Sprintf("sig-%d", g.n.Add(1)), nil
}

func TestUserSigRenewedBeforeExpiry(t *testing.T) {
	clk := newFakeClock()
	ttl := 24 * time.Hour
	s := newSigner(testAppID, testSecret, testAdmin, ttl, clk.Now)
	var g countingGen
	s.gen = g.gen
	var reasons []string
	s.onRenew = func(r string) { reasons = append(reasons, r) }

	steps := []struct {
		advance time.Duration
		want    string
	}{
		{0, "sig-1"},
		{time.Hour, "sig-1"},
		{10 * time.Hour, "sig-1"},              // 11h: still cached
		{time.Hour - time.Nanosecond, "sig-1"}, // just before half the validity
		{time.Nanosecond, "sig-2"},             // 12h: renewed, 12h before expiry
		{11 * time.Hour, "sig-2"},
		{time.Hour, "sig-3"},
		{-48 * time.Hour, "sig-4"}, // clock stepped back: do not trust the cache
	}
	for i, st := range steps {
		clk.Advance(st.advance)
		got, err := s.get()
		if err != nil || got != st.want {
			t.Fatalf("step %d: get = %q, %v; want %q", i, got, err, st.want)
		}
	}
	if g.expire.Load() != int64(ttl/time.Second) {
		t.Errorf("expire requested = %d s", g.expire.Load())
	}
	if len(reasons) != 4 || reasons[0] != "initial" || reasons[1] != "age" {
		t.Errorf("renewal reasons = %v", reasons)
	}
}

func TestUserSigRealSignatureVerifies(t *testing.T) {
	s := newSigner(testAppID, testSecret, testAdmin, 48*time.Hour, time.Now)
	sig, err := s.get()
	if err != nil {
		t.Fatal(err)
	}
	if err := tencentyun.VerifyUserSig(testAppID, testSecret, testAdmin, sig, time.Now().Add(47*time.Hour)); err != nil {
		t.Errorf("valid at 47h: %v", err)
	}
	if err := tencentyun.VerifyUserSig(testAppID, testSecret, testAdmin, sig, time.Now().Add(49*time.Hour)); err == nil {
		t.Error("still valid after its TTL")
	}
}

func TestUserSigConcurrent(t *testing.T) {
	clk := newFakeClock()
	s := newSigner(testAppID, testSecret, testAdmin, 24*time.Hour, clk.Now)
	var g countingGen
	s.gen = g.gen
	first, _ := s.get()

	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for range 100 {
				if _, err := s.get(); err != nil {
					t.Error(err)
				}
			}
			// Everybody saw the first signature rejected: one renewal only.
			if _, err := s.invalidate(first); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := s.generations(); n != 2 {
		t.Errorf("generations = %d, want 2 (initial + one re-sign)", n)
	}
}

func TestUserSigGenerationError(t *testing.T) {
	f := newFake(t, func(int, seenRequest) (int, any) { return 200, okBody(0, 1, 0) })
	c := newTestClient(t, testConfig(f.URL))
	c.sig.gen = func(int, string, string, int) (string, error) { return "", errors.New("zlib broke") }
	_, err := c.GetPage(context.Background(), PageRequest{SubscriberAccount: "u"})
	if err == nil || f.calls() != 0 {
		t.Fatalf("err = %v, calls = %d", err, f.calls())
	}
}

// TestResignOn70001: the server rejects the first UserSig as expired; the
// client re-signs once and the retry carries the new signature.
func TestResignOn70001(t *testing.T) {
	f := newFake(t, func(_ int, r seenRequest) (int, any) {
		if url.Values(r.Query).Get("usersig") == "sig-1" {
			return 200, errBody(CodeUserSigExpired)
		}
		return 200, okBody(1, 1, 0, account("@TOA#_a"))
	})
	clk := newFakeClock()
	cfg := testConfig(f.URL)
	cfg.Now = clk.Now
	c := newTestClient(t, cfg)
	var g countingGen
	c.sig.gen = g.gen

	p, err := c.GetPage(context.Background(), PageRequest{SubscriberAccount: "u"})
	if err != nil {
		t.Fatalf("GetPage: %v", err)
	}
	if len(p.Accounts) != 1 {
		t.Errorf("page = %+v", p)
	}
	reqs := f.requests()
	if len(reqs) != 2 || url.Values(reqs[1].Query).Get("usersig") != "sig-2" {
		t.Fatalf("requests = %d, second sig %q", len(reqs), url.Values(reqs[len(reqs)-1].Query).Get("usersig"))
	}
	// Later calls keep using the renewed signature.
	if _, err := c.GetPage(context.Background(), PageRequest{SubscriberAccount: "u"}); err != nil {
		t.Fatal(err)
	}
	if g.n.Load() != 2 {
		t.Errorf("signatures generated = %d, want 2", g.n.Load())
	}
}

// TestResignOnlyOnce: a server that rejects every signature gets exactly
// one re-signed retry, and the error is then app-fatal.
func TestResignOnlyOnce(t *testing.T) {
	f := newFake(t, func(int, seenRequest) (int, any) { return 200, errBody(CodeUserSigExpired) })
	c := newTestClient(t, testConfig(f.URL))
	var g countingGen
	c.sig.gen = g.gen
	_, err := c.GetPage(context.Background(), PageRequest{SubscriberAccount: "u"})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Code != CodeUserSigExpired || !apiErr.Escalated() || Classify(err) != ClassFatal {
		t.Fatalf("err = %v", err)
	}
	if f.calls() != 2 || g.n.Load() != 2 {
		t.Errorf("calls = %d, signatures = %d; want 2, 2", f.calls(), g.n.Load())
	}
}

// TestUserSigRenewedByClock: with an injected clock, the client sends a new
// signature once half the validity has passed, without any rejection.
func TestUserSigRenewedByClock(t *testing.T) {
	f := newFake(t, func(int, seenRequest) (int, any) { return 200, okBody(0, 1, 0) })
	clk := newFakeClock()
	cfg := testConfig(f.URL)
	cfg.Now = clk.Now
	cfg.UserSigTTL = 24 * time.Hour
	c := newTestClient(t, cfg)
	var g countingGen
	c.sig.gen = g.gen
	call := func() string {
		t.Helper()
		if _, err := c.GetPage(context.Background(), PageRequest{SubscriberAccount: "u"}); err != nil {
			t.Fatal(err)
		}
		reqs := f.requests()
		return url.Values(reqs[len(reqs)-1].Query).Get("usersig")
	}
	if s := call(); s != "sig-1" {
		t.Fatalf("first sig %q", s)
	}
	clk.Advance(11 * time.Hour)
	if s := call(); s != "sig-1" {
		t.Fatalf("at 11h sig %q", s)
	}
	clk.Advance(time.Hour)
	if s := call(); s != "sig-2" {
		t.Fatalf("at 12h sig %q, want renewed", s)
	}
}

// Test70050PausesThenFatal: 70050 re-signs and pauses every call for the
// requested time (fast failures with the wait); a 70050 to a call sent
// after the pause is app-fatal, while success clears the episode.
func Test70050PausesThenFatal(t *testing.T) {
	var answer atomic.Int64
	answer.Store(CodeSigCheckRateLimited)
	f := newFake(t, func(int, seenRequest) (int, any) {
		if code := answer.Load(); code != 0 {
			return 200, errBody(int(code))
		}
		return 200, okBody(0, 1, 0)
	})
	c := newTestClient(t, testConfig(f.URL))
	c.sigPause = 150 * time.Millisecond
	var g countingGen
	c.sig.gen = g.gen
	get := func() error {
		_, err := c.GetPage(context.Background(), PageRequest{SubscriberAccount: "u"})
		return err
	}

	err := get()
	var spe *SigPauseError
	if !errors.As(err, &spe) || spe.RetryAfter <= 0 || spe.RetryAfter > c.sigPause || Classify(err) != ClassTransient {
		t.Fatalf("first 70050: %v", err)
	}
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Code != CodeSigCheckRateLimited {
		t.Fatalf("last error = %v", err)
	}
	if g.n.Load() != 2 {
		t.Errorf("signatures = %d, want a re-sign", g.n.Load())
	}
	// During the pause: no calls reach the server.
	if err := get(); !errors.As(err, &spe) || !errors.Is(err, ErrHoldOff) || f.calls() != 1 {
		t.Fatalf("during pause: %v, calls %d", err, f.calls())
	}
	// After the pause, the same answer again is fatal.
	testsupport.WaitFor(t, 2*time.Second, "the pause to end", func() bool { return c.pauseLeft() <= 0 })
	err = get()
	if !errors.As(err, &apiErr) || !apiErr.Escalated() || Classify(err) != ClassFatal || f.calls() != 2 {
		t.Fatalf("repeated 70050: %v (calls %d)", err, f.calls())
	}

	// A success clears the episode: a later 70050 pauses again, not fatal.
	answer.Store(0)
	if err := get(); err != nil {
		t.Fatal(err)
	}
	answer.Store(CodeSigCheckRateLimited)
	if err := get(); !errors.As(err, &spe) {
		t.Errorf("new episode: %v", err)
	}
}
