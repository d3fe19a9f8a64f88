package bench

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the outcome of a Runner.Run: the machine, the settings, one
// Result per scenario and the targets of the issue checked against them.
type Report struct {
	Machine  Machine   `json:"machine"`
	Settings Settings  `json:"settings"`
	Started  time.Time `json:"started"`
	Results  []Result  `json:"results"`
	Targets  []Target  `json:"targets"`
	// CeilingEventsPerSec is the fastest raw ceiling run; CeilingSpread
	// is how much slower the slowest raw ceiling run was (0.1 = 10%): the
	// drift of the machine during the run. SizedCeilingEventsPerSec is
	// the ceiling padded to warm's output size (ceiling-sized), when it
	// ran: ratios are taken against it, else against the raw ceiling.
	CeilingEventsPerSec      float64 `json:"ceiling_events_per_sec"`
	CeilingSpread            float64 `json:"ceiling_spread"`
	SizedCeilingEventsPerSec float64 `json:"sized_ceiling_events_per_sec,omitempty"`
}

// Settings are the Runner settings a report was measured with.
type Settings struct {
	Scale      float64 `json:"scale"`
	Partitions int     `json:"partitions"`
	Rate       int     `json:"rate"`
	LatencyMS  float64 `json:"latency_ms"`
	JitterMS   float64 `json:"jitter_ms"`
	// SessionTimeoutMS and CommitIntervalMS are the processors' settings
	// when the run overrode their defaults (0: the defaults).
	SessionTimeoutMS float64 `json:"session_timeout_ms,omitempty"`
	CommitIntervalMS float64 `json:"commit_interval_ms,omitempty"`
	// Compression is the output codec when the run set one.
	Compression string `json:"compression,omitempty"`
}

// Machine describes where a report was measured.
type Machine struct {
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model,omitempty"`
	MemoryMiB int64  `json:"memory_mib,omitempty"`
	Go        string `json:"go"`
}

// Result is one scenario's measurements. Times run from the moment the
// workload started (after the input was preloaded) to the moment the
// broker received the last expected output record.
type Result struct {
	Scenario Scenario `json:"scenario"`
	// Error is why the scenario could not be measured; empty on success.
	Error string `json:"error,omitempty"`
	// Load1 is the machine's one-minute load average when it started.
	Load1 float64 `json:"load1"`
	// PreloadSeconds is how long producing the input took (not measured).
	PreloadSeconds float64 `json:"preload_seconds"`
	// DistinctUsers is the number of different users among the events.
	DistinctUsers int `json:"distinct_users"`

	Seconds      float64 `json:"seconds"`
	EventsPerSec float64 `json:"events_per_sec"`
	// CeilingRatio is EventsPerSec over the same-size ceiling's
	// (ceiling-sized) from the same run, or the raw ceiling's when that
	// did not run; RawCeilingRatio is over the raw ceiling's.
	CeilingRatio    float64 `json:"ceiling_ratio,omitempty"`
	RawCeilingRatio float64 `json:"raw_ceiling_ratio,omitempty"`
	// CachedEventsPerSec is the rate of the records that arrived after the
	// last API call was answered, when every user was cached: the cache-hit
	// path without the cost of first sightings; CachedShare is their share
	// of all events. Processor scenarios only.
	CachedEventsPerSec float64 `json:"cached_events_per_sec,omitempty"`
	CachedShare        float64 `json:"cached_share,omitempty"`
	// Output and DLQ are the records on the output and dead-letter topics.
	Output int64 `json:"output"`
	DLQ    int64 `json:"dlq"`
	// OutputBytes is the size of the record batches produced to them
	// (output and DLQ), and OutputMBPerSec that over Seconds in MiB/s.
	OutputBytes    int64   `json:"output_bytes"`
	OutputMBPerSec float64 `json:"output_mib_per_sec"`

	// Latencies are from an event's timestamp, or the start of the run if
	// later, to its output record reaching the broker. Every event is
	// preloaded, so an event's latency is the time to drain the backlog up
	// to it.
	FirstOutputMS float64 `json:"first_output_ms"`
	LatencyP50MS  float64 `json:"latency_p50_ms"`
	LatencyP99MS  float64 `json:"latency_p99_ms"`

	// API is the simulator's account (processor scenarios only).
	API *APIResult `json:"api,omitempty"`

	// PeakRSSBytes and CPUSeconds are the workload process's, over its
	// whole life; InfraCPUSeconds is what the broker and simulator (the
	// parent process) used meanwhile, on the same cores.
	PeakRSSBytes    int64   `json:"peak_rss_bytes"`
	CPUSeconds      float64 `json:"cpu_seconds"`
	InfraCPUSeconds float64 `json:"infra_cpu_seconds"`
	// WorkloadStats is the workload's own account (processor Stats, copy counts).
	WorkloadStats json.RawMessage `json:"workload_stats,omitempty"`

	// Redelivery is what a disrupted scenario published again; nil for the
	// others. Seconds then runs from the first processor's start to the
	// arrival of the last input record's first copy.
	Redelivery *RedeliveryResult `json:"redelivery,omitempty"`
	// Shared is a shared scenario's own account; nil for the others.
	Shared *SharedResult `json:"shared,omitempty"`
}

