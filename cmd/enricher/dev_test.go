package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tencentchat-enricher/enricher/internal/opshttp"
	"github.com/tencentchat-enricher/enricher/internal/testsupport"
)

var summaryRE = regexp.MustCompile(`\| in (\d+) \| out (\d+) \| dlq (\d+) \|`)

// runDevUntil runs `enricher dev` in-process until its summary shows at
// least minOut enriched records and a sample, then interrupts it the way
// Ctrl-C does and returns the exit code and stdout.
func runDevUntil(t *testing.T, dataDir string, minOut int, extra ...string) (int, string) {
	t.Helper()
	return runDevUntilLine(t, dataDir, func(line string) bool {
		m := summaryRE.FindStringSubmatch(line)
		n := 0
		if m != nil {
			n, _ = strconv.Atoi(m[2])
		}
		return m != nil && n >= minOut
	}, extra...)
}

// runDevUntilLine runs `enricher dev` until a summary line satisfies done
// and a sample was printed, then interrupts it as Ctrl-C does.
func runDevUntilLine(t *testing.T, dataDir string, done func(line string) bool, extra ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb testsupport.SyncBuffer
	exited := make(chan int, 1)
	go func() {
		exited <- run(ctx, append([]string{"enricher", "dev", "--data-dir", dataDir, "--kafka-addr", "127.0.0.1:0",
			"--http-addr", "", "--rate", "100", "--summary-interval", "200ms", "--sim-latency", "1ms", "--sim-jitter", "1ms",
			"--malformed-share", "0.05", "--partitions", "3", "--log-level", "warn"}, extra...), &out, &errb)
	}()
	deadline := time.After(60 * time.Second)
	for reached := false; !reached; {
		select {
		case code := <-exited:
			t.Fatalf("dev exited early with %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
		case <-deadline:
			t.Fatalf("no enriched records within 60s\nstdout:\n%s\nstderr:\n%s", out.String(), errb.String())
		case <-time.After(50 * time.Millisecond):
		}
		s := out.String()
		for line := range strings.Lines(s) {
			if done(line) && strings.Contains(s, "sample: ") {
				reached = true
			}
		}
	}
	cancel()
	select {
	case code := <-exited:
		return code, out.String()
	case <-time.After(60 * time.Second):
		t.Fatal("dev did not stop within 60s of the interrupt")
	}
	return -1, ""
}

// TestDevStack runs the whole dev stack twice on one data directory: the
// first run enriches records and stops cleanly, the second reuses the data.
func TestDevStack(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole stack")
	}
	clearEnv(t)
	for _, k := range []string{"OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"} {
		t.Setenv(k, "")
	}
	dir := t.TempDir()
	existingRE := regexp.MustCompile(`(\d+) events already in user-events`)
	stoppedRE := regexp.MustCompile(`stopped; in (\d+), out (\d+), dlq (\d+)`)
	var firstTotal int
	for i := range 2 {
		code, out := runDevUntil(t, dir, 20)
		if code != 0 {
			t.Fatalf("run %d: exit code %d\n%s", i, code, out)
		}
		if !strings.Contains(out, `"enrichment":{`) {
			t.Errorf("run %d: no enriched sample:\n%s", i, out)
		}
		ex, st := existingRE.FindStringSubmatch(out), stoppedRE.FindStringSubmatch(out)
		if ex == nil || st == nil {
			t.Fatalf("run %d: banner or final line missing:\n%s", i, out)
		}
		existing, _ := strconv.Atoi(ex[1])
		in, _ := strconv.Atoi(st[1])
		if i == 0 {
			firstTotal = in
			if existing != 0 {
				t.Errorf("fresh data dir has %d events", existing)
			}
		} else if existing < firstTotal {
			// The data of the first run is still there.
			t.Errorf("second run sees %d events, the first consumed %d", existing, firstTotal)
		}
	}
}

