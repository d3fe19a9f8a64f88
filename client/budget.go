package client

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Budget is a call budget shared with other processes of the same app (for
// example *budget.Budget of client/budget, kept in Redis). Set as
// Config.Budget, it replaces the client's own pacing: every attempt and
// every page takes one token with Take, a frequency-limit answer is
// reported with Throttled, and EffectiveRate reports Rate. Implementations
// must be safe for concurrent use.
type Budget interface {
	// Take blocks until one call may be sent and returns the time waited.
	// It returns an error only when ctx ends (the context's error) or when
	// the budget can no longer grant calls (closed).
	Take(ctx context.Context) (time.Duration, error)
	// Throttled lowers the shared rate after a frequency-limit answer and
	// returns the rate now in force and whether this call lowered it.
	Throttled(ctx context.Context) (float64, bool)
	// Rate returns the rate in force, in calls/s.
	Rate() float64
}

// waitTurn waits until the next attempt may be sent: on the client's own
// limiter, or, with a Budget, on the shared budget and then on the
// per-process guard. It returns the time waited and the admitted slot,
// which the caller must mark sent or cancel.
//
// With a Budget the guard comes after the shared token, not before it: a
// guard in front would count every caller queued for the shared budget as
// pending, so its cap of floor(RateSafety*Rate) would let only a handful of
// callers queue for Redis once the process sends near the full rate, and
// the Budget could no longer reserve its next slot while the previous one
// is being sent. Behind the shared budget the guard sees only granted
// calls, whose slots are already at most floor(RateSafety*Rate) per
// trailing second; it does not pace (two pacers at one rate in series lose
// throughput to each other's late wakeups), it only caps what this process
// writes in any trailing second at the full budget, in case the shared
// state were lost or wrong.
func (c *Client) waitTurn(ctx context.Context, deadline time.Time) (time.Duration, *sendSlot, error) {
	if c.cfg.Budget == nil {
		return c.lim.wait(ctx, deadline)
	}
	start := time.Now()
	bctx, cancel := ctx, context.CancelFunc(func() {})
	if !deadline.IsZero() {
		bctx, cancel = context.WithDeadline(ctx, deadline)
	}
	_, err := c.cfg.Budget.Take(bctx)
	pastDeadline := bctx.Err() != nil
	cancel()
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return time.Since(start), nil, ctx.Err()
		case pastDeadline:
			return time.Since(start), nil, errWaitPastDeadline
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			return time.Since(start), nil, err
		}
		return time.Since(start), nil, fmt.Errorf("%w: shared budget: %w", ErrClosed, err)
	}
	_, slot, err := c.lim.wait(ctx, deadline)
	return time.Since(start), slot, err
}

// throttled reports a frequency-limit answer to the shared budget or to the
// client's own limiter.
func (c *Client) throttled(ctx context.Context) {
	if c.cfg.Budget == nil {
		c.lim.throttled()
		return
	}
	if r, lowered := c.cfg.Budget.Throttled(ctx); lowered {
		c.tel.rateChanged(r, "throttled (shared)")
	}
}