// RedeliveryResult counts the copies of the input records of a disrupted
// scenario that reached the output and DLQ topics, by the input partition
// and offset each record names (its source field, or its source headers).
type RedeliveryResult struct {
	// Distinct input records arrived at least once; Lost the others.
	Distinct int64 `json:"distinct"`
	Lost     int64 `json:"lost"`
	// Copies is every record that arrived; Duplicates the copies beyond
	// each input record's first.
	Copies     int64 `json:"copies"`
	Duplicates int64 `json:"duplicates"`
	// DuplicatesBefore arrived before the first disruption;
	// DuplicatesAfter[k] after disruption k+1 (a kill, the broker's stop)
	// and before the next.
	DuplicatesBefore int64   `json:"duplicates_before"`
	DuplicatesAfter  []int64 `json:"duplicates_after,omitempty"`
	// OutOfOrder counts first copies that arrived after the first copy of a
	// later input record of the same output key and partition.
	OutOfOrder int64 `json:"out_of_order"`
	// IncompleteDrains counts the processors' "drain incomplete" warnings:
	// revoked or stopping partitions whose unpublished records were
	// dropped (to be read again).
	IncompleteDrains int `json:"incomplete_drains"`
	// SkippedPublished and MetadataOverflows are the processors' Stats
	// summed over the runs that stopped cleanly (a killed one reports
	// nothing).
	SkippedPublished  int64 `json:"skipped_published"`
	MetadataOverflows int64 `json:"metadata_overflows"`
	// Processes is how many processor processes ran.
	Processes int `json:"processes"`
}

// APIResult is the simulator's account of a processor scenario.
type APIResult struct {
	Budget int `json:"budget"`
	Calls  int `json:"calls"`
	// CallsPerSec is the mean rate between the first and the last call's
	// arrival.
	CallsPerSec float64 `json:"calls_per_sec"`
	// BudgetRatio is CallsPerSec / Budget.
	BudgetRatio float64 `json:"budget_ratio"`
	// MaxPerSecond is the most calls in any trailing second.
	MaxPerSecond int `json:"max_per_second"`
	// FrequencyErrors counts calls refused for call frequency over the limit.
	FrequencyErrors int `json:"frequency_errors"`
	// ByCode counts calls by response error code (0 = success).
	ByCode map[int]int `json:"by_code,omitempty"`
	// PerSecond counts the calls that arrived in each wall-clock second
	// from the simulator's start.
	PerSecond []int `json:"per_second,omitempty"`
	// ExtraPages is how many calls beyond one per distinct user the data
	// requires (users with more accounts than fit one page).
	ExtraPages int `json:"extra_pages"`
	// RepeatCalls counts the calls beyond each user's pages: a user (or a
	// page) fetched again, refused calls retried included.
	RepeatCalls int `json:"repeat_calls"`
	// IdealSeconds is (distinct users + extra pages) / budget: the least
	// time the budget allows.
	IdealSeconds float64 `json:"ideal_seconds"`
}

