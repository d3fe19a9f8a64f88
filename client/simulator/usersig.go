package simulator

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/tencentyun/tls-sig-api-v2-golang/tencentyun"
)

// sigCacheTTL is how long a verified UserSig is trusted without verifying
// it again (its expiry is still checked on every call).
const sigCacheTTL = time.Minute

// sigCacheSize bounds the cache; when full it is emptied.
const sigCacheSize = 1024

// sigVerifier checks UserSigs with tencentyun.VerifyUserSig and caches
// the ones that verified. It is safe for concurrent use.
type sigVerifier struct {
	sdkAppID uint64
	key      string

	mu    sync.Mutex
	cache map[string]sigEntry // identifier + "\x00" + usersig
}

type sigEntry struct {
	verifiedAt time.Time
	expires    int64 // unix seconds; the sig is expired when now > expires
}

// verify returns 0 when usersig is a valid UserSig of identifier for the
// app at now, else the ErrorCode and ErrorInfo to answer.
func (v *sigVerifier) verify(identifier, usersig string, now time.Time) (int, string) {
	if usersig == "" {
		return CodeSigInvalid, "usersig is missing"
	}
	k := identifier + "\x00" + usersig
	v.mu.Lock()
	e, hit := v.cache[k]
	v.mu.Unlock()
	if hit && now.Sub(e.verifiedAt) < sigCacheTTL && now.Sub(e.verifiedAt) >= 0 {
		if now.Unix() > e.expires {
			return CodeSigExpired, "UserSig expired, generate a new one"
		}
		return 0, ""
	}

	err := tencentyun.VerifyUserSig(v.sdkAppID, v.key, identifier, usersig, now)
	switch {
	case err == nil:
	case errors.Is(err, tencentyun.ErrExpired):
		return CodeSigExpired, "UserSig expired, generate a new one"
	case errors.Is(err, tencentyun.ErrSigNotMatch):
		return CodeSigVerify, "UserSig verification failed"
	case errors.Is(err, tencentyun.ErrIdentifierNotMatch):
		return CodeSigIdentifier, "identifier does not match the UserSig"
	case errors.Is(err, tencentyun.ErrSdkAppIDNotMatch):
		return CodeSigAppID, "sdkappid does not match the UserSig"
	default: // undecodable, or a sig with a userbuf (not a UserSig)
		return CodeSigInvalid, "UserSig is invalid"
	}

	expires, ok := sigExpiry(usersig)
	if !ok { // verified, so this cannot happen; do not cache
		return 0, ""
	}
	v.mu.Lock()
	if len(v.cache) >= sigCacheSize {
		clear(v.cache)
	}
	v.cache[k] = sigEntry{verifiedAt: now, expires: expires}
	v.mu.Unlock()
	return 0, ""
}

// sigEncoding is the UserSig alphabet: standard base64 with '*' for '+',
// '-' for '/' and '_' for padding.
var sigEncoding = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789*-").WithPadding('_')

// maxSigDoc bounds the decompressed UserSig document.
const maxSigDoc = 1 << 16

// sigExpiry reads the expiry (TLS.time + TLS.expire) of a UserSig that
// already verified.
func sigExpiry(usersig string) (int64, bool) {
	raw, err := sigEncoding.DecodeString(usersig)
	if err != nil {
		return 0, false
	}
	zr, err := zlib.NewReader(bytes.NewReader(raw))
	if err != nil {
		return 0, false
	}
	defer zr.Close()
	doc, err := io.ReadAll(io.LimitReader(zr, maxSigDoc))
	if err != nil {
		return 0, false
	}
	var d struct {
		Time   int64 `json:"TLS.time"`
		Expire int64 `json:"TLS.expire"`
	}
	if json.Unmarshal(doc, &d) != nil {
		return 0, false
	}
	return d.Time + d.Expire, true
}
