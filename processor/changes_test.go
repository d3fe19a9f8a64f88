package processor

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/tencentchat-enricher/enricher/internal/testsupport"
	"github.com/tencentchat-enricher/enricher/schemas"
)

// truthAPI answers each user's list from a map the test edits, fetched at
// the test's clock, and counts calls.
type truthAPI struct {
	mu    sync.Mutex
	lists map[string][]string
	names map[string]string // account -> Name
	now   func() time.Time
	calls atomic.Int64
}

func (a *truthAPI) fetch(_ context.Context, user string) (lookup, error) {
	a.calls.Add(1)
	a.mu.Lock()
	defer a.mu.Unlock()
	var accts []schemas.OfficialAccount
	for _, id := range a.lists[user] {
		name := a.names[id]
		sub := int64(1700000000)
		accts = append(accts, schemas.OfficialAccount{OfficialAccount: id, Name: &name, SelfInfo: &schemas.SelfInfo{SubscribeTime: &sub}})
	}
	return lookup{status: schemas.StatusOK, accounts: accts, total: len(accts), complete: true, fetchedAt: a.now()}, nil
}

// listOf returns the account IDs of an encoded lookup, and their names.
func listOf(t testing.TB, v lookup) (ids, names []string) {
	t.Helper()
	accts, err := accountsOf(v)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range accts {
		ids = append(ids, a.OfficialAccount)
		if a.Name != nil {
			names = append(names, *a.Name)
		}
	}
	return ids, names
}

// TestChangeOrderingAndDuplicates applies a sequence of changes, with
// duplicates, late ones and one older than the cached list, alone and with
// a shared cache (the change received by one process, the events of the
// user in another): each outcome, each list, and the API calls it took.
func TestChangeOrderingAndDuplicates(t *testing.T) {
	for _, shared := range []bool{false, true} {
		name := "local"
		if shared {
			name = "shared"
		}
		t.Run(name, func(t *testing.T) {
			t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
			var clock atomic.Int64
			clock.Store(t0.UnixNano())
			now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
			api := &truthAPI{
				lists: map[string][]string{"u1": {"@TOA#_a", "@TOA#_b"}, "u2": {"@TOA#_c"}},
				names: map[string]string{"@TOA#_a": "A", "@TOA#_b": "B", "@TOA#_c": "C"},
				now:   now,
			}
			var recv, serve *enricher // recv gets the changes, serve the events
			if shared {
				mr := miniredis.RunT(t)
				recv = newCacheEnricher(t, api.fetch, newSharedStore(t, mr.Addr()), 0, now)
				serve = newCacheEnricher(t, api.fetch, newSharedStore(t, mr.Addr()), 0, now)
				testsupport.WaitFor(t, 10*time.Second, "change notifications subscribed", func() bool {
					return recv.watching.Load() && serve.watching.Load()
				})
			} else {
				recv = newCacheEnricher(t, api.fetch, nil, 0, now)
				serve = recv
			}
			ctx := context.Background()
			for _, u := range []string{"u1", "u2"} {
				if _, _, err := serve.get(ctx, u); err != nil {
					t.Fatal(err)
				}
			}
			if _, _, err := recv.get(ctx, "u2"); err != nil { // recv learns @TOA#_c
				t.Fatal(err)
			}
			calls := api.calls.Load()

			steps := []struct {
				name       string
				account    string
				subscribed bool
				at         time.Duration // after t0
				want       ChangeOutcome
				list       []string
				names      []string
			}{
				{"unsubscribe b", "@TOA#_b", false, time.Second, ChangePatched, []string{"@TOA#_a"}, []string{"A"}},
				{"duplicate", "@TOA#_b", false, time.Second, ChangeIgnored, []string{"@TOA#_a"}, []string{"A"}},
				{"late subscribe b", "@TOA#_b", true, time.Second / 2, ChangeIgnored, []string{"@TOA#_a"}, []string{"A"}},
				{"subscribe c (known from u2)", "@TOA#_c", true, 2 * time.Second, ChangePatched, []string{"@TOA#_a", "@TOA#_c"}, []string{"A", "C"}},
				{"subscribe c again, later", "@TOA#_c", true, 3 * time.Second, ChangeUnchanged, []string{"@TOA#_a", "@TOA#_c"}, []string{"A", "C"}},
				{"unsubscribe z (not listed)", "@TOA#_z", false, 3 * time.Second, ChangeUnchanged, []string{"@TOA#_a", "@TOA#_c"}, []string{"A", "C"}},
			}
			for _, st := range steps {
				c := Change{Account: st.account, Users: []string{"u1"}, Subscribed: st.subscribed, EventTime: t0.Add(st.at)}
				got, err := recv.applyChange(ctx, c, "u1")
				if err != nil || got != st.want {
					t.Fatalf("%s: outcome %v, %v; want %v", st.name, got, err, st.want)
				}
				var ids, names []string
				testsupport.WaitFor(t, 10*time.Second, st.name+": the list where events are served", func() bool {
					v, _, err := serve.get(ctx, "u1")
					if err != nil {
						t.Fatal(err)
					}
					ids, names = listOf(t, v)
					return slices.Equal(ids, st.list)
				})
				if !slices.Equal(names, st.names) {
					t.Fatalf("%s: names %v, want %v", st.name, names, st.names)
				}
				if n := api.calls.Load(); n != calls {
					t.Fatalf("%s: %d API calls, want none", st.name, n-calls)
				}
			}

			// An added account no cache knows: the entry is dropped and the
			// next lookup fetches the list the API has by then.
			api.mu.Lock()
			api.lists["u1"] = []string{"@TOA#_a", "@TOA#_c", "@TOA#_d"}
			api.names["@TOA#_d"] = "D"
			api.mu.Unlock()
			clock.Store(t0.Add(10 * time.Second).UnixNano())
			c := Change{Account: "@TOA#_d", Users: []string{"u1"}, Subscribed: true, EventTime: t0.Add(4 * time.Second)}
			if got, err := recv.applyChange(ctx, c, "u1"); err != nil || got != ChangeInvalidated {
				t.Fatalf("subscribe d: %v, %v; want invalidated", got, err)
			}
			testsupport.WaitFor(t, 10*time.Second, "u1 fetched again with d", func() bool {
				v, _, err := serve.get(ctx, "u1")
				if err != nil {
					t.Fatal(err)
				}
				ids, _ := listOf(t, v)
				return slices.Equal(ids, []string{"@TOA#_a", "@TOA#_c", "@TOA#_d"})
			})
			if n := api.calls.Load() - calls; n != 1 {
				t.Fatalf("%d API calls after the invalidation, want 1", n)
			}

			// A change older than the list (fetched at t0+10s) that no
			// change applied before contradicts: the list already holds it.
			c = Change{Account: "@TOA#_a", Users: []string{"u1"}, Subscribed: false, EventTime: t0.Add(5 * time.Second)}
			if got, err := recv.applyChange(ctx, c, "u1"); err != nil || got != ChangeUnchanged {
				t.Fatalf("change older than the list: %v, %v; want unchanged", got, err)
			}
			if v, _, _ := serve.get(ctx, "u1"); !slices.Contains(func() []string { ids, _ := listOf(t, v); return ids }(), "@TOA#_a") {
				t.Fatal("a change older than the list removed an account")
			}

			// A user no cache holds: nothing to patch, no API call.
			if got, err := recv.applyChange(ctx, Change{Account: "@TOA#_a", Users: []string{"u9"}, EventTime: t0.Add(6 * time.Second)}, "u9"); err != nil || got != ChangeUncached {
				t.Fatalf("uncached user: %v, %v", got, err)
			}
		})
	}
}

