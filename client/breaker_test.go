package client

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tencentchat-enricher/enricher/internal/testsupport"
)

func TestBreakerLifecycle(t *testing.T) {
	var healthy atomic.Bool
	f := newFake(t, func(int, seenRequest) (int, any) {
		if healthy.Load() {
			return 200, okBody(0, 1, 0)
		}
		return http.StatusBadGateway, "bad gateway"
	})
	var logs testsupport.SyncBuffer
	cfg := testConfig(f.URL)
	cfg.MaxAttempts = 1
	cfg.Breaker = BreakerConfig{Failures: 3, OpenFor: 100 * time.Millisecond}
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	c := newTestClient(t, cfg)
	ctx := context.Background()
	get := func() error {
		_, err := c.GetPage(ctx, PageRequest{SubscriberAccount: "u"})
		return err
	}

	// Opens after 3 consecutive transient failures.
	for i := range 3 {
		if c.BreakerState() != BreakerClosed {
			t.Fatalf("open after %d failures", i)
		}
		if err := get(); Classify(err) != ClassTransient || errors.Is(err, ErrBreakerOpen) {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if c.BreakerState() != BreakerOpen {
		t.Fatalf("state = %s, want open", c.BreakerState())
	}

	// Fails fast without calling the server.
	start := time.Now()
	err := get()
	var boe *BreakerOpenError
	if !errors.As(err, &boe) || !errors.Is(err, ErrBreakerOpen) || Classify(err) != ClassTransient {
		t.Fatalf("open breaker returned %v", err)
	}
	if boe.RetryAfter <= 0 || boe.RetryAfter > cfg.Breaker.OpenFor {
		t.Errorf("RetryAfter = %s", boe.RetryAfter)
	}
	if time.Since(start) > 50*time.Millisecond || f.calls() != 3 {
		t.Errorf("fast failure took %s, server calls %d", time.Since(start), f.calls())
	}

	// Half-opens after OpenFor; a failing probe re-opens it.
	testsupport.WaitFor(t, 2*time.Second, "the breaker to go half-open", func() bool { return c.BreakerState() == BreakerHalfOpen })
	if err := get(); errors.Is(err, ErrBreakerOpen) || f.calls() != 4 {
		t.Fatalf("probe: %v, calls %d", err, f.calls())
	}
	if c.BreakerState() != BreakerOpen {
		t.Fatalf("after failed probe state = %s", c.BreakerState())
	}

	// A successful probe closes it.
	healthy.Store(true)
	testsupport.WaitFor(t, 2*time.Second, "the breaker to go half-open", func() bool { return c.BreakerState() == BreakerHalfOpen })
	if err := get(); err != nil {
		t.Fatalf("probe: %v", err)
	}
	if c.BreakerState() != BreakerClosed {
		t.Fatalf("after good probe state = %s", c.BreakerState())
	}

	log := logs.String()
	for _, want := range []string{"from=closed to=open", "from=open to=half-open", "from=half-open to=open", "from=half-open to=closed"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks transition %q:\n%s", want, log)
		}
	}
}

func TestBreakerIgnoresNonTransientOutcomes(t *testing.T) {
	tests := []struct {
		name  string
		reply func(int, seenRequest) (int, any)
	}{
		{"unknown user 130004", func(int, seenRequest) (int, any) { return 200, errBody(CodeUserNotFound) }},
		{"bad user id 130007", func(int, seenRequest) (int, any) { return 200, errBody(CodeInvalidUserID) }},
		{"invalid parameter 6017", func(int, seenRequest) (int, any) { return 200, errBody(CodeInvalidParameter) }},
		{"throttled 60007", func(int, seenRequest) (int, any) { return 200, errBody(CodeFrequencyLimit) }},
		{"fatal 131000", func(int, seenRequest) (int, any) { return 200, errBody(CodeServiceNotEnabled) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, tt.reply)
			cfg := testConfig(f.URL)
			cfg.MaxAttempts = 1
			cfg.Breaker = BreakerConfig{Failures: 2, OpenFor: time.Minute}
			c := newTestClient(t, cfg)
			for range 10 {
				_, err := c.GetPage(context.Background(), PageRequest{SubscriberAccount: "u"})
				if err == nil || errors.Is(err, ErrBreakerOpen) {
					t.Fatalf("err = %v", err)
				}
			}
			if c.BreakerState() != BreakerClosed || f.calls() != 10 {
				t.Errorf("state %s after %d calls", c.BreakerState(), f.calls())
			}
		})
	}
}

