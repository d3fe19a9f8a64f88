// Package eventgen generates sample user events for the dev stack, demos
// and benchmarks: JSON events whose user ids follow a Zipf distribution (a
// few hot users, a long tail), with a configurable share of malformed events
// to exercise the dead-letter path. Generation is deterministic for a seed
// and an injected clock.
package eventgen

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"golang.org/x/time/rate"
)

// Kind tells what a generated event looks like.
type Kind int

const (
	// Valid is a well-formed event with a string user_id.
	Valid Kind = iota
	// NotJSON is a value that is not JSON at all.
	NotJSON
	// MissingUserID is a JSON event without user_id.
	MissingUserID
	// NumericUserID is a JSON event whose user_id is a number.
	NumericUserID
)

func (k Kind) String() string {
	switch k {
	case Valid:
		return "valid"
	case NotJSON:
		return "not-json"
	case MissingUserID:
		return "missing-user-id"
	case NumericUserID:
		return "numeric-user-id"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Event is the shape of a valid generated event (user-event v1).
type Event struct {
	UserID  string `json:"user_id"`
	EventID string `json:"event_id"`
	Type    string `json:"type"`
	TS      string `json:"ts"` // RFC 3339, UTC
}

// DefaultTypes are the event types generated when Config.Types is empty.
var DefaultTypes = []string{"login", "logout", "message_sent", "page_view", "purchase"}

// Config configures a Generator. The zero value is usable: every field's
// default is documented on it.
type Config struct {
	// Seed makes the sequence reproducible. Default 0 (a valid seed).
	Seed uint64
	// Users is the number of distinct users, named UserID(0..Users-1).
	// Default 1000.
	Users int
	// Skew is the Zipf exponent s (> 1): user UserID(0) is the hottest and
	// user i is drawn with probability proportional to 1/(1+i)^s.
	// Default 1.1.
	Skew float64
	// Distinct replaces the Zipf draw: the events name the Users users in
	// a random order (a seeded permutation), each once, then the same
	// order again, so the first Users events are all different users.
	Distinct bool
	// MalformedShare is the share of events, in [0, 1], that are malformed
	// (not JSON, no user_id, numeric user_id, in turn). Default 0: none.
	MalformedShare float64
	// Rate is the number of events per second Run writes. Default 10.
	Rate float64
	// Count stops Run after that many events. Default 0: until canceled.
	Count int
	// Types are the event types drawn uniformly. Default DefaultTypes.
	Types []string
	// UserID names user i. Default "user-<i>", the simulator's naming.
	UserID func(i int) string
	// Now is the clock for the ts field. Default time.Now.
	Now func() time.Time
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.Users < 0:
		return fmt.Errorf("eventgen: Users must not be negative, got %d", c.Users)
	case c.Skew != 0 && !(c.Skew > 1):
		return fmt.Errorf("eventgen: Skew must be greater than 1, got %g", c.Skew)
	case !(c.MalformedShare >= 0 && c.MalformedShare <= 1):
		return fmt.Errorf("eventgen: MalformedShare must be in [0, 1], got %g", c.MalformedShare)
	case c.Rate < 0:
		return fmt.Errorf("eventgen: Rate must not be negative, got %g", c.Rate)
	case c.Count < 0:
		return fmt.Errorf("eventgen: Count must not be negative, got %d", c.Count)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Users == 0 {
		c.Users = 1000
	}
	if c.Skew == 0 {
		c.Skew = 1.1
	}
	if c.Rate == 0 {
		c.Rate = 10
	}
	if len(c.Types) == 0 {
		c.Types = DefaultTypes
	}
	if c.UserID == nil {
		c.UserID = func(i int) string { return "user-" + strconv.Itoa(i) }
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Writer is where Run sends events; *kafka.Writer satisfies it.
type Writer interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
}

// Generator produces events. Next is not safe for concurrent use; Stats is.
type Generator struct {
	cfg       Config
	rng       *rand.Rand
	zipf      *rand.Zipf
	perm      []int // Distinct: the order of the users
	nextUser  int   // Distinct: index into perm
	malformed int   // next malformed kind, in turn
	sent      atomic.Int64
	bad       atomic.Int64
}

// New returns a Generator for cfg.
func New(cfg Config) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15))
	g := &Generator{
		cfg:  cfg,
		rng:  rng,
		zipf: rand.NewZipf(rng, cfg.Skew, 1, uint64(cfg.Users-1)),
	}
	if cfg.Distinct {
		g.perm = rng.Perm(cfg.Users)
	}
	return g, nil
}

