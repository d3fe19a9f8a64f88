package bench

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

func TestReportTargets(t *testing.T) {
	res := func(name string, eps float64, mod func(*Result)) Result {
		r := Result{Scenario: Scenario{Name: name, Workload: WorkloadProcessor, Partitions: 8}, EventsPerSec: eps}
		if strings.HasPrefix(name, "ceiling") {
			r.Scenario.Workload = WorkloadCopy
		}
		if mod != nil {
			mod(&r)
		}
		return r
	}
	api := func(rate float64, freq, maxPS int, ideal float64) func(*Result) {
		return func(r *Result) {
			r.API = &APIResult{Budget: 200, CallsPerSec: rate, BudgetRatio: rate / 200, FrequencyErrors: freq, MaxPerSecond: maxPS, IdealSeconds: ideal}
		}
	}
	rep := &Report{Results: []Result{
		res("ceiling", 100_000, nil),
		res("warm", 85_000, func(r *Result) { r.PeakRSSBytes = 300 << 20 }),
		res("cold", 190, api(195, 0, 198, 30)),
		res("skewed", 900, func(r *Result) { api(198, 0, 200, 100)(r); r.Seconds = 115; r.PeakRSSBytes = 350 << 20 }),
		res("warm-1p", 79_000, nil),
		res("cold-1p", 188, api(190, 2, 203, 30)),
		res("ceiling-end", 80_000, nil),
	}}
	rep.finish()
	want := map[string]bool{
		"warm throughput":                        true,  // 85% >= 80%
		"warm peak RSS":                          false, // 300 MiB > 256
		"cold API rate":                          true,  // 97.5%
		"cold frequency errors":                  true,
		"cold max calls in a trailing second":    true,
		"cold-1p API rate":                       false, // 95%
		"cold-1p frequency errors":               false,
		"cold-1p max calls in a trailing second": false,
		"skewed duration":                        false, // +15%
		"skewed peak RSS":                        false, // 350 MiB > 300
		"warm one partition":                     false, // -7%
		"cold one partition":                     true,  // -1%
	}
	got := map[string]bool{}
	for _, tg := range rep.Targets {
		got[tg.Name] = tg.Met
	}
	for name, met := range want {
		if g, ok := got[name]; !ok || g != met {
			t.Errorf("target %q: met=%v (present %v), want met=%v", name, g, ok, met)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got targets %v, want %d", got, len(want))
	}
	if r := rep.Results[1].CeilingRatio; r != 0.85 {
		t.Errorf("warm ceiling ratio = %v, want 0.85 (to the faster ceiling run)", r)
	}
	if rep.CeilingEventsPerSec != 100_000 || math.Abs(rep.CeilingSpread-0.2) > 1e-9 {
		t.Errorf("ceiling %v events/s, spread %v; want 100000 and 0.2", rep.CeilingEventsPerSec, rep.CeilingSpread)
	}

	var b bytes.Buffer
	if err := rep.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"| warm ", "85.0%", "| cold-1p ", "missed", "met", "20.0% slower"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, b.String())
		}
	}
}

// TestReportSizedCeiling: with ceiling-sized in the run, ratios are to it
// (equal bytes per record), and warm's target is 70% of it.
func TestReportSizedCeiling(t *testing.T) {
	rep := &Report{Results: []Result{
		{Scenario: Scenario{Name: "ceiling", Workload: WorkloadCopy}, EventsPerSec: 300_000},
		{Scenario: Scenario{Name: "warm", Workload: WorkloadProcessor}, EventsPerSec: 60_000},
		{Scenario: Scenario{Name: "ceiling-sized", Workload: WorkloadCopy, SizedLike: "warm", PadBytes: 15_000}, EventsPerSec: 80_000},
		{Scenario: Scenario{Name: "ceiling-end", Workload: WorkloadCopy}, EventsPerSec: 270_000},
	}}
	rep.finish()
	w := rep.Results[1]
	if w.CeilingRatio != 0.75 || w.RawCeilingRatio != 0.2 {
		t.Errorf("warm ratios %v (sized), %v (raw); want 0.75 and 0.2", w.CeilingRatio, w.RawCeilingRatio)
	}
	if math.Abs(rep.CeilingSpread-0.1) > 1e-9 {
		t.Errorf("spread %v over the raw ceilings, want 0.1", rep.CeilingSpread)
	}
	for _, tg := range rep.Targets {
		if tg.Name == "warm throughput" && (!tg.Met || !strings.Contains(tg.Goal, "70%")) {
			t.Errorf("warm throughput %+v, want met against 70%% of the sized ceiling", tg)
		}
	}
}

func TestPadFor(t *testing.T) {
	results := []Result{
		{Scenario: Scenario{Name: "ceiling", Workload: WorkloadCopy}, Output: 1000, OutputBytes: 200_000},
		{Scenario: Scenario{Name: "warm", Workload: WorkloadProcessor}, Output: 990, DLQ: 10, OutputBytes: 15_200_000},
	}
	if n, err := padFor(results, "warm"); err != nil || n != 15_000 {
		t.Fatalf("pad %d, %v; want 15000 (15,200 - 200 bytes per record)", n, err)
	}
	results[1].Error = "failed"
	if _, err := padFor(results, "warm"); err == nil {
		t.Fatal("padded like a failed scenario")
	}
}

func TestReportWithoutCeiling(t *testing.T) {
	rep := &Report{Results: []Result{
		{Scenario: Scenario{Name: "ceiling", Workload: WorkloadCopy}, Error: "broker failed"},
		{Scenario: Scenario{Name: "warm", Workload: WorkloadProcessor}, EventsPerSec: 1000},
	}}
	rep.finish()
	if rep.Results[1].CeilingRatio != 0 {
		t.Errorf("ratio %v against a failed ceiling, want none", rep.Results[1].CeilingRatio)
	}
	for _, tg := range rep.Targets {
		if tg.Name == "warm throughput" {
			t.Errorf("warm throughput judged without a ceiling: %+v", tg)
		}
	}
	if rep.Failed() != 1 {
		t.Errorf("Failed() = %d, want 1", rep.Failed())
	}
}
