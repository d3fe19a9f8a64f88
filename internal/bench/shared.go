package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// replayTopic is the input of the shared-replay scenario's replay.
const replayTopic = "user-events-history"

// degradedWarning is the start of the warning the shared budget logs when
// Redis is unreachable and a process falls back to a local share.
const degradedWarning = "Redis unreachable"

// SharedResult is what a shared scenario (Scenario.Shared: processes
// sharing one budget and cache in Redis) measured beyond the API's and
// the copies' accounts.
type SharedResult struct {
	// CallsPerNeeded is the API calls over (distinct users + extra pages):
	// 1 when every user's pages were fetched once by all processes
	// together.
	CallsPerNeeded float64 `json:"calls_per_needed"`

	// DisruptReplay. ReplayAloneCallsPerSec is the replay's calls/s from
	// its first call to live's first (live idle). LiveCallsPerSec is live's
	// calls/s from its first call to its last (live busy), and
	// ReplayBesideLiveCallsPerSec the replay's in that window; LiveShare is
	// live's share of the calls in it. LiveCalls and ReplayCalls count
	// each role's calls over the whole run.
	ReplayAloneCallsPerSec      float64 `json:"replay_alone_calls_per_sec,omitempty"`
	LiveCallsPerSec             float64 `json:"live_calls_per_sec,omitempty"`
	ReplayBesideLiveCallsPerSec float64 `json:"replay_beside_live_calls_per_sec,omitempty"`
	LiveShare                   float64 `json:"live_share,omitempty"`
	LiveCalls                   int     `json:"live_calls,omitempty"`
	ReplayCalls                 int     `json:"replay_calls,omitempty"`

	// DisruptRedis. RedisDownSeconds is from the kill to the restarted
	// server's first PING answer; CallsPerSecRedisDown is the calls/s of
	// all processes together meanwhile.
	RedisDownSeconds     float64 `json:"redis_down_seconds,omitempty"`
	CallsPerSecRedisDown float64 `json:"calls_per_sec_redis_down,omitempty"`
	// DegradedWarnings counts the processes' "Redis unreachable" warnings
	// (one per process and outage).
	DegradedWarnings int `json:"degraded_warnings"`
}

// callLog notes the arrival of every call to the simulated API and, with
// a split, whether it was for a replay user (user index >= split) or a
// live one: the simulator sees only calls, and the shared-replay
// scenario's live and replay inputs have disjoint users.
type callLog struct {
	next  http.Handler
	split int // users from this index on are the replay's; 0: no split

	mu    sync.Mutex
	calls []loggedCall
}

type loggedCall struct {
	at     time.Time
	replay bool
}

