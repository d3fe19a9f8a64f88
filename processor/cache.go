package processor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/maypok86/otter/v2"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"

	"github.com/tencentchat-enricher/enricher/processor/sharedcache"
	"github.com/tencentchat-enricher/enricher/schemas"
)

// The enrich stage's cache (enrich.go calls get): a bounded local cache in
// front of the cache every process shares (Config.SharedCache), and one
// API call per user at a time — within a process by a singleflight, across
// processes by the shared cache's lease.

// SharedCache is the subscription cache shared by every process of an
// SDKAppID; *sharedcache.Store (Redis) implements it, with the protocol its
// package describes. Values are opaque to it (encodeLookup). Safe for
// concurrent use.
type SharedCache interface {
	Get(ctx context.Context, user string) (value []byte, ttlLeft time.Duration, ok bool, err error)
	Set(ctx context.Context, user string, value []byte, ttl time.Duration) error
	Acquire(ctx context.Context, user string) (lease *sharedcache.Lease, acquired bool, err error)
	Wait(ctx context.Context, user string, maxWait time.Duration) (value []byte, ttlLeft time.Duration, ok bool, err error)
}

// lookup is the enrichment of one user, as cached.
type lookup struct {
	status schemas.Status
	// accounts are the answer of a fetch (or of the shared cache) until
	// the enricher encodes them into enc; a cached lookup holds enc alone,
	// shared by every record that reads it (never modified).
	accounts  []schemas.OfficialAccount
	enc       *schemas.Enriched
	total     int
	complete  bool
	fetchedAt time.Time
	// expires is the end of the entry's TTL (CacheTTL for ok, else
	// NegativeCacheTTL, from when it was fetched); past it the entry is
	// stale, kept CacheStaleTTL more.
	expires time.Time
	// refreshAt, when set (CacheRefreshAfter), is when an entry still
	// within its TTL is refreshed in the background.
	refreshAt time.Time
}

// lookupFunc fetches one user's enrichment from the API. Errors are
// *FatalError, *unavailableError, *enrichError or the context's error.
type lookupFunc func(ctx context.Context, user string) (lookup, error)

// layer is where a lookup was answered from.
type layer int

const (
	layerLocal  layer = iota // the local cache
	layerShared              // the shared cache (another process fetched it)
	layerStale               // an entry past its TTL, within CacheStaleTTL
	layerAPI                 // an API call (this one's or a coalesced one)
)

var layerNames = [...]string{layerLocal: "local", layerShared: "shared", layerStale: "stale", layerAPI: "api"}

func (l layer) String() string { return layerNames[l] }

// result is the output's cache field for a lookup from l.
func (l layer) result() schemas.CacheResult {
	switch l {
	case layerAPI:
		return schemas.CacheMiss
	case layerStale:
		return schemas.CacheStale
	}
	return schemas.CacheHit
}

// enricher serves lookups from the caches and coalesces concurrent lookups
// of one user into one API call. Safe for concurrent use.
type enricher struct {
	cache  *otter.Cache[string, lookup]
	shared SharedCache // nil: the local cache alone
	flight singleflight.Group
	fetch  lookupFunc
	fields *schemas.Fields // the account fields encoded (nil: all)
	now    func() time.Time
	ttl    func(schemas.Status) time.Duration
	stale  time.Duration // CacheStaleTTL
	// refreshAfter is CacheRefreshAfter (0: off).
	refreshAfter time.Duration
	log          *slog.Logger
	// base bounds coalesced API calls, which outlive the record that
	// started them, and background refreshes; it is canceled on a hard
	// stop, and by close.
	base   context.Context
	cancel context.CancelFunc

	refreshes chan struct{}  // background refreshes running (one at a time)
	wg        sync.WaitGroup // background refreshes
	sharedLog *rate.Limiter  // a warn line about the shared cache at most this often
	sharedErr atomic.Int64   // shared cache errors since start

	hits, misses atomic.Int64
	byLayer      [len(layerNames)]atomic.Int64
	calls        atomic.Int64 // lookups that reached fetch
	refreshed    atomic.Int64 // background refreshes of entries past refreshAt

	// infos are the accounts' base information seen in fetched lists
	// (changes.go), stamps the event time of the last change applied per
	// user and account without a shared cache, watching whether the shared
	// cache's change notifications are being received.
	infos    *otter.Cache[string, schemas.OfficialAccount]
	stamps   *otter.Cache[string, int64]
	watching atomic.Bool
}

