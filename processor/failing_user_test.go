package processor

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tencentchat-enricher/enricher/client"
	"github.com/tencentchat-enricher/enricher/client/simulator"
	"github.com/tencentchat-enricher/enricher/internal/testsupport"
	"github.com/tencentchat-enricher/enricher/schemas"
)

// testClock is the wall clock plus an offset the test advances: deadlines
// measured with Config.Now pass without waiting for them.
type testClock struct{ off atomic.Int64 }

func (c *testClock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *testClock) advance(d time.Duration) { c.off.Add(int64(d)) }

// findInput returns the partition and offset of the input record whose
// key is key.
func findInput(t testing.TB, c *cluster, key string) tp {
	t.Helper()
	for _, m := range c.readAll("in") {
		if string(m.Key) == key {
			return tp{m.Partition, m.Offset}
		}
	}
	t.Fatalf("no input with key %s", key)
	return tp{}
}

// committedAt returns the offset the processor committed for partition
// (-1: none).
func committedAt(p *Processor, partition int) int64 {
	for _, ps := range p.Stats().Partitions {
		if ps.Partition == partition {
			return ps.Committed
		}
	}
	return -1
}

// waitWhileHeld polls cond until it holds; meanwhile the committed offset
// of held's partition must never pass held's offset.
func waitWhileHeld(t testing.TB, p *Processor, held tp, what string, cond func() bool) {
	t.Helper()
	testsupport.WaitFor(t, 60*time.Second, what, func() bool {
		if off := committedAt(p, held.partition); off > held.offset {
			t.Fatalf("partition %d committed %d past the unpublished record at %d", held.partition, off, held.offset)
		}
		return cond()
	})
}

// dlqOf returns the DLQ record of the input at pos.
func dlqOf(t testing.TB, c *cluster, pos tp) kafka.Message {
	t.Helper()
	for _, m := range c.readAll("dlq") {
		if sourceOf(t, m) == pos {
			return m
		}
	}
	t.Fatalf("no DLQ record for input %v", pos)
	return kafka.Message{}
}

// TestFailingUserDoesNotStallOthers: a user whose lookups keep failing
// while the API is up (no outage) does not pause fetching: other users'
// records are published while it backs off, its partition's commit stays
// behind it, and after RecordRetryDeadline it is dead-lettered with class
// enrichment_unavailable. Nothing is lost.
func TestFailingUserDoesNotStallOthers(t *testing.T) {
	c := startCluster(t, 2)
	var badCalls atomic.Int64
	fetch := func(ctx context.Context, user string) (lookup, error) {
		if user == "bad" {
			badCalls.Add(1)
			return lookup{}, &unavailableError{err: errors.New("ErrorCode 20005")}
		}
		return okLookup(1)(ctx, user)
	}
	clock := &testClock{}
	cfg := c.config("failing-user")
	cfg.PauseBackoff = 5 * time.Millisecond
	cfg.Now = clock.Now
	p := newFakeProcessor(t, cfg, fetch)
	run := runProcessor(t, p)
	msgs := []kafka.Message{{Key: []byte("bad"), Value: event("bad", 0)}}
	for i := 1; i <= 50; i++ {
		msgs = append(msgs, kafka.Message{Key: []byte(plainUser(i)), Value: event(plainUser(i), i)})
	}
	c.produce(msgs)
	bad := findInput(t, c, "bad")
	waitWhileHeld(t, p, bad, "healthy records published", func() bool {
		return p.Stats().Out == 50 && badCalls.Load() >= 3
	})
	if st := p.Stats(); st.Paused || st.Pauses != 0 || st.DLQ != 0 {
		t.Fatalf("one failing user paused fetching or was dropped early: %+v", st)
	}
	clock.advance(DefaultRecordRetryDeadline)
	waitCommitted(t, p, c.endOffsets())
	if err := run.stop(); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, c, len(msgs))
	m := dlqOf(t, c, bad)
	if got := header(m, HeaderErrorClass); got != string(ClassEnrichmentUnavailable) {
		t.Fatalf("DLQ class %q, want %q", got, ClassEnrichmentUnavailable)
	}
	if n, err := strconv.Atoi(header(m, HeaderAttempts)); err != nil || n < 3 || string(m.Value) != string(event("bad", 0)) {
		t.Fatalf("DLQ record attempts %q value %s", header(m, HeaderAttempts), m.Value)
	}
}