// TestCacheRefreshAfter: an entry older than CacheRefreshAfter is served
// from the cache and fetched again in the background; a young one is not.
func TestCacheRefreshAfter(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var clock atomic.Int64
	clock.Store(t0.UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	api := &truthAPI{lists: map[string][]string{"u1": {"@TOA#_a"}}, names: map[string]string{}, now: now}
	cfg := testConfig()
	cfg.CacheTTL, cfg.CacheRefreshAfter, cfg.Now = 24*time.Hour, time.Hour, now
	e, err := newEnricher(context.Background(), cfg.withDefaults(), api.fetch)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.close)
	ctx := context.Background()
	if _, _, err := e.get(ctx, "u1"); err != nil {
		t.Fatal(err)
	}
	clock.Store(t0.Add(59 * time.Minute).UnixNano())
	if _, l, _ := e.get(ctx, "u1"); l != layerLocal {
		t.Fatalf("young entry from %v", l)
	}
	if n := api.calls.Load(); n != 1 {
		t.Fatalf("%d calls before the refresh age, want 1", n)
	}
	api.mu.Lock()
	api.lists["u1"] = []string{"@TOA#_b"}
	api.mu.Unlock()
	clock.Store(t0.Add(61 * time.Minute).UnixNano())
	v, l, _ := e.get(ctx, "u1")
	if ids, _ := listOf(t, v); l != layerLocal || !slices.Equal(ids, []string{"@TOA#_a"}) {
		t.Fatalf("old entry: %v from %v; want the cached list at once", ids, l)
	}
	testsupport.WaitFor(t, 10*time.Second, "the background refresh", func() bool { return e.refreshed.Load() == 1 })
	v, _, _ = e.get(ctx, "u1")
	if ids, _ := listOf(t, v); !slices.Equal(ids, []string{"@TOA#_b"}) {
		t.Fatalf("after the refresh: %v", ids)
	}
	if n := api.calls.Load(); n != 2 {
		t.Fatalf("%d calls, want 2", n)
	}
}