// newEnricher builds the cache: CacheSize entries, entries with status ok
// live CacheTTL, the others (user_not_found, invalid_user) NegativeCacheTTL,
// each CacheStaleTTL more as stale entries.
func newEnricher(base context.Context, cfg Config, fetch lookupFunc) (*enricher, error) {
	ctx, cancel := context.WithCancel(base)
	e := &enricher{
		shared: cfg.SharedCache, fetch: fetch, fields: cfg.fields, now: cfg.Now, stale: cfg.CacheStaleTTL, log: cfg.Logger,
		base: ctx, cancel: cancel, refreshes: make(chan struct{}, 1), refreshAfter: cfg.CacheRefreshAfter,
		sharedLog: rate.NewLimiter(rate.Every(10*time.Second), 1),
		ttl: func(s schemas.Status) time.Duration {
			if s == schemas.StatusOK {
				return cfg.CacheTTL
			}
			return cfg.NegativeCacheTTL
		},
	}
	cache, err := otter.New(&otter.Options[string, lookup]{
		MaximumSize: cfg.CacheSize,
		ExpiryCalculator: otter.ExpiryWritingFunc(func(en otter.Entry[string, lookup]) time.Duration {
			return max(en.Value.expires.Add(e.stale).Sub(e.now()), time.Nanosecond)
		}),
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("processor: cache: %w", err)
	}
	e.cache = cache
	if e.infos, err = otter.New(&otter.Options[string, schemas.OfficialAccount]{MaximumSize: cfg.CacheSize}); err == nil {
		e.stamps, err = otter.New(&otter.Options[string, int64]{
			MaximumSize:      cfg.CacheSize,
			ExpiryCalculator: otter.ExpiryWriting[string, int64](e.stampTTL()),
		})
	}
	if err != nil {
		cancel()
		cache.StopAllGoroutines()
		return nil, fmt.Errorf("processor: cache: %w", err)
	}
	if w, ok := e.shared.(changePatcher); ok {
		e.wg.Add(1)
		go e.watchChanges(w)
	}
	return e, nil
}

// local returns the user's enrichment from the local cache (layerLocal,
// or layerStale, which starts a background refresh), counted as a hit;
// false when it is not there (nothing is counted).
func (e *enricher) local(user string) (lookup, layer, bool) {
	v, ok := e.cache.GetIfPresent(user)
	if !ok {
		return lookup{}, 0, false
	}
	switch e.freshness(v) {
	case layerLocal:
		if e.refreshAfter > 0 && e.now().After(v.refreshAt) {
			e.revalidate(user)
		}
		e.hit(layerLocal)
		return v, layerLocal, true
	case layerStale:
		e.refresh(user)
		e.hit(layerStale)
		return v, layerStale, true
	}
	return lookup{}, 0, false
}

// get returns the user's enrichment and where it came from. Only answers
// with a status are cached. A stale entry is returned at once and
// refreshed in the background.
func (e *enricher) get(ctx context.Context, user string) (lookup, layer, error) {
	if v, from, ok := e.local(user); ok {
		return v, from, nil
	}
	e.misses.Add(1)
	ch := e.flight.DoChan(user, func() (any, error) {
		// The call serves every record waiting for this user, so the first
		// caller's cancellation must not fail the others; its span stays the
		// parent of the API spans.
		callCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		defer cancel()
		stop := context.AfterFunc(e.base, cancel)
		defer stop()
		v, l, err := e.load(callCtx, user)
		return loaded{v, l}, err
	})
	select {
	case <-ctx.Done():
		return lookup{}, 0, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return lookup{}, 0, r.Err
		}
		ld := r.Val.(loaded)
		e.byLayer[ld.layer].Add(1)
		return ld.v, ld.layer, nil
	}
}

