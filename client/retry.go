package client

import (
	"math/rand/v2"
	"time"
)

// backoff computes exponential backoff with "equal jitter": attempt n (1-based,
// the attempt that just failed) waits a uniform duration in [d/2, d] where
// d = min(max, base*2^(n-1)). Half the delay is guaranteed, so retries of many
// callers spread out without collapsing to zero.
type backoff struct {
	base, max time.Duration
	rand      func() float64 // in [0,1); nil = math/rand/v2
}

func (b backoff) delay(attempt int) time.Duration {
	d := b.base
	for i := 1; i < attempt && d < b.max; i++ {
		d *= 2
	}
	d = min(d, b.max)
	r := rand.Float64
	if b.rand != nil {
		r = b.rand
	}
	half := d / 2
	return half + time.Duration(r()*float64(d-half))
}

// retryDelay is the wait before the next attempt after err of class cl:
// a re-sign retries at once; 70050 asks for a minute (the client returns
// a SigPauseError with that wait rather than sleeping).
func (b backoff) retryDelay(attempt int, cl Class, code int) time.Duration {
	switch {
	case code == CodeSigCheckRateLimited:
		return sigCheckRateLimitedPause
	case cl == ClassResign:
		return 0
	case cl == ClassRateLimited:
		// throttled: the limiter has already slowed down; wait one step longer.
		return b.delay(attempt + 1)
	}
	return b.delay(attempt)
}
