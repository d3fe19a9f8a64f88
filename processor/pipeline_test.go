package processor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/tencentchat-enricher/enricher/internal/testsupport"
	"github.com/tencentchat-enricher/enricher/schemas"
)

// TestOutcomeTable: every input yields exactly one output or DLQ record,
// with the status or error class the outcome table prescribes, and every
// output validates against the output schema.
func TestOutcomeTable(t *testing.T) {
	v, err := schemas.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	fetch := func(ctx context.Context, user string) (lookup, error) {
		switch user {
		case "gone":
			return lookup{status: schemas.StatusUserNotFound, complete: true, fetchedAt: time.Now()}, nil
		case "bad":
			return lookup{status: schemas.StatusInvalidUser, complete: true, fetchedAt: time.Now()}, nil
		case "loop":
			return lookup{}, &enrichError{err: errors.New("pagination did not complete")}
		}
		return okLookup(3)(ctx, user)
	}
	cfg := testConfig()
	cfg.MaxEventBytes = 200
	p, pub := newTestPipeline(t, cfg, fetch)
	tests := []struct {
		name   string
		key    string
		value  string
		status schemas.Status
		class  ErrorClass
	}{
		{"ok", "k1", `{"user_id":"u1","x":{"y":[1, 2]}}`, schemas.StatusOK, ""},
		{"ok without key", "", `{"user_id":"u2"}`, schemas.StatusOK, ""},
		{"user not found", "k3", `{"user_id":"gone"}`, schemas.StatusUserNotFound, ""},
		{"invalid user", "k4", `{"user_id":"bad"}`, schemas.StatusInvalidUser, ""},
		{"enrichment failed", "k5", `{"user_id":"loop"}`, "", ClassEnrichment},
		{"not json", "k6", `{"user_id":`, "", ClassNotJSON},
		{"not object", "k7", `[1]`, "", ClassNotObject},
		{"no user id", "k8", `{"uid":"u"}`, "", ClassMissingUserID},
		{"wrong type", "", `{"user_id":7}`, "", ClassInvalidUserID},
		{"too large", "k10", `{"user_id":"u","pad":"` + strings.Repeat("x", 300) + `"}`, "", ClassTooLarge},
	}
	c := p.Claim("in", 2)
	ctx := context.Background()
	for i, tc := range tests {
		m := kafka.Message{Topic: "in", Partition: 2, Offset: int64(100 + i), Value: []byte(tc.value),
			Time: time.Unix(1700000000, 0), Headers: []kafka.Header{{Key: "origin", Value: []byte(tc.name)}}}
		if tc.key != "" {
			m.Key = []byte(tc.key)
		}
		if err := c.Submit(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if off, _ := c.Release(); off != int64(100+len(tests)) {
		t.Fatalf("watermark %d", off)
	}
	byOrigin := map[string][]kafka.Message{}
	for _, m := range pub.messages() {
		byOrigin[header(m, "origin")] = append(byOrigin[header(m, "origin")], m)
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := byOrigin[tc.name]
			if len(got) != 1 {
				t.Fatalf("%d records published, want exactly 1", len(got))
			}
			m := got[0]
			if tc.class != "" {
				if m.Topic != "dlq" {
					t.Fatalf("topic %s, want dlq", m.Topic)
				}
				if !bytes.Equal(m.Value, []byte(tc.value)) || string(m.Key) != tc.key {
					t.Fatalf("DLQ record is not the original: key %q value %q", m.Key, m.Value)
				}
				want := map[string]string{
					HeaderErrorClass: string(tc.class), HeaderSourceTopic: "in", HeaderSourcePartition: "2",
					HeaderSourceOffset: itoa(100 + i), HeaderAttempts: "1",
				}
				for k, w := range want {
					if g := header(m, k); g != w {
						t.Errorf("header %s = %q, want %q", k, g, w)
					}
				}
				if header(m, HeaderErrorMessage) == "" {
					t.Error("no error message header")
				}
				return
			}
			if m.Topic != "out" {
				t.Fatalf("topic %s, want out", m.Topic)
			}
			if err := v.ValidateRecord(m.Value); err != nil {
				t.Fatalf("output does not validate: %v\n%s", err, m.Value)
			}
			r := decodeOut(t, m)
			if r.Enrichment.Status != tc.status || !bytes.Equal(r.Event, []byte(tc.value)) {
				t.Fatalf("record %+v", r)
			}
			if r.Source.Offset != int64(100+i) || r.Source.Partition != 2 || r.Source.Topic != "in" {
				t.Fatalf("source %+v", r.Source)
			}
			wantKey := tc.key
			if wantKey == "" {
				wantKey = "u2" // the user id
				if r.Source.Key != nil {
					t.Fatalf("source key %q for a record without key", *r.Source.Key)
				}
			}
			if string(m.Key) != wantKey {
				t.Fatalf("output key %q, want %q", m.Key, wantKey)
			}
			if header(m, HeaderSchema) != schemas.RecordVersion {
				t.Fatalf("headers %v", m.Headers)
			}
			if tc.status == schemas.StatusOK && (len(r.Enrichment.OfficialAccounts) != 3 || r.Enrichment.TotalCount != 3) {
				t.Fatalf("enrichment %+v", r.Enrichment)
			}
		})
	}
	st := p.Stats()
	if st.In != int64(len(tests)) || st.Out != 4 || st.DLQ != 6 || st.ByStatus[schemas.StatusOK] != 2 || st.DLQByClass[ClassNotJSON] != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestFatalStopsPipeline: an app-fatal answer fails the pipeline with the
// *FatalError; the record is not published and the watermark stays before
// it; later records are not published either.
func TestFatalStopsPipeline(t *testing.T) {
	fatal := &FatalError{Code: 131000, Setting: "SDKAppID"}
	fetch := func(ctx context.Context, user string) (lookup, error) {
		if user == "boom" {
			return lookup{}, fatal
		}
		return okLookup(0)(ctx, user)
	}
	p, pub := newTestPipeline(t, testConfig(), fetch)
	c := p.Claim("in", 0)
	ctx := context.Background()
	for i, u := range []string{"a", "boom"} {
		if err := c.Submit(ctx, kafka.Message{Offset: int64(i), Key: []byte("k"), Value: event(u, i)}); err != nil {
			t.Fatal(err)
		}
	}
	<-p.Failed()
	if err := c.Submit(ctx, kafka.Message{Offset: 2, Key: []byte("k"), Value: event("c", 2)}); err != nil {
		t.Fatal(err)
	}
	if err := c.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	var fe *FatalError
	if !errors.As(p.Err(), &fe) || fe.Code != 131000 {
		t.Fatalf("Err = %v", p.Err())
	}
	if off, _ := c.Release(); off != 1 {
		t.Fatalf("watermark %d, want 1", off)
	}
	if n := len(pub.messages()); n != 1 {
		t.Fatalf("%d published, want 1 (only the record before the fatal one)", n)
	}
}

// TestUnavailablePausesAndRecovers: while the API is unavailable, records
// wait (no degraded records) and fetching pauses; when it recovers every
// record is enriched.
func TestUnavailablePausesAndRecovers(t *testing.T) {
	var down atomic.Bool
	var failures atomic.Int64
	down.Store(true)
	fetch := func(ctx context.Context, user string) (lookup, error) {
		if down.Load() {
			failures.Add(1)
			return lookup{}, &unavailableError{retryAfter: 2 * time.Millisecond, outage: true, err: errors.New("breaker open")}
		}
		return okLookup(1)(ctx, user)
	}
	cfg := testConfig()
	cfg.PauseBackoff = 5 * time.Millisecond
	p, pub := newTestPipeline(t, cfg, fetch)
	c := p.Claim("in", 0)
	ctx := context.Background()
	if err := c.Submit(ctx, kafka.Message{Offset: 0, Value: event("u0", 0)}); err != nil {
		t.Fatal(err)
	}
	testsupport.WaitFor(t, 5*time.Second, "pause", func() bool { return p.Stats().Paused })
	// While fewer than minProbeUsers users are waiting, new records are let
	// through to probe; then fetching is paused: a Submit blocks until its
	// deadline.
	for i := 1; i < minProbeUsers; i++ {
		if err := c.Submit(ctx, kafka.Message{Offset: int64(i), Value: event("u"+itoa(i), i)}); err != nil {
			t.Fatal(err)
		}
	}
	testsupport.WaitFor(t, 5*time.Second, "probes waiting", func() bool { return p.probes.users() == minProbeUsers })
	tctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	err := c.Submit(tctx, kafka.Message{Offset: minProbeUsers, Value: event("u9", 9)})
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Submit while paused = %v, want blocked", err)
	}
	f0 := failures.Load()
	testsupport.WaitFor(t, 5*time.Second, "retries while down", func() bool { return failures.Load() >= f0+3 })
	if n := len(pub.messages()); n != 0 {
		t.Fatalf("%d records published while the API was down", n)
	}
	down.Store(false)
	if err := c.Submit(ctx, kafka.Message{Offset: minProbeUsers, Value: event("u9", 9)}); err != nil {
		t.Fatal(err)
	}
	if err := c.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	for _, m := range pub.messages() {
		if s := decodeOut(t, m).Enrichment.Status; s != schemas.StatusOK {
			t.Fatalf("status %s", s)
		}
	}
	if st := p.Stats(); st.Out != minProbeUsers+1 || st.Paused || st.Pauses < 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestUnavailableAfterDeadline: with UnavailableAfter set, a record gets
// status unavailable once the API has been down that long.
func TestUnavailableAfterDeadline(t *testing.T) {
	v, err := schemas.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	fetch := func(ctx context.Context, user string) (lookup, error) {
		return lookup{}, &unavailableError{retryAfter: time.Hour, outage: true, err: errors.New("breaker open")}
	}
	cfg := testConfig()
	cfg.UnavailableAfter = 20 * time.Millisecond
	p, pub := newTestPipeline(t, cfg, fetch)
	c := p.Claim("in", 0)
	ctx := context.Background()
	if err := c.Submit(ctx, kafka.Message{Topic: "in", Offset: 0, Value: event("u0", 0)}); err != nil {
		t.Fatal(err)
	}
	if err := c.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	msgs := pub.messages()
	if len(msgs) != 1 {
		t.Fatalf("%d published", len(msgs))
	}
	if err := v.ValidateRecord(msgs[0].Value); err != nil {
		t.Fatal(err)
	}
	r := decodeOut(t, msgs[0])
	if r.Enrichment.Status != schemas.StatusUnavailable || r.Enrichment.Complete || r.Enrichment.FetchedAt != nil {
		t.Fatalf("enrichment %+v", r.Enrichment)
	}
}

// TestTraceContinuity: the input's traceparent is the parent of the
// record's spans, and the output carries a traceparent of the same trace.
func TestTraceContinuity(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	var apiParent trace.SpanContext
	fetch := func(ctx context.Context, user string) (lookup, error) {
		// Stands in for the client, which starts its spans from this ctx.
		_, span := tp.Tracer("client").Start(ctx, "GetAll")
		apiParent = span.SpanContext()
		span.End()
		return okLookup(1)(ctx, user)
	}
	cfg := testConfig()
	cfg.TracerProvider = tp
	p, pub := newTestPipeline(t, cfg, fetch)
	c := p.Claim("in", 0)
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	m := kafka.Message{Topic: "in", Offset: 0, Value: event("u", 0),
		Headers: []kafka.Header{{Key: "traceparent", Value: []byte("00-" + traceID + "-" + parentID + "-01")}}}
	ctx := context.Background()
	if err := c.Submit(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := c.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	spans := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		if s.SpanContext().TraceID().String() != traceID {
			t.Fatalf("span %s in trace %s, want %s", s.Name(), s.SpanContext().TraceID(), traceID)
		}
		spans[s.Name()] = s
	}
	process, enrich, send, api := spans["process in"], spans["enrich"], spans["send out"], spans["GetAll"]
	if process == nil || enrich == nil || send == nil || api == nil {
		t.Fatalf("spans %v", spans)
	}
	if process.Parent().SpanID().String() != parentID || !process.Parent().IsRemote() {
		t.Fatalf("process span parent %v, want the input's span %s", process.Parent().SpanID(), parentID)
	}
	if process.SpanKind() != trace.SpanKindConsumer || send.SpanKind() != trace.SpanKindProducer {
		t.Fatal("span kinds")
	}
	if enrich.Parent().SpanID() != process.SpanContext().SpanID() || send.Parent().SpanID() != process.SpanContext().SpanID() {
		t.Fatal("enrich and send are not children of process")
	}
	if api.Parent().SpanID() != enrich.SpanContext().SpanID() || apiParent.TraceID().String() != traceID {
		t.Fatal("API span is not a child of enrich")
	}
	attrs := map[string]string{}
	for _, a := range process.Attributes() {
		attrs[string(a.Key)] = a.Value.String()
	}
	if attrs["messaging.system"] != "kafka" || attrs["messaging.destination.name"] != "in" || attrs["messaging.kafka.offset"] != "0" || attrs["messaging.operation.type"] != "process" {
		t.Fatalf("process attributes %v", attrs)
	}
	out := pub.messages()[0]
	tpOut := header(out, "traceparent")
	want := "00-" + traceID + "-" + send.SpanContext().SpanID().String() + "-01"
	if tpOut != want {
		t.Fatalf("output traceparent %q, want %q", tpOut, want)
	}
}

// BenchmarkEncodeOutput builds one output record from a cached lookup
// (encoded when it was cached) and releases its value, as a published
// record's is: the cache-hit path's cost per record.
func BenchmarkEncodeOutput(b *testing.B) {
	for _, n := range []int{5, 39} {
		b.Run(fmt.Sprintf("accounts=%d", n), func(b *testing.B) {
			p, _ := newTestPipeline(b, testConfig(), okLookup(n))
			r := p.newRecord(kafka.Message{Topic: "in", Offset: 1, Key: []byte("k"), Value: event("u1", 1), Time: time.Now(),
				Headers: []kafka.Header{{Key: "traceparent", Value: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")}}})
			l, _ := okLookup(n)(context.Background(), "u1")
			for i := range l.accounts {
				l.accounts[i].Name, l.accounts[i].Introduction = ptr("Account name"), ptr(strings.Repeat("An introduction. ", 10))
				l.accounts[i].SelfInfo = &schemas.SelfInfo{SubscribeTime: ptr(int64(1700000000 + i))}
			}
			l, err := encodeEnrichment(l, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			var size int
			for b.Loop() {
				m, err := p.outputMessage(r, l, schemas.CacheHit)
				if err != nil {
					b.Fatal(err)
				}
				size = len(m.Value)
				p.values.put(m.Value)
			}
			b.SetBytes(int64(size))
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestEncodeFailureDLQ: an event that passes the decoder but whose
// enriched record cannot be encoded (a record timestamp past year 9999)
// goes to the DLQ as encode_failed; the records of its key behind it are
// published and the watermark passes all of them.
func TestEncodeFailureDLQ(t *testing.T) {
	p, pub := newTestPipeline(t, testConfig(), okLookup(1))
	c := p.Claim("in", 0)
	ctx := context.Background()
	times := []time.Time{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Unix(1700000000, 0), time.Unix(1700000001, 0)}
	for i, ts := range times {
		m := kafka.Message{Topic: "in", Offset: int64(10 + i), Key: []byte("k"), Value: event("u1", i), Time: ts}
		if err := c.Submit(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if off, _ := c.Release(); off != 13 {
		t.Fatalf("watermark %d, want 13", off)
	}
	msgs := pub.messages()
	if len(msgs) != 3 || msgs[0].Topic != "dlq" || header(msgs[0], HeaderErrorClass) != string(ClassEncodeFailed) ||
		header(msgs[0], HeaderSourceOffset) != "10" || !strings.Contains(header(msgs[0], HeaderErrorMessage), "year") {
		t.Fatalf("published %d records; first %s %v", len(msgs), msgs[0].Topic, msgs[0].Headers)
	}
	for _, m := range msgs[1:] {
		if m.Topic != "out" {
			t.Fatalf("record after the failed one went to %s", m.Topic)
		}
	}
	if st := p.Stats(); st.DLQByClass[ClassEncodeFailed] != 1 || st.Out != 2 || st.InFlight != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestCacheHitIsNotAProbe: a record whose user is cached is enriched
// without entering the probe set (the users whose lookups find the API
// back), so it neither waits for the set's lock nor counts as a probe.
func TestCacheHitIsNotAProbe(t *testing.T) {
	var calls atomic.Int32
	fetch := func(ctx context.Context, user string) (lookup, error) {
		calls.Add(1)
		return okLookup(2)(ctx, user)
	}
	p, _ := newTestPipeline(t, testConfig(), fetch)
	ctx := context.Background()
	r := p.newRecord(kafka.Message{Topic: "in", Value: event("u1", 1)})
	if _, cache, _, err := p.enrich(ctx, r); err != nil || cache != schemas.CacheMiss {
		t.Fatalf("first enrich: cache %q, error %v", cache, err)
	}
	p.probes.mu.Lock() // a lookup entering the set would wait here
	done := make(chan error, 1)
	go func() {
		_, cache, _, err := p.enrich(ctx, p.newRecord(kafka.Message{Topic: "in", Offset: 1, Value: event("u1", 2)}))
		if err == nil && cache != schemas.CacheHit {
			err = fmt.Errorf("cache %q, want %q", cache, schemas.CacheHit)
		}
		done <- err
	}()
	select {
	case err := <-done:
		p.probes.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		p.probes.mu.Unlock()
		t.Fatal("a cache hit waited for the probe set")
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d lookups, want 1", n)
	}
	if n := p.probes.users(); n != 0 {
		t.Fatalf("%d probes after both records, want 0", n)
	}
}