// freshness is layerLocal for an entry within its TTL, layerStale within
// the stale window after it, and layerAPI (fetch again) past both.
func (e *enricher) freshness(v lookup) layer {
	now := e.now()
	switch {
	case !now.After(v.expires):
		return layerLocal
	case e.stale > 0 && !now.After(v.expires.Add(e.stale)):
		return layerStale
	}
	return layerAPI
}

// loaded is the result of a coalesced load.
type loaded struct {
	v     lookup
	layer layer
}

func (e *enricher) hit(l layer) {
	e.hits.Add(1)
	e.byLayer[l].Add(1)
}

// load answers a local miss (or a stale entry): from the shared cache, or
// from the API under the shared cache's lease, storing the answer in both
// caches. When the shared cache fails, the process fetches by itself.
func (e *enricher) load(ctx context.Context, user string) (lookup, layer, error) {
	if v, ok := e.cache.GetIfPresent(user); ok && e.freshness(v) == layerLocal {
		return v, layerLocal, nil // stored while this call waited to start
	}
	var lease *sharedcache.Lease
	if e.shared != nil {
		v, l, held, ok := e.loadShared(ctx, user)
		if ok {
			e.cache.Set(user, v)
			return v, l, nil
		}
		lease = held
	}
	v, err := e.fetchAndStore(ctx, user)
	if err != nil {
		if lease != nil {
			e.sharedFailed(lease.Release(context.WithoutCancel(ctx)))
		}
		return lookup{}, 0, err
	}
	return v, layerAPI, nil
}

// fetchAndStore fetches the user from the API and stores the answer in
// both caches (a Set, which consumes the caller's lease if it holds one).
func (e *enricher) fetchAndStore(ctx context.Context, user string) (lookup, error) {
	e.calls.Add(1)
	v, err := e.fetch(ctx, user)
	if err != nil {
		return lookup{}, err
	}
	e.learn(ctx, v.accounts)
	if v, err = encodeEnrichment(v, e.fields); err != nil {
		return lookup{}, &enrichError{err: err}
	}
	e.setTimes(&v, e.ttl(v.status))
	e.cache.Set(user, v)
	if e.shared != nil {
		if b, err := encodeLookup(v); err == nil {
			e.sharedFailed(e.shared.Set(ctx, user, b, e.ttl(v.status)+e.stale))
		}
	}
	return v, nil
}

// setTimes sets the end of v's TTL, ttl from now, and when it is to be
// refreshed (CacheRefreshAfter after it was fetched).
func (e *enricher) setTimes(v *lookup, ttl time.Duration) {
	v.expires = e.now().Add(ttl)
	if e.refreshAfter > 0 {
		v.refreshAt = v.fetchedAt.Add(e.refreshAfter)
		if v.fetchedAt.IsZero() {
			v.refreshAt = e.now().Add(e.refreshAfter)
		}
	}
}

// sharedAttempts bounds the rounds of Get, Acquire and Wait before a
// process fetches by itself.
const sharedAttempts = 3

// loadShared follows the shared cache's protocol: its value when there is
// one (ok); else the lease, held for the caller to fetch and Set; else the
// value the lease holder stores. It gives up (no value, no lease: the
// caller fetches by itself) on a shared cache error or after
// sharedAttempts rounds.
func (e *enricher) loadShared(ctx context.Context, user string) (v lookup, l layer, lease *sharedcache.Lease, ok bool) {
	for range sharedAttempts {
		b, left, found, err := e.shared.Get(ctx, user)
		if e.sharedFailed(err) {
			return lookup{}, 0, nil, false
		}
		if found {
			if v, l, ok := e.fromShared(user, b, left); ok {
				return v, l, nil, true
			}
		}
		lease, acquired, err := e.shared.Acquire(ctx, user)
		if e.sharedFailed(err) {
			return lookup{}, 0, nil, false
		}
		if acquired {
			return lookup{}, 0, lease, false
		}
		b, left, found, err = e.shared.Wait(ctx, user, sharedcache.DefaultLeaseTTL)
		if e.sharedFailed(err) {
			return lookup{}, 0, nil, false
		}
		if found {
			if v, l, ok := e.fromShared(user, b, left); ok {
				return v, l, nil, true
			}
		}
	}
	return lookup{}, 0, nil, false
}

