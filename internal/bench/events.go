package bench

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tencentchat-enricher/enricher/internal/eventgen"
)

// eventSource yields the input events of a scenario in order, each with
// the index of its user (userID(index) is its user id). The same scenario
// always yields the same users in the same order.
type eventSource struct {
	next func() (kafka.Message, int32)
}

// newEventSource returns the events of s: valid sample events from the
// event generator with Zipf-distributed users, or, when s.Distinct(), the
// same kind of event for a random permutation of distinct users, or, when
// s.Uniform(), for each user Events/Users times in random order (users
// numbered from s.FirstUser in both cases). Events are timestamped with
// now().
func newEventSource(s Scenario, now func() time.Time) (*eventSource, error) {
	if s.Distinct() || s.Uniform() {
		rng := rand.New(rand.NewPCG(s.Seed, 0x62656e6368))
		perm := rng.Perm(s.Events)
		if s.Uniform() { // event i goes to user i mod Users, shuffled
			for i := range perm {
				perm[i] %= s.Users
			}
		}
		i := 0
		return &eventSource{next: func() (kafka.Message, int32) {
			u := perm[i] + s.FirstUser
			i++
			ev := eventgen.Event{UserID: userID(u), EventID: s.Name + "-" + strconv.Itoa(i), Type: "message_sent", TS: now().UTC().Format(time.RFC3339)}
			v, _ := json.Marshal(ev) // strings only: cannot fail
			return kafka.Message{Key: []byte(ev.UserID), Value: v}, int32(u)
		}}, nil
	}
	var last int32
	g, err := eventgen.New(eventgen.Config{
		Seed: s.Seed, Users: s.Users, Skew: s.ZipfS, Now: now,
		UserID: func(i int) string { last = int32(i); return userID(i) },
	})
	if err != nil {
		return nil, fmt.Errorf("bench: events of %s: %w", s.Name, err)
	}
	return &eventSource{next: func() (kafka.Message, int32) {
		m, _ := g.Next() // no malformed share: always valid
		return m, last
	}}, nil
}

// distinctUsers counts the distinct users of a sequence.
func distinctUsers(seq []int32) int {
	seen := map[int32]struct{}{}
	for _, u := range seq {
		seen[u] = struct{}{}
	}
	return len(seen)
}
