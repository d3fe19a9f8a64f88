package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/tencentchat-enricher/enricher/internal/devkafka"
)

// Topic and group names used inside each scenario's fresh broker.
const (
	inputTopic  = "user-events"
	outputTopic = "user-events-enriched"
	dlqTopic    = "user-events-dlq"
	groupID     = "enricher-bench"
)

// Config configures a Runner. The zero value of every field but Child means
// the setup: all scenarios at full scale on 8 partitions, a 200
// calls/s budget and 20 ms ± 5 ms of simulated API latency.
type Config struct {
	// Scenarios names the scenarios to run (see Scenarios and Select).
	// Default: all. The ceiling always runs when any scenario does.
	Scenarios []string
	// Scale multiplies every scenario's event and user counts. Default 1.
	Scale float64
	// Partitions of the topics of all but the one-partition scenarios.
	// Default 8.
	Partitions int
	// Rate is the API budget, calls per second, of both the simulator and
	// the client. Default 200.
	Rate int
	// Latency and Jitter are the simulator's per-call latency: Latency ±
	// Jitter. Default 20 ms and 5 ms; a negative Jitter means none.
	Latency, Jitter time.Duration
	// Timeout bounds one scenario's measured run. Default 30 minutes.
	Timeout time.Duration
	// ProfileDir, when set, receives a CPU and a heap profile of each
	// scenario's workload (<scenario>.cpu.pprof, <scenario>.heap.pprof).
	ProfileDir string
	// SessionTimeout is the processors' group session timeout: how long a
	// killed processor keeps its partitions. Default the processor's
	// (processor.DefaultSessionTimeout); it must exceed the processor's
	// heartbeat interval.
	SessionTimeout time.Duration
	// CommitInterval is how often the processors commit: the publishing
	// time a kill redelivers, at most. Default the processor's
	// (processor.DefaultCommitInterval).
	CommitInterval time.Duration
	// Compression is the output codec of the processors and the copies
	// (none, gzip, snappy, lz4, zstd). Default the processor's
	// (processor.DefaultOutputCompression).
	Compression string
	// Child returns the command of a child process that calls ServeChild
	// with its standard input and output. Required; the Runner sets Stdin,
	// Stdout and Stderr.
	Child func(ctx context.Context) *exec.Cmd
	// Progress, when set, receives one line per scenario phase.
	Progress io.Writer
}

func (c Config) withDefaults() Config {
	if len(c.Scenarios) == 0 {
		c.Scenarios = []string{"all"}
	}
	if c.Scale == 0 {
		c.Scale = 1
	}
	if c.Partitions == 0 {
		c.Partitions = 8
	}
	if c.Rate == 0 {
		c.Rate = 200
	}
	if c.Latency == 0 {
		c.Latency = 20 * time.Millisecond
	}
	if c.Jitter == 0 {
		c.Jitter = 5 * time.Millisecond
	}
	c.Jitter = max(c.Jitter, 0)
	if c.Timeout == 0 {
		c.Timeout = 30 * time.Minute
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return c
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Child == nil:
		return errors.New("bench: Child is required")
	case c.Scale < 0:
		return fmt.Errorf("bench: Scale %v must be positive", c.Scale)
	case c.Partitions < 0:
		return fmt.Errorf("bench: Partitions %d must be positive", c.Partitions)
	case c.Rate < 0:
		return fmt.Errorf("bench: Rate %d must be positive", c.Rate)
	case c.Latency < 0:
		return fmt.Errorf("bench: Latency %v must not be negative", c.Latency)
	case c.Jitter > c.Latency:
		return fmt.Errorf("bench: Jitter %v must not exceed Latency %v", c.Jitter, c.Latency)
	case c.Timeout < 0:
		return fmt.Errorf("bench: Timeout %v must be positive", c.Timeout)
	case c.SessionTimeout < 0:
		return fmt.Errorf("bench: SessionTimeout %v must be positive", c.SessionTimeout)
	case c.CommitInterval < 0:
		return fmt.Errorf("bench: CommitInterval %v must be positive", c.CommitInterval)
	}
	if _, err := codec(c.Compression); err != nil {
		return err
	}
	_, err := Select(Scenarios(c.Scale, c.Partitions), c.Scenarios)
	return err
}

// Runner runs benchmark scenarios one after another, each on a fresh broker
// (and simulator), with its workload in a child process.
type Runner struct {
	cfg       Config
	scenarios []Scenario
}

// New returns a Runner for cfg.
func New(cfg Config) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	sc, err := Select(Scenarios(cfg.Scale, cfg.Partitions), cfg.Scenarios)
	if err != nil {
		return nil, err
	}
	return &Runner{cfg: cfg, scenarios: sc}, nil
}

