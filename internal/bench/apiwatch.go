package bench

import (
	"net/http"
	"sync"
	"time"
)

// callWatch wraps the simulated API's handler and notes when calls arrive
// and complete, so that the runner can compute the achieved call rate and
// the moment the last call was answered (after which every user is cached).
type callWatch struct {
	next http.Handler

	mu                   sync.Mutex
	calls                int
	firstArrival, lastAt time.Time // first call's arrival, last call's arrival
	lastDone             time.Time // last call's completion
}

func (w *callWatch) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	now := time.Now()
	w.mu.Lock()
	if w.calls == 0 {
		w.firstArrival = now
	}
	w.calls++
	w.lastAt = now
	w.mu.Unlock()
	w.next.ServeHTTP(rw, r)
	done := time.Now()
	w.mu.Lock()
	if done.After(w.lastDone) {
		w.lastDone = done
	}
	w.mu.Unlock()
}

// callSpan is what a callWatch saw.
type callSpan struct {
	calls                         int
	firstArrival, lastAt, lastEnd time.Time
}

func (w *callWatch) span() callSpan {
	w.mu.Lock()
	defer w.mu.Unlock()
	return callSpan{calls: w.calls, firstArrival: w.firstArrival, lastAt: w.lastAt, lastEnd: w.lastDone}
}

// rate is the calls per second between the first and the last arrival.
func (s callSpan) rate() float64 {
	d := s.lastAt.Sub(s.firstArrival).Seconds()
	if s.calls < 2 || d <= 0 {
		return 0
	}
	return float64(s.calls-1) / d
}