// TestDevInstances runs two processors in one group sharing an embedded
// Redis: both get partitions and enrich records, and the summary adds
// them up.
func TestDevInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole stack")
	}
	clearEnv(t)
	for _, k := range []string{"OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"} {
		t.Setenv(k, "")
	}
	perRE := regexp.MustCompile(`\| out (\d+) \| .*\| out per instance (\d+)/(\d+)`)
	both := func(line string) bool {
		m := perRE.FindStringSubmatch(line)
		if m == nil {
			return false
		}
		total, _ := strconv.Atoi(m[1])
		a, _ := strconv.Atoi(m[2])
		b, _ := strconv.Atoi(m[3])
		if a+b != total {
			t.Errorf("summary total %d is not the sum of %d and %d: %s", total, a, b, line)
		}
		return a >= 5 && b >= 5
	}
	code, out := runDevUntilLine(t, t.TempDir(), both, "--instances", "2", "--partitions", "4")
	if code != 0 {
		t.Fatalf("exit code %d\n%s", code, out)
	}
	if !strings.Contains(out, "2 processors in group enricher sharing one API budget and cache in embedded redis 127.0.0.1:") {
		t.Errorf("banner does not announce the shared instances:\n%s", out)
	}
	if !regexp.MustCompile(`stopped; in \d+, out \d+, dlq \d+ \| out per instance \d+/\d+`).MatchString(out) {
		t.Errorf("final line does not cover both instances:\n%s", out)
	}
}

func TestSampleLine(t *testing.T) {
	rec := `{"event":{"user_id":"u"},"enrichment":{"status":"ok","official_accounts":[{"official_account":"a"},{"official_account":"b"},{"official_account":"c"}],"total_count":3}}`
	got := sampleLine([]byte(rec), 2)
	if !strings.Contains(got, `"official_accounts":[{"official_account":"a"},{"official_account":"b"}]`) ||
		strings.Contains(got, `"c"`) || !strings.HasSuffix(got, "(official_accounts: first 2 of 3 shown)") {
		t.Errorf("cut record: %s", got)
	}
	for _, short := range []string{`{"enrichment":{"official_accounts":[]}}`, `not json`, `{"enrichment":3}`} {
		if got := sampleLine([]byte(short), 2); got != short {
			t.Errorf("%s changed to %s", short, got)
		}
	}
}

