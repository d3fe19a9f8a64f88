package simulator

import (
	"sync"
	"time"
)

// window counts events in a trailing one-second window: an event at t is
// inside the window that ends at now when now-1s < t <= now. Times are kept
// non-decreasing (an event older than the newest one is recorded at the
// newest time), so a clock that steps back cannot corrupt the count.
//
// A window is not safe for concurrent use; its owner locks.
type window struct {
	times []int64 // ring buffer of unix nanoseconds, oldest at head
	head  int
	n     int
	last  int64
}

// clamp returns t, or the newest recorded time when t is older.
func (w *window) clamp(t int64) int64 {
	if w.n > 0 && t < w.last {
		return w.last
	}
	return t
}

// evict drops events that are no longer inside the window ending at now.
func (w *window) evict(now int64) {
	cut := now - int64(time.Second)
	for w.n > 0 && w.times[w.head] <= cut {
		w.head++
		if w.head == len(w.times) {
			w.head = 0
		}
		w.n--
	}
}

// add records an event at t (already clamped).
func (w *window) add(t int64) {
	if w.n == len(w.times) {
		grown := make([]int64, max(16, 2*len(w.times)))
		for i := range w.n {
			grown[i] = w.times[(w.head+i)%len(w.times)]
		}
		w.times, w.head = grown, 0
	}
	w.times[(w.head+w.n)%len(w.times)] = t
	w.n++
	w.last = t
}

// arrive records an event at now and returns how many events the window
// ending at now holds, this one included.
func (w *window) arrive(now time.Time) int {
	t := w.clamp(now.UnixNano())
	w.evict(t)
	w.add(t)
	return w.n
}

// limiter enforces the per-app call frequency limit over a trailing
// one-second window. Every attempt that reaches it is counted, the ones it
// rejects included (the real service counts attempts): a client that keeps
// sending while limited stays limited until it pauses long enough for the
// window to drain. It is safe for concurrent use.
type limiter struct {
	mu    sync.Mutex
	limit int // calls per trailing second; <= 0 means unlimited
	w     window
}

// allow records an attempt at now and reports whether it is within the
// limit, i.e. whether fewer than limit attempts arrived in the second before.
func (l *limiter) allow(now time.Time) bool {
	if l.limit <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.w.clamp(now.UnixNano())
	l.w.evict(t)
	ok := l.w.n < l.limit
	l.w.add(t)
	return ok
}
