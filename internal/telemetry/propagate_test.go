package telemetry

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
)

// TestNoExportRecordsNothing: without an exporter no span records; a root
// span still has a trace context (sampled as the sampler says), and a span
// under a remote parent passes the parent's context on unchanged.
func TestNoExportRecordsNothing(t *testing.T) {
	for _, tc := range []struct {
		sampler     string
		rootSampled bool
	}{{"", true}, {"always_off", false}, {"parentbased_always_off", false}, {"always_on", true}} {
		t.Run(tc.sampler, func(t *testing.T) {
			unsetOTEL(t)
			t.Setenv("OTEL_TRACES_SAMPLER", tc.sampler)
			p, err := New(context.Background(), Config{})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Shutdown(context.Background())
			tr := p.TracerProvider.Tracer("test")
			ctx, root := tr.Start(context.Background(), "root")
			sc := root.SpanContext()
			if root.IsRecording() || !sc.IsValid() || sc.IsSampled() != tc.rootSampled {
				t.Fatalf("root: recording %v, context %v, sampled %v; want not recording, valid, sampled %v",
					root.IsRecording(), sc, sc.IsSampled(), tc.rootSampled)
			}
			if _, child := tr.Start(ctx, "child"); child.IsRecording() || !child.SpanContext().Equal(sc) {
				t.Fatalf("child %v, want the root's context %v", child.SpanContext(), sc)
			}

			carrier := propagation.MapCarrier{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
			remote := p.Propagator.Extract(context.Background(), carrier)
			cctx, span := tr.Start(remote, "process")
			if span.IsRecording() {
				t.Fatal("a span under a remote parent records")
			}
			out := propagation.MapCarrier{}
			p.Propagator.Inject(cctx, out)
			if out["traceparent"] != carrier["traceparent"] {
				t.Fatalf("traceparent %q, want the parent's %q passed on", out["traceparent"], carrier["traceparent"])
			}
		})
	}
}

// TestSampledRatio: with an exporter and parentbased_traceidratio, about
// the ratio of root spans record; the others record nothing.
func TestSampledRatio(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }))
	defer srv.Close()
	unsetOTEL(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
	t.Setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
	p, err := New(context.Background(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	tr := p.TracerProvider.Tracer("test")
	const n = 4000
	recorded := 0
	for range n {
		ctx, s := tr.Start(context.Background(), "root")
		_, c := tr.Start(ctx, "child")
		if s.IsRecording() != c.IsRecording() || s.SpanContext().IsSampled() != s.IsRecording() {
			t.Fatal("child and parent decided differently")
		}
		if s.IsRecording() {
			recorded++
		}
		c.End()
		s.End()
	}
	// 25% of 4000 is 1000, with a standard deviation of 27.
	if recorded < 850 || recorded > 1150 {
		t.Fatalf("%d of %d spans recorded, want about 1000", recorded, n)
	}
}

func TestSamplerFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name, arg string
		ok        bool
	}{
		{"", "", true}, {"traceidratio", "0.5", true}, {"parentbased_traceidratio", "", true},
		{"parentbased_traceidratio", "2", false}, {"traceidratio", "half", false}, {"sometimes", "", false},
	} {
		t.Setenv("OTEL_TRACES_SAMPLER", tc.name)
		t.Setenv("OTEL_TRACES_SAMPLER_ARG", tc.arg)
		if _, err := samplerFromEnv(); (err == nil) != tc.ok {
			t.Errorf("%s %q: error %v, want ok %v", tc.name, tc.arg, err, tc.ok)
		}
	}
}

// BenchmarkRecordSpans is a record's tracing as the processor does it: a
// process span under the producer's context, an enrich and a send span,
// attributes set only on spans that record, the send context injected
// into headers. Without export it costs the propagation alone; with an
// exporter it follows the sampled ratio.
func BenchmarkRecordSpans(b *testing.B) {
	for _, tc := range []struct {
		name string
		env  map[string]string
	}{
		{"no-export", nil},
		{"ratio=0.01", map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.01"}},
		{"ratio=0.1", map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}},
		{"ratio=1", map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1"}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }))
			defer srv.Close()
			unsetOTEL(b)
			if tc.env != nil {
				b.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
				for k, v := range tc.env {
					b.Setenv(k, v)
				}
			}
			p, err := New(context.Background(), Config{})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Shutdown(context.Background())
			tr := p.TracerProvider.Tracer("bench")
			b.ReportAllocs()
			for b.Loop() {
				ctx, process := tr.Start(context.Background(), "process user-events")
				if process.IsRecording() {
					process.SetAttributes(attribute.String("messaging.system", "kafka"), attribute.Int("messaging.kafka.offset", 42))
				}
				ectx, enrich := tr.Start(ctx, "enrich")
				if enrich.IsRecording() {
					enrich.SetAttributes(attribute.String("enrichment.status", "ok"))
				}
				enrich.End()
				sctx, send := tr.Start(ectx, "send user-events-enriched")
				if send.IsRecording() {
					send.SetAttributes(attribute.String("messaging.system", "kafka"))
				}
				carrier := propagation.MapCarrier{}
				p.Propagator.Inject(sctx, carrier)
				send.End()
				process.End()
			}
		})
	}
}