// Target is one goal of the issue checked against a report.
type Target struct {
	Name     string `json:"name"`
	Goal     string `json:"goal"`
	Measured string `json:"measured"`
	Met      bool   `json:"met"`
}

// result returns the successful result of the named scenario.
func (rep *Report) result(name string) (Result, bool) {
	for _, r := range rep.Results {
		if r.Scenario.Name == name && r.Error == "" {
			return r, true
		}
	}
	return Result{}, false
}

// finish fills in ratios to the ceiling and checks the targets.
func (rep *Report) finish() {
	var ceiling Result // the fastest raw ceiling run
	lowest := 0.0
	for _, r := range rep.Results {
		if r.Error != "" || r.Scenario.Workload != WorkloadCopy {
			continue
		}
		if r.Scenario.Sized() {
			rep.SizedCeilingEventsPerSec = r.EventsPerSec
			continue
		}
		if r.EventsPerSec > ceiling.EventsPerSec {
			ceiling = r
		}
		if lowest == 0 || r.EventsPerSec < lowest {
			lowest = r.EventsPerSec
		}
	}
	rep.CeilingEventsPerSec = ceiling.EventsPerSec
	if ceiling.EventsPerSec > 0 {
		rep.CeilingSpread = 1 - lowest/ceiling.EventsPerSec
		for i, r := range rep.Results {
			if r.Error == "" && r.Scenario.Workload != WorkloadCopy {
				rep.Results[i].RawCeilingRatio = r.EventsPerSec / ceiling.EventsPerSec
				rep.Results[i].CeilingRatio = r.EventsPerSec / cmp.Or(rep.SizedCeilingEventsPerSec, ceiling.EventsPerSec)
			}
		}
	}
	add := func(name, goal, measured string, met bool) {
		rep.Targets = append(rep.Targets, Target{Name: name, Goal: goal, Measured: measured, Met: met})
	}
	if warm, ok := rep.result("warm"); ok && rep.SizedCeilingEventsPerSec > 0 {
		add("warm throughput", "≥ 70% of the same-size ceiling's events/s", pct(warm.CeilingRatio), warm.CeilingRatio >= 0.7)
	} else if ok && ceiling.EventsPerSec > 0 {
		add("warm throughput", "≥ 80% of the ceiling's events/s", pct(warm.CeilingRatio), warm.CeilingRatio >= 0.8)
	}
	if warm, ok := rep.result("warm"); ok {
		mib := float64(warm.PeakRSSBytes) / (1 << 20)
		add("warm peak RSS", "≤ 256 MiB", fmt.Sprintf("%.0f MiB", mib), mib <= 256)
	}
	for _, name := range []string{"cold", "cold-1p"} {
		if r, ok := rep.result(name); ok && r.API != nil {
			a := r.API
			add(name+" API rate", fmt.Sprintf("≥ 97%% of %d calls/s", a.Budget), fmt.Sprintf("%.1f calls/s (%s)", a.CallsPerSec, pct(a.BudgetRatio)), a.BudgetRatio >= 0.97)
			add(name+" frequency errors", "0", strconv.Itoa(a.FrequencyErrors), a.FrequencyErrors == 0)
			add(name+" max calls in a trailing second", fmt.Sprintf("≤ %d", a.Budget), strconv.Itoa(a.MaxPerSecond), a.MaxPerSecond <= a.Budget)
		}
	}
	if r, ok := rep.result("skewed"); ok && r.Error == "" {
		mib := float64(r.PeakRSSBytes) / (1 << 20)
		add("skewed peak RSS", "≤ 300 MiB", fmt.Sprintf("%.0f MiB", mib), mib <= 300)
	}
	if r, ok := rep.result("skewed"); ok && r.API != nil && r.API.IdealSeconds > 0 {
		over := r.Seconds/r.API.IdealSeconds - 1
		add("skewed duration", fmt.Sprintf("within 10%% of %.1fs ((users + extra pages) / budget)", r.API.IdealSeconds),
			fmt.Sprintf("%.1fs (%+.1f%%)", r.Seconds, 100*over), over <= 0.10)
	}
	rep.redeliveryTargets(add)
	rep.sharedTargets(add)
	for _, name := range []string{"warm", "cold"} {
		one, ok1 := rep.result(name + "-1p")
		eight, ok8 := rep.result(name)
		if ok1 && ok8 && eight.EventsPerSec > 0 {
			d := one.EventsPerSec/eight.EventsPerSec - 1
			add(name+" one partition", fmt.Sprintf("within 5%% of %d partitions", eight.Scenario.Partitions),
				fmt.Sprintf("%.0f vs %.0f events/s (%+.1f%%)", one.EventsPerSec, eight.EventsPerSec, 100*d), d >= -0.05)
		}
	}
}

