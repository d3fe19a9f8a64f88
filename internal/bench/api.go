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
	latency, jitter time.Duration
	users           int // the dataset must know userID(0..users-1)
}

// apiServer is the simulated API as the runner uses it.
type apiServer interface {
	URL() string
	// Result summarises the calls served against the budget.
	Result(budget int) *APIResult
	Close()
}

// startAPI starts the simulated API; nil when this build has no simulator.
var startAPI func(apiSettings) (apiServer, error)
