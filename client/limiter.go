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
//   - a hard cap (sendWindow): a call is admitted only while the calls sent
//     in the last second plus the calls admitted but not yet sent stay below
//     capacity = floor(RateSafety*Rate). A call counts as sent when net/http
//     reports the request written (httptrace WroteRequest, just before the
//     transport flushes it to the socket) or, failing that, when the
//     exchange ends. So a goroutine that stalls between admission and
//     writing (scheduler, GC, a starved process) cannot make calls bunch:
//     for any one-second window, the last call admitted among those sent in
//     it saw all the others either in the log or pending. What remains is
//     the delay from write to arrival, which RateSafety's headroom absorbs.
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

	window *sendWindow

	mu           sync.Mutex
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
	l.window = newSendWindow(max(1, int(math.Floor(cfg.RateSafety*cfg.Rate+1e-9))))
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
// would lie past deadline (zero = none). It returns the time waited and the
// admitted slot, which the caller must mark sent or cancel.
func (l *limiter) wait(ctx context.Context, deadline time.Time) (time.Duration, *sendSlot, error) {
	if err := ctx.Err(); err != nil {
		return 0, nil, err
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
		return 0, nil, errors.New("client: limiter refused reservation") // burst 1 >= n 1: cannot happen
	}
	if delay := res.DelayFrom(start); delay > 0 {
		if !deadline.IsZero() && start.Add(delay).After(deadline) {
			res.Cancel()
			return 0, nil, errWaitPastDeadline
		}
		if d, ok := ctx.Deadline(); ok && start.Add(delay).After(d) {
			res.Cancel() // the caller's deadline passes first: fail now
			return 0, nil, fmt.Errorf("client: rate limiter slot lies past the context deadline: %w", context.DeadlineExceeded)
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			res.Cancel()
			return time.Since(start), nil, ctx.Err()
		}
	}
	slot, err := l.window.admit(ctx, deadline)
	return time.Since(start), slot, err
}

// sendWindow is the hard cap on calls per trailing second. Safe for
// concurrent use.
type sendWindow struct {
	capacity int

	mu      sync.Mutex
	sent    []time.Time   // send times within the last second, oldest first
	pending int           // admitted, not yet sent
	freed   chan struct{} // closed and replaced when a pending slot is cancelled
}

func newSendWindow(capacity int) *sendWindow {
	return &sendWindow{capacity: capacity, sent: make([]time.Time, 0, capacity), freed: make(chan struct{})}
}

// sendSlot is one admitted call. Exactly one of sent and cancel takes
// effect; later calls are no-ops.
type sendSlot struct {
	w    *sendWindow
	once sync.Once
}

// sent records the call as sent now.
func (s *sendSlot) sent() { s.once.Do(func() { s.w.release(true) }) }

// cancel gives the slot back: the call was not sent.
func (s *sendSlot) cancel() { s.once.Do(func() { s.w.release(false) }) }

func (w *sendWindow) release(record bool) {
	w.mu.Lock()
	w.pending--
	if record {
		w.sent = append(w.sent, time.Now())
		w.mu.Unlock()
		return
	}
	freed := w.freed
	w.freed = make(chan struct{})
	w.mu.Unlock()
	close(freed)
}

// admit waits until a call may be admitted.
func (w *sendWindow) admit(ctx context.Context, deadline time.Time) (*sendSlot, error) {
	for {
		w.mu.Lock()
		now := time.Now()
		expired := 0
		for expired < len(w.sent) && now.Sub(w.sent[expired]) >= time.Second {
			expired++
		}
		if expired > 0 {
			w.sent = append(w.sent[:0], w.sent[expired:]...)
		}
		if len(w.sent)+w.pending < w.capacity {
			w.pending++
			w.mu.Unlock()
			return &sendSlot{w: w}, nil
		}
		wait := time.Duration(-1) // only pending calls: wait for one to be sent or cancelled
		if len(w.sent) > 0 {
			wait = time.Second - now.Sub(w.sent[0])
		}
		freed := w.freed
		w.mu.Unlock()

		if wait < 0 {
			wait = time.Millisecond // pending calls are sent within moments; re-check soon
		}
		if !deadline.IsZero() && now.Add(wait).After(deadline) {
			return nil, errWaitPastDeadline
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-freed:
			t.Stop()
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
}
