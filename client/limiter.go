package client

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// errWaitPastDeadline is returned by limiter.wait when the reserved slot lies
// beyond the retry deadline; the reservation is given back.
var errWaitPastDeadline = errors.New("limiter slot past the retry deadline")

// limiter keeps every trailing one-second window within the app's budget
// B = RateSafety*Rate. Two mechanisms, both applied to every attempt and
// every page, both following the current (adaptive) rate r:
//
//   - pacing: a token bucket (golang.org/x/time/rate) with burst 1 at r.
//     Over any interval of length T it grants at most r*T + 1 calls. At
//     full rate r = maxRate = B-1 (B >= 2), so a second holds at most B
//     calls; for smaller budgets see pacingRate.
//   - a hard cap (sendWindow): a call is admitted only while the calls sent
//     in the last second plus the calls admitted but not yet sent stay below
//     capacity(r) = floor(r+1), at most floor(B) and at least 1, checked
//     again at every admission. A call counts as sent when net/http
//     reports the request written (httptrace WroteRequest, just before the
//     transport flushes it to the socket) or, failing that, when the
//     exchange ends. So a goroutine that stalls between admission and
//     writing (scheduler, GC, a starved process) cannot make calls bunch:
//     for any one-second window, the last call admitted among those sent in
//     it saw all the others either in the log or pending. What remains is
//     the delay from write to arrival, which RateSafety's headroom absorbs.
//
// Callers queue for their turn (FIFO) without a reservation: only the caller
// at the head reserves a token and asks the hard cap. A rate change thus
// applies at once to every queued call, not only to those that arrive later.
//
// On a frequency-limit answer it lowers the rate by RateDecrease at most
// once per second, which lowers the hard cap too, and then lets the rate
// grow back linearly to maxRate over RateRecoverAfter (additive increase,
// multiplicative decrease). Safe for concurrent use.
type limiter struct {
	lim     *rate.Limiter
	now     func() time.Time
	maxRate float64
	minRate float64
	maxCap  int // floor(B): the hard cap at full rate
	factor  float64
	// recoverPerSec is the additive increase in calls/s per second.
	recoverPerSec float64
	onChange      func(rate float64, reason string)

	// turn is held (one element) by the caller at the head of the queue.
	turn   chan struct{}
	window *sendWindow

	mu           sync.Mutex
	cur          float64
	last         time.Time // time cur was last recomputed
	lastDecrease time.Time
}

// pacingRate is the token-bucket rate at full speed for a budget of rate
// calls per second of which the share safety is used (b = safety*rate):
//
//   - b >= 2: b-1, since the burst of 1 adds one call to any window, so a
//     second holds at most b calls;
//   - b < 2: one call per trailing second at most (the hard cap is 1), spaced
//     1/(safety*min(rate,1)) apart: for rate >= 1 that keeps the same share
//     of headroom over the one second the server counts, for rate < 1 it
//     spaces calls 1/b apart, so any span of T seconds holds at most b*T+1.
func pacingRate(rate, safety float64) float64 {
	if b := safety * rate; b >= 2 {
		return b - 1
	}
	return safety * min(rate, 1)
}

func newLimiter(cfg Config) *limiter {
	budget := cfg.RateSafety * cfg.Rate
	maxRate := pacingRate(cfg.Rate, cfg.RateSafety)
	minRate := min(cfg.MinRate, maxRate)
	l := &limiter{
		now:     cfg.Now,
		maxRate: maxRate,
		minRate: minRate,
		maxCap:  max(1, int(math.Floor(budget+1e-9))),
		factor:  cfg.RateDecrease,
		cur:     maxRate,
		last:    cfg.Now(),
		turn:    make(chan struct{}, 1),
	}
	if cfg.RateRecoverAfter > 0 {
		l.recoverPerSec = maxRate / cfg.RateRecoverAfter.Seconds()
	} else {
		l.recoverPerSec = maxRate * 1e9 // recover at once
	}
	l.lim = rate.NewLimiter(rate.Limit(maxRate), 1)
	l.window = newSendWindow(l.capacity)
	return l
}

// newGuard returns the limiter that stands behind a shared Budget: no
// pacing (the shared schedule paces), only the hard cap of floor(B) calls
// sent per trailing second, which never follows a throttled rate (the
// shared rate does).
func newGuard(cfg Config) *limiter {
	l := newLimiter(cfg)
	l.lim = rate.NewLimiter(rate.Inf, 1)
	return l
}

// current returns the effective rate, after applying recovery up to now.
func (l *limiter) current() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recoverLocked(l.now())
	return l.cur
}

// capacity returns the hard cap on calls per trailing second for the
// current rate: floor(r+1) (the token bucket's own bound), within
// [1, floor(B)].
func (l *limiter) capacity() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recoverLocked(l.now())
	return l.capacityLocked()
}

