package processor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/tencentchat-enricher/enricher/client"
	"github.com/tencentchat-enricher/enricher/client/simulator"
	"github.com/tencentchat-enricher/enricher/internal/testsupport"
	"github.com/tencentchat-enricher/enricher/schemas"
)

// Dev credentials of the simulator (never used outside dev and tests).
const (
	devAppID  = 1400000001
	devAdmin  = "administrator"
	devSecret = "dev-only-secret-key"
)

func startSimulator(t testing.TB, gen simulator.GenConfig, faults simulator.Faults) (*simulator.Server, *simulator.Dataset) {
	t.Helper()
	ds := simulator.Generate(gen)
	srv, err := simulator.NewServer(simulator.Config{SDKAppID: devAppID, Admin: devAdmin, SecretKey: devSecret, Dataset: ds, Faults: faults})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv, ds
}

func newClient(t testing.TB, srv *simulator.Server, mutate func(*client.Config)) *client.Client {
	t.Helper()
	cfg := client.Config{
		SDKAppID: devAppID, Admin: devAdmin, SecretKey: devSecret, BaseURL: srv.URL(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func newSimProcessor(t testing.TB, cfg Config, f Fetcher) *Processor {
	t.Helper()
	p, err := New(cfg, f)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSimulatorOutcomes: through the broker and the simulator over TCP,
// every input yields exactly one output or DLQ record with the status the
// API's answer prescribes, multi-page users are complete, and every output
// validates.
func TestSimulatorOutcomes(t *testing.T) {
	forced := map[string]int{
		simulator.UserID(3): client.CodeInvalidUserID,
		simulator.UserID(4): client.CodeInvalidParameter,
		simulator.UserID(5): client.CodeInvalidPacket,
	}
	srv, ds := startSimulator(t, simulator.GenConfig{Seed: 3, Users: 80, UnknownShare: 0.1, HeavyShare: 0.05}, simulator.Faults{ForceCode: forced})
	c := startCluster(t, 3)
	var msgs []kafka.Message
	users := []string{"ghost-1", "ghost-2"}
	for i := range 80 {
		users = append(users, simulator.UserID(i))
	}
	for i, u := range users {
		msgs = append(msgs, kafka.Message{Key: []byte(fmt.Sprintf("k%d", i%13)), Value: event(u, i)})
	}
	msgs = append(msgs,
		kafka.Message{Key: []byte("bad-1"), Value: []byte("not json")},
		kafka.Message{Value: []byte(`{"user_id":42}`)},
		kafka.Message{Key: []byte("bad-3"), Value: []byte(`{"id":"x"}`)})
	c.produce(msgs)
	p := newSimProcessor(t, c.config("sim-outcomes"), newClient(t, srv, nil))
	run := runProcessor(t, p)
	waitCommitted(t, p, c.endOffsets())
	if err := run.stop(); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, c, len(msgs))
	heavy := 0
	for _, m := range c.readAll("out") {
		r := decodeOut(t, m)
		var ev schemas.UserEvent
		if err := json.Unmarshal(r.Event, &ev); err != nil {
			t.Fatal(err)
		}
		want := schemas.StatusOK
		switch {
		case forced[ev.UserID] != 0:
			want = schemas.StatusInvalidUser
		case !ds.Known(ev.UserID):
			want = schemas.StatusUserNotFound
		}
		if r.Enrichment.Status != want {
			t.Fatalf("user %s: status %s, want %s", ev.UserID, r.Enrichment.Status, want)
		}
		if want == schemas.StatusOK {
			n := ds.SubscriptionCount(ev.UserID)
			if len(r.Enrichment.OfficialAccounts) != n || r.Enrichment.TotalCount != n || !r.Enrichment.Complete {
				t.Fatalf("user %s: %d accounts, total %d, want %d", ev.UserID, len(r.Enrichment.OfficialAccounts), r.Enrichment.TotalCount, n)
			}
			if n > 200 {
				heavy++
			}
			for _, a := range r.Enrichment.OfficialAccounts {
				if a.SelfInfo == nil || a.SelfInfo.SubscribeTime == nil || a.Name == nil {
					t.Fatalf("user %s: account %s lacks fields", ev.UserID, a.OfficialAccount)
				}
			}
		}
	}
	if heavy == 0 {
		t.Fatal("no multi-page user in the dataset: pagination untested")
	}
	if st := p.Stats(); st.DLQ != 3 {
		t.Fatalf("stats %+v", st)
	}
}

// TestSimulatorBreakerPause: during an API outage the breaker opens, the
// processor stops fetching (In does not move while the client probes), no
// degraded record is published, and after the outage every record is
// enriched.
func TestSimulatorBreakerPause(t *testing.T) {
	srv, _ := startSimulator(t, simulator.GenConfig{Seed: 4, Users: 300, UnknownShare: -1}, simulator.Faults{})
	c := startCluster(t, 2)
	const n = 300
	msgs := userEvents(0, n, 0, simulator.UserID)
	c.produce(msgs[:100])
	cl := newClient(t, srv, func(cfg *client.Config) {
		cfg.MaxAttempts, cfg.BackoffBase, cfg.BackoffMax, cfg.RetryDeadline = 2, time.Millisecond, 5*time.Millisecond, 500*time.Millisecond
		cfg.Breaker = client.BreakerConfig{Failures: 3, OpenFor: 20 * time.Millisecond}
	})
	cfg := c.config("sim-breaker")
	cfg.MaxInFlight, cfg.MaxInFlightPerPartition = 16, 8
	p := newSimProcessor(t, cfg, cl)
	run := runProcessor(t, p)
	waitCommitted(t, p, c.endOffsets())
	if err := srv.SetFaults(simulator.Faults{OutageFor: 1500 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	c.produce(msgs[100:])
	testsupport.WaitFor(t, 30*time.Second, "fetching paused", func() bool { return p.Stats().Paused })
	in := p.Stats().In
	failed := srv.Stats().ByCode[502]
	testsupport.WaitFor(t, 30*time.Second, "probes during the outage", func() bool { return srv.Stats().ByCode[502] >= failed+3 })
	if st := p.Stats(); !st.Paused || st.In != in {
		t.Fatalf("during the outage: paused %v, fetched %d records while paused", st.Paused, st.In-in)
	}
	waitCommitted(t, p, c.endOffsets())
	if err := run.stop(); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, c, n)
	st := p.Stats()
	if st.ByStatus[schemas.StatusOK] != n || st.ByStatus[schemas.StatusUnavailable] != 0 || st.Pauses == 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestSimulatorFatal: an app-fatal code stops Run with a *FatalError naming
// the code and the setting to fix; nothing unpublished is committed.
func TestSimulatorFatal(t *testing.T) {
	srv, _ := startSimulator(t, simulator.GenConfig{Seed: 5, Users: 100, UnknownShare: -1},
		simulator.Faults{ForceCode: map[string]int{simulator.UserID(60): client.CodeServiceNotEnabled}})
	c := startCluster(t, 2)
	msgs := userEvents(0, 100, 7, simulator.UserID)
	c.produce(msgs)
	p := newSimProcessor(t, c.config("sim-fatal"), newClient(t, srv, nil))
	err := runProcessor(t, p).wait(t)
	var fe *FatalError
	if !errors.As(err, &fe) || fe.Code != client.CodeServiceNotEnabled {
		t.Fatalf("Run = %v, want *FatalError 131000", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "131000") || !strings.Contains(msg, "SDKAppID") {
		t.Fatalf("message %q does not name the code and the setting", msg)
	}
	published := map[tp]bool{}
	for _, m := range c.readAll("out") {
		published[sourceOf(t, m)] = true
	}
	committed := c.committed("sim-fatal")
	for _, m := range c.readAll("in") {
		if m.Offset < committed[m.Partition] && !published[tp{m.Partition, m.Offset}] {
			t.Fatalf("partition %d offset %d committed but never published", m.Partition, m.Offset)
		}
	}
}

// TestSimulatorOnePartitionConcurrency: a one-partition topic keeps many
// API calls in flight at once, as the simulator observes.
func TestSimulatorOnePartitionConcurrency(t *testing.T) {
	srv, _ := startSimulator(t, simulator.GenConfig{Seed: 6, Users: 300, UnknownShare: -1}, simulator.Faults{Latency: 150 * time.Millisecond})
	c := startCluster(t, 1)
	const n = 300
	msgs := userEvents(0, n, 0, simulator.UserID)
	c.produce(msgs)
	p := newSimProcessor(t, c.config("sim-one"), newClient(t, srv, nil))
	run := runProcessor(t, p)
	waitCommitted(t, p, c.endOffsets())
	if err := run.stop(); err != nil {
		t.Fatal(err)
	}
	st := srv.Stats()
	// At 200 calls/s and 150ms per call the budget needs ~30 calls in flight.
	if st.MaxConcurrent < 10 {
		t.Fatalf("API saw at most %d concurrent calls from a one-partition topic", st.MaxConcurrent)
	}
	// One call at a time would make about 7 calls/s.
	if st.MaxPerSecond < st.RateLimit/2 {
		t.Fatalf("at most %d calls in a second, budget %d", st.MaxPerSecond, st.RateLimit)
	}
	t.Logf("one partition: API max concurrent %d, max calls in a trailing second %d (limit %d), calls per second %v", st.MaxConcurrent, st.MaxPerSecond, st.RateLimit, st.PerSecond)
	checkExactlyOnce(t, c, n)
}

// TestSimulatorTrace: the real client's spans are children of the
// record's enrich span, in the input's trace.
func TestSimulatorTrace(t *testing.T) {
	srv, _ := startSimulator(t, simulator.GenConfig{Seed: 7, Users: 10, UnknownShare: -1}, simulator.Faults{})
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	cl := newClient(t, srv, func(c *client.Config) { c.TracerProvider = tp })
	cfg := testConfig()
	cfg.TracerProvider = tp
	p, _ := newTestPipeline(t, cfg, fetcherLookup(cl, time.Now))
	claim := p.Claim("in", 0)
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	ctx := context.Background()
	if err := claim.Submit(ctx, kafka.Message{Topic: "in", Value: event(simulator.UserID(1), 0),
		Headers: []kafka.Header{{Key: "traceparent", Value: []byte("00-" + traceID + "-00f067aa0ba902b7-01")}}}); err != nil {
		t.Fatal(err)
	}
	if err := claim.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	var enrich sdktrace.ReadOnlySpan
	byID := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		byID[s.SpanContext().SpanID().String()] = s
		if s.Name() == "enrich" {
			enrich = s
		}
	}
	if enrich == nil {
		t.Fatal("no enrich span")
	}
	clientSpans := 0
	for _, s := range rec.Ended() {
		if s.InstrumentationScope().Name == instrumentationName {
			continue
		}
		clientSpans++
		if s.SpanContext().TraceID().String() != traceID {
			t.Fatalf("client span %s in another trace", s.Name())
		}
		// Walk up to the enrich span.
		cur, ok := s, true
		for ok && cur.SpanContext().SpanID() != enrich.SpanContext().SpanID() {
			cur, ok = byID[cur.Parent().SpanID().String()]
		}
		if !ok {
			t.Fatalf("client span %s does not descend from enrich", s.Name())
		}
	}
	if clientSpans == 0 {
		t.Fatal("the client recorded no spans")
	}
}