// Run runs every selected scenario and returns the report. A scenario that
// fails is reported with its error and the run goes on; Run returns an
// error only when ctx ends.
func (r *Runner) Run(ctx context.Context) (*Report, error) {
	rep := &Report{
		Machine: describeMachine(),
		Settings: Settings{
			Scale: r.cfg.Scale, Partitions: r.cfg.Partitions, Rate: r.cfg.Rate,
			LatencyMS: ms(r.cfg.Latency), JitterMS: ms(r.cfg.Jitter),
			SessionTimeoutMS: ms(r.cfg.SessionTimeout), CommitIntervalMS: ms(r.cfg.CommitInterval),
			Compression: r.cfg.Compression,
		},
		Started: time.Now().UTC(),
	}
	for _, s := range r.scenarios {
		var res Result
		if s.Sized() {
			var err error
			if s.PadBytes, err = padFor(rep.Results, s.SizedLike); err != nil {
				res = Result{Scenario: s, Error: err.Error()}
			}
		}
		fmt.Fprintf(r.cfg.Progress, "%s: %d events, %s, %d partition(s)%s\n", s.Name, s.Events, usersLabel(s), s.Partitions, padLabel(s))
		if res.Error == "" {
			res = r.runScenario(ctx, s)
		}
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if res.Error != "" {
			fmt.Fprintf(r.cfg.Progress, "%s: failed: %s\n", s.Name, oneLine(res.Error))
		} else if red := res.Redelivery; red != nil {
			fmt.Fprintf(r.cfg.Progress, "%s: %d duplicates (%v after each disruption), %d lost, in %.1fs\n", s.Name, red.Duplicates, red.DuplicatesAfter, red.Lost, res.Seconds)
		} else {
			fmt.Fprintf(r.cfg.Progress, "%s: %.0f events/s in %.1fs (preload %.1fs)\n", s.Name, res.EventsPerSec, res.Seconds, res.PreloadSeconds)
		}
		rep.Results = append(rep.Results, res)
	}
	rep.finish()
	return rep, nil
}

// padFor is how many bytes a copy must add to each record to write as many
// bytes per record as the scenario named like did: the difference between
// its output and the raw ceiling's, per record, in the same run.
func padFor(results []Result, like string) (int, error) {
	var sized, raw *Result
	for i, r := range results {
		switch {
		case r.Scenario.Name == like:
			sized = &results[i]
		case r.Scenario.Workload == WorkloadCopy && !r.Scenario.Sized() && raw == nil:
			raw = &results[i]
		}
	}
	per := func(r *Result) float64 { return float64(r.OutputBytes) / float64(max(r.Output+r.DLQ, 1)) }
	switch {
	case sized == nil || sized.Error != "" || sized.Output == 0:
		return 0, fmt.Errorf("bench: no result of %s to size the copy like", like)
	case raw == nil || raw.Error != "" || raw.Output == 0:
		return 0, errors.New("bench: no result of the ceiling to size the copy from")
	}
	return max(int(per(sized)-per(raw)+0.5), 0), nil
}

func padLabel(s Scenario) string {
	if s.PadBytes == 0 {
		return ""
	}
	return fmt.Sprintf(", values padded by %d bytes (%s's size)", s.PadBytes, s.SizedLike)
}

// runScenario runs one scenario end to end and measures it.
func (r *Runner) runScenario(ctx context.Context, s Scenario) Result {
	res := Result{Scenario: s, Load1: loadAverage()}
	if err := r.measure(ctx, s, &res); err != nil {
		res.Error = err.Error()
	}
	return res
}

