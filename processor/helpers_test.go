package processor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tencentchat-enricher/enricher/schemas"
)

// memPublisher records published messages in memory.
type memPublisher struct {
	mu   sync.Mutex
	msgs []kafka.Message
	fail func(kafka.Message) error // optional: error to return for a message

	gate    atomic.Pointer[chan struct{}] // set by hold: writes wait for it
	waiting atomic.Int64                  // writes waiting for the gate
}

// hold makes writes wait until the returned channel is closed.
func (m *memPublisher) hold() chan struct{} {
	ch := make(chan struct{})
	m.gate.Store(&ch)
	return ch
}

func (m *memPublisher) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if g := m.gate.Load(); g != nil {
		m.waiting.Add(1)
		select {
		case <-*g:
		case <-ctx.Done():
		}
		m.waiting.Add(-1)
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, msg := range msgs {
		if m.fail != nil {
			if err := m.fail(msg); err != nil {
				return err
			}
		}
		m.msgs = append(m.msgs, msg)
	}
	return nil
}

func (m *memPublisher) Close() error { return nil }

func (m *memPublisher) messages() []kafka.Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]kafka.Message(nil), m.msgs...)
}

// testConfig is a valid, defaulted config for in-memory pipelines.
func testConfig() Config {
	return Config{
		Brokers: []string{"127.0.0.1:1"}, InputTopic: "in", OutputTopic: "out", DLQTopic: "dlq", Group: "g",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func newTestPipeline(t testing.TB, cfg Config, fetch lookupFunc) (*Pipeline, *memPublisher) {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	pub := &memPublisher{}
	p, err := newPipeline(cfg.withDefaults(), fetch, pub)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p, pub
}

// okLookup answers every user with n accounts.
func okLookup(n int) lookupFunc {
	return func(ctx context.Context, user string) (lookup, error) {
		accts := make([]schemas.OfficialAccount, n)
		for i := range accts {
			accts[i].OfficialAccount = fmt.Sprintf("@TOA#_%s_%d", user, i)
		}
		return lookup{status: schemas.StatusOK, accounts: accts, total: n, complete: true, fetchedAt: time.Now()}, nil
	}
}

func event(user string, seq int) []byte {
	b, _ := json.Marshal(map[string]any{"user_id": user, "seq": seq})
	return b
}

// decodeOut parses an output record.
func decodeOut(t testing.TB, m kafka.Message) schemas.Record {
	t.Helper()
	var r schemas.Record
	if err := json.Unmarshal(m.Value, &r); err != nil {
		t.Fatalf("output not JSON: %v: %s", err, m.Value)
	}
	return r
}

func header(m kafka.Message, key string) string {
	c := HeaderCarrier(m.Headers)
	return c.Get(key)
}

// concurrency tracks the maximum number of concurrent calls.
type concurrency struct {
	cur, max atomic.Int64
}

func (c *concurrency) enter() {
	n := c.cur.Add(1)
	for {
		m := c.max.Load()
		if n <= m || c.max.CompareAndSwap(m, n) {
			return
		}
	}
}

func (c *concurrency) leave() { c.cur.Add(-1) }
