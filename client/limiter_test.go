package client

import (
	"context"
	"errors"
	"flag"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

var limiterDuration = flag.Duration("limiter.duration", 3*time.Second,
	"how long TestLimiterServerSideTrailingSecond runs at full load")

// TestLimiterServerSideTrailingSecond runs 64 concurrent callers walking
// three-page lists (every 50th call fails with 502, so retries happen too)
// against a server process that records arrival times and answers 60007
// above the limit, like the real one. The server must never see more than
// Rate calls in any trailing second.
//
//	go test -race -run TestLimiterServerSideTrailingSecond -v ./client/ -limiter.duration=10s
func TestLimiterServerSideTrailingSecond(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for several seconds")
	}
	const limit = 200
	srv := startArrivalServer(t, limit)
	cfg := testConfig(srv.URL)
	cfg.Rate = limit
	c := newTestClient(t, cfg)

	ctx, cancel := context.WithTimeout(context.Background(), *limiterDuration)
	defer cancel()
	var wg sync.WaitGroup
	var done, failed atomic.Int64
	for w := range 64 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				_, err := c.GetAll(ctx, "user-"+strconv.Itoa(w)+"-"+strconv.Itoa(i))
				switch {
				case err == nil:
					done.Add(1)
				case Classify(err) != ClassCanceled:
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()

	rep := srv.report(t)
	ts := make([]time.Time, len(rep.Arrivals))
	for i, ns := range rep.Arrivals {
		ts[i] = time.Unix(0, ns)
	}
	peak := maxInTrailingSecond(ts)
	handled := make([]time.Time, len(rep.Handled))
	for i, ns := range rep.Handled {
		handled[i] = time.Unix(0, ns)
	}
	elapsed := limiterDuration.Seconds()
	t.Logf("server saw %d calls in %.1fs (%.1f/s), max %d in any trailing second by arrival (kernel timestamps: %v; %d by the time the server process handled them); limit %d; limiter: bucket %.2f/s burst 1, send window %d/s; %d lists, %d failed, %d throttled",
		len(ts), elapsed, float64(len(ts))/elapsed, peak, rep.Kernel, maxInTrailingSecond(handled), limit, c.lim.maxRate, c.lim.capacity(), done.Load(), failed.Load(), rep.Throttled)
	if peak > limit {
		t.Errorf("server saw %d calls in one trailing second, limit %d", peak, limit)
	}
	if rep.Throttled != 0 {
		t.Errorf("server throttled %d calls", rep.Throttled)
	}
	// Not trivially slow either (a broken limiter or server sees far less).
	if peak < limit/2 {
		t.Errorf("peak %d calls/s is far below the configured %d: limiter too strict or test starved", peak, limit)
	}
}

func TestLimiterEffectiveRate(t *testing.T) {
	tests := []struct {
		rate, safety float64
		want         float64
	}{
		{200, 0.99, 197},
		{200, 1, 199},
		{100, 0.99, 98},
		{10, 0.9, 8},
		// Budgets below two calls per second: one call per trailing
		// second, spaced 1/(safety*min(rate,1)) apart.
		{2, 0.97, 0.97},
		{1, 0.97, 0.97},
		{0.5, 0.97, 0.485},
		{1, 1, 1},
	}
	for _, tt := range tests {
		cfg := validConfig()
		cfg.Rate, cfg.RateSafety = tt.rate, tt.safety
		l := newLimiter(cfg.withDefaults())
		if math.Abs(l.maxRate-tt.want) > 1e-9 || float64(l.lim.Limit()) != l.maxRate || l.lim.Burst() != 1 {
			t.Errorf("rate %g safety %g: limiter %g burst %d, want %g burst 1", tt.rate, tt.safety, float64(l.lim.Limit()), l.lim.Burst(), tt.want)
		}
		// The token-bucket bound for a 1s window: r*1s + burst, and the
		// hard cap: both within the budget (one call at least).
		budget := max(1, tt.rate*tt.safety)
		if b := tt.rate * tt.safety; b >= 2 && l.maxRate+1 > b+1e-9 {
			t.Errorf("bound %g exceeds %g", l.maxRate+1, b)
		}
		if float64(l.maxCap) > budget+1e-9 || l.capacity() != l.maxCap {
			t.Errorf("cap %d (now %d) exceeds %g", l.maxCap, l.capacity(), budget)
		}
	}
}

func TestLimiterAIMD(t *testing.T) {
	clk := newFakeClock()
	cfg := validConfig()
	cfg.Now = clk.Now
	cfg.RateRecoverAfter = 10 * time.Second
	l := newLimiter(cfg.withDefaults())
	var changes []float64
	l.onChange = func(r float64, _ string) { changes = append(changes, r) }
	max := l.maxRate // 197

	steps := []struct {
		name     string
		advance  time.Duration
		throttle bool
		want     float64
	}{
		{"start at max", 0, false, max},
		{"throttled halves", 0, true, max / 2},
		{"second answer of the same overload ignored", 500 * time.Millisecond, true, max/2 + max/10/2},
		{"additive recovery", 2 * time.Second, false, max/2 + max/10*2.5},
		{"throttled again", 0, true, (max/2 + max/10*2.5) / 2},
		{"full recovery, capped", time.Minute, false, max},
	}
	for _, st := range steps {
		clk.Advance(st.advance)
		if st.throttle {
			l.throttled()
		}
		got := l.current()
		if math.Abs(got-st.want) > 1e-6 || math.Abs(float64(l.lim.Limit())-got) > 1e-6 {
			t.Fatalf("%s: rate %g (limiter %g), want %g", st.name, got, float64(l.lim.Limit()), st.want)
		}
	}
	if len(changes) != 2 {
		t.Errorf("rate changes reported = %v", changes)
	}
	// The floor holds.
	for range 20 {
		clk.Advance(2 * time.Second)
		l.throttled()
	}
	if l.current() < cfg.withDefaults().MinRate {
		t.Errorf("rate %g below floor", l.current())
	}
}

func TestLimiterWaitHonoursContext(t *testing.T) {
	cfg := validConfig()
	cfg.Rate = 2 // 0.97 calls/s: the second call waits about a second
	l := newLimiter(cfg.withDefaults())
	_, slot, err := l.wait(context.Background(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	slot.sent()

	// Canceled while waiting: returns promptly with the context's error.
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, _, err := l.wait(ctx, time.Time{}); errc <- err }()
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v", err)
		}
	case <-time.After(500 * time.Millisecond):
		t.Fatal("wait did not return after cancel")
	}

	// A slot past the caller's deadline fails at once.
	dctx, dcancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer dcancel()
	start := time.Now()
	_, _, err = l.wait(dctx, time.Time{})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 40*time.Millisecond {
		t.Errorf("err = %v after %s", err, time.Since(start))
	}

	// A slot past the retry deadline fails at once and gives the slot back.
	_, _, err = l.wait(context.Background(), time.Now().Add(10*time.Millisecond))
	if !errors.Is(err, errWaitPastDeadline) {
		t.Errorf("err = %v", err)
	}
}

