package client

import (
	"errors"
	"sync/atomic"
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

// breaker wraps a gobreaker.CircuitBreaker. Only ClassTransient outcomes count
// as failures; answers about a record (130004 …), throttling, signature and
// fatal answers count as successes (the server is up and answering), and the
// caller's cancellation is excluded. Safe for concurrent use.
type breaker struct {
	cb       *gobreaker.CircuitBreaker[*Page]
	openFor  time.Duration
	openedAt atomic.Int64 // unix nanos of the last transition to open
	// onChange is called on every transition, under gobreaker's lock: it
	// must not call back into the breaker.
	onChange func(from, to BreakerState)
}

func newBreaker(cfg BreakerConfig, onChange func(from, to BreakerState)) *breaker {
	b := &breaker{openFor: cfg.OpenFor, onChange: onChange}
	b.cb = gobreaker.NewCircuitBreaker[*Page](gobreaker.Settings{
		Name:        "tencentchat",
		MaxRequests: cfg.Probes,
		Interval:    cfg.Interval,
		Timeout:     cfg.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= cfg.Failures
		},
		IsSuccessful: func(err error) bool {
			return err == nil || Classify(err) != ClassTransient
		},
		IsExcluded: func(err error) bool {
			return err != nil && Classify(err) == ClassCanceled
		},
		OnStateChange: func(_ string, from, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				b.openedAt.Store(time.Now().UnixNano())
			}
			if b.onChange != nil {
				b.onChange(fromGobreaker(from), fromGobreaker(to))
			}
		},
	})
	return b
}

// state returns the current state (moving open to half-open when due).
func (b *breaker) state() BreakerState { return fromGobreaker(b.cb.State()) }

// retryAfter estimates how long until the breaker lets a probe through.
func (b *breaker) retryAfter() time.Duration {
	opened := b.openedAt.Load()
	if opened == 0 {
		return 0
	}
	d := time.Until(time.Unix(0, opened).Add(b.openFor))
	if d < 0 {
		return 0
	}
	return d
}

// execute runs fn through the breaker. A refusal becomes *BreakerOpenError.
func (b *breaker) execute(fn func() (*Page, error), last error) (*Page, error) {
	p, err := b.cb.Execute(fn)
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		ra := b.retryAfter()
		if errors.Is(err, gobreaker.ErrTooManyRequests) && ra == 0 {
			ra = 10 * time.Millisecond // a probe is in flight
		}
		return nil, &BreakerOpenError{RetryAfter: ra, Last: last}
	}
	return p, err
}
