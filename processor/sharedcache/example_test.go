package sharedcache_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/tencentchat-enricher/enricher/processor/sharedcache"
)

// lookup is the protocol a processor follows after a local cache miss: the
// shared value if any, else the lease and a fetch, else a wait for the
// holder's value; a lease found free again is retried.
func lookup(ctx context.Context, s *sharedcache.Store, user string, fetch func(string) []byte, ttl time.Duration) ([]byte, error) {
	for {
		v, _, ok, err := s.Get(ctx, user)
		if err != nil {
			return nil, err // the caller falls back to fetching by itself
		}
		if ok {
			return v, nil
		}
		lease, acquired, err := s.Acquire(ctx, user)
		if err != nil {
			return nil, err
		}
		if acquired {
			v := fetch(user)
			if v == nil { // the fetch failed: let a waiter try
				return nil, lease.Release(ctx)
			}
			return v, s.Set(ctx, user, v, ttl) // stores and releases the lease
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

func Example() {
	mr, err := miniredis.Run()
	if err != nil {
		log.Fatal(err)
	}
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	store, err := sharedcache.New(sharedcache.Config{Redis: rdb, Prefix: "enricher:subs:1400000000:"})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	calls := 0
	fetch := func(user string) []byte { calls++; return []byte("encoded accounts of " + user) }
	ctx := context.Background()
	for range 2 {
		v, err := lookup(ctx, store, "alice", fetch, time.Hour)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s\n", v)
	}
	fmt.Println("API calls:", calls)
	// Output:
	// encoded accounts of alice
	// encoded accounts of alice
	// API calls: 1
}
