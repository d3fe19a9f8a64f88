package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// childEnv marks a run of this test binary as a benchmark child.
const childEnv = "BENCH_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		if err := ServeChild(context.Background(), os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// testChild re-executes this test binary as a benchmark child.
func testChild(ctx context.Context) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	return cmd
}

// TestRunTiny runs the harness at a tiny scale, end to end through child
// processes, and checks that every measurement is present and consistent.
// It asserts no timings.
func TestRunTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("starts brokers and child processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r, err := New(Config{Scenarios: []string{"ceiling"}, Scale: 0.002, Child: testChild, Timeout: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := r.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 1 {
		t.Fatalf("got %d results, want 1", len(rep.Results))
	}
	res := rep.Results[0]
	if res.Error != "" {
		t.Fatalf("ceiling failed: %s", res.Error)
	}
	if res.Scenario.Events != 2000 {
		t.Errorf("events = %d, want 2000 at scale 0.002", res.Scenario.Events)
	}
	if res.Output != int64(res.Scenario.Events) || res.DLQ != 0 {
		t.Errorf("output %d, dlq %d; want %d copies and no dead letters", res.Output, res.DLQ, res.Scenario.Events)
	}
	var stats copyStats
	if err := json.Unmarshal(res.WorkloadStats, &stats); err != nil {
		t.Fatalf("copy stats %s: %v", res.WorkloadStats, err)
	}
	if stats.Produced != int64(res.Scenario.Events) {
		t.Errorf("child acknowledged %d copies, want %d", stats.Produced, res.Scenario.Events)
	}
	if res.Seconds <= 0 || res.EventsPerSec <= 0 {
		t.Errorf("seconds %v, events/s %v: want positive", res.Seconds, res.EventsPerSec)
	}
	if !(res.FirstOutputMS <= res.LatencyP50MS && res.LatencyP50MS <= res.LatencyP99MS && res.LatencyP99MS <= res.Seconds*1000+1e-6) {
		t.Errorf("latencies out of order: first %v, p50 %v, p99 %v, total %v ms", res.FirstOutputMS, res.LatencyP50MS, res.LatencyP99MS, res.Seconds*1000)
	}
	if res.CPUSeconds <= 0 || res.PeakRSSBytes <= 0 {
		t.Errorf("child CPU %v s, peak RSS %d: want both measured", res.CPUSeconds, res.PeakRSSBytes)
	}

	var table, js bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "| ceiling") {
		t.Errorf("table has no ceiling row:\n%s", table.String())
	}
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatalf("report JSON does not decode: %v", err)
	}
	if len(back.Results) != 1 || back.Results[0].Output != res.Output {
		t.Errorf("JSON round trip lost the result: %+v", back.Results)
	}
}

