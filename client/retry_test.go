package client

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/tencentchat-enricher/enricher/internal/testsupport"
)

func TestBackoffDelay(t *testing.T) {
	tests := []struct {
		attempt  int
		rnd      float64
		want     time.Duration
		base     time.Duration
		capDelay time.Duration
	}{
		{1, 0, 50 * time.Millisecond, 100 * time.Millisecond, time.Second},
		{1, 0.999999, 100 * time.Millisecond, 100 * time.Millisecond, time.Second},
		{2, 0, 100 * time.Millisecond, 100 * time.Millisecond, time.Second},
		{3, 0.5, 300 * time.Millisecond, 100 * time.Millisecond, time.Second},
		{4, 0, 400 * time.Millisecond, 100 * time.Millisecond, time.Second},
		{10, 0, 500 * time.Millisecond, 100 * time.Millisecond, time.Second}, // capped
		{60, 0.999999, time.Second, 100 * time.Millisecond, time.Second},     // no overflow
	}
	for _, tt := range tests {
		b := backoff{base: tt.base, max: tt.capDelay, rand: func() float64 { return tt.rnd }}
		got := b.delay(tt.attempt)
		if diff := got - tt.want; diff < -time.Microsecond || diff > time.Microsecond {
			t.Errorf("delay(%d, r=%g) = %s, want %s", tt.attempt, tt.rnd, got, tt.want)
		}
	}
	// With real randomness every delay lies in [d/2, d].
	b := backoff{base: 10 * time.Millisecond, max: time.Second}
	for i := range 1000 {
		a := i%8 + 1
		d := min(time.Second, 10*time.Millisecond<<(a-1))
		if got := b.delay(a); got < d/2 || got > d {
			t.Fatalf("delay(%d) = %s outside [%s, %s]", a, got, d/2, d)
		}
	}
}

func TestRetryDelayByClass(t *testing.T) {
	b := backoff{base: 100 * time.Millisecond, max: time.Second, rand: func() float64 { return 0 }}
	if d := b.retryDelay(1, ClassResign, CodeUserSigExpired); d != 0 {
		t.Errorf("re-sign waits %s", d)
	}
	if d := b.retryDelay(1, ClassResign, CodeSigCheckRateLimited); d != time.Minute {
		t.Errorf("70050 waits %s", d)
	}
	if d := b.retryDelay(1, ClassRateLimited, CodeFrequencyLimit); d != 100*time.Millisecond {
		t.Errorf("throttled waits %s", d)
	}
	if d := b.retryDelay(1, ClassTransient, CodeInternalError); d != 50*time.Millisecond {
		t.Errorf("transient waits %s", d)
	}
}

func TestRetriesThenSuccess(t *testing.T) {
	f := newFake(t, func(n int, _ seenRequest) (int, any) {
		switch n {
		case 1:
			return http.StatusBadGateway, nil
		case 2:
			return 200, errBody(CodeInternalError)
		case 3:
			return 200, errBody(CodeFrequencyLimit)
		}
		return 200, okBody(1, 1, 0, account("@TOA#_a"))
	})
	c := newTestClient(t, testConfig(f.URL))
	p, err := c.GetPage(context.Background(), PageRequest{SubscriberAccount: "u"})
	if err != nil || len(p.Accounts) != 1 || f.calls() != 4 {
		t.Fatalf("page %+v, err %v, calls %d", p, err, f.calls())
	}
}

func TestRetriesBoundedByMaxAttempts(t *testing.T) {
	f := newFake(t, func(int, seenRequest) (int, any) { return http.StatusBadGateway, nil })
	cfg := testConfig(f.URL)
	cfg.MaxAttempts = 3
	c := newTestClient(t, cfg)
	_, err := c.GetPage(context.Background(), PageRequest{SubscriberAccount: "u"})
	var rde *RetryDeadlineError
	if !errors.As(err, &rde) || rde.Attempts != 3 || Classify(err) != ClassTransient || f.calls() != 3 {
		t.Fatalf("err = %v, calls %d", err, f.calls())
	}
}