// FuzzSampleLine: any record bytes give a line, and records that are not
// cut come back unchanged.
func FuzzSampleLine(f *testing.F) {
	f.Add([]byte(`{"enrichment":{"official_accounts":[1,2,3,4]}}`))
	f.Add([]byte(`{"enrichment":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got := sampleLine(b, 2)
		if !strings.Contains(got, "first 2 of") && got != string(b) {
			t.Errorf("uncut record changed: %q -> %q", b, got)
		}
	})
}

// devProcess is `enricher dev` running in-process.
type devProcess struct {
	out, errb testsupport.SyncBuffer
	cancel    context.CancelFunc
	exited    chan int
	scanned   int // bytes of out already matched by waitLine
}

func startDev(t *testing.T, dataDir string, extra ...string) *devProcess {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &devProcess{cancel: cancel, exited: make(chan int, 1)}
	go func() {
		d.exited <- run(ctx, append([]string{"enricher", "dev", "--data-dir", dataDir, "--kafka-addr", "127.0.0.1:0",
			"--http-addr", "", "--rate", "100", "--summary-interval", "200ms", "--sim-latency", "1ms", "--sim-jitter", "1ms",
			"--partitions", "3", "--log-level", "error", "--samples", "0"}, extra...), &d.out, &d.errb)
	}()
	t.Cleanup(func() {
		cancel()
		<-d.exited
	})
	return d
}

// waitLine waits for a line printed after the last matched one that
// satisfies ok, and returns it.
func (d *devProcess) waitLine(t *testing.T, what string, ok func(string) bool) string {
	t.Helper()
	var found string
	testsupport.WaitFor(t, 60*time.Second, what, func() bool {
		select {
		case code := <-d.exited:
			d.exited <- code
			t.Fatalf("dev exited with %d while waiting for %s\nstdout:\n%s\nstderr:\n%s", code, what, d.out.String(), d.errb.String())
		default:
		}
		s := d.out.String()
		end := strings.LastIndexByte(s, '\n') + 1
		for line := range strings.Lines(s[d.scanned:end]) {
			d.scanned += len(line)
			if ok(line) {
				found = line
				return true
			}
		}
		return false
	})
	return found
}

// stop interrupts dev as Ctrl-C does and returns its exit code.
func (d *devProcess) stop(t *testing.T) int {
	t.Helper()
	d.cancel()
	select {
	case code := <-d.exited:
		d.exited <- code
		return code
	case <-time.After(60 * time.Second):
		t.Fatal("dev did not stop within 60s of the interrupt")
	}
	return -1
}

// TestDevConsoleSpansAndHealth: with OTEL_TRACES_EXPORTER=console the spans
// go to the file the header names, not to stdout; the summary line shows
// readiness and the breaker, and follows an API outage and its end.
func TestDevConsoleSpansAndHealth(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole stack")
	}
	clearEnv(t)
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_SAMPLER"} {
		t.Setenv(k, "")
	}
	t.Setenv("OTEL_TRACES_EXPORTER", "console")
	dir := t.TempDir()
	d := startDev(t, dir)

	spansRE := regexp.MustCompile(`^  spans \(OTEL_TRACES_EXPORTER=console\): (\S+), one JSON object per span`)
	m := spansRE.FindStringSubmatch(d.waitLine(t, "the spans file in the header", spansRE.MatchString))
	if want := filepath.Join(dir, devSpansFile); m[1] != want {
		t.Errorf("spans file %s, want %s", m[1], want)
	}
	sim := regexp.MustCompile(`simulator (http://127\.0\.0\.1:\d+)`).FindStringSubmatch(d.out.String())
	if sim == nil {
		t.Fatalf("no simulator URL in the header:\n%s", d.out.String())
	}
	healthy := func(line string) bool {
		m := summaryRE.FindStringSubmatch(line)
		n := 0
		if m != nil {
			n, _ = strconv.Atoi(m[2])
		}
		return n >= 10 && strings.HasSuffix(strings.TrimSpace(line), "| ready | breaker closed")
	}
	d.waitLine(t, "a ready summary with a closed breaker", healthy)

	// An outage: the breaker opens and the process is not ready, saying why.
	setFaults(t, sim[1], `{"OutageFor":"5m"}`)
	line := d.waitLine(t, "a summary with the breaker open", func(l string) bool { return strings.Contains(l, "| breaker open") })
	if !strings.Contains(line, "| not ready (") || !strings.Contains(line, "api-breaker") {
		t.Errorf("breaker open but the line does not say not ready (api-breaker): %s", line)
	}
	setFaults(t, sim[1], `{"OutageFor":"1ns"}`) // ends it
	d.waitLine(t, "ready again after the outage", healthy)

	if code := d.stop(t); code != 0 {
		t.Fatalf("exit %d: %s", code, d.errb.String())
	}
	out := d.out.String()
	if strings.Contains(out, `"SpanContext"`) || strings.Contains(out, `"TraceID"`) {
		t.Errorf("spans on stdout:\n%.2000s", out)
	}
	f, err := os.Open(m[1])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names := map[string]int{}
	dec := json.NewDecoder(f)
	for {
		var span struct{ Name string }
		if err := dec.Decode(&span); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("%s: %v", m[1], err)
		}
		names[span.Name]++
	}
	if names["process user-events"] == 0 || names["send user-events-enriched"] == 0 {
		t.Errorf("spans file holds %v, want the records' consumer and producer spans", names)
	}
}

// setFaults posts a faults JSON to the simulator at base.
func setFaults(t *testing.T, base, body string) {
	t.Helper()
	resp, err := http.Post(base+"/faults", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST /faults %s: %d %s", body, resp.StatusCode, b)
	}
}

func TestReadinessText(t *testing.T) {
	ok := opshttp.CheckFunc(func(context.Context) error { return nil })
	fail := opshttp.CheckFunc(func(context.Context) error { return errors.New("down") })
	degraded := opshttp.CheckFunc(func(context.Context) error { return opshttp.Degraded(errors.New("redis")) })
	slow := opshttp.CheckFunc(func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	tests := []struct {
		checks map[string]opshttp.Check
		want   string
	}{
		{nil, "ready"},
		{map[string]opshttp.Check{"kafka": ok, "api-breaker": ok}, "ready"},
		{map[string]opshttp.Check{"kafka": ok, "shared-budget": degraded}, "ready, degraded (shared-budget)"},
		{map[string]opshttp.Check{"kafka": fail, "api-breaker": fail, "shared-budget": degraded}, "not ready (api-breaker, kafka)"},
		{map[string]opshttp.Check{"kafka": slow}, "not ready (kafka)"},
	}
	for _, tt := range tests {
		if got := readinessText(context.Background(), tt.checks, 10*time.Millisecond); got != tt.want {
			t.Errorf("%v: %q, want %q", slices.Sorted(maps.Keys(tt.checks)), got, tt.want)
		}
	}
}
