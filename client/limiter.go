package client

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// errWaitPastDeadline is returned by limiter.wait when the reserved slot lies
// beyond the retry deadline; the reservation is given back.
var errWaitPastDeadline = errors.New("limiter slot past the retry deadline")

// limiter keeps every trailing one-second window within the app's budget.
// Two mechanisms, both applied to every attempt and every page:
//
//   - pacing: a token bucket (golang.org/x/time/rate) with burst 1 at
//     maxRate = RateSafety*Rate - 1. Over any interval of length T it grants
//     at most maxRate*T + 1 calls, i.e. at most RateSafety*Rate per second.
//   - a hard cap: a log of the last capacity = floor(RateSafety*Rate) send
//     times. A call may go only when the send capacity calls ago lies a full
//     second in the past. The bucket alone bounds reservation times, but a
//     goroutine that wakes late (scheduler, GC) sends later than reserved and
//     can bunch with punctual ones; the log bounds the actual send times.
//
// On a frequency-limit answer it lowers the bucket rate by RateDecrease at
// most once per second and then lets it grow back linearly to maxRate over
// RateRecoverAfter (additive increase, multiplicative decrease). Safe for
// concurrent use.
type limiter struct {
	lim     *rate.Limiter
	now     func() time.Time
	maxRate float64
	minRate float64
	factor  float64
	// recoverPerSec is the additive increase in calls/s per second.
	recoverPerSec float64
	onChange      func(rate float64, reason string)

	mu           sync.Mutex
	sends        []time.Time // ring of the last len(sends) send times
	next         int         // index of the oldest entry in sends
	cur          float64
	last         time.Time // time cur was last recomputed
	lastDecrease time.Time
}

func newLimiter(cfg Config) *limiter {
	maxRate := cfg.RateSafety*cfg.Rate - 1 // the burst of 1 adds one call per window
	minRate := min(cfg.MinRate, maxRate)
	l := &limiter{
		now:     cfg.Now,
		maxRate: maxRate,
		minRate: minRate,
		factor:  cfg.RateDecrease,
		cur:     maxRate,
		last:    cfg.Now(),
	}
	if cfg.RateRecoverAfter > 0 {
		l.recoverPerSec = maxRate / cfg.RateRecoverAfter.Seconds()
	} else {
		l.recoverPerSec = maxRate * 1e9 // recover at once
	}
	l.lim = rate.NewLimiter(rate.Limit(maxRate), 1)
	l.sends = make([]time.Time, max(1, int(math.Floor(cfg.RateSafety*cfg.Rate))))
	return l
}

// current returns the effective rate, after applying recovery up to now.
func (l *limiter) current() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recoverLocked(l.now())
	return l.cur
}

func (l *limiter) recoverLocked(now time.Time) {
	if l.cur >= l.maxRate {
		l.last = now
		return
	}
	dt := now.Sub(l.last).Seconds()
	if dt <= 0 {
		return
	}
	next := min(l.maxRate, l.cur+l.recoverPerSec*dt)
	l.last = now
	l.setLocked(next)
}

func (l *limiter) setLocked(r float64) {
	if r == l.cur {
		return
	}
	l.cur = r
	l.lim.SetLimit(rate.Limit(r))
}

// throttled lowers the rate after a frequency-limit answer. Answers that
// arrive within a second of the last decrease belong to the same overload
// and are ignored. It returns the new rate and whether it changed.
func (l *limiter) throttled() (float64, bool) {
	l.mu.Lock()
	now := l.now()
	l.recoverLocked(now)
	if !l.lastDecrease.IsZero() && now.Sub(l.lastDecrease) < time.Second {
		r := l.cur
		l.mu.Unlock()
		return r, false
	}
	l.lastDecrease = now
	l.setLocked(max(l.minRate, l.cur*l.factor))
	r := l.cur
	l.mu.Unlock()
	if l.onChange != nil {
		l.onChange(r, "throttled")
	}
	return r, true
}

// wait blocks until the next call may be sent, the context ends, or the slot
// would lie past deadline (zero = none). It returns the time waited.
func (l *limiter) wait(ctx context.Context, deadline time.Time) (time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	// Reserve under the lock: rate.Limiter credits tokens for the time
	// between reservations, and timestamps taken outside a lock reach it out
	// of order under contention, which it counts twice (a burst above the
	// rate). Taking time.Now() and reserving atomically keeps them monotonic.
	l.mu.Lock()
	l.recoverLocked(l.now())
	start := time.Now()
	res := l.lim.ReserveN(start, 1)
	l.mu.Unlock()
	if !res.OK() {
		return 0, errors.New("client: limiter refused reservation") // burst 1 >= n 1: cannot happen
	}
	delay := res.DelayFrom(start)
	if delay == 0 {
		return l.acquireSlot(ctx, deadline, start)
	}
	if !deadline.IsZero() && start.Add(delay).After(deadline) {
		res.Cancel()
		return 0, errWaitPastDeadline
	}
	if d, ok := ctx.Deadline(); ok && start.Add(delay).After(d) {
		res.Cancel() // the caller's deadline passes first: fail now
		return 0, fmt.Errorf("client: rate limiter slot lies past the context deadline: %w", context.DeadlineExceeded)
	}
	t := time.NewTimer(delay)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
		res.Cancel()
		return time.Since(start), ctx.Err()
	}
	return l.acquireSlot(ctx, deadline, start)
}

// acquireSlot records a send in the log, first waiting until the send
// len(sends) calls ago is at least a second old.
func (l *limiter) acquireSlot(ctx context.Context, deadline, start time.Time) (time.Duration, error) {
	for {
		l.mu.Lock()
		now := time.Now()
		oldest := l.sends[l.next]
		if oldest.IsZero() || now.Sub(oldest) >= time.Second {
			l.sends[l.next] = now
			l.next = (l.next + 1) % len(l.sends)
			l.mu.Unlock()
			return now.Sub(start), nil
		}
		wait := time.Second - now.Sub(oldest)
		l.mu.Unlock()
		if !deadline.IsZero() && now.Add(wait).After(deadline) {
			return now.Sub(start), errWaitPastDeadline
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return time.Since(start), ctx.Err()
		}
	}
}