func TestRetriesStopAtDeadline(t *testing.T) {
	tests := []struct {
		name  string
		reply func(n int, r seenRequest) (int, any)
	}{
		{"failing server", func(int, seenRequest) (int, any) { return http.StatusBadGateway, nil }},
		{"hanging server", nil}, // set below: hangs until the client gives up
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			reply := tt.reply
			if reply == nil {
				reply = func(int, seenRequest) (int, any) { <-release; return 200, okBody(0, 1, 0) }
			}
			f := newFake(t, reply)
			defer close(release)
			cfg := testConfig(f.URL)
			cfg.MaxAttempts = 1000
			cfg.RetryDeadline = 300 * time.Millisecond
			cfg.BackoffBase, cfg.BackoffMax = 20*time.Millisecond, 80*time.Millisecond
			cfg.Breaker.Failures = 1000
			c := newTestClient(t, cfg)
			start := time.Now()
			_, err := c.GetPage(context.Background(), PageRequest{SubscriberAccount: "u"})
			elapsed := time.Since(start)
			var rde *RetryDeadlineError
			var te *TransportError
			if !errors.As(err, &rde) && !errors.As(err, &te) {
				t.Fatalf("err = %v", err)
			}
			if Classify(err) != ClassTransient {
				t.Errorf("class %s", Classify(err))
			}
			// The deadline bounds the call (the 5s per-attempt timeout
			// does not apply past it); allow for a busy machine.
			if elapsed > cfg.RetryDeadline+time.Second {
				t.Errorf("returned after %s, deadline %s", elapsed, cfg.RetryDeadline)
			}
			if tt.reply != nil && f.calls() < 2 {
				t.Errorf("only %d attempts before the deadline", f.calls())
			}
		})
	}
}

func TestCancellationReturnsPromptly(t *testing.T) {
	tests := []struct {
		name  string
		reply func(n int, r seenRequest) (int, any)
		cfg   func(*Config)
	}{
		{"during the HTTP call", nil, func(*Config) {}},
		{"during backoff", func(int, seenRequest) (int, any) { return http.StatusBadGateway, nil },
			func(c *Config) { c.BackoffBase, c.BackoffMax = 10*time.Second, 10*time.Second }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			reply := tt.reply
			if reply == nil {
				reply = func(int, seenRequest) (int, any) { <-release; return 200, okBody(0, 1, 0) }
			}
			f := newFake(t, reply)
			defer close(release)
			cfg := testConfig(f.URL)
			tt.cfg(&cfg)
			c := newTestClient(t, cfg)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { _, err := c.GetAll(ctx, "u"); done <- err }()
			testsupport.WaitFor(t, 2*time.Second, "the first call", func() bool { return f.calls() >= 1 })
			start := time.Now()
			cancel()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) || Classify(err) != ClassCanceled {
					t.Errorf("err = %v", err)
				}
				if d := time.Since(start); d > 500*time.Millisecond {
					t.Errorf("returned %s after cancel", d)
				}
			case <-time.After(3 * time.Second):
				t.Fatal("GetAll did not return after cancel")
			}
		})
	}
}

func TestContextDeadlineBeforeLimiterSlot(t *testing.T) {
	f := newFake(t, func(int, seenRequest) (int, any) { return 200, okBody(0, 1, 0) })
	cfg := testConfig(f.URL)
	cfg.Rate = 3 // ~1.9/s: the second call waits about half a second
	c := newTestClient(t, cfg)
	if _, err := c.GetPage(context.Background(), PageRequest{SubscriberAccount: "u"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := c.GetPage(ctx, PageRequest{SubscriberAccount: "u"})
	if Classify(err) != ClassCanceled || f.calls() != 1 {
		t.Errorf("err = %v, calls %d", err, f.calls())
	}
}
