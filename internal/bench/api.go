package bench

import (
	"strconv"
	"time"
)

// userID names generated user i the way the simulator's dataset does.
func userID(i int) string { return "user-" + strconv.Itoa(i) }

// apiSettings configures the simulated Tencent API of a processor scenario.
type apiSettings struct {
	rate            int
	latency, jitter time.Duration // latency ± jitter per call
	users           int           // the dataset knows userID(0..users-1)
}

// apiServer is the simulated API as the runner uses it.
type apiServer interface {
	URL() string
	Close() error
	// calls is what the call watch saw.
	calls() callSpan
	// result summarises the calls served for the users of seq.
	result(budget int, seq []int32) *APIResult
}

// startAPI starts the simulated API; nil while this build has no simulator.
var startAPI func(apiSettings) (apiServer, error)
