package eventgen

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tencentchat-enricher/enricher/internal/devkafka"
)

var fixedNow = func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero value", Config{}, true},
		{"negative users", Config{Users: -1}, false},
		{"skew at 1", Config{Skew: 1}, false},
		{"share above 1", Config{MalformedShare: 1.5}, false},
		{"negative share", Config{MalformedShare: -0.1}, false},
		{"negative rate", Config{Rate: -1}, false},
		{"negative count", Config{Count: -1}, false},
		{"all set", Config{Users: 5, Skew: 2, MalformedShare: 1, Rate: 3, Count: 4}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if (err == nil) != tt.ok {
				t.Errorf("New: err = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestDeterministic(t *testing.T) {
	gen := func(seed uint64) []kafka.Message {
		g, err := New(Config{Seed: seed, MalformedShare: 0.1, Now: fixedNow})
		if err != nil {
			t.Fatal(err)
		}
		var out []kafka.Message
		for range 200 {
			m, _ := g.Next()
			out = append(out, m)
		}
		return out
	}
	a, b, c := gen(7), gen(7), gen(8)
	same := func(x, y []kafka.Message) bool {
		for i := range x {
			if !bytes.Equal(x[i].Key, y[i].Key) || !bytes.Equal(x[i].Value, y[i].Value) {
				return false
			}
		}
		return true
	}
	if !same(a, b) {
		t.Error("same seed gave different sequences")
	}
	if same(a, c) {
		t.Error("different seeds gave the same sequence")
	}
}

func TestEventShapes(t *testing.T) {
	g, err := New(Config{Seed: 1, Users: 50, MalformedShare: 0.3, Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[Kind]int{}
	const n = 3000
	for range n {
		m, k := g.Next()
		kinds[k]++
		switch k {
		case Valid:
			var ev Event
			dec := json.NewDecoder(bytes.NewReader(m.Value))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&ev); err != nil {
				t.Fatalf("valid event does not decode: %v: %s", err, m.Value)
			}
			if ev.UserID != string(m.Key) || ev.EventID == "" || ev.Type == "" {
				t.Fatalf("valid event incomplete or key mismatch: key %q %s", m.Key, m.Value)
			}
			if ts, err := time.Parse(time.RFC3339, ev.TS); err != nil || !ts.Equal(fixedNow()) {
				t.Fatalf("ts %q: %v", ev.TS, err)
			}
		case NotJSON:
			if json.Valid(m.Value) {
				t.Fatalf("not-json event is JSON: %s", m.Value)
			}
		case MissingUserID, NumericUserID:
			var obj map[string]any
			if err := json.Unmarshal(m.Value, &obj); err != nil {
				t.Fatalf("%v event is not a JSON object: %s", k, m.Value)
			}
			uid, has := obj["user_id"]
			if k == MissingUserID && has {
				t.Fatalf("missing-user-id event has user_id: %s", m.Value)
			}
			if _, isNum := uid.(float64); k == NumericUserID && !isNum {
				t.Fatalf("numeric-user-id event has user_id %T: %s", uid, m.Value)
			}
		default:
			t.Fatalf("unexpected kind %v", k)
		}
	}
	bad := n - kinds[Valid]
	if share := float64(bad) / n; share < 0.25 || share > 0.35 {
		t.Errorf("malformed share %.3f, want about 0.3", share)
	}
	for _, k := range []Kind{NotJSON, MissingUserID, NumericUserID} {
		if kinds[k] == 0 {
			t.Errorf("no %v events", k)
		}
	}
}

func TestNoMalformedByDefault(t *testing.T) {
	g, err := New(Config{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	for range 2000 {
		if _, k := g.Next(); k != Valid {
			t.Fatalf("got %v with MalformedShare 0", k)
		}
	}
}

func TestZipfSkew(t *testing.T) {
	const users, n = 1000, 20000
	g, err := New(Config{Seed: 5, Users: users, Skew: 1.2})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for range n {
		m, _ := g.Next()
		counts[string(m.Key)]++
	}
	hot := counts["user-0"]
	for u, c := range counts {
		if c > hot {
			t.Errorf("%s (%d) is hotter than user-0 (%d)", u, c, hot)
		}
	}
	if hot < 10*n/users {
		t.Errorf("user-0 has %d events, want at least 10x the uniform %d", hot, n/users)
	}
	if len(counts) < 100 {
		t.Errorf("only %d distinct users: the tail is missing", len(counts))
	}
	if _, ok := counts["user-1000"]; ok {
		t.Error("user outside [0, Users) generated")
	}
}

type recorder struct {
	mu   sync.Mutex
	msgs []kafka.Message
	err  error
}

func (r *recorder) WriteMessages(_ context.Context, msgs ...kafka.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.msgs = append(r.msgs, msgs...)
	return nil
}

func TestRunCountAndStats(t *testing.T) {
	g, err := New(Config{Seed: 9, Rate: 1e6, Count: 1234, MalformedShare: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	var r recorder
	if err := g.Run(context.Background(), &r); err != nil {
		t.Fatal(err)
	}
	st := g.Stats()
	if len(r.msgs) != 1234 || st.Sent != 1234 {
		t.Fatalf("wrote %d, stats %+v, want 1234", len(r.msgs), st)
	}
	bad := 0
	for _, m := range r.msgs {
		if m.Key == nil {
			bad++
		}
	}
	if int64(bad) != st.Malformed || bad == 0 {
		t.Errorf("malformed: %d keyless messages, stats %d", bad, st.Malformed)
	}
}

func TestRunStopsOnCancelAndWriteError(t *testing.T) {
	g, err := New(Config{Rate: 5})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx, &recorder{}) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after cancel: %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}

	g, _ = New(Config{Rate: 1e6})
	wantErr := context.DeadlineExceeded
	if err := g.Run(context.Background(), &recorder{err: wantErr}); err == nil {
		t.Error("Run ignored a write error")
	}
}

// TestRunToKafka writes to an in-process broker over TCP and reads the events back.
func TestRunToKafka(t *testing.T) {
	b, err := devkafka.Start(devkafka.Config{Partitions: 2, Topics: []string{"events"}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// Acknowledged by the broker before Run returns (kafka-go defaults to no acks).
	w := &kafka.Writer{Addr: kafka.TCP(b.Addr()), Topic: "events", Balancer: &kafka.Hash{}, BatchTimeout: 5 * time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	g, err := New(Config{Seed: 2, Rate: 1e5, Count: 100})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.Run(ctx, w); err != nil {
		t.Fatal(err)
	}
	got := 0
	for p := range 2 {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{b.Addr()}, Topic: "events", Partition: p, MaxWait: 50 * time.Millisecond})
		for {
			lag, err := r.ReadLag(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if lag == 0 {
				break
			}
			m, err := r.ReadMessage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(m.Value) {
				t.Fatalf("invalid event read back: %s", m.Value)
			}
			got++
		}
		r.Close()
	}
	if got != 100 {
		t.Errorf("read back %d events, want 100", got)
	}
}

// Distinct names every user once before any repeats, in a seeded order.
func TestDistinctUsers(t *testing.T) {
	order := func(seed uint64) []string {
		g, err := New(Config{Seed: seed, Users: 500, Distinct: true})
		if err != nil {
			t.Fatal(err)
		}
		var users []string
		for range 1000 {
			m, _ := g.Next()
			users = append(users, string(m.Key))
		}
		return users
	}
	users := order(3)
	seen := map[string]bool{}
	for _, u := range users[:500] {
		if seen[u] {
			t.Fatalf("%s repeated within the first 500 events", u)
		}
		seen[u] = true
	}
	if !slices.Equal(users[:500], users[500:]) {
		t.Error("the second round does not repeat the order")
	}
	if slices.Equal(users, order(4)) {
		t.Error("different seeds give the same order")
	}
	if !slices.Equal(users, order(3)) {
		t.Error("the same seed gives another order")
	}
}