func (l *limiter) capacityLocked() int {
	return min(l.maxCap, max(1, int(math.Floor(l.cur+1+1e-9))))
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
	before := l.capacityLocked()
	l.cur = r
	l.lim.SetLimit(rate.Limit(r))
	if l.capacityLocked() > before {
		l.window.notify() // a waiter blocked on the cap may go now
	}
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
	start := time.Now()
	// Queue for the turn. Queued callers hold no reservation, so each is
	// paced at the rate in force when it reaches the head.
	select {
	case l.turn <- struct{}{}:
	default:
		var past <-chan time.Time
		if !deadline.IsZero() {
			t := time.NewTimer(deadline.Sub(start))
			defer t.Stop()
			past = t.C
		}
		select {
		case l.turn <- struct{}{}:
		case <-past:
			return time.Since(start), nil, errWaitPastDeadline
		case <-ctx.Done():
			return time.Since(start), nil, ctx.Err()
		}
	}
	defer func() { <-l.turn }()

	// Reserve under the lock: rate.Limiter credits tokens for the time
	// between reservations, and timestamps taken outside a lock reach it out
	// of order when the rate changes concurrently.
	l.mu.Lock()
	now := time.Now()
	l.recoverLocked(l.now())
	res := l.lim.ReserveN(now, 1)
	l.mu.Unlock()
	if !res.OK() {
		return 0, nil, errors.New("client: limiter refused reservation") // burst 1 >= n 1: cannot happen
	}
	if delay := res.DelayFrom(now); delay > 0 {
		if !deadline.IsZero() && now.Add(delay).After(deadline) {
			res.Cancel()
			return time.Since(start), nil, errWaitPastDeadline
		}
		if d, ok := ctx.Deadline(); ok && now.Add(delay).After(d) {
			res.Cancel() // the caller's deadline passes first: fail now
			return time.Since(start), nil, fmt.Errorf("client: rate limiter slot lies past the context deadline: %w", context.DeadlineExceeded)
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
	capacity func() int // the cap, read again at every admission

	mu      sync.Mutex
	sent    []time.Time   // send times within the last second, oldest first
	pending int           // admitted, not yet sent
	changed chan struct{} // closed and replaced when a place frees, the cap grows or the first send enters the window

	// wakeups counts the times a blocked admit woke up to check again.
	wakeups atomic.Int64
}

func newSendWindow(capacity func() int) *sendWindow {
	return &sendWindow{capacity: capacity, changed: make(chan struct{})}
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
	defer w.mu.Unlock()
	w.pending--
	if !record {
		w.broadcastLocked() // a place is free
		return
	}
	w.sent = append(w.sent, time.Now())
	if len(w.sent) == 1 {
		// Waiters that saw only pending calls have no expiry to wait for
		// yet: give them this one. Otherwise they already wait for an
		// older send to leave the window, which frees a place first.
		w.broadcastLocked()
	}
}

// notify wakes blocked admits to check the cap again.
func (w *sendWindow) notify() {
	w.mu.Lock()
	w.broadcastLocked()
	w.mu.Unlock()
}

func (w *sendWindow) broadcastLocked() {
	close(w.changed)
	w.changed = make(chan struct{})
}

// admit waits until a call may be admitted. It blocks until a slot is
// cancelled, the oldest send leaves the window (a timer), the first send
// enters an empty window, the cap grows, the context ends or deadline
// (zero = none) passes; it never polls.
func (w *sendWindow) admit(ctx context.Context, deadline time.Time) (*sendSlot, error) {
	var past <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		past = t.C
	}
	var expiry *time.Timer
	defer func() {
		if expiry != nil {
			expiry.Stop()
		}
	}()
	for {
		capacity := w.capacity()
		w.mu.Lock()
		now := time.Now()
		expired := 0
		for expired < len(w.sent) && now.Sub(w.sent[expired]) >= time.Second {
			expired++
		}
		if expired > 0 {
			w.sent = append(w.sent[:0], w.sent[expired:]...)
		}
		if len(w.sent)+w.pending < capacity {
			w.pending++
			w.mu.Unlock()
			return &sendSlot{w: w}, nil
		}
		// Full. With sends in the window, a place frees when the oldest
		// leaves it; with only pending calls, when one is sent or cancelled.
		var free <-chan time.Time
		if len(w.sent) > 0 {
			wait := time.Second - now.Sub(w.sent[0])
			if !deadline.IsZero() && now.Add(wait).After(deadline) && w.pending == 0 {
				w.mu.Unlock()
				return nil, errWaitPastDeadline
			}
			if expiry == nil {
				expiry = time.NewTimer(wait)
			} else {
				expiry.Reset(wait)
			}
			free = expiry.C
		}
		changed := w.changed
		w.mu.Unlock()

		select {
		case <-free:
		case <-changed:
		case <-past:
			return nil, errWaitPastDeadline
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		w.wakeups.Add(1)
	}
}