// Redelivery goals of the issue ("Restarts, rebalances and broker
// failovers redeliver only what was not published"), for 6,000 records.
const (
	maxDuplicatesPerKill  = 150
	maxKillRestartSeconds = 60
	maxBrokerDuplicates   = 150
	maxScaleOutDuplicates = 50
)

// redeliveryTargets checks the disrupted scenarios against the issue's
// goals.
func (rep *Report) redeliveryTargets(add func(name, goal, measured string, met bool)) {
	lossless := func(name string, red *RedeliveryResult) {
		add(name+" lost", "0", strconv.FormatInt(red.Lost, 10), red.Lost == 0)
		add(name+" per-key order on first copies", "0 out of order", strconv.FormatInt(red.OutOfOrder, 10), red.OutOfOrder == 0)
	}
	if r, ok := rep.result("kill-restart"); ok && r.Redelivery != nil {
		red := r.Redelivery
		worst := slices.Max(append([]int64{0}, red.DuplicatesAfter...))
		add("kill-restart duplicates per kill", fmt.Sprintf("≤ %d", maxDuplicatesPerKill), fmt.Sprintf("%v (%d in all)", red.DuplicatesAfter, red.Duplicates), worst <= maxDuplicatesPerKill)
		add("kill-restart duration", fmt.Sprintf("≤ %d s", maxKillRestartSeconds), fmt.Sprintf("%.1fs", r.Seconds), r.Seconds <= maxKillRestartSeconds)
		lossless("kill-restart", red)
	}
	if r, ok := rep.result("broker-restart"); ok && r.Redelivery != nil {
		red := r.Redelivery
		add("broker-restart duplicates", fmt.Sprintf("≤ %d", maxBrokerDuplicates), strconv.FormatInt(red.Duplicates, 10), red.Duplicates <= maxBrokerDuplicates)
		lossless("broker-restart", red)
	}
	if r, ok := rep.result("scale-out"); ok && r.Redelivery != nil {
		red := r.Redelivery
		add("scale-out duplicates", fmt.Sprintf("≤ %d", maxScaleOutDuplicates), strconv.FormatInt(red.Duplicates, 10), red.Duplicates <= maxScaleOutDuplicates)
		add("scale-out incomplete drains", "0", strconv.Itoa(red.IncompleteDrains), red.IncompleteDrains == 0)
		lossless("scale-out", red)
	}
}

func pct(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) }

