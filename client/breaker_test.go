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

// tokenCounter is a Budget that grants at once and counts the tokens taken.
type tokenCounter struct{ takes atomic.Int64 }

func (b *tokenCounter) Take(context.Context) (time.Duration, error) {
	b.takes.Add(1)
	return 0, nil
}
func (b *tokenCounter) Throttled(context.Context) (float64, bool) { return 200, false }
func (b *tokenCounter) Rate() float64                             { return 200 }

// TestBreakerRefusalTakesNoToken: a call the breaker refuses, open or
// half-open with its probe in flight, takes no rate-limiter token, and
// the refused callers' Ready channel is closed when the probe ends.
func TestBreakerRefusalTakesNoToken(t *testing.T) {
	var healthy atomic.Bool
	release := make(chan struct{})
	f := newFake(t, func(int, seenRequest) (int, any) {
		if !healthy.Load() {
			return http.StatusServiceUnavailable, nil
		}
		<-release
		return 200, okBody(0, 1, 0)
	})
	tokens := &tokenCounter{}
	cfg := testConfig(f.URL)
	cfg.MaxAttempts = 1
	cfg.Budget = tokens
	cfg.Breaker = BreakerConfig{Failures: 1, OpenFor: time.Minute, Probes: 1}
	c := newTestClient(t, cfg)
	ctx := context.Background()
	get := func() error {
		_, err := c.GetPage(ctx, PageRequest{SubscriberAccount: "u"})
		return err
	}
	if err := get(); Classify(err) != ClassTransient || tokens.takes.Load() != 1 {
		t.Fatalf("first call: %v, %d tokens", err, tokens.takes.Load())
	}
	for range 20 {
		if err := get(); !errors.Is(err, ErrBreakerOpen) {
			t.Fatalf("open breaker: %v", err)
		}
	}
	if n := tokens.takes.Load(); n != 1 {
		t.Fatalf("%d tokens taken by 20 refused calls", n-1)
	}

	healthy.Store(true)
	testsupport.WaitFor(t, 5*time.Second, "the breaker to go half-open", func() bool { return c.BreakerState() == BreakerHalfOpen })
	probe := make(chan error, 1)
	go func() { probe <- get() }()
	testsupport.WaitFor(t, 2*time.Second, "the probe call", func() bool { return f.calls() == 2 })
	var ready []<-chan struct{}
	for range 20 {
		var boe *BreakerOpenError
		if err := get(); !errors.As(err, &boe) || boe.Ready == nil || boe.RetryAfter <= 0 {
			t.Fatalf("half-open, probe in flight: %v", err)
		}
		ready = append(ready, boe.Ready)
	}
	if n := tokens.takes.Load(); n != 2 {
		t.Fatalf("%d tokens taken by 20 calls refused while probing", n-2)
	}
	for _, r := range ready {
		select {
		case <-r:
			t.Fatal("Ready closed before the probe ended")
		default:
		}
	}
	close(release)
	if err := <-probe; err != nil {
		t.Fatalf("probe: %v", err)
	}
	for _, r := range ready {
		select {
		case <-r:
		case <-time.After(5 * time.Second):
			t.Fatal("Ready not closed when the probe ended")
		}
	}
	if c.BreakerState() != BreakerClosed || f.calls() != 2 {
		t.Fatalf("state %s, %d server calls", c.BreakerState(), f.calls())
	}
}

// TestBreakerOpenPeriodsBackOff: the breaker stays open 500ms after it
// trips, twice as long after each failed probe up to OpenFor, and starts
// over at 500ms once a probe succeeded.
func TestBreakerOpenPeriodsBackOff(t *testing.T) {
	b := newBreaker(BreakerConfig{Failures: 1, OpenFor: 2 * time.Second, Probes: 1, Interval: time.Minute}, nil)
	fail := &APIError{HTTPStatus: 503}
	// probe waits out the hold and sends one call with outcome err; it
	// returns the hold that followed the previous failure.
	probe := func(err error) time.Duration {
		t.Helper()
		var hold time.Duration
		for {
			done, aerr := b.allow(nil)
			if aerr == nil {
				done(err)
				return hold
			}
			var boe *BreakerOpenError
			if !errors.As(aerr, &boe) {
				t.Fatal(aerr)
			}
			hold = max(hold, boe.RetryAfter)
			select {
			case <-time.After(boe.RetryAfter):
			case <-boe.Ready:
			}
		}
	}
	probe(fail) // trips
	want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 2 * time.Second}
	for i, w := range want {
		got := probe(fail)
		if got > w || got < w*8/10 {
			t.Fatalf("open period %d: held %s, want about %s", i+1, got, w)
		}
	}
	probe(nil) // closes
	if s := b.state(); s != BreakerClosed {
		t.Fatalf("state %s after a good probe", s)
	}
	probe(fail) // trips again
	if got := probe(nil); got > 500*time.Millisecond || got < 400*time.Millisecond {
		t.Fatalf("after a recovery the first open period is %s, want 500ms", got)
	}
}
