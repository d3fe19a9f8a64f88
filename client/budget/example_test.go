package budget_test

import (
	"context"
	"fmt"
	"log"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/tencentchat-enricher/enricher/client/budget"
)

// A live process and a replay share one app's budget. The client takes a
// token before every attempt and every page, and reports frequency-limit
// answers with Throttled; /readyz reads Degraded.
func Example() {
	mr, err := miniredis.Run() // any Redis: a real server in production
	if err != nil {
		log.Fatal(err)
	}
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()

	live, err := budget.New(budget.Config{Redis: rdb, Key: "enricher:budget:1400000000", Rate: 200})
	if err != nil {
		log.Fatal(err)
	}
	defer live.Close()
	replay, err := budget.New(budget.Config{Redis: rdb, Key: "enricher:budget:1400000000", Rate: 200,
		Role: budget.Replay, Cap: 50})
	if err != nil {
		log.Fatal(err)
	}
	defer replay.Close()

	ctx := context.Background()
	for range 3 {
		if _, err := live.Take(ctx); err != nil { // before each API call
			log.Fatal(err)
		}
	}
	if _, err := replay.Take(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("paced at %g calls/s\n", live.PacedRate())

	// A 60007 answer: every process slows down.
	r, lowered := live.Throttled(ctx)
	fmt.Printf("lowered: %v, shared rate about %.0f\n", lowered, r)

	degraded, _ := live.Degraded()
	fmt.Println("degraded:", degraded)
	// Output:
	// paced at 191 calls/s
	// lowered: true, shared rate about 172
	// degraded: false
}