// fromShared decodes a shared entry with ttlLeft to live (its TTL plus the
// stale window). An entry that cannot be decoded is ignored (fetched
// again, which overwrites it).
func (e *enricher) fromShared(user string, b []byte, ttlLeft time.Duration) (lookup, layer, bool) {
	v, err := decodeLookup(b)
	if err == nil {
		e.learn(e.base, v.accounts)
		v, err = encodeEnrichment(v, e.fields)
	}
	if err != nil {
		e.sharedFailed(fmt.Errorf("user %q: %w", user, err))
		return lookup{}, 0, false
	}
	e.setTimes(&v, ttlLeft-e.stale)
	switch e.freshness(v) {
	case layerLocal:
		return v, layerShared, true
	case layerStale:
		e.refresh(user)
		return v, layerStale, true
	}
	return lookup{}, 0, false
}

// sharedFailed counts and logs (at most every 10s) an error of the shared
// cache and reports whether there was one.
func (e *enricher) sharedFailed(err error) bool {
	if err == nil {
		return false
	}
	n := e.sharedErr.Add(1)
	if e.sharedLog.Allow() && !errors.Is(err, context.Canceled) {
		e.log.Warn("shared cache failed; fetching without it", "error", err, "errors", n)
	}
	return true
}

// refresh fetches a stale user again in the background, one user at a time
// at most: after users never seen, which wait for the API with records
// behind them. Another refresh running (or the user's load running) skips
// it; the next stale read asks again.
func (e *enricher) refresh(user string) {
	e.background(user, func() (any, error) {
		v, l, err := e.load(e.base, user)
		return loaded{v, l}, err
	})
}

// background runs fn as the user's coalesced load, in the background, if
// no other background load runs: refresh and revalidate take one slot, and
// a load already running for the user (a record's, say) is joined.
func (e *enricher) background(user string, fn func() (any, error)) {
	select {
	case e.refreshes <- struct{}{}:
	default:
		return
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer func() { <-e.refreshes }()
		select {
		case <-e.flight.DoChan(user, fn):
		case <-e.base.Done():
		}
	}()
}

// revalidate fetches, in the background, a user whose entry is within its
// TTL but past CacheRefreshAfter: the safety net of long TTLs kept current
// by changes (webhooks can be lost). Like refresh, one at a time and
// skipped while another runs; with a shared cache, a value another process
// refreshed meanwhile is taken instead of fetching.
func (e *enricher) revalidate(user string) {
	e.background(user, func() (any, error) {
		if v, ok := e.cache.GetIfPresent(user); ok && !e.now().After(v.refreshAt) {
			return loaded{v, layerLocal}, nil // refreshed meanwhile
		}
		if e.shared != nil {
			b, left, found, err := e.shared.Get(e.base, user)
			if !e.sharedFailed(err) && found {
				if v, l, ok := e.fromShared(user, b, left); ok && l == layerShared && e.now().Before(v.refreshAt) {
					e.cache.Set(user, v)
					return loaded{v, layerShared}, nil
				}
			}
		}
		v, err := e.fetchAndStore(e.base, user)
		if err == nil {
			e.refreshed.Add(1)
		}
		return loaded{v, layerAPI}, err
	})
}

// cached reports whether the user's enrichment is in the local cache,
// fresh or stale: a record of the user is published without waiting.
func (e *enricher) cached(user string) bool {
	v, ok := e.cache.GetIfPresent(user)
	return ok && e.freshness(v) != layerAPI
}

// close stops the background refreshes and the cache's background work.
func (e *enricher) close() {
	e.cancel()
	e.wg.Wait()
	e.cache.StopAllGoroutines()
}

