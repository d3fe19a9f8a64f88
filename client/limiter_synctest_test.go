package client

import (
	"context"
	"math"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// The tests in this file run in a synctest bubble: time.Now, timers and
// time.Sleep use a fake clock that advances only when every goroutine of
// the test is blocked, so seconds of limiter time take microseconds and
// every admission is stamped with the exact instant it happened.

// admissions records when each call was admitted (and sent at once).
type admissions struct {
	mu sync.Mutex
	at []time.Time
}

func (a *admissions) add(t time.Time) {
	a.mu.Lock()
	a.at = append(a.at, t)
	a.mu.Unlock()
}

func (a *admissions) snapshot() []time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]time.Time(nil), a.at...)
}

// between counts admissions in [from, to).
func between(ts []time.Time, from, to time.Time) int {
	n := 0
	for _, t := range ts {
		if !t.Before(from) && t.Before(to) {
			n++
		}
	}
	return n
}

// inTrailingSecond counts admissions in (t-1s, t].
func inTrailingSecond(ts []time.Time, t time.Time) int {
	return between(ts, t.Add(-time.Second+1), t.Add(1))
}

// startCallers starts n callers that each take one slot (loop = false) or
// keep taking slots (loop = true) until ctx ends, marking each sent at once.
func startCallers(ctx context.Context, wg *sync.WaitGroup, l *limiter, n int, loop bool, rec *admissions) {
	for range n {
		wg.Go(func() {
			for {
				_, slot, err := l.wait(ctx, time.Time{})
				if err != nil {
					return
				}
				rec.add(time.Now())
				slot.sent()
				if !loop {
					return
				}
			}
		})
	}
}

// TestLimiterThrottleAppliesToQueuedCalls: 600 callers are queued (the
// processor keeps up to 1024 lookups in flight) when a frequency-limit
// answer halves the rate. Calls admitted from then on must follow the
// lowered rate at once, not the rate in force when they queued.
func TestLimiterThrottleAppliesToQueuedCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := validConfig().withDefaults() // 200/s at the default safety share
		l := newLimiter(cfg)
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		var rec admissions
		startCallers(ctx, &wg, l, 600, false, &rec)

		time.Sleep(1500 * time.Millisecond) // full rate for 1.5s of fake time
		before := len(rec.snapshot())
		t0 := time.Now()
		lowered, changed := l.throttled()
		if !changed {
			t.Fatal("throttled() did not lower the rate")
		}
		time.Sleep(3 * time.Second)
		cancel()
		wg.Wait()

		ts := rec.snapshot()
		next := between(ts, t0, t0.Add(time.Second))
		// The rate grows back by recoverPerSec each second after t0 and the
		// token bucket's burst of 1 adds one call: the cap one second after
		// the throttle is floor(lowered + recoverPerSec + 1).
		bound := int(math.Floor(lowered + l.recoverPerSec + 1))
		t.Logf("before: %d admitted at %.0f/s (cap %d); throttled to %.2f/s at %s; admitted in the following second: %d (bound %d)",
			before, l.maxRate, l.maxCap, lowered, t0.Sub(ts[0]).Round(time.Millisecond), next, bound)
		if next > bound {
			t.Errorf("%d calls admitted in the second after lowering the rate to %.2f/s, want at most %d", next, lowered, bound)
		}
		if left := between(ts, t0.Add(time.Second), t0.Add(time.Hour)); before < 250 || left == 0 {
			t.Fatalf("the queue was not loaded throughout: %d admitted before the throttle, %d after the following second", before, left)
		}
		// Every trailing second ending after the throttle, old-rate calls
		// included, holds at most the cap in force at its end.
		for _, a := range ts {
			if a.Before(t0) {
				continue
			}
			cur := min(l.maxRate, lowered+l.recoverPerSec*a.Sub(t0).Seconds())
			if n, capAt := inTrailingSecond(ts, a), int(math.Floor(cur+1+1e-9)); n > capAt {
				t.Fatalf("trailing second ending %s after the throttle holds %d calls, cap %d (rate %.2f/s)", a.Sub(t0), n, capAt, cur)
			}
		}
	})
}

