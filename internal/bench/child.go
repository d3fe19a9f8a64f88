package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"
)

// job is what the parent tells a child process to run, as one JSON line on
// the child's standard input. Closing that input stops the child.
type job struct {
	Scenario Scenario `json:"scenario"`
	Brokers  []string `json:"brokers"`
	Input    string   `json:"input"`
	Output   string   `json:"output"`
	DLQ      string   `json:"dlq"`
	Group    string   `json:"group"`
	// APIURL is the simulator's base URL (processor scenarios only).
	APIURL string `json:"api_url,omitempty"`
	// Rate is the API budget in calls per second the client must keep.
	Rate float64 `json:"rate,omitempty"`
	// ProfileDir, when set, receives <scenario>.cpu.pprof and
	// <scenario>.heap.pprof.
	ProfileDir string `json:"profile_dir,omitempty"`
	// SessionTimeout and CommitInterval, when set, override the
	// processor's defaults.
	SessionTimeout time.Duration `json:"session_timeout,omitempty"`
	CommitInterval time.Duration `json:"commit_interval,omitempty"`
	// Compression, when set, is the output codec (Config.Compression).
	Compression string `json:"compression,omitempty"`
	// RedisURL, when set, gives the processor the shared budget and cache
	// in that Redis, as run --redis-url does; Rate is then the app's.
	RedisURL string `json:"redis_url,omitempty"`
	// Replay runs a replay of all of Input (Role Replay, capped at Cap
	// calls/s) instead of joining Group; it needs RedisURL.
	Replay bool    `json:"replay,omitempty"`
	Cap    float64 `json:"cap,omitempty"`
}

// childMessage is one JSON line a child writes on its standard output.
type childMessage struct {
	// Started is when the workload started (Unix nanoseconds).
	Started int64 `json:"started,omitempty"`
	// Done marks the last message; Error is the workload's error, if any.
	Done  bool   `json:"done,omitempty"`
	Error string `json:"error,omitempty"`
	// Stats is the workload's own account of the run.
	Stats json.RawMessage `json:"stats,omitempty"`
	// PeakRSS is the child's own peak resident set size in bytes (VmHWM),
	// zero where unknown. The parent cannot use the child's rusage for
	// this: on Linux a child's ru_maxrss starts from the parent's peak.
	PeakRSS int64 `json:"peak_rss,omitempty"`
}

// workloads maps a workload to the function a child runs. Each returns when
// ctx is canceled, with its statistics (JSON-serialisable) or an error.
var workloads = map[Workload]func(ctx context.Context, j job) (any, error){
	WorkloadCopy:      runCopy,
	WorkloadProcessor: runProcessor,
}

// ServeChild is the child side of a Runner: it reads one job from in, runs
// its workload until in is closed (or ctx ends) and reports on out. The
// program that builds the Runner's child command must call it when started
// as a child (the enricher command uses a hidden flag of `bench`).
func ServeChild(ctx context.Context, in io.Reader, out io.Writer) error {
	r := bufio.NewReader(in)
	line, err := r.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("bench child: read job: %w", err)
	}
	var j job
	if err := json.Unmarshal(line, &j); err != nil {
		return fmt.Errorf("bench child: decode job: %w", err)
	}
	run, ok := workloads[j.Scenario.Workload]
	if !ok {
		return fmt.Errorf("bench child: unknown workload %q", j.Scenario.Workload)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { // owned: ends when in is closed, which the parent always does
		_, _ = io.Copy(io.Discard, r)
		cancel()
	}()

	stopProfile, err := startProfile(j)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(out)
	if err := enc.Encode(childMessage{Started: time.Now().UnixNano()}); err != nil {
		return fmt.Errorf("bench child: report start: %w", err)
	}
	stats, runErr := run(ctx, j)
	if err := stopProfile(); err != nil && runErr == nil {
		runErr = err
	}
	msg := childMessage{Done: true, PeakRSS: peakRSS()}
	if runErr != nil {
		msg.Error = runErr.Error()
	}
	if stats != nil {
		if msg.Stats, err = json.Marshal(stats); err != nil {
			return fmt.Errorf("bench child: encode stats: %w", err)
		}
	}
	if err := enc.Encode(msg); err != nil {
		return fmt.Errorf("bench child: report result: %w", err)
	}
	return nil
}

// peakRSS is this process's peak resident set size (VmHWM in
// /proc/self/status) in bytes, or 0 where unknown.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// startProfile starts a CPU profile when the job asks for one; the returned
// func stops it and writes a heap profile.
func startProfile(j job) (stop func() error, err error) {
	if j.ProfileDir == "" {
		return func() error { return nil }, nil
	}
	base := filepath.Join(j.ProfileDir, j.Scenario.Name)
	cpu, err := os.Create(base + ".cpu.pprof")
	if err != nil {
		return nil, fmt.Errorf("bench child: %w", err)
	}
	if err := pprof.StartCPUProfile(cpu); err != nil {
		cpu.Close()
		return nil, fmt.Errorf("bench child: start CPU profile: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		err := cpu.Close()
		heap, herr := os.Create(base + ".heap.pprof")
		if herr != nil {
			return errors.Join(err, herr)
		}
		runtime.GC()
		return errors.Join(err, pprof.WriteHeapProfile(heap), heap.Close())
	}, nil
}