func (r *Runner) measure(ctx context.Context, s Scenario, res *Result) error {
	if s.Disruption != "" {
		return r.measureDisrupted(ctx, s, res)
	}
	b, err := devkafka.Start(devkafka.Config{Partitions: s.Partitions, Topics: []string{inputTopic, outputTopic, dlqTopic}})
	if err != nil {
		return err
	}
	defer b.Close()

	j := job{
		Scenario: s, Brokers: []string{b.Addr()},
		Input: inputTopic, Output: outputTopic, DLQ: dlqTopic, Group: groupID,
		Rate: float64(r.cfg.Rate), ProfileDir: r.cfg.ProfileDir,
		SessionTimeout: r.cfg.SessionTimeout, CommitInterval: r.cfg.CommitInterval,
		Compression: r.cfg.Compression,
	}
	var api *simAPI
	if s.Workload == WorkloadProcessor {
		users := s.Users // the population, or one user per event
		if s.Distinct() {
			users = s.Events
		}
		api, err = startAPI(apiSettings{rate: r.cfg.Rate, latency: r.cfg.Latency, jitter: r.cfg.Jitter, users: users})
		if err != nil {
			return err
		}
		defer api.Close()
		j.APIURL = api.URL()
	}

	t0 := time.Now()
	seq, err := preload(ctx, b.Addr(), inputTopic, s)
	if err != nil {
		return err
	}
	res.PreloadSeconds = time.Since(t0).Seconds()
	res.DistinctUsers = distinctUsers(seq)

	watch := watchOutput(b.Cluster(), int64(s.Events), outputTopic, dlqTopic)
	run, err := r.runChild(ctx, j, watch)
	if run != nil {
		res.CPUSeconds, res.PeakRSSBytes, res.InfraCPUSeconds = run.cpu, run.maxRSS, run.infraCPU
		res.WorkloadStats = run.stats
	}
	if err != nil {
		return err
	}
	arrivals, total := watch.snapshot()
	end, at := completion(arrivals, int64(s.Events), 0, 0.5, 0.99)
	if end.IsZero() {
		return fmt.Errorf("only %d of %d records reached the output topics", total, s.Events)
	}
	// Every event was preloaded before the workload started, so an event's
	// latency (from its timestamp or the start, whichever is later) is the
	// time from the start to its output record's arrival.
	res.Seconds = end.Sub(run.started).Seconds()
	res.EventsPerSec = float64(s.Events) / res.Seconds
	res.FirstOutputMS, res.LatencyP50MS, res.LatencyP99MS = ms(at[0].Sub(run.started)), ms(at[1].Sub(run.started)), ms(at[2].Sub(run.started))
	res.Output, _ = watch.counts(outputTopic)
	res.DLQ, res.OutputBytes = watch.counts(dlqTopic)
	res.OutputMBPerSec = float64(res.OutputBytes) / (1 << 20) / res.Seconds
	if api != nil {
		res.API = api.result(r.cfg.Rate, seq)
		// Once the last API call is answered every user is cached: the
		// rest of the run shows the cache-hit path alone (when it holds at
		// least minCachedShare of the events).
		if last := api.watch.span().lastEnd; !last.IsZero() && last.Before(end) {
			if n := arrivedAfter(arrivals, last); float64(n) >= minCachedShare*float64(s.Events) {
				res.CachedShare = float64(n) / float64(s.Events)
				res.CachedEventsPerSec = float64(n) / end.Sub(last).Seconds()
			}
		}
	}
	return nil
}

// minCachedShare is the least share of a run's events that must arrive
// after the last API call for the cache-hit rate to be reported.
const minCachedShare = 0.1

// stopGrace is how long a child may take to stop after being told to; the
// processor's own shutdown timeout is 30 s.
const stopGrace = 45 * time.Second

// childRun is what the parent learns about a finished child.
type childRun struct {
	started  time.Time
	cpu      float64
	maxRSS   int64
	infraCPU float64
	stats    json.RawMessage
	drains   int // "drain incomplete" warnings
	degraded int // "Redis unreachable" warnings
}

// runChild starts the workload in a child process, waits until every
// expected record has reached the output topics (or the timeout), stops the
// child and collects its resource usage.
func (r *Runner) runChild(ctx context.Context, j job, watch *outputWatch) (*childRun, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	infra0 := selfCPU()
	c, err := r.startChild(ctx, j)
	if err != nil {
		return nil, err
	}
	var runErr error
	select {
	case <-watch.Done():
	case <-c.exited:
		runErr = c.earlyError()
	case <-ctx.Done():
		_, got := watch.snapshot()
		elapsed := time.Since(c.started)
		runErr = fmt.Errorf("%d of %d records after %v (%.0f events/s): %w", got, j.Scenario.Events, elapsed.Round(time.Second), float64(got)/elapsed.Seconds(), ctx.Err())
	}
	run, err := c.stop()
	run.infraCPU = selfCPU() - infra0
	if runErr == nil {
		runErr = err
	}
	if runErr != nil && c.stderr.lastLine() != "" {
		runErr = fmt.Errorf("%w (child: %s)", runErr, c.stderr.lastLine())
	}
	return run, runErr
}

// arrivedAfter counts the records that arrived after t.
func arrivedAfter(arrivals []arrival, t time.Time) int64 {
	var n int64
	for _, a := range arrivals {
		if a.at.After(t) {
			n += a.n
		}
	}
	return n
}

func usersLabel(s Scenario) string {
	if s.Distinct() {
		return "a distinct user each"
	}
	if s.Uniform() {
		return fmt.Sprintf("%d users, an equal share each", s.Users)
	}
	return fmt.Sprintf("%d users (Zipf s=%.1f)", s.Users, s.ZipfS)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func seconds(tv syscall.Timeval) float64 { return float64(tv.Sec) + float64(tv.Usec)/1e6 }

// selfCPU is this process's CPU time so far (user + system), in seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return seconds(ru.Utime) + seconds(ru.Stime)
}

// tail keeps the last max bytes written to it.
type tail struct {
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = t.buf[over:]
	}
	return len(p), nil
}

// lastLine is the last non-empty line written.
func (t *tail) lastLine() string {
	lines := strings.Split(strings.TrimSpace(string(t.buf)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
