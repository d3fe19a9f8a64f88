package sharedcache

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tencentchat-enricher/enricher/internal/redistest"
)

// These tests run Stores against a real redis-server, each "process" with a
// go-redis client of its own.

func procStore(t *testing.T, srv *redistest.Server, cfg Config) *Store {
	t.Helper()
	cfg.Redis = srv.Client(func(o *redis.Options) { o.MaxRetries = -1; o.DialTimeout = 100 * time.Millisecond })
	return newStore(t, cfg)
}

// lookup follows the package's protocol: Get, else Acquire and fetch, else
// Wait for the holder; a lease found free again is retried.
func lookup(ctx context.Context, s *Store, user string, fetch func(string) []byte) ([]byte, error) {
	for {
		v, _, ok, err := s.Get(ctx, user)
		if err != nil {
			return nil, err
		}
		if ok {
			return v, nil
		}
		_, acquired, err := s.Acquire(ctx, user)
		if err != nil {
			return nil, err
		}
		if acquired {
			v := fetch(user)
			if err := s.Set(ctx, user, v, time.Minute); err != nil {
				return nil, err
			}
			return v, nil
		}
		v, _, ok, err = s.Wait(ctx, user, 5*time.Second)
		if err != nil {
			return nil, err
		}
		if ok {
			return v, nil
		}
	}
}

// Two processes, four goroutines each, look up the same users in random
// orders: every user is fetched exactly once and everyone gets its value.
func TestRedisCoalescing(t *testing.T) {
	srv := redistest.Start(t)
	const users = 40
	var fetches [users]atomic.Int32
	fetch := func(user string) []byte {
		var i int
		fmt.Sscanf(user, "user-%d", &i)
		fetches[i].Add(1)
		time.Sleep(20 * time.Millisecond) // the API call being coalesced
		return []byte("accounts-of-" + user)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for p := range 2 {
		s := procStore(t, srv, Config{})
		for g := range 4 {
			wg.Go(func() {
				for _, i := range rand.Perm(users) {
					user := fmt.Sprintf("user-%d", i)
					v, err := lookup(ctx, s, user, fetch)
					if err != nil {
						t.Errorf("process %d goroutine %d: %s: %v", p, g, user, err)
						return
					}
					if string(v) != "accounts-of-"+user {
						t.Errorf("%s: got %q", user, v)
					}
				}
			})
		}
	}
	wg.Wait()
	for i := range users {
		if n := fetches[i].Load(); n != 1 {
			t.Errorf("user-%d fetched %d times, want 1", i, n)
		}
	}
}

// A holder that dies without Set blocks the others for its lease's TTL,
// after which a waiter learns the lease is free and takes it.
func TestRedisHolderDies(t *testing.T) {
	srv := redistest.Start(t)
	const leaseTTL = 400 * time.Millisecond
	cfg := Config{LeaseTTL: leaseTTL, RecheckInterval: 50 * time.Millisecond}
	dead := procStore(t, srv, cfg)
	other := procStore(t, srv, cfg)
	ctx := context.Background()
	acquiredAt := time.Now()
	if _, ok, err := dead.Acquire(ctx, "ivan"); !ok || err != nil {
		t.Fatalf("Acquire = %v, %v", ok, err)
	}
	_ = dead.Close() // dies: no Set, no Release

	if _, ok, _ := other.Acquire(ctx, "ivan"); ok {
		t.Fatal("acquired a live lease")
	}
	_, _, ok, err := other.Wait(ctx, "ivan", 10*time.Second)
	freed := time.Since(acquiredAt)
	if err != nil || ok {
		t.Fatalf("Wait = %v, %v; want ok=false once the lease expired", ok, err)
	}
	if freed < leaseTTL-10*time.Millisecond || freed > leaseTTL+cfg.RecheckInterval+500*time.Millisecond {
		t.Fatalf("lease seen free after %s, want about %s", freed, leaseTTL)
	}
	if _, ok, err := other.Acquire(ctx, "ivan"); !ok || err != nil {
		t.Fatalf("Acquire after expiry = %v, %v", ok, err)
	}
}

// Values round-trip byte for byte and expire with their TTL.
func TestRedisValuesAndTTL(t *testing.T) {
	srv := redistest.Start(t)
	a := procStore(t, srv, Config{})
	b := procStore(t, srv, Config{})
	ctx := context.Background()
	value := make([]byte, 4096)
	for i := range value {
		value[i] = byte(i * 7)
	}
	const ttl = 300 * time.Millisecond
	start := time.Now()
	if err := a.Set(ctx, "judy", value, ttl); err != nil {
		t.Fatal(err)
	}
	got, left, ok, err := b.Get(ctx, "judy")
	if err != nil || !ok || string(got) != string(value) {
		t.Fatalf("Get = %d bytes, %v, %v", len(got), ok, err)
	}
	if left <= 0 || left > ttl {
		t.Fatalf("ttl left %s, want in (0, %s]", left, ttl)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, _, ok, err := b.Get(ctx, "judy")
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("value never expired")
		}
		time.Sleep(5 * time.Millisecond) // poll interval, bounded by the deadline
	}
	if el := time.Since(start); el < ttl-5*time.Millisecond {
		t.Fatalf("value expired after %s, before its TTL %s", el, ttl)
	}
}

// With the server gone, calls fail fast with an error, never a panic; when
// it is back they work again.
func TestRedisServerDown(t *testing.T) {
	srv := redistest.Start(t)
	s := procStore(t, srv, Config{RedisTimeout: 200 * time.Millisecond})
	ctx := context.Background()
	if err := s.Set(ctx, "kim", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	start := time.Now()
	if _, _, _, err := s.Get(ctx, "kim"); err == nil {
		t.Fatal("Get with the server down succeeded")
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("Get failed after %s, want about RedisTimeout", el)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "Redis back", func() bool {
		return s.Set(ctx, "kim", []byte("v2"), time.Minute) == nil
	})
	if v, _, ok, err := s.Get(ctx, "kim"); err != nil || !ok || string(v) != "v2" {
		t.Fatalf("Get after restart = %q, %v, %v", v, ok, err)
	}
}

// BenchmarkGetRedis measures a hit against a real Redis (one script round
// trip) for a 1 KiB value.
func BenchmarkGetRedis(b *testing.B) {
	srv := redistest.Start(b)
	s, err := New(Config{Redis: srv.Client(), Prefix: "enricher:subs:bench:"})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.Set(ctx, "u", make([]byte, 1024), time.Hour); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, _, ok, err := s.Get(ctx, "u"); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
