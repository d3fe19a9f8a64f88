package processor

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/tencentchat-enricher/enricher/internal/testsupport"
	"github.com/tencentchat-enricher/enricher/processor/sharedcache"
	"github.com/tencentchat-enricher/enricher/schemas"
)

// countingLookup answers like okLookup(n) and counts calls per user.
type countingLookup struct {
	n     int
	calls sync.Map // user -> *atomic.Int64
	fail  atomic.Bool
}

func (c *countingLookup) fetch(ctx context.Context, user string) (lookup, error) {
	v, _ := c.calls.LoadOrStore(user, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
	if c.fail.Load() {
		return lookup{}, &unavailableError{err: errors.New("down")}
	}
	if user == "ghost" {
		return lookup{status: schemas.StatusUserNotFound, complete: true, fetchedAt: time.Now()}, nil
	}
	return okLookup(c.n)(ctx, user)
}

func (c *countingLookup) count(user string) int64 {
	v, ok := c.calls.Load(user)
	if !ok {
		return 0
	}
	return v.(*atomic.Int64).Load()
}

func newSharedStore(t testing.TB, addr string) *sharedcache.Store {
	t.Helper()
	rc := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	t.Cleanup(func() { _ = rc.Close() })
	s, err := sharedcache.New(sharedcache.Config{Redis: rc, Prefix: "enricher:subs:1:", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// newCacheEnricher is an enricher over fetch with the shared cache (nil:
// none), stale window and clock given.
func newCacheEnricher(t testing.TB, fetch lookupFunc, shared SharedCache, stale time.Duration, now func() time.Time) *enricher {
	t.Helper()
	cfg := testConfig()
	cfg.SharedCache, cfg.CacheStaleTTL, cfg.Now = shared, stale, now
	e, err := newEnricher(context.Background(), cfg.withDefaults(), fetch)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.close)
	return e
}

// TestSharedCacheAcrossProcesses: what one process fetched, another one
// (its own local cache, the same Redis) reuses without an API call,
// negative answers too; concurrent lookups of one user in several
// processes make one API call.
func TestSharedCacheAcrossProcesses(t *testing.T) {
	mr := miniredis.RunT(t)
	api := &countingLookup{n: 3}
	a := newCacheEnricher(t, api.fetch, newSharedStore(t, mr.Addr()), 0, nil)
	b := newCacheEnricher(t, api.fetch, newSharedStore(t, mr.Addr()), 0, nil)
	ctx := context.Background()

	for _, user := range []string{"u1", "ghost"} {
		va, la, err := a.get(ctx, user)
		if err != nil || la != layerAPI {
			t.Fatalf("%s in a: %v, %v", user, la, err)
		}
		vb, lb, err := b.get(ctx, user)
		if err != nil || lb != layerShared {
			t.Fatalf("%s in b: layer %v, %v; want shared", user, lb, err)
		}
		if vb.status != va.status || string(vb.enc.AppendAccounts(nil)) != string(va.enc.AppendAccounts(nil)) || vb.total != va.total ||
			!vb.fetchedAt.Equal(va.fetchedAt.Truncate(time.Millisecond)) {
			t.Fatalf("%s: b got %+v, a fetched %+v", user, vb, va)
		}
		if n := api.count(user); n != 1 {
			t.Fatalf("%s: %d API calls, want 1", user, n)
		}
		if _, l, _ := b.get(ctx, user); l != layerLocal {
			t.Fatalf("%s: b's second lookup from %v, want local", user, l)
		}
	}

	// One user, four processes, at once: one API call (the lease).
	gate := make(chan struct{})
	var started atomic.Int64
	slow := func(ctx context.Context, user string) (lookup, error) {
		started.Add(1)
		<-gate
		return api.fetch(ctx, user)
	}
	var procs []*enricher
	for range 4 {
		procs = append(procs, newCacheEnricher(t, slow, newSharedStore(t, mr.Addr()), 0, nil))
	}
	var wg sync.WaitGroup
	layers := make(chan layer, len(procs))
	for _, e := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, l, err := e.get(ctx, "hot")
			if err != nil {
				t.Error(err)
			}
			layers <- l
		}()
	}
	testsupport.WaitFor(t, 10*time.Second, "one process fetching", func() bool { return started.Load() == 1 })
	close(gate)
	wg.Wait()
	close(layers)
	if n := api.count("hot"); n != 1 {
		t.Fatalf("%d API calls for one user in four processes, want 1", n)
	}
	shared := 0
	for l := range layers {
		if l == layerShared {
			shared++
		}
	}
	if shared != len(procs)-1 {
		t.Fatalf("%d processes answered from the shared cache, want %d", shared, len(procs)-1)
	}
}

// TestSharedCacheDown: with Redis gone, lookups go on through the API,
// errors are counted, nothing fails.
func TestSharedCacheDown(t *testing.T) {
	mr := miniredis.RunT(t)
	api := &countingLookup{n: 1}
	e := newCacheEnricher(t, api.fetch, newSharedStore(t, mr.Addr()), 0, nil)
	mr.Close()
	for _, user := range []string{"u1", "u2"} {
		if _, l, err := e.get(context.Background(), user); err != nil || l != layerAPI {
			t.Fatalf("%s: %v, %v", user, l, err)
		}
	}
	if api.count("u1") != 1 || api.count("u2") != 1 || e.sharedErr.Load() == 0 {
		t.Fatalf("calls %d/%d, shared errors %d", api.count("u1"), api.count("u2"), e.sharedErr.Load())
	}
}

// TestStaleWhileRevalidate: past its TTL, within the stale window, an
// entry is served at once as stale and fetched again in the background;
// past the window it is fetched before it is served. Without a window an
// expired entry is never served.
func TestStaleWhileRevalidate(t *testing.T) {
	clock := testsupport.NewClock(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	api := &countingLookup{n: 2}
	e := newCacheEnricher(t, api.fetch, nil, time.Hour, clock.Now)
	ctx := context.Background()
	if _, l, err := e.get(ctx, "u1"); err != nil || l != layerAPI {
		t.Fatal(l, err)
	}
	clock.Advance(DefaultCacheTTL + time.Minute)
	if !e.cached("u1") {
		t.Fatal("a stale entry is not ready to publish")
	}
	if _, l, err := e.get(ctx, "u1"); err != nil || l != layerStale {
		t.Fatalf("after the TTL: %v, %v; want stale", l, err)
	}
	testsupport.WaitFor(t, 5*time.Second, "the background refresh", func() bool { return api.count("u1") == 2 })
	testsupport.WaitFor(t, 5*time.Second, "the refreshed entry", func() bool {
		_, l, _ := e.get(ctx, "u1")
		return l == layerLocal
	})

	clock.Advance(DefaultCacheTTL + 2*time.Hour)
	if e.cached("u1") {
		t.Fatal("an entry past the stale window is ready to publish")
	}
	if _, l, err := e.get(ctx, "u1"); err != nil || l != layerAPI || api.count("u1") != 3 {
		t.Fatalf("past the window: %v, %v, %d calls; want a fetch", l, err, api.count("u1"))
	}

	fresh := newCacheEnricher(t, api.fetch, nil, 0, clock.Now)
	if _, _, err := fresh.get(ctx, "u2"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(DefaultCacheTTL + time.Second)
	if _, l, err := fresh.get(ctx, "u2"); err != nil || l != layerAPI {
		t.Fatalf("no stale window: %v, %v; want a fetch", l, err)
	}
}

// TestLookupEncoding: a lookup survives the shared cache's encoding, and
// bytes that are not one are rejected.
func TestLookupEncoding(t *testing.T) {
	v, _ := okLookup(3)(context.Background(), "u1")
	name := "News"
	v.accounts[1].Name = &name
	want := v.accounts
	v, err := encodeEnrichment(v, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := encodeLookup(v)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeLookup(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.status != v.status || got.total != 3 || !got.complete || len(got.accounts) != 3 ||
		*got.accounts[1].Name != "News" || got.accounts[2].OfficialAccount != want[2].OfficialAccount ||
		!got.fetchedAt.Equal(v.fetchedAt.Truncate(time.Millisecond)) {
		t.Fatalf("round trip: %+v", got)
	}
	for _, bad := range [][]byte{nil, {}, {2}, {lookupV1}, {lookupV1, 1, 2, 3}, append([]byte{lookupV1}, zstdEnc.EncodeAll([]byte(`{"s":"weird"}`), nil)...)} {
		if _, err := decodeLookup(bad); !errors.Is(err, errLookup) {
			t.Errorf("decode %x: %v, want errLookup", bad, err)
		}
	}
}

func FuzzDecodeLookup(f *testing.F) {
	v, _ := okLookup(2)(context.Background(), "u1")
	v, _ = encodeEnrichment(v, nil)
	b, _ := encodeLookup(v)
	f.Add(b)
	f.Add([]byte{lookupV1})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeLookup(b)
		if err != nil {
			if !errors.Is(err, errLookup) {
				t.Fatalf("error %v is not errLookup", err)
			}
			return
		}
		enc, err := encodeEnrichment(got, nil)
		if err != nil {
			return // accounts encoding/json cannot write (times out of range)
		}
		again, err := encodeLookup(enc)
		if err != nil {
			t.Fatal(err)
		}
		back, err := decodeLookup(again)
		if err != nil || back.status != got.status || back.total != got.total || len(back.accounts) != len(got.accounts) {
			t.Fatalf("re-encoding changed %+v into %+v (%v)", got, back, err)
		}
	})
}