// TestSendWindow: the hard cap counts calls admitted but not yet sent, so a
// caller that stalls between admission and sending cannot let others
// exceed the cap.
func TestSendWindow(t *testing.T) {
	w := newSendWindow(fixedCapacity(3))
	ctx := context.Background()
	var slots []*sendSlot
	for range 3 {
		s, err := w.admit(ctx, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		slots = append(slots, s)
	}
	// Three admitted, none sent yet: a fourth must wait.
	if _, err := w.admit(ctx, time.Now().Add(20*time.Millisecond)); !errors.Is(err, errWaitPastDeadline) {
		t.Fatalf("fourth call with a deadline: %v", err)
	}
	qctx, qcancel := context.WithTimeout(ctx, 30*time.Millisecond)
	if s, err := w.admit(qctx, time.Time{}); err == nil {
		t.Fatalf("fourth call admitted while three are pending: %v", s)
	}
	qcancel()

	// Cancelling one frees its place at once.
	admitted := make(chan *sendSlot, 1)
	go func() {
		s, err := w.admit(ctx, time.Time{})
		if err != nil {
			t.Error(err)
		}
		admitted <- s
	}()
	slots[0].cancel()
	slots[0].sent() // no-op after cancel
	fourth := <-admitted

	// Once sent, the calls occupy the window for a full second.
	slots[1].sent()
	slots[2].sent()
	fourth.sent()
	fourth.sent() // no-op: counted once
	_, err := w.admit(ctx, time.Now().Add(100*time.Millisecond))
	if !errors.Is(err, errWaitPastDeadline) {
		t.Fatalf("admit with three sent in the last second = %v, want errWaitPastDeadline", err)
	}
	w.mu.Lock()
	n, pending := len(w.sent), w.pending
	w.mu.Unlock()
	if n != 3 || pending != 0 {
		t.Errorf("window holds %d sent, %d pending; want 3, 0", n, pending)
	}
}

// fixedCapacity is a constant cap for newSendWindow.
func fixedCapacity(n int) func() int { return func() int { return n } }

func TestLimiterStartsWithOneToken(t *testing.T) {
	cfg := validConfig()
	cfg.Rate = 11 // 9.89/s
	l := newLimiter(cfg.withDefaults())
	now := time.Now()
	// Only one call may go at once, whatever the rate.
	if !l.lim.AllowN(now, 1) || l.lim.AllowN(now, 1) {
		t.Error("bucket holds more than one token")
	}
	_ = rate.Inf
}

// TestThrottledAnswerLowersRate: a 60007 answer lowers the client's rate
// and the call is retried.
func TestThrottledAnswerLowersRate(t *testing.T) {
	f := newFake(t, func(n int, _ seenRequest) (int, any) {
		if n == 1 {
			return 200, errBody(CodeFrequencyLimit)
		}
		return 200, okBody(0, 1, 0)
	})
	c := newTestClient(t, testConfig(f.URL))
	before := c.EffectiveRate()
	if _, err := c.GetPage(context.Background(), PageRequest{SubscriberAccount: "u"}); err != nil {
		t.Fatal(err)
	}
	if after := c.EffectiveRate(); after >= before*0.6 {
		t.Errorf("rate %g -> %g, want about halved", before, after)
	}
	if f.calls() != 2 {
		t.Errorf("calls = %d", f.calls())
	}
}
