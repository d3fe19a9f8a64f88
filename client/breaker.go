package client

import (
	"errors"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"
)

// BreakerState mirrors gobreaker's states for callers that inspect the client.
type BreakerState int

// Breaker states; the numeric values are exported as the breaker-state metric.
const (
	BreakerClosed   BreakerState = 0
	BreakerHalfOpen BreakerState = 1
	BreakerOpen     BreakerState = 2
)

func (s BreakerState) String() string {
	switch s {
	case BreakerClosed:
		return "closed"
	case BreakerHalfOpen:
		return "half-open"
	case BreakerOpen:
		return "open"
	}
	return "unknown"
}

func fromGobreaker(s gobreaker.State) BreakerState {
	switch s {
	case gobreaker.StateHalfOpen:
		return BreakerHalfOpen
	case gobreaker.StateOpen:
		return BreakerOpen
	}
	return BreakerClosed
}

// breaker wraps a gobreaker.TwoStepCircuitBreaker. Only ClassTransient
// outcomes count as failures; answers about a record (130004 …),
// throttling, signature and fatal answers count as successes (the server
// is up and answering), and the caller's cancellation is excluded.
//
// A call asks the breaker (allow) before it takes a rate-limiter token, so
// no budget is spent on a call the breaker refuses. The open period is not
// gobreaker's fixed Timeout: it starts at firstOpenFor when the breaker
// trips, doubles with every failed probe up to BreakerConfig.OpenFor, and
// starts over once a probe succeeds; gobreaker's Timeout is the first
// period, and the breaker holds calls back itself for the rest. So probes
// after an outage start short and back off, and calls resume soon after
// the API comes back. Refused callers get a channel (BreakerOpenError.
// Ready) closed when a probe ends or the breaker moves, to wait on instead
// of polling. Safe for concurrent use.
type breaker struct {
	cb      *gobreaker.TwoStepCircuitBreaker[struct{}]
	first   time.Duration // the first open period
	maxOpen time.Duration // the longest
	// onChange is called on every transition, under gobreaker's lock: it
	// must not call back into the breaker.
	onChange func(from, to BreakerState)

	// mu guards the fields below; it is taken inside gobreaker's lock
	// (OnStateChange), so the breaker is never called holding it.
	mu        sync.Mutex
	period    time.Duration // the current open period
	openUntil time.Time     // no call before this
	ready     chan struct{} // closed and replaced on every transition and probe end
}

// firstOpenFor is the first open period after the breaker trips (or
// BreakerConfig.OpenFor when that is shorter).
const firstOpenFor = 500 * time.Millisecond

// errNotSent is the outcome of an allowed call that was not sent (the
// limiter gave no slot, no UserSig): excluded from the breaker's counts.
var errNotSent = errors.New("tencentchat: call not sent")

func newBreaker(cfg BreakerConfig, onChange func(from, to BreakerState)) *breaker {
	b := &breaker{first: min(firstOpenFor, cfg.OpenFor), maxOpen: cfg.OpenFor, onChange: onChange, ready: make(chan struct{})}
	b.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        "tencentchat",
		MaxRequests: cfg.Probes,
		Interval:    cfg.Interval,
		Timeout:     b.first,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= cfg.Failures
		},
		IsSuccessful: func(err error) bool {
			return err == nil || Classify(err) != ClassTransient
		},
		IsExcluded: func(err error) bool {
			return err != nil && (Classify(err) == ClassCanceled || errors.Is(err, errNotSent))
		},
		OnStateChange: func(_ string, from, to gobreaker.State) {
			b.mu.Lock()
			if to == gobreaker.StateOpen {
				if from == gobreaker.StateHalfOpen {
					b.period = min(2*b.period, b.maxOpen)
				} else {
					b.period = b.first
				}
				b.openUntil = time.Now().Add(b.period)
			}
			b.signalLocked()
			b.mu.Unlock()
			if b.onChange != nil {
				b.onChange(fromGobreaker(from), fromGobreaker(to))
			}
		},
	})
	return b
}

func (b *breaker) signalLocked() {
	close(b.ready)
	b.ready = make(chan struct{})
}

// hold returns how long the breaker still refuses every call, and the
// channel closed at its next change.
func (b *breaker) hold() (time.Duration, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return max(time.Until(b.openUntil), 0), b.ready
}

// state returns the current state (moving open to half-open when due).
func (b *breaker) state() BreakerState {
	if d, _ := b.hold(); d > 0 {
		return BreakerOpen
	}
	return fromGobreaker(b.cb.State())
}

// allow asks the breaker for one call. It returns done, to be called with
// the call's outcome (errNotSent when it was not sent), or a
// *BreakerOpenError (last is the error of the attempt before).
func (b *breaker) allow(last error) (done func(error), err error) {
	d, ready := b.hold()
	if d > 0 {
		return nil, &BreakerOpenError{RetryAfter: d, Last: last, Ready: ready}
	}
	cbDone, err := b.cb.Allow()
	if err != nil {
		d, ready := b.hold()
		if d == 0 {
			// Half-open with its probes in flight: their outcome closes
			// ready; RetryAfter bounds the wait should none come.
			d = b.maxOpen
		}
		return nil, &BreakerOpenError{RetryAfter: d, Last: last, Ready: ready}
	}
	probe := b.cb.State() == gobreaker.StateHalfOpen
	return func(err error) {
		cbDone(err)
		if probe && b.cb.State() == gobreaker.StateHalfOpen {
			// A probe ended without a transition (excluded, or one of
			// several): let the waiting callers try.
			b.mu.Lock()
			b.signalLocked()
			b.mu.Unlock()
		}
	}, nil
}

// refuse returns the *BreakerOpenError of a call allowed before the
// breaker opened, while it waited for its turn; nil while the breaker does
// not hold calls back.
func (b *breaker) refuse(last error) error {
	if d, ready := b.hold(); d > 0 {
		return &BreakerOpenError{RetryAfter: d, Last: last, Ready: ready}
	}
	return nil
}
