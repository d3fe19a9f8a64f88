package simulator

import (
	"encoding/json"
	"maps"
	"net/http"
	"sync"
	"time"
)

// maxSeries is how many seconds of the per-second call series are kept; older
// seconds are dropped and Stats.Start moves forward.
const maxSeries = 3600

// Stats is a snapshot of what the simulator saw on the API endpoint since it
// started (or since ResetStats). Every request to the endpoint path with the
// POST method counts, whatever its outcome, injected network faults included;
// other paths and methods (404/405, /stats, /faults) do not. It is safe to
// keep and to serialise as JSON; it is also served at GET /stats.
type Stats struct {
	// Start is the beginning of the second PerSecond[0] counts.
	Start time.Time
	// Total is the number of calls that arrived.
	Total int
	// ByCode counts answered calls by outcome: 0 for success, the ErrorCode
	// of a FAIL answer, 502 for an injected network fault.
	ByCode map[int]int
	// Abandoned counts calls whose client went away before the answer (for
	// example a client timeout during injected latency).
	Abandoned int
	// MaxPerSecond is the most calls that arrived within any trailing
	// second: every arrival counts, the ones refused by the frequency limit
	// or failed by a fault included, so a bursting client is visible.
	MaxPerSecond int
	// RateLimit is the configured calls per trailing second (<= 0: none).
	RateLimit int
	// PerUser counts calls per Subscriber_Account: every call whose body
	// named one, whatever its outcome (faults, UserSig failures, the
	// frequency limit included); ByCode tells the outcomes apart.
	PerUser map[string]int
	// PerSecond[i] is the number of calls that arrived in the second that
	// begins at Start + i seconds. At most the last hour is kept.
	PerSecond []int
	// MaxConcurrent is the most calls in flight at once.
	MaxConcurrent int
	// InFlight is the number of calls in flight now.
	InFlight int
}

// recorder accumulates Stats. It is safe for concurrent use.
type recorder struct {
	mu            sync.Mutex
	rate          int
	start         time.Time
	startSec      int64 // unix second of secs[0]
	secs          []int
	total         int
	byCode        map[int]int
	abandoned     int
	perUser       map[string]int
	win           window
	maxPerSecond  int
	inFlight      int
	maxConcurrent int
}

func newRecorder(now time.Time, rate int) *recorder {
	r := &recorder{rate: rate}
	r.reset(now)
	return r
}

func (r *recorder) reset(now time.Time) {
	r.start = now.Truncate(time.Second)
	r.startSec = r.start.Unix()
	r.secs = nil
	r.total, r.abandoned, r.maxPerSecond, r.maxConcurrent = 0, 0, 0, r.inFlight
	r.byCode = make(map[int]int)
	r.perUser = make(map[string]int)
	r.win = window{}
}

// arrive records a call arriving at now.
func (r *recorder) arrive(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total++
	r.inFlight++
	r.maxConcurrent = max(r.maxConcurrent, r.inFlight)
	r.maxPerSecond = max(r.maxPerSecond, r.win.arrive(now))

	sec := max(now.Unix()-r.startSec, 0)
	if n := int(sec) + 1; n > len(r.secs) {
		r.secs = append(r.secs, make([]int, n-len(r.secs))...)
	}
	r.secs[sec]++
	if drop := len(r.secs) - maxSeries; drop > 0 {
		r.secs = append(r.secs[:0:0], r.secs[drop:]...)
		r.startSec += int64(drop)
		r.start = r.start.Add(time.Duration(drop) * time.Second)
	}
}

// user records the Subscriber_Account a call named.
func (r *recorder) user(u string) {
	r.mu.Lock()
	r.perUser[u]++
	r.mu.Unlock()
}

// done records a call's outcome; code < 0 means the client went away.
func (r *recorder) done(code int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inFlight > 0 {
		r.inFlight--
	}
	if code < 0 {
		r.abandoned++
		return
	}
	r.byCode[code]++
}

func (r *recorder) snapshot() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Stats{
		Start:         r.start,
		Total:         r.total,
		ByCode:        maps.Clone(r.byCode),
		Abandoned:     r.abandoned,
		MaxPerSecond:  r.maxPerSecond,
		RateLimit:     r.rate,
		PerUser:       maps.Clone(r.perUser),
		PerSecond:     append([]int{}, r.secs...),
		MaxConcurrent: r.maxConcurrent,
		InFlight:      r.inFlight,
	}
}

// serveStats answers GET /stats with the Stats as JSON.
func (s *Simulator) serveStats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Stats())
}

// serveResetStats answers DELETE /stats: it resets the counters.
func (s *Simulator) serveResetStats(w http.ResponseWriter, _ *http.Request) {
	s.ResetStats()
	w.WriteHeader(http.StatusNoContent)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