// user draws the next event's user index.
func (g *Generator) user() int {
	if g.perm == nil {
		return int(g.zipf.Uint64())
	}
	u := g.perm[g.nextUser]
	g.nextUser = (g.nextUser + 1) % len(g.perm)
	return u
}

// Next returns the next event as a Kafka message (key = user id, or nil
// for malformed events without one) and what kind of event it is.
func (g *Generator) Next() (kafka.Message, Kind) {
	user := g.cfg.UserID(g.user())
	ev := Event{
		UserID:  user,
		EventID: fmt.Sprintf("%016x%016x", g.rng.Uint64(), g.rng.Uint64()),
		Type:    g.cfg.Types[g.rng.IntN(len(g.cfg.Types))],
		TS:      g.cfg.Now().UTC().Format(time.RFC3339),
	}
	kind := Valid
	if g.cfg.MalformedShare > 0 && g.rng.Float64() < g.cfg.MalformedShare {
		kind = Kind(1 + g.malformed%3)
		g.malformed++
	}
	var value []byte
	key := []byte(user)
	switch kind {
	case NotJSON:
		value = []byte("not json: " + ev.EventID)
		key = nil
	case MissingUserID:
		value, _ = json.Marshal(struct {
			EventID string `json:"event_id"`
			Type    string `json:"type"`
			TS      string `json:"ts"`
		}{ev.EventID, ev.Type, ev.TS})
		key = nil
	case NumericUserID:
		value, _ = json.Marshal(struct {
			UserID  int    `json:"user_id"`
			EventID string `json:"event_id"`
			Type    string `json:"type"`
			TS      string `json:"ts"`
		}{g.rng.IntN(1 << 20), ev.EventID, ev.Type, ev.TS})
		key = nil
	default:
		value, _ = json.Marshal(ev) // strings only: cannot fail
	}
	return kafka.Message{Key: key, Value: value}, kind
}

// Stats counts the events Run has written.
type Stats struct {
	Sent      int64 // all events written
	Malformed int64 // of which malformed
}

// Stats returns the counts so far. Safe for concurrent use.
func (g *Generator) Stats() Stats { return Stats{Sent: g.sent.Load(), Malformed: g.bad.Load()} }

// Run writes events to w at Config.Rate until ctx is canceled (returns nil)
// or Config.Count events are written. A write error is returned wrapped.
func (g *Generator) Run(ctx context.Context, w Writer) error {
	// Write in small batches so that high rates do not mean one round trip per event.
	batch := max(1, min(500, int(g.cfg.Rate/20)))
	lim := rate.NewLimiter(rate.Limit(g.cfg.Rate), batch)
	msgs := make([]kafka.Message, 0, batch)
	for {
		n := batch
		if g.cfg.Count > 0 {
			left := g.cfg.Count - int(g.sent.Load())
			if left <= 0 {
				return nil
			}
			n = min(n, left)
		}
		if err := lim.WaitN(ctx, n); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("eventgen: rate limiter: %w", err)
		}
		msgs = msgs[:0]
		bad := 0
		for range n {
			m, k := g.Next()
			if k != Valid {
				bad++
			}
			msgs = append(msgs, m)
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			if ctx.Err() != nil {
				return nil // canceled mid-write: a clean stop
			}
			return fmt.Errorf("eventgen: write %d events: %w", n, err)
		}
		g.sent.Add(int64(n))
		g.bad.Add(int64(bad))
	}
}