// TestLimiterRecoversToConfiguredRate: after a throttle the rate grows back
// linearly, and once RateRecoverAfter has passed a loaded client admits the
// configured rate again.
func TestLimiterRecoversToConfiguredRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := validConfig().withDefaults()
		l := newLimiter(cfg)
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		var rec admissions
		startCallers(ctx, &wg, l, 64, true, &rec)

		time.Sleep(2 * time.Second)
		t0 := time.Now()
		lowered, _ := l.throttled()
		time.Sleep(time.Second)
		halfway := between(rec.snapshot(), t0.Add(time.Second/2), t0.Add(time.Second))
		time.Sleep(cfg.RateRecoverAfter) // recovery from half the rate takes RateRecoverAfter/2
		t1 := time.Now()
		time.Sleep(time.Second)
		cancel()
		wg.Wait()

		ts := rec.snapshot()
		after := between(ts, t1, t1.Add(time.Second))
		t.Logf("throttled %.2f -> %.2f/s; %d admitted in the second half-second after; %d admitted in one second after recovery (rate %.2f/s, cap %d)",
			l.maxRate, lowered, halfway, after, l.current(), l.capacity())
		if got := l.current(); got != l.maxRate {
			t.Errorf("rate after recovery %g, want %g", got, l.maxRate)
		}
		if want := int(math.Floor(cfg.RateSafety * cfg.Rate)); l.capacity() != l.maxCap || l.maxCap != want {
			t.Errorf("cap after recovery %d (full %d), want %d", l.capacity(), l.maxCap, want)
		}
		if after < int(l.maxRate)-1 || after > l.maxCap {
			t.Errorf("%d calls admitted in a second after recovery, want %d..%d", after, int(l.maxRate)-1, l.maxCap)
		}
		if float64(halfway) > (lowered+l.recoverPerSec+1)/2+1 {
			t.Errorf("%d calls in the half-second after the throttle, above the lowered rate %.2f/s", halfway, lowered)
		}
		for _, a := range ts {
			if n := inTrailingSecond(ts, a); n > l.maxCap {
				t.Fatalf("%d calls in the trailing second ending at %s, cap %d", n, a.Sub(ts[0]), l.maxCap)
			}
		}
	})
}

// TestSendWindowBlockedWaitersDoNotPoll: with the cap full of calls
// admitted but not yet sent (e.g. dials hanging up to the per-call
// timeout), blocked waiters sleep until something changes: no wakeups at
// all while nothing happens, one per waiter for each event.
func TestSendWindowBlockedWaitersDoNotPoll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const capacity, waiters = 194, 800
		w := newSendWindow(fixedCapacity(capacity))
		var held []*sendSlot
		for range capacity {
			s, err := w.admit(t.Context(), time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			held = append(held, s)
		}
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		admitted := make(chan *sendSlot, waiters)
		for range waiters {
			wg.Go(func() {
				if s, err := w.admit(ctx, time.Time{}); err == nil {
					admitted <- s
				}
			})
		}

		time.Sleep(time.Second) // 1s of fake time with every place pending
		if n := w.wakeups.Load(); n != 0 {
			t.Errorf("%d wakeups in 1s while nothing changed, want 0", n)
		}

		// One cancelled slot frees one place: every waiter checks once.
		held[0].cancel()
		synctest.Wait()
		if got, n := len(admitted), w.wakeups.Load(); got != 1 || n > waiters {
			t.Errorf("after one cancel: %d admitted, %d wakeups; want 1, <= %d", got, n, waiters)
		}

		// The others are sent: the first send gives the waiters an expiry
		// to wait for; they wake again when it leaves the window.
		start := w.wakeups.Load()
		for _, s := range held[1:] {
			s.sent()
		}
		time.Sleep(1500 * time.Millisecond)
		n := w.wakeups.Load() - start
		t.Logf("wakeups: 0 in 1s idle; %d for %d waiters over 1.5s with %d sends expiring (polling every 1ms would be ~%d)",
			n, waiters-1, capacity-1, (waiters-1)*1500)
		if n > 2*waiters {
			t.Errorf("%d wakeups for %d waiters over 1.5s, want <= %d", n, waiters-1, 2*waiters)
		}
		if got := len(admitted); got != capacity {
			t.Errorf("%d admitted after the window emptied, want %d", got, capacity)
		}
		cancel()
		wg.Wait()
	})
}