func TestBreakerIgnoresCallerCancellation(t *testing.T) {
	release := make(chan struct{})
	f := newFake(t, func(int, seenRequest) (int, any) {
		<-release
		return 200, okBody(0, 1, 0)
	})
	defer close(release)
	cfg := testConfig(f.URL)
	cfg.Breaker = BreakerConfig{Failures: 2, OpenFor: time.Minute}
	c := newTestClient(t, cfg)
	for i := range 5 {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { _, err := c.GetPage(ctx, PageRequest{SubscriberAccount: "u"}); done <- err }()
		testsupport.WaitFor(t, 2*time.Second, "the next call", func() bool { return f.calls() > i })
		cancel()
		if err := <-done; Classify(err) != ClassCanceled {
			t.Fatalf("err = %v", err)
		}
	}
	if c.BreakerState() != BreakerClosed {
		t.Errorf("cancellations tripped the breaker")
	}
}

// TestNoRetriesWhileOpen: retries stop as soon as the breaker opens.
func TestNoRetriesWhileOpen(t *testing.T) {
	f := newFake(t, func(int, seenRequest) (int, any) { return 503, nil })
	cfg := testConfig(f.URL)
	cfg.MaxAttempts = 10
	cfg.Breaker = BreakerConfig{Failures: 2, OpenFor: time.Minute}
	c := newTestClient(t, cfg)
	_, err := c.GetPage(context.Background(), PageRequest{SubscriberAccount: "u"})
	var boe *BreakerOpenError
	if !errors.As(err, &boe) {
		t.Fatalf("err = %v", err)
	}
	var apiErr *APIError
	if !errors.As(boe.Last, &apiErr) || apiErr.HTTPStatus != 503 {
		t.Errorf("last error = %v", boe.Last)
	}
	if f.calls() != 2 {
		t.Errorf("server calls = %d, want 2", f.calls())
	}
}

// TestBreakerHalfOpenAdmitsOnlyProbes: while the one probe is in flight,
// other calls fail fast instead of piling onto a recovering server.
func TestBreakerHalfOpenAdmitsOnlyProbes(t *testing.T) {
	var healthy atomic.Bool
	release := make(chan struct{})
	f := newFake(t, func(int, seenRequest) (int, any) {
		if !healthy.Load() {
			return http.StatusServiceUnavailable, nil
		}
		<-release
		return 200, okBody(0, 1, 0)
	})
	cfg := testConfig(f.URL)
	cfg.MaxAttempts = 1
	cfg.Breaker = BreakerConfig{Failures: 1, OpenFor: 50 * time.Millisecond, Probes: 1}
	c := newTestClient(t, cfg)
	ctx := context.Background()
	if _, err := c.GetPage(ctx, PageRequest{SubscriberAccount: "u"}); Classify(err) != ClassTransient {
		t.Fatal(err)
	}
	healthy.Store(true)
	testsupport.WaitFor(t, 2*time.Second, "the breaker to go half-open", func() bool { return c.BreakerState() == BreakerHalfOpen })

	probe := make(chan error, 1)
	go func() { _, err := c.GetPage(ctx, PageRequest{SubscriberAccount: "u"}); probe <- err }()
	testsupport.WaitFor(t, 2*time.Second, "the probe call", func() bool { return f.calls() == 2 })
	_, err := c.GetPage(ctx, PageRequest{SubscriberAccount: "u"})
	var boe *BreakerOpenError
	if !errors.As(err, &boe) || boe.RetryAfter <= 0 {
		t.Errorf("second call while probing: %v", err)
	}
	close(release)
	if err := <-probe; err != nil {
		t.Fatalf("probe: %v", err)
	}
	if c.BreakerState() != BreakerClosed || f.calls() != 2 {
		t.Errorf("state %s, calls %d", c.BreakerState(), f.calls())
	}
}