// TestSimulatorFailingUser: through the client and the simulator, the API
// answers 20005 for one user only. Its failures trip the client's breaker,
// but the other users' records probe too, so they are all published while
// the failing user's record retries; after RecordRetryDeadline it is
// dead-lettered as enrichment_unavailable.
func TestSimulatorFailingUser(t *testing.T) {
	bad := simulator.UserID(7)
	srv, _ := startSimulator(t, simulator.GenConfig{Seed: 9, Users: 100, UnknownShare: -1},
		simulator.Faults{ForceCode: map[string]int{bad: client.CodeInternalError2}})
	c := startCluster(t, 2)
	cl := newClient(t, srv, func(cfg *client.Config) {
		cfg.MaxAttempts, cfg.BackoffBase, cfg.BackoffMax, cfg.RetryDeadline = 2, time.Millisecond, 5*time.Millisecond, 500*time.Millisecond
		cfg.Breaker = client.BreakerConfig{Failures: 3, OpenFor: 50 * time.Millisecond}
	})
	clock := &testClock{}
	cfg := c.config("sim-failing-user")
	cfg.PauseBackoff = 20 * time.Millisecond
	cfg.Now = clock.Now
	p := newSimProcessor(t, cfg, cl)
	run := runProcessor(t, p)
	c.produce([]kafka.Message{{Key: []byte(bad), Value: event(bad, 0)}})
	badPos := findInput(t, c, bad)
	waitWhileHeld(t, p, badPos, "the failing user tried", func() bool { return srv.Stats().PerUser[bad] >= 3 })
	var good []kafka.Message
	for i := 20; i < 70; i++ {
		good = append(good, kafka.Message{Key: []byte(simulator.UserID(i)), Value: event(simulator.UserID(i), i)})
	}
	c.produce(good)
	waitWhileHeld(t, p, badPos, "healthy records published", func() bool { return p.Stats().Out == int64(len(good)) })
	if st := p.Stats(); st.DLQ != 0 {
		t.Fatalf("failing user dead-lettered before its deadline: %+v", st)
	}
	clock.advance(DefaultRecordRetryDeadline)
	// More traffic: the API answering other users shows it is up.
	more := userEvents(70, 10, 0, simulator.UserID)
	c.produce(more)
	waitCommitted(t, p, c.endOffsets())
	if err := run.stop(); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, c, 1+len(good)+len(more))
	if got := header(dlqOf(t, c, badPos), HeaderErrorClass); got != string(ClassEnrichmentUnavailable) {
		t.Fatalf("DLQ class %q", got)
	}
	if st := p.Stats(); st.ByStatus[schemas.StatusOK] != int64(len(good)+len(more)) || st.ByStatus[schemas.StatusUnavailable] != 0 {
		t.Fatalf("stats %+v", st)
	}
	t.Logf("calls for the failing user %d, simulator codes %v, pauses %d", srv.Stats().PerUser[bad], srv.Stats().ByCode, p.Stats().Pauses)
}

// TestRecordRetryDeadlineOutcomes: what a record whose lookups keep
// failing becomes, by whether the failures are an outage of the whole API
// and whether UnavailableAfter is set.
func TestRecordRetryDeadlineOutcomes(t *testing.T) {
	tests := []struct {
		name             string
		outage           bool
		unavailableAfter time.Duration
		wantClass        ErrorClass
		wantStatus       schemas.Status
	}{
		{name: "one user failing: DLQ after the deadline", wantClass: ClassEnrichmentUnavailable},
		{name: "UnavailableAfter first", unavailableAfter: time.Minute, wantStatus: schemas.StatusUnavailable},
		{name: "outage: waits, then ok", outage: true, wantStatus: schemas.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := &testClock{}
			var calls atomic.Int64
			var up atomic.Bool
			fetch := func(ctx context.Context, user string) (lookup, error) {
				if up.Load() {
					return okLookup(1)(ctx, user)
				}
				if calls.Add(1) == 2 {
					clock.advance(time.Hour) // past every deadline
				}
				return lookup{}, &unavailableError{outage: tc.outage, retryAfter: time.Millisecond, err: errors.New("502")}
			}
			cfg := testConfig()
			cfg.PauseBackoff = time.Millisecond
			cfg.UnavailableAfter = tc.unavailableAfter
			cfg.Now = clock.Now
			p, pub := newTestPipeline(t, cfg, fetch)
			c := p.Claim("in", 0)
			ctx := context.Background()
			if err := c.Submit(ctx, kafka.Message{Topic: "in", Offset: 0, Value: event("u0", 0)}); err != nil {
				t.Fatal(err)
			}
			if tc.outage {
				testsupport.WaitFor(t, 5*time.Second, "retries through the outage", func() bool { return calls.Load() >= 5 })
				if n := len(pub.messages()); n != 0 || !p.Stats().Paused {
					t.Fatalf("during an outage: %d published, paused %v", n, p.Stats().Paused)
				}
				up.Store(true)
			}
			if err := c.Drain(ctx); err != nil {
				t.Fatal(err)
			}
			msgs := pub.messages()
			if len(msgs) != 1 {
				t.Fatalf("%d published", len(msgs))
			}
			m := msgs[0]
			if tc.wantClass != "" {
				if m.Topic != "dlq" || header(m, HeaderErrorClass) != string(tc.wantClass) || header(m, HeaderAttempts) != "2" {
					t.Fatalf("got %s class %q attempts %q", m.Topic, header(m, HeaderErrorClass), header(m, HeaderAttempts))
				}
				if st := p.Stats(); st.Pauses != 0 || st.DLQByClass[tc.wantClass] != 1 {
					t.Fatalf("stats %+v", st)
				}
				return
			}
			if r := decodeOut(t, m); m.Topic != "out" || r.Enrichment.Status != tc.wantStatus {
				t.Fatalf("got %s status %s, want %s", m.Topic, r.Enrichment.Status, tc.wantStatus)
			}
		})
	}
}
