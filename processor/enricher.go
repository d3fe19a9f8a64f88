package processor

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"golang.org/x/sync/singleflight"

	"github.com/tencentchat-enricher/enricher/schemas"
)

// lookup is the enrichment of one user, as cached.
type lookup struct {
	status    schemas.Status
	accounts  []schemas.OfficialAccount // shared by every record that reads it: never modified
	total     int
	complete  bool
	fetchedAt time.Time
}

// lookupFunc fetches one user's enrichment from the API. Errors are
// *FatalError, *unavailableError, *enrichError or the context's error.
type lookupFunc func(ctx context.Context, user string) (lookup, error)

// enricher serves lookups from a bounded cache and coalesces concurrent
// lookups of one user into one API call. Safe for concurrent use.
type enricher struct {
	cache  *otter.Cache[string, lookup]
	flight singleflight.Group
	fetch  lookupFunc
	// base bounds coalesced API calls, which outlive the record that
	// started them; it is canceled on a hard stop.
	base         context.Context
	hits, misses atomic.Int64
	calls        atomic.Int64 // lookups that reached fetch
}

// newEnricher builds the cache: CacheSize entries, entries with status ok
// live CacheTTL, the others (user_not_found, invalid_user) NegativeCacheTTL.
func newEnricher(base context.Context, cfg Config, fetch lookupFunc) (*enricher, error) {
	cache, err := otter.New(&otter.Options[string, lookup]{
		MaximumSize:      cfg.CacheSize,
		ExpiryCalculator: otter.ExpiryWritingFunc(cacheTTL(cfg.CacheTTL, cfg.NegativeCacheTTL)),
	})
	if err != nil {
		return nil, fmt.Errorf("processor: cache: %w", err)
	}
	return &enricher{cache: cache, fetch: fetch, base: base}, nil
}

func cacheTTL(positive, negative time.Duration) func(otter.Entry[string, lookup]) time.Duration {
	return func(e otter.Entry[string, lookup]) time.Duration {
		if e.Value.status == schemas.StatusOK {
			return positive
		}
		return negative
	}
}

// get returns the user's enrichment and whether it came from the cache.
// Only answers with a status are cached.
func (e *enricher) get(ctx context.Context, user string) (lookup, schemas.CacheResult, error) {
	if v, ok := e.cache.GetIfPresent(user); ok {
		e.hits.Add(1)
		return v, schemas.CacheHit, nil
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
		if v, ok := e.cache.GetIfPresent(user); ok {
			return v, nil
		}
		e.calls.Add(1)
		v, err := e.fetch(callCtx, user)
		if err != nil {
			return lookup{}, err
		}
		e.cache.Set(user, v)
		return v, nil
	})
	select {
	case <-ctx.Done():
		return lookup{}, "", ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return lookup{}, "", r.Err
		}
		return r.Val.(lookup), schemas.CacheMiss, nil
	}
}

// cached reports whether the user's enrichment is in the cache.
func (e *enricher) cached(user string) bool {
	_, ok := e.cache.GetIfPresent(user)
	return ok
}

// close stops the cache's background work.
func (e *enricher) close() { e.cache.StopAllGoroutines() }

// hitRatio is hits over lookups since start; 0 before the first.
func (e *enricher) hitRatio() float64 {
	h, m := e.hits.Load(), e.misses.Load()
	if h+m == 0 {
		return 0
	}
	return float64(h) / float64(h+m)
}
