package opshttp

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tencentchat-enricher/enricher/internal/telemetry"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestEndpoints(t *testing.T) {
	for _, k := range []string{"OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"} {
		t.Setenv(k, "")
	}
	prov, err := telemetry.New(context.Background(), telemetry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer prov.Shutdown(context.Background())
	gauge, err := prov.MeterProvider.Meter("test").Int64Gauge("enricher.consumer.lag")
	if err != nil {
		t.Fatal(err)
	}
	gauge.Record(context.Background(), 42)

	var joined atomic.Bool
	var breakerOpen atomic.Bool
	s, err := New(Config{
		Addr:    "127.0.0.1:0",
		Metrics: prov.MetricsHandler(),
		Checks: map[string]Check{
			"group": CheckFunc(func(context.Context) error {
				if !joined.Load() {
					return errors.New("consumer group not joined")
				}
				return nil
			}),
			"breaker": CheckFunc(func(context.Context) error {
				if breakerOpen.Load() {
					return errors.New("circuit breaker open")
				}
				return nil
			}),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	base := "http://" + s.Addr()

	if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	steps := []struct {
		joined, open bool
		code         int
		body         string
	}{
		{false, false, 503, "ok breaker\nfail group: consumer group not joined\n"},
		{true, false, 200, "ok breaker\nok group\n"},
		{true, true, 503, "fail breaker: circuit breaker open\nok group\n"},
		{true, false, 200, "ok breaker\nok group\n"},
	}
	for i, st := range steps {
		joined.Store(st.joined)
		breakerOpen.Store(st.open)
		if code, body := get(t, base+"/readyz"); code != st.code || body != st.body {
			t.Errorf("step %d /readyz: %d %q, want %d %q", i, code, body, st.code, st.body)
		}
	}
	code, body := get(t, base+"/metrics")
	if code != 200 || !strings.Contains(body, "enricher_consumer_lag") || !strings.Contains(body, "} 42") {
		t.Errorf("/metrics: %d, lag gauge missing", code)
	}
	if code, _ := get(t, base+"/nope"); code != 404 {
		t.Errorf("/nope: %d", code)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop")
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("still serving after shutdown")
	}
}

func TestCheckHonoursTimeout(t *testing.T) {
	s, err := New(Config{Addr: "127.0.0.1:0", CheckTimeout: 50 * time.Millisecond, Checks: map[string]Check{
		"broker": CheckFunc(func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }),
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	code, body := get(t, "http://"+s.Addr()+"/readyz")
	if code != 503 || !strings.Contains(body, "fail broker: context deadline exceeded") {
		t.Errorf("/readyz with a hanging check: %d %q", code, body)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no addr", Config{}},
		{"bad addr", Config{Addr: "9464"}},
		{"negative timeout", Config{Addr: "127.0.0.1:0", CheckTimeout: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if s, err := New(tt.cfg); err == nil {
				s.Close()
				t.Error("want an error")
			}
		})
	}
	s, err := New(Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s2, err := New(Config{Addr: s.Addr()}); err == nil {
		s2.Close()
		t.Error("listening on a taken port succeeded")
	}
}

// A Degraded check is listed as degraded and keeps the process ready; a
// failing check still makes it unready.
func TestDegradedStaysReady(t *testing.T) {
	var fail atomic.Bool
	s, err := New(Config{Addr: "127.0.0.1:0", Checks: map[string]Check{
		"budget": CheckFunc(func(context.Context) error { return Degraded(errors.New("redis\n unreachable")) }),
		"other": CheckFunc(func(context.Context) error {
			if fail.Load() {
				return errors.New("down")
			}
			return nil
		}),
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = s.Run(ctx) }()
	base := "http://" + s.Addr()
	if code, body := get(t, base+"/readyz"); code != 200 || body != "degraded budget: redis unreachable\nok other\n" {
		t.Errorf("degraded: %d %q", code, body)
	}
	fail.Store(true)
	if code, body := get(t, base+"/readyz"); code != 503 || body != "degraded budget: redis unreachable\nfail other: down\n" {
		t.Errorf("degraded and failing: %d %q", code, body)
	}
}