// TestLimiterQueuedCallersDoNotPoll: through the limiter only the caller at
// the head of the queue waits on the cap; the rest wait for their turn.
func TestLimiterQueuedCallersDoNotPoll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLimiter(validConfig().withDefaults())
		var held []*sendSlot
		for range l.maxCap {
			_, s, err := l.wait(t.Context(), time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			held = append(held, s)
		}
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		for range 800 {
			wg.Go(func() {
				if _, s, err := l.wait(ctx, time.Time{}); err == nil {
					s.cancel()
				}
			})
		}
		time.Sleep(5 * time.Second)
		if n := l.window.wakeups.Load(); n != 0 {
			t.Errorf("%d wakeups in 5s with the cap full of pending calls, want 0", n)
		}
		cancel()
		wg.Wait()
		for _, s := range held {
			s.cancel()
		}
	})
}

// spacing is the interval between calls at r calls/s.
func spacing(r float64) time.Duration { return time.Duration(float64(time.Second) / r) }

// TestLimiterLowRates: budgets below two calls per second allow one call
// per trailing second, spaced 1/(RateSafety*min(Rate,1)) apart.
func TestLimiterLowRates(t *testing.T) {
	tests := []struct {
		rate       float64
		maxPerSec  int
		minSpacing time.Duration
	}{
		{0.5, 1, spacing(DefaultRateSafety * 0.5)},
		{1, 1, spacing(DefaultRateSafety)},
		{1.5, 1, spacing(DefaultRateSafety)},
		{2, 1, spacing(DefaultRateSafety)},
		{3, 2, spacing(DefaultRateSafety*3 - 1)},
	}
	for _, tt := range tests {
		t.Run(strconv.FormatFloat(tt.rate, 'g', -1, 64), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := validConfig()
				cfg.Rate = tt.rate
				if err := cfg.Validate(); err != nil {
					t.Fatal(err)
				}
				l := newLimiter(cfg.withDefaults())
				ctx, cancel := context.WithCancel(t.Context())
				var wg sync.WaitGroup
				var rec admissions
				startCallers(ctx, &wg, l, 8, true, &rec)
				const span = 30 * time.Second
				time.Sleep(span)
				cancel()
				wg.Wait()

				ts := rec.snapshot()
				peak := maxInTrailingSecond(ts)
				minGap := time.Duration(math.MaxInt64)
				for i := 1; i < len(ts); i++ {
					minGap = min(minGap, ts[i].Sub(ts[i-1]))
				}
				want := int(l.maxRate*span.Seconds()) + 1 // token bucket: r*T + burst
				t.Logf("rate %g: %d calls in %s (bucket %.3f/s, cap %d), max %d per trailing second, min spacing %s",
					tt.rate, len(ts), span, l.maxRate, l.maxCap, peak, minGap)
				if peak > tt.maxPerSec {
					t.Errorf("%d calls in a trailing second, want <= %d", peak, tt.maxPerSec)
				}
				if tt.maxPerSec == 1 && minGap < tt.minSpacing-time.Microsecond {
					t.Errorf("calls %s apart, want >= %s", minGap, tt.minSpacing)
				}
				if len(ts) < want-1 || len(ts) > want {
					t.Errorf("%d calls in %s, want %d or %d", len(ts), span, want-1, want)
				}
			})
		})
	}
}
