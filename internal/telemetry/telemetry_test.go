package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel/propagation"
)

func unsetOTEL(t testing.TB) {
	t.Helper()
	for _, k := range []string{"OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
		"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG"} {
		t.Setenv(k, "")
	}
}

func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics status %d", rec.Code)
	}
	return rec.Body.String()
}

func TestMetricsExposition(t *testing.T) {
	unsetOTEL(t)
	t.Setenv("OTEL_SERVICE_NAME", "enricher-test")
	p, err := New(context.Background(), Config{ServiceVersion: "1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	c, err := p.MeterProvider.Meter("test").Int64Counter("enricher.events.in")
	if err != nil {
		t.Fatal(err)
	}
	c.Add(context.Background(), 3)
	body := scrape(t, p.MetricsHandler())
	for _, want := range []string{"enricher_events_in_total", `service_name="enricher-test"`, `service_version="1.2.3"`, "go_goroutines"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if !strings.Contains(body, "} 3\n") {
		t.Errorf("counter value 3 not exposed:\n%s", grep(body, "enricher_events_in"))
	}
}

func grep(body, s string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestTraceExporterSelection(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    string
		wantErr bool
	}{
		{name: "nothing set", want: "none"},
		{name: "explicit none", env: map[string]string{"OTEL_TRACES_EXPORTER": "none"}, want: "none"},
		{name: "console", env: map[string]string{"OTEL_TRACES_EXPORTER": "console"}, want: "console"},
		{name: "endpoint implies otlp", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}, want: "otlp"},
		{name: "grpc", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, want: "otlp"},
		{name: "unknown exporter", env: map[string]string{"OTEL_TRACES_EXPORTER": "carrier-pigeon"}, wantErr: true},
		{name: "unknown protocol", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "smoke"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			unsetOTEL(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			p, err := New(context.Background(), Config{})
			if tt.wantErr {
				if err == nil {
					p.Shutdown(context.Background())
					t.Fatal("want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // do not wait on unreachable endpoints
			defer p.Shutdown(ctx)
			if p.TracesExporter != tt.want {
				t.Errorf("exporter %q, want %q", p.TracesExporter, tt.want)
			}
		})
	}
}

// TestOTLPHTTPExport checks that spans reach an OTLP/HTTP collector.
func TestOTLPHTTPExport(t *testing.T) {
	var posts atomic.Int32
	var path atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		path.Store(r.URL.Path)
		posts.Add(1)
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	unsetOTEL(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	p, err := New(context.Background(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	_, span := p.TracerProvider.Tracer("test").Start(context.Background(), "consume")
	if !span.SpanContext().IsValid() {
		t.Fatal("span has no valid context")
	}
	span.End()
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if posts.Load() == 0 {
		t.Fatal("no OTLP export request received")
	}
	if got := path.Load(); got != "/v1/traces" {
		t.Errorf("export path %v, want /v1/traces", got)
	}
}

// TestSpansWithoutExport: with no exporter spans still carry valid context
// (trace context keeps flowing through Kafka headers).
func TestSpansWithoutExport(t *testing.T) {
	unsetOTEL(t)
	p, err := New(context.Background(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	ctx, span := p.TracerProvider.Tracer("test").Start(context.Background(), "x")
	defer span.End()
	carrier := map[string]string{}
	p.Propagator.Inject(ctx, propagation.MapCarrier(carrier))
	if !strings.HasPrefix(carrier["traceparent"], "00-"+span.SpanContext().TraceID().String()) {
		t.Errorf("traceparent %q does not carry the span's trace id", carrier["traceparent"])
	}
}

// TestConsoleWriter: with OTEL_TRACES_EXPORTER=console and a ConsoleWriter,
// spans are written there, one JSON object each, and nothing to stdout.
func TestConsoleWriter(t *testing.T) {
	unsetOTEL(t)
	t.Setenv("OTEL_TRACES_EXPORTER", "console")
	var buf bytes.Buffer
	p, err := New(context.Background(), Config{ConsoleWriter: &buf})
	if err != nil {
		t.Fatal(err)
	}
	_, span := p.TracerProvider.Tracer("test").Start(context.Background(), "console-span")
	span.End()
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	var got struct{ Name string }
	if err := json.Unmarshal(bytes.TrimSpace(buf.Bytes()), &got); err != nil || got.Name != "console-span" {
		t.Fatalf("console writer holds %q (%v), want the span as one JSON object", buf.String(), err)
	}
}