func (l *callLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := loggedCall{at: time.Now()}
	if l.split > 0 {
		body, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err == nil {
			c.replay = userIndex(body) >= l.split
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	l.mu.Lock()
	l.calls = append(l.calls, c)
	l.mu.Unlock()
	l.next.ServeHTTP(w, r)
}

// userIndex is the index of the user a request body names (see userID),
// or -1.
func userIndex(body []byte) int {
	var req struct {
		User string `json:"Subscriber_Account"`
	}
	if json.Unmarshal(body, &req) != nil {
		return -1
	}
	rest, ok := strings.CutPrefix(req.User, "user-")
	if !ok {
		return -1
	}
	i, err := strconv.Atoi(rest)
	if err != nil {
		return -1
	}
	return i
}

// callRole selects the calls of one role: live, replay or both.
type callRole int

const (
	roleAny callRole = iota
	roleLive
	roleReplay
)

func (r callRole) has(c loggedCall) bool {
	return r == roleAny || (r == roleReplay) == c.replay
}

// count is the number of calls of role that arrived in [from, to).
func (l *callLog) count(role callRole, from, to time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, c := range l.calls {
		if role.has(c) && !c.at.Before(from) && c.at.Before(to) {
			n++
		}
	}
	return n
}

// span is the first and last arrival of role's calls and their number.
func (l *callLog) span(role callRole) (first, last time.Time, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.calls {
		if !role.has(c) {
			continue
		}
		if n == 0 || c.at.Before(first) {
			first = c.at
		}
		if c.at.After(last) {
			last = c.at
		}
		n++
	}
	return first, last, n
}

// perSec is n calls over d, or 0.
func perSec(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// sharedResult computes a shared scenario's account from the call log
// and what the run noted.
func (d *disruptedRun) sharedResult(res *Result) *SharedResult {
	sr := &SharedResult{}
	if a := res.API; a != nil && res.DistinctUsers+a.ExtraPages > 0 {
		sr.CallsPerNeeded = float64(a.Calls) / float64(res.DistinctUsers+a.ExtraPages)
	}
	for _, run := range d.runs {
		sr.DegradedWarnings += run.degraded
	}
	l := d.log
	switch res.Scenario.Disruption {
	case DisruptReplay:
		rFirst, _, rn := l.span(roleReplay)
		lFirst, lLast, ln := l.span(roleLive)
		sr.LiveCalls, sr.ReplayCalls = ln, rn
		if rn > 0 && ln > 0 && lFirst.After(rFirst) {
			sr.ReplayAloneCallsPerSec = perSec(l.count(roleReplay, rFirst, lFirst), lFirst.Sub(rFirst))
		}
		if ln > 1 {
			w := lLast.Sub(lFirst)
			beside := l.count(roleReplay, lFirst, lLast)
			sr.LiveCallsPerSec = perSec(ln-1, w)
			sr.ReplayBesideLiveCallsPerSec = perSec(beside, w)
			sr.LiveShare = float64(ln) / float64(ln+beside)
		}
	case DisruptRedis:
		if !d.redisUp.IsZero() {
			w := d.redisUp.Sub(d.redisDown)
			sr.RedisDownSeconds = w.Seconds()
			sr.CallsPerSecRedisDown = perSec(l.count(roleAny, d.redisDown, d.redisUp), w)
		}
	}
	return sr
}

// Goals of issue 10 ("Done when") for the shared scenarios.
const (
	sharedMinRateShare   = 0.95 // 190 of 200 calls/s, 3 instances together
	sharedMaxCallsPerUse = 1.05 // calls per (distinct users + extra pages)
	replayMinRateShare   = 0.90 // 180 of 200 calls/s, live idle
	liveMinRateShare     = 0.90 // live keeps 90% of the budget beside a replay
)

// sharedTargets checks the shared scenarios against the goals.
func (rep *Report) sharedTargets(add func(name, goal, measured string, met bool)) {
	for _, r := range rep.Results {
		sc := r.Scenario
		if !sc.Shared || r.Error != "" || r.API == nil || r.Shared == nil || r.Redelivery == nil {
			continue
		}
		a, sr, name := r.API, r.Shared, sc.Name
		budget := float64(a.Budget)
		add(name+" frequency errors", "0", strconv.Itoa(a.FrequencyErrors), a.FrequencyErrors == 0)
		add(name+" max calls in a trailing second", fmt.Sprintf("≤ %d", a.Budget), strconv.Itoa(a.MaxPerSecond), a.MaxPerSecond <= a.Budget)
		switch sc.Disruption {
		case DisruptScaleOut:
			add(name+" API rate together", fmt.Sprintf("≥ %.0f calls/s", sharedMinRateShare*budget),
				fmt.Sprintf("%.1f calls/s (%s)", a.CallsPerSec, pct(a.BudgetRatio)), a.CallsPerSec >= sharedMinRateShare*budget)
		case DisruptKill:
			add(name+" API calls", fmt.Sprintf("≤ %.2f × (distinct users + extra pages)", sharedMaxCallsPerUse),
				fmt.Sprintf("%d for %d + %d (%.3f×)", a.Calls, r.DistinctUsers, a.ExtraPages, sr.CallsPerNeeded), sr.CallsPerNeeded <= sharedMaxCallsPerUse)
		case DisruptReplay:
			add(name+" replay with live idle", fmt.Sprintf("≥ %.0f calls/s", replayMinRateShare*budget),
				fmt.Sprintf("%.1f calls/s", sr.ReplayAloneCallsPerSec), sr.ReplayAloneCallsPerSec >= replayMinRateShare*budget)
			add(name+" live beside the replay", fmt.Sprintf("≥ %.0f calls/s (%.0f%% of the budget)", liveMinRateShare*budget, 100*liveMinRateShare),
				fmt.Sprintf("%.1f calls/s, %s of the calls meanwhile (replay %.1f calls/s)", sr.LiveCallsPerSec, pct(sr.LiveShare), sr.ReplayBesideLiveCallsPerSec),
				sr.LiveCallsPerSec >= liveMinRateShare*budget)
		case DisruptRedis:
			add(name+" degraded processes", fmt.Sprintf("%d warnings (one per process)", sc.Instances),
				fmt.Sprintf("%d; %.1f calls/s together over %.1fs down", sr.DegradedWarnings, sr.CallsPerSecRedisDown, sr.RedisDownSeconds), sr.DegradedWarnings >= sc.Instances)
		}
		add(name+" lost", "0", strconv.FormatInt(r.Redelivery.Lost, 10), r.Redelivery.Lost == 0)
	}
}

// writeSharedTable writes the shared scenarios' table, if any ran.
func (rep *Report) writeSharedTable(b *strings.Builder) error {
	var rows []Result
	for _, r := range rep.Results {
		if r.Scenario.Shared {
			rows = append(rows, r)
		}
	}
	if len(rows) == 0 {
		return nil
	}
	b.WriteString("\n")
	tw := tabwriter.NewWriter(b, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, "| shared scenario\tparts\tevents\tdistinct users\textra pages\tdisruption\tprocesses\tseconds\tAPI calls\tper (users + extra pages)\trepeat calls\tcalls/s\tmax/s\tfreq errors\tlost\tduplicates\tCPU s\tload\t")
	fmt.Fprintln(tw, "|---\t---:\t---:\t---:\t---:\t---\t---:\t---:\t---:\t---:\t---:\t---:\t---:\t---:\t---:\t---:\t---:\t---:\t")
	for _, r := range rows {
		sc := r.Scenario
		events := sc.Events + sc.ReplayEvents
		if r.Error != "" || r.Redelivery == nil || r.API == nil || r.Shared == nil {
			fmt.Fprintf(tw, "| %s\t%d\t%d\t%d\t\t%s\tfailed: %s\t\t\t\t\t\t\t\t\t\t\t\t\n", sc.Name, sc.Partitions, events, r.DistinctUsers, disruptionLabel(sc), oneLine(r.Error))
			continue
		}
		a, red := r.API, r.Redelivery
		fmt.Fprintf(tw, "| %s\t%d\t%d\t%d\t%d\t%s\t%d\t%.1f\t%d\t%.3f\t%d\t%.1f\t%d\t%d\t%d\t%d\t%.1f\t%.1f\t\n",
			sc.Name, sc.Partitions, events, r.DistinctUsers, a.ExtraPages, disruptionLabel(sc), red.Processes, r.Seconds,
			a.Calls, r.Shared.CallsPerNeeded, a.RepeatCalls, a.CallsPerSec, a.MaxPerSecond, a.FrequencyErrors, red.Lost, red.Duplicates, r.CPUSeconds, r.Load1)
	}
	return tw.Flush()
}

// redisOutage starts s.Instances processors, kills the redis-server when a
// fifth of the input records have a copy and starts it again (empty, on
// the same port) s.RedisDown later.
func (d *disruptedRun) redisOutage(ctx context.Context, s Scenario) error {
	for range max(1, s.Instances) {
		if err := d.start(ctx); err != nil {
			return err
		}
	}
	if err := d.waitArrived(ctx, d.want/5); err != nil {
		return err
	}
	d.redis.Kill()
	d.redisDown = time.Now()
	d.watch.disrupted()
	down := time.NewTimer(s.RedisDown)
	select {
	case <-down.C:
	case <-ctx.Done():
		down.Stop()
		return ctx.Err()
	}
	if err := d.redis.Restart(ctx); err != nil {
		return err
	}
	d.redisUp = time.Now()
	return nil
}

// replayThenLive starts an idle live processor (its input is empty) and a
// replay of the replay topic, capped at the whole budget as replay
// --api-rate 200 would be; once a third of the replay's records have a
// copy, it produces the live input, so that live is busy beside the
// replay.
func (d *disruptedRun) replayThenLive(ctx context.Context, s Scenario) error {
	if err := d.start(ctx); err != nil { // live, idle
		return err
	}
	rj := d.j
	rj.Replay, rj.Input, rj.Cap = true, replayTopic, d.j.Rate
	if err := d.startJob(ctx, rj); err != nil {
		return err
	}
	if err := d.waitArrived(ctx, int64(s.ReplayEvents)/3); err != nil {
		return err
	}
	d.watch.disrupted()
	return d.liveInput(ctx)
}
