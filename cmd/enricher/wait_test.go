package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tencentchat-enricher/enricher/internal/devkafka"
)

func TestWaitReadyAndTimeout(t *testing.T) {
	clearEnv(t)
	b, err := devkafka.Start(devkafka.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	up := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer up.Close()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	defer down.Close()
	ctx := context.Background()

	code, out, errs := runApp(t, ctx, "wait", "--brokers", b.Addr(), "--http", up.URL, "--timeout", "5s")
	if code != 0 || !strings.Contains(out, "ready after") || !strings.Contains(out, "kafka "+b.Addr()) {
		t.Fatalf("wait: exit %d %s %s", code, out, errs)
	}

	// Nothing listens on a closed broker's address; /readyz answering 503 is not ready.
	gone := freeAddr(t)
	start := time.Now()
	code, _, errs = runApp(t, ctx, "wait", "--brokers", gone, "--http", down.URL, "--timeout", "600ms")
	if code != 1 || !strings.Contains(errs, "not ready after 600ms") || !strings.Contains(errs, "kafka "+gone) || !strings.Contains(errs, "HTTP 503") {
		t.Fatalf("wait for nothing: exit %d %s", code, errs)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the wait took %s, bounded by 600ms", d)
	}

	// generate gives up after --wait with the same message.
	code, _, errs = runApp(t, ctx, "generate", "--brokers", gone, "--wait", "400ms", "--count", "1")
	if code != 1 || !strings.Contains(errs, "not ready after 400ms") || !strings.Contains(errs, "--wait (ENRICHER_GEN_WAIT)") {
		t.Fatalf("generate without a broker: exit %d %s", code, errs)
	}
	if code, _, errs := runApp(t, ctx, "wait", "--http", "localhost:1"); code != exitCodeUsage || !strings.Contains(errs, "--http (ENRICHER_WAIT_HTTP)") {
		t.Fatalf("wait --http without scheme: exit %d %s", code, errs)
	}
}