// hitRatio is hits over lookups since start; 0 before the first.
func (e *enricher) hitRatio() float64 {
	h, m := e.hits.Load(), e.misses.Load()
	if h+m == 0 {
		return 0
	}
	return float64(h) / float64(h+m)
}

// encodeEnrichment encodes v's accounts (with only fields) into v.enc and
// drops the decoded accounts: the cache holds the encoding alone, whose
// accounts are interned across users.
func encodeEnrichment(v lookup, fields *schemas.Fields) (lookup, error) {
	en := schemas.Enrichment{Status: v.status, OfficialAccounts: v.accounts, TotalCount: v.total, Complete: v.complete}
	if !v.fetchedAt.IsZero() {
		en.FetchedAt = &v.fetchedAt
	}
	enc, err := schemas.EncodeEnrichment(en, fields)
	if err != nil {
		return lookup{}, err
	}
	v.enc, v.accounts = enc, nil
	return v, nil
}

// The shared cache's value of a lookup: a version byte, then the
// zstd-compressed JSON of sharedLookup (accounts in the output schema's
// field names, so an account field added to schemas.OfficialAccount is
// carried without an edit here, and a lookup's encoded accounts are the
// value's accounts as they are). With Config.Fields the accounts carry
// only those fields: the processes sharing a cache use the same fields.
const lookupV1 = 1

type sharedLookup struct {
	Status    schemas.Status            `json:"s"`
	Accounts  []schemas.OfficialAccount `json:"a,omitempty"`
	Total     int                       `json:"t,omitempty"`
	Complete  bool                      `json:"c,omitempty"`
	FetchedAt int64                     `json:"f"` // Unix milliseconds
}

var (
	zstdEnc, _ = zstd.NewWriter(nil)
	zstdDec, _ = zstd.NewReader(nil, zstd.WithDecoderMaxMemory(maxSharedLookup))
)

// maxSharedLookup bounds a decoded shared value (a user's whole list).
const maxSharedLookup = 64 << 20

// errLookup marks a shared value that is not a lookup.
var errLookup = errors.New("not a cached lookup")

// sharedLookupOut is sharedLookup as written, from encoded accounts.
type sharedLookupOut struct {
	Status    schemas.Status  `json:"s"`
	Accounts  json.RawMessage `json:"a,omitempty"`
	Total     int             `json:"t,omitempty"`
	Complete  bool            `json:"c,omitempty"`
	FetchedAt int64           `json:"f"`
}

// encodeLookup encodes an encoded lookup (v.enc set) for the shared cache.
func encodeLookup(v lookup) ([]byte, error) {
	out := sharedLookupOut{Status: v.status, Total: v.total, Complete: v.complete, FetchedAt: v.fetchedAt.UnixMilli()}
	if v.enc != nil && v.enc.Accounts() > 0 {
		out.Accounts = v.enc.AppendAccounts(nil)
	}
	j, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	return zstdEnc.EncodeAll(j, []byte{lookupV1}), nil
}

func decodeLookup(b []byte) (lookup, error) {
	if len(b) < 1 || b[0] != lookupV1 {
		return lookup{}, fmt.Errorf("%w: unknown version", errLookup)
	}
	j, err := zstdDec.DecodeAll(b[1:], nil)
	if err != nil {
		return lookup{}, fmt.Errorf("%w: %w", errLookup, err)
	}
	var s sharedLookup
	if err := json.Unmarshal(j, &s); err != nil {
		return lookup{}, fmt.Errorf("%w: %w", errLookup, err)
	}
	switch s.Status {
	case schemas.StatusOK, schemas.StatusUserNotFound, schemas.StatusInvalidUser:
	default:
		return lookup{}, fmt.Errorf("%w: status %q", errLookup, s.Status)
	}
	return lookup{status: s.Status, accounts: s.Accounts, total: s.Total, complete: s.Complete, fetchedAt: time.UnixMilli(s.FetchedAt).UTC()}, nil
}
