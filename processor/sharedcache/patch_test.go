package sharedcache_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/tencentchat-enricher/enricher/internal/testsupport"
	"github.com/tencentchat-enricher/enricher/processor/sharedcache"
)

func newPatchStore(t *testing.T, addr string) *sharedcache.Store {
	t.Helper()
	rc := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = rc.Close() })
	s, err := sharedcache.New(sharedcache.Config{Redis: rc, Prefix: "enricher:subs:1:"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestPatch: a patch replaces or deletes the value keeping its TTL, a
// change not newer than the stamp is refused, every patch is announced to
// the watchers of every store, and the details round-trip.
func TestPatch(t *testing.T) {
	mr := miniredis.RunT(t)
	a, b := newPatchStore(t, mr.Addr()), newPatchStore(t, mr.Addr())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var seen []string
	done := make(chan error, 1)
	go func() {
		done <- b.WatchChanges(ctx, func(u string) {
			mu.Lock()
			seen = append(seen, u)
			mu.Unlock()
		})
	}()
	testsupport.WaitFor(t, 5*time.Second, "subscribed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) > 0 && seen[0] == ""
	})
	if err := a.Set(ctx, "u", []byte("v1"), time.Hour); err != nil {
		t.Fatal(err)
	}
	t0 := time.UnixMilli(1_700_000_000_000)
	act, err := a.Patch(ctx, "u", "acct", t0, time.Hour, func(v []byte) ([]byte, sharedcache.PatchAction, error) {
		if string(v) != "v1" {
			t.Errorf("patch saw %q", v)
		}
		return []byte("v2"), sharedcache.PatchReplace, nil
	})
	if err != nil || act != sharedcache.PatchReplace {
		t.Fatalf("patch: %v, %v", act, err)
	}
	got, left, ok, err := b.Get(ctx, "u")
	if err != nil || !ok || string(got) != "v2" || left < 59*time.Minute {
		t.Fatalf("after the patch: %q %v %v %v", got, left, ok, err)
	}
	called := false
	for _, at := range []time.Time{t0, t0.Add(-time.Second)} {
		if _, err := a.Patch(ctx, "u", "acct", at, time.Hour, func([]byte) ([]byte, sharedcache.PatchAction, error) {
			called = true
			return nil, sharedcache.PatchDelete, nil
		}); !errors.Is(err, sharedcache.ErrStale) {
			t.Fatalf("patch at %v: %v, want ErrStale", at, err)
		}
	}
	if called {
		t.Fatal("a stale change called the patch function")
	}
	// Another account's stamp is its own.
	if act, err := a.Patch(ctx, "u", "other", t0.Add(-time.Hour), time.Hour, func([]byte) ([]byte, sharedcache.PatchAction, error) {
		return nil, sharedcache.PatchDelete, nil
	}); err != nil || act != sharedcache.PatchDelete {
		t.Fatalf("delete: %v, %v", act, err)
	}
	if _, _, ok, _ := b.Get(ctx, "u"); ok {
		t.Fatal("value still there after a delete")
	}
	testsupport.WaitFor(t, 5*time.Second, "both patches announced", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == 3 && seen[1] == "u" && seen[2] == "u"
	})

	if err := a.PutInfos(ctx, map[string][]byte{"@TOA#_x": []byte(`{"x":1}`), "@TOA#_y": []byte(`{"y":2}`)}); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{"@TOA#_x": `{"x":1}`, "@TOA#_y": `{"y":2}`} {
		if v, ok, err := b.Info(ctx, id); err != nil || !ok || string(v) != want {
			t.Fatalf("info %s: %q %v %v", id, v, ok, err)
		}
	}
	if _, ok, err := b.Info(ctx, "@TOA#_z"); ok || err != nil {
		t.Fatalf("unknown info: %v %v", ok, err)
	}
	cancel()
	<-done
}