// TestRunTinyProcessor runs the cold scenario (and the ceiling around it) at
// a tiny scale through the processor, the client and the simulator, and
// checks the accounting. It asserts no timings.
func TestRunTinyProcessor(t *testing.T) {
	if testing.Short() {
		t.Skip("starts brokers, a simulator and child processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r, err := New(Config{Scenarios: []string{"cold"}, Scale: 0.005, Child: testChild, Timeout: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := r.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, res := range rep.Results {
		names = append(names, res.Scenario.Name)
	}
	if !slices.Equal(names, []string{"ceiling", "cold", "ceiling-end"}) {
		t.Fatalf("ran %v, want the cold scenario between two ceiling runs", names)
	}
	res := rep.Results[1]
	if res.Error != "" {
		t.Fatalf("cold failed: %s", res.Error)
	}
	n := int64(res.Scenario.Events)
	if res.Output+res.DLQ != n || res.Output == 0 {
		t.Errorf("output %d + dlq %d, want %d enriched records", res.Output, res.DLQ, n)
	}
	a := res.API
	if a == nil {
		t.Fatal("no API result")
	}
	if a.Calls < res.DistinctUsers {
		t.Errorf("%d API calls for %d distinct uncached users", a.Calls, res.DistinctUsers)
	}
	if a.MaxPerSecond <= 0 || a.MaxPerSecond > a.Calls {
		t.Errorf("max per second %d of %d calls", a.MaxPerSecond, a.Calls)
	}
	var stats struct{ In, Out, DLQ int64 }
	if err := json.Unmarshal(res.WorkloadStats, &stats); err != nil {
		t.Fatalf("processor stats %s: %v", res.WorkloadStats, err)
	}
	if stats.In != n || stats.Out+stats.DLQ != n {
		t.Errorf("processor counted in %d, out %d, dlq %d; want %d each way", stats.In, stats.Out, stats.DLQ, n)
	}
	if res.CeilingRatio <= 0 {
		t.Errorf("cold has no ratio to the ceiling")
	}
}

// TestRunTinyRedelivery runs the disrupted scenarios at a tiny scale, with
// a short session timeout so that a killed processor's partitions move
// quickly, and checks the copy accounting: every input record arrived, the
// duplicates add up, each disruption has its count, the processes are
// counted. It asserts no timings and no duplicate counts.
func TestRunTinyRedelivery(t *testing.T) {
	if testing.Short() {
		t.Skip("starts brokers, a simulator and child processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r, err := New(Config{Scenarios: []string{"redelivery"}, Scale: 0.05, Partitions: 4, Child: testChild, Timeout: 2 * time.Minute,
		SessionTimeout: 2 * time.Second, CommitInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := r.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if names := Names(scenariosOf(rep)); !slices.Equal(names, []string{"kill-restart", "broker-restart", "scale-out"}) {
		t.Fatalf("ran %v, want the three redelivery scenarios and no ceiling", names)
	}
	for _, res := range rep.Results {
		sc := res.Scenario
		if res.Error != "" {
			t.Errorf("%s failed: %s", sc.Name, res.Error)
			continue
		}
		red := res.Redelivery
		if red == nil {
			t.Errorf("%s: no redelivery result", sc.Name)
			continue
		}
		n := int64(sc.Events)
		if red.Distinct != n || red.Lost != 0 {
			t.Errorf("%s: %d distinct input records arrived, %d lost; want %d and 0", sc.Name, red.Distinct, red.Lost, n)
		}
		if red.Copies != red.Distinct+red.Duplicates || red.Copies != res.Output+res.DLQ {
			t.Errorf("%s: %d copies, %d distinct + %d duplicates, %d output + %d DLQ records: do not add up", sc.Name, red.Copies, red.Distinct, red.Duplicates, res.Output, res.DLQ)
		}
		sum := red.DuplicatesBefore
		for _, d := range red.DuplicatesAfter {
			sum += d
		}
		if sum != red.Duplicates {
			t.Errorf("%s: duplicates by phase %d + %v, want %d in all", sc.Name, red.DuplicatesBefore, red.DuplicatesAfter, red.Duplicates)
		}
		var wantPhases, wantProcs int
		switch sc.Disruption {
		case DisruptKill:
			wantPhases, wantProcs = sc.Kills, sc.Kills+1
		case DisruptBroker:
			wantPhases, wantProcs = 1, 1
		case DisruptScaleOut:
			wantPhases, wantProcs = 0, sc.Instances
		}
		if len(red.DuplicatesAfter) != wantPhases || red.Processes != wantProcs {
			t.Errorf("%s: %d disruptions counted over %d processes, want %d over %d", sc.Name, len(red.DuplicatesAfter), red.Processes, wantPhases, wantProcs)
		}
		if res.Seconds <= 0 || res.API == nil || res.API.Calls < res.DistinctUsers {
			t.Errorf("%s: %v s, API %+v for %d users", sc.Name, res.Seconds, res.API, res.DistinctUsers)
		}
		t.Logf("%s: %d duplicates %v, %d skipped as published, %d incomplete drains, %.1fs", sc.Name, red.Duplicates, red.DuplicatesAfter, red.SkippedPublished, red.IncompleteDrains, res.Seconds)
	}
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "| kill-restart") || strings.Contains(table.String(), "events/s |of ceiling") {
		t.Errorf("want the redelivery table alone:\n%s", table.String())
	}
}

func scenariosOf(rep *Report) []Scenario {
	var out []Scenario
	for _, r := range rep.Results {
		out = append(out, r.Scenario)
	}
	return out
}

// TestRunTinyShared runs the shared scenarios at a tiny scale, every
// processor sharing one budget and cache in a redis-server of the run's
// own, and checks the accounting: nothing lost, the processes counted,
// each call attributed to live or replay, the outage seen by the
// processes. It asserts no timings and no call rates. It skips without
// redis-server, unless CI is set.
func TestRunTinyShared(t *testing.T) {
	if testing.Short() {
		t.Skip("starts brokers, a simulator, redis-server and child processes")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis-server not on PATH and CI is set: %v", err)
		}
		t.Skipf("redis-server not on PATH (install the redis-server package): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r, err := New(Config{Scenarios: []string{"shared"}, Scale: 0.05, Partitions: 4, Child: testChild, Timeout: 2 * time.Minute,
		SessionTimeout: 2 * time.Second, CommitInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := r.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if names := Names(scenariosOf(rep)); !slices.Equal(names, []string{"shared-scale-out", "shared-kill-restart", "shared-replay", "shared-redis-outage"}) {
		t.Fatalf("ran %v, want the four shared scenarios and no ceiling", names)
	}
	for _, res := range rep.Results {
		sc := res.Scenario
		if res.Error != "" {
			t.Errorf("%s failed: %s", sc.Name, res.Error)
			continue
		}
		red, sr, a := res.Redelivery, res.Shared, res.API
		if red == nil || sr == nil || a == nil {
			t.Errorf("%s: redelivery %v, shared %v, API %v: want all three", sc.Name, red, sr, a)
			continue
		}
		n := int64(sc.Events + sc.ReplayEvents)
		if red.Distinct != n || red.Lost != 0 {
			t.Errorf("%s: %d distinct input records arrived, %d lost; want %d and 0", sc.Name, red.Distinct, red.Lost, n)
		}
		if a.Calls != res.DistinctUsers+a.ExtraPages+a.RepeatCalls || sr.CallsPerNeeded <= 0 {
			t.Errorf("%s: %d API calls (%.3f per needed), want %d users + %d extra pages + %d repeated", sc.Name, a.Calls, sr.CallsPerNeeded, res.DistinctUsers, a.ExtraPages, a.RepeatCalls)
		}
		wantProcs := sc.Instances
		switch sc.Disruption {
		case DisruptKill:
			wantProcs = sc.Instances + sc.Kills
		case DisruptReplay:
			wantProcs = 2 // live and the replay
			if res.DistinctUsers != sc.Events+sc.ReplayEvents {
				t.Errorf("%s: %d distinct users, want %d live + %d replay", sc.Name, res.DistinctUsers, sc.Events, sc.ReplayEvents)
			}
			if sr.LiveCalls < sc.Events || sr.ReplayCalls < sc.ReplayEvents || sr.LiveCalls+sr.ReplayCalls != a.Calls {
				t.Errorf("%s: %d live + %d replay calls of %d, want at least one per user of each role and every call counted", sc.Name, sr.LiveCalls, sr.ReplayCalls, a.Calls)
			}
		case DisruptRedis:
			if sr.RedisDownSeconds < sc.RedisDown.Seconds() || sr.DegradedWarnings == 0 {
				t.Errorf("%s: Redis down %.1fs (want at least %v), %d degraded warnings (want some)", sc.Name, sr.RedisDownSeconds, sc.RedisDown, sr.DegradedWarnings)
			}
		}
		if red.Processes != wantProcs {
			t.Errorf("%s: %d processes, want %d", sc.Name, red.Processes, wantProcs)
		}
		t.Logf("%s: %d calls (%.3f per needed), max/s %d, %d freq errors, %+v, %.1fs", sc.Name, a.Calls, sr.CallsPerNeeded, a.MaxPerSecond, a.FrequencyErrors, *sr, res.Seconds)
	}
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "| shared scenario") || strings.Contains(table.String(), "per disruption") {
		t.Errorf("want the shared table alone:\n%s", table.String())
	}
}
