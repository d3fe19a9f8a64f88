package bench

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/tencentchat-enricher/enricher/client/simulator"
)

// The simulated app's dev-only credentials (used in dev and tests only).
const (
	devAppID  = 1400000001
	devAdmin  = "administrator"
	devSecret = "dev-only-secret-key"
)

// pageLimit is the client's default page size: the most accounts per call.
const pageLimit = 200

// userID names generated user i the way the simulator's dataset does.
func userID(i int) string { return simulator.UserID(i) }

// apiSettings configures the simulated Tencent API of a processor scenario.
type apiSettings struct {
	rate            int
	latency, jitter time.Duration // latency ± jitter per call
	users           int           // the dataset knows userID(0..users-1)
	log             *callLog      // when set, notes every call (shared scenarios)
}

// simAPI is the simulator of a processor scenario, served on loopback
// (net/http/httptest) behind a callWatch.
type simAPI struct {
	sim   *simulator.Simulator
	watch *callWatch
	srv   *httptest.Server
}

// startAPI starts the simulator with a generated dataset of set.users users
// (with the generator's defaults: a share of unknown users and a share with
// more than one page of subscriptions) and a latency of set.latency ±
// set.jitter per call.
func startAPI(set apiSettings) (*simAPI, error) {
	sim, err := simulator.New(simulator.Config{
		SDKAppID: devAppID, Admin: devAdmin, SecretKey: devSecret,
		Rate:    set.rate,
		Dataset: simulator.Generate(simulator.GenConfig{Seed: 1, Users: set.users}),
		Faults:  simulator.Faults{Latency: set.latency - set.jitter, Jitter: 2 * set.jitter},
		Seed:    1,
	})
	if err != nil {
		return nil, fmt.Errorf("bench: simulator: %w", err)
	}
	w := &callWatch{next: sim}
	var h http.Handler = w
	if set.log != nil {
		set.log.next, h = w, set.log
	}
	return &simAPI{sim: sim, watch: w, srv: httptest.NewServer(h)}, nil
}

// URL is the simulator's base URL.
func (a *simAPI) URL() string { return a.srv.URL }

// Close stops serving once the calls in progress are answered.
func (a *simAPI) Close() { a.srv.Close() }

// result summarises the calls the simulator served for the users of seq.
func (a *simAPI) result(budget int, seq []int32) *APIResult {
	st := a.sim.Stats()
	res := &APIResult{
		Budget:          budget,
		Calls:           st.Total,
		CallsPerSec:     a.watch.span().rate(),
		MaxPerSecond:    st.MaxPerSecond,
		FrequencyErrors: st.ByCode[simulator.CodeRateLimited],
		ByCode:          st.ByCode,
		PerSecond:       st.PerSecond,
	}
	data := a.sim.Dataset()
	seen := map[int32]bool{}
	for _, u := range seq {
		if seen[u] {
			continue
		}
		seen[u] = true
		pages := 1
		if n := data.SubscriptionCount(userID(int(u))); n > pageLimit {
			pages = (n + pageLimit - 1) / pageLimit
			res.ExtraPages += pages - 1
		}
		res.RepeatCalls += max(0, st.PerUser[userID(int(u))]-pages)
	}
	if budget > 0 {
		res.BudgetRatio = res.CallsPerSec / float64(budget)
		res.IdealSeconds = float64(len(seen)+res.ExtraPages) / float64(budget)
	}
	return res
}