// WriteJSON writes the report as indented JSON.
func (rep *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// WriteTable writes the report for people: the machine, a Markdown table of
// the scenarios and the targets.
func (rep *Report) WriteTable(w io.Writer) error {
	m := rep.Machine
	var b strings.Builder
	fmt.Fprintf(&b, "Machine: %s/%s, %d CPUs", m.OS, m.Arch, m.CPUs)
	if m.CPUModel != "" {
		fmt.Fprintf(&b, " (%s)", m.CPUModel)
	}
	if m.MemoryMiB > 0 {
		fmt.Fprintf(&b, ", %d MiB RAM", m.MemoryMiB)
	}
	s := rep.Settings
	fmt.Fprintf(&b, ", %s. Scale %g, budget %d calls/s, API latency %g ms ± %g ms", m.Go, s.Scale, s.Rate, s.LatencyMS, s.JitterMS)
	if s.SessionTimeoutMS > 0 {
		fmt.Fprintf(&b, ", session timeout %g ms", s.SessionTimeoutMS)
	}
	if s.CommitIntervalMS > 0 {
		fmt.Fprintf(&b, ", commit interval %g ms", s.CommitIntervalMS)
	}
	fmt.Fprintf(&b, ", %s.\n", rep.Started.Format(time.RFC3339))

	if slices.ContainsFunc(rep.Results, func(r Result) bool { return r.Scenario.Disruption == "" }) {
		if err := rep.writeThroughputTable(&b); err != nil {
			return err
		}
	}
	if err := rep.writeRedeliveryTable(&b); err != nil {
		return err
	}
	if err := rep.writeSharedTable(&b); err != nil {
		return err
	}
	if rep.SizedCeilingEventsPerSec > 0 {
		fmt.Fprintf(&b, "\nRatios are to the same-size ceiling (ceiling-sized), %.0f events/s.", rep.SizedCeilingEventsPerSec)
		if rep.CeilingSpread > 0 {
			fmt.Fprintf(&b, " The slowest raw ceiling run was %.1f%% slower than the fastest (%.0f events/s).", 100*rep.CeilingSpread, rep.CeilingEventsPerSec)
		}
		b.WriteString("\n")
	} else if rep.CeilingSpread > 0 {
		fmt.Fprintf(&b, "\nRatios are to the fastest ceiling run, %.0f events/s; the slowest was %.1f%% slower.\n", rep.CeilingEventsPerSec, 100*rep.CeilingSpread)
	}
	if len(rep.Targets) > 0 {
		b.WriteString("\nTargets:\n")
		for _, t := range rep.Targets {
			mark := "missed"
			if t.Met {
				mark = "met"
			}
			fmt.Fprintf(&b, "- %s: %s — %s (%s)\n", t.Name, t.Goal, t.Measured, mark)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeThroughputTable writes the undisturbed scenarios' table.
func (rep *Report) writeThroughputTable(b *strings.Builder) error {
	b.WriteString("\n")
	tw := tabwriter.NewWriter(b, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, "| scenario\tparts\tevents\tdistinct users\tevents/s\tof ceiling\tcached events/s (share)\tout MiB/s\tAPI calls/s\tof budget\tmax/s\tfreq errors\tp50 ms\tp99 ms\tpeak RSS MiB\tCPU s\tload\t")
	fmt.Fprintln(tw, "|---\t---:\t---:\t---:\t---:\t---:\t---:\t---:\t---:\t---:\t---:\t---:\t---:\t---:\t---:\t---:\t---:\t")
	for _, r := range rep.Results {
		sc := r.Scenario
		if sc.Disruption != "" {
			continue // their own table
		}
		if r.Error != "" {
			fmt.Fprintf(tw, "| %s\t%d\t%d\t%d\tfailed: %s\t\t\t\t\t\t\t\t\t\t\t\t\t\n", sc.Name, sc.Partitions, sc.Events, r.DistinctUsers, oneLine(r.Error))
			continue
		}
		ratio, cached, calls, budget, maxPS, freq := "—", "—", "—", "—", "—", "—"
		if r.CachedEventsPerSec > 0 {
			cached = fmt.Sprintf("%.0f (%.0f%%)", r.CachedEventsPerSec, 100*r.CachedShare)
		}
		if r.CeilingRatio > 0 {
			ratio = pct(r.CeilingRatio)
		}
		if a := r.API; a != nil {
			calls, budget, maxPS, freq = fmt.Sprintf("%.1f", a.CallsPerSec), pct(a.BudgetRatio), strconv.Itoa(a.MaxPerSecond), strconv.Itoa(a.FrequencyErrors)
		}
		fmt.Fprintf(tw, "| %s\t%d\t%d\t%d\t%.0f\t%s\t%s\t%.1f\t%s\t%s\t%s\t%s\t%.0f\t%.0f\t%.0f\t%.1f\t%.1f\t\n",
			sc.Name, sc.Partitions, sc.Events, r.DistinctUsers, r.EventsPerSec, ratio, cached, r.OutputMBPerSec, calls, budget, maxPS, freq,
			r.LatencyP50MS, r.LatencyP99MS, float64(r.PeakRSSBytes)/(1<<20), r.CPUSeconds, r.Load1)
	}
	return tw.Flush()
}

// writeRedeliveryTable writes the disrupted scenarios' table, if any ran.
func (rep *Report) writeRedeliveryTable(b *strings.Builder) error {
	var rows []Result
	for _, r := range rep.Results {
		if r.Scenario.Disruption != "" && !r.Scenario.Shared { // shared: their own table
			rows = append(rows, r)
		}
	}
	if len(rows) == 0 {
		return nil
	}
	b.WriteString("\n")
	tw := tabwriter.NewWriter(b, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, "| scenario\tparts\tevents\tdistinct users\tdisruption\tprocesses\tseconds\tduplicates\tper disruption\tlost\tout of order\tskipped published\tincomplete drains\tAPI calls\tfreq errors\tCPU s\tload\t")
	fmt.Fprintln(tw, "|---\t---:\t---:\t---:\t---\t---:\t---:\t---:\t---:\t---:\t---:\t---:\t---:\t---:\t---:\t---:\t---:\t")
	for _, r := range rows {
		sc := r.Scenario
		if r.Error != "" || r.Redelivery == nil {
			fmt.Fprintf(tw, "| %s\t%d\t%d\t%d\t%s\tfailed: %s\t\t\t\t\t\t\t\t\t\t\t\t\n", sc.Name, sc.Partitions, sc.Events, r.DistinctUsers, disruptionLabel(sc), oneLine(r.Error))
			continue
		}
		red := r.Redelivery
		calls, freq := "—", "—"
		if a := r.API; a != nil {
			calls, freq = strconv.Itoa(a.Calls), strconv.Itoa(a.FrequencyErrors)
		}
		per := "—"
		if len(red.DuplicatesAfter) > 0 {
			per = strings.Trim(fmt.Sprint(red.DuplicatesAfter), "[]")
		}
		fmt.Fprintf(tw, "| %s\t%d\t%d\t%d\t%s\t%d\t%.1f\t%d\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%.1f\t%.1f\t\n",
			sc.Name, sc.Partitions, sc.Events, r.DistinctUsers, disruptionLabel(sc), red.Processes, r.Seconds, red.Duplicates, per,
			red.Lost, red.OutOfOrder, red.SkippedPublished, red.IncompleteDrains, calls, freq, r.CPUSeconds, r.Load1)
	}
	return tw.Flush()
}

// disruptionLabel says what a disrupted scenario does.
func disruptionLabel(s Scenario) string {
	switch s.Disruption {
	case DisruptKill:
		if s.Instances > 1 {
			return fmt.Sprintf("%d SIGKILLs, %d instances", s.Kills, s.Instances)
		}
		return fmt.Sprintf("%d SIGKILLs", s.Kills)
	case DisruptBroker:
		return fmt.Sprintf("broker down %v", s.BrokerDown)
	case DisruptScaleOut:
		return fmt.Sprintf("%d instances", s.Instances)
	case DisruptRedis:
		return fmt.Sprintf("Redis down %v, %d instances", s.RedisDown, s.Instances)
	case DisruptReplay:
		return "replay, then live busy"
	}
	return string(s.Disruption)
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}

// describeMachine reads what it can about this machine.
func describeMachine() Machine {
	m := Machine{OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				m.MemoryMiB = kb >> 10
			}
		}
	}
	return m
}

// loadAverage is the one-minute load average, or 0 where unknown.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	l, _ := strconv.ParseFloat(f[0], 64)
	return l
}

// Failed counts the scenarios that could not be measured.
func (rep *Report) Failed() int {
	n := 0
	for _, r := range rep.Results {
		if r.Error != "" {
			n++
		}
	}
	return n
}
