package main

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tencentchat-enricher/enricher/client/simulator"
	"github.com/tencentchat-enricher/enricher/internal/devkafka"
	"github.com/tencentchat-enricher/enricher/internal/testsupport"
	"github.com/tencentchat-enricher/enricher/processor"
)

// replayDay is the timestamp of the first event of a replay stack.
var replayDay = time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)

// replayStack is a broker whose input topic holds events one minute apart
// from replayDay (every 10th malformed), and a simulator.
type replayStack struct {
	broker *devkafka.Broker
	sim    *simulator.Server
	events []kafka.Message
}

func newReplayStack(t *testing.T, n int) *replayStack {
	t.Helper()
	b, sim := startBrokerAndSimulator(t, 2, defaultInputTopic, defaultReplayOutputTopic, defaultReplayDLQTopic)
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		msgs[i] = kafka.Message{
			Key:   []byte(strconv.Itoa(i % 7)),
			Value: fmt.Appendf(nil, `{"user_id":%q,"seq":%d}`, simulator.UserID(i), i),
			Time:  replayDay.Add(time.Duration(i) * time.Minute),
		}
		if i%10 == 9 {
			msgs[i].Value = []byte("not json")
		}
	}
	w := &kafka.Writer{Addr: kafka.TCP(b.Addr()), Topic: defaultInputTopic, Balancer: &kafka.Hash{}, BatchTimeout: time.Millisecond}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	return &replayStack{broker: b, sim: sim, events: msgs}
}

// env configures the replay from the environment the way a job is.
func (s *replayStack) env(t *testing.T) {
	t.Helper()
	clearEnv(t)
	t.Setenv("ENRICHER_BROKERS", s.broker.Addr())
	t.Setenv("ENRICHER_IM_BASE_URL", s.sim.URL())
	t.Setenv("ENRICHER_IM_SDKAPPID", "1400000001")
	t.Setenv("ENRICHER_IM_ADMIN", "administrator")
	t.Setenv(envSecretKey, testSecret)
	t.Setenv("OTEL_TRACES_EXPORTER", "")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
}

// summaryNumber returns the number after label in the summary.
func summaryNumber(t *testing.T, out, pattern string) int {
	t.Helper()
	m := regexp.MustCompile(pattern).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("summary has no %q:\n%s", pattern, out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestReplayCommand: a time-range replay exits 0 with a summary whose
// counts are the records in range; run again, it resumes a complete
// checkpoint and publishes nothing.
func TestReplayCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a replay")
	}
	s := newReplayStack(t, 120)
	s.env(t)
	from, to := replayDay.Add(30*time.Minute), replayDay.Add(90*time.Minute)
	wantOut, wantDLQ := 0, 0
	for i, m := range s.events {
		if !m.Time.Before(from) && m.Time.Before(to) {
			if i%10 == 9 {
				wantDLQ++
			} else {
				wantOut++
			}
		}
	}
	args := []string{"replay", "--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339),
		"--progress", "log", "--progress-interval", "20ms"}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code, stdout, stderr := runApp(t, ctx, args...)
	if code != 0 {
		t.Fatalf("exit code %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if !strings.HasPrefix(stdout, "replay complete: user-events -> user-events-replay") {
		t.Fatalf("summary:\n%s", stdout)
	}
	if got := summaryNumber(t, stdout, `(\d+) enriched`); got != wantOut {
		t.Errorf("summary: %d enriched, want %d", got, wantOut)
	}
	if got := summaryNumber(t, stdout, `(\d+) dead-lettered`); got != wantDLQ {
		t.Errorf("summary: %d dead-lettered, want %d", got, wantDLQ)
	}
	statuses := 0
	for _, m := range regexp.MustCompile(`(?m)^  statuses.*$`).FindAllString(stdout, 1) {
		for _, kv := range regexp.MustCompile(`(\w+)=(\d+)`).FindAllStringSubmatch(m, -1) {
			n, _ := strconv.Atoi(kv[2])
			statuses += n
		}
	}
	if statuses != wantOut {
		t.Errorf("summary: statuses add up to %d, want %d:\n%s", statuses, wantOut, stdout)
	}
	if got := summaryNumber(t, stdout, `dlq +not_json=(\d+)`); got != wantDLQ {
		t.Errorf("summary: not_json=%d, want %d", got, wantDLQ)
	}
	if n := topicRecords(ctx, s.broker.Addr(), defaultReplayOutputTopic); n != int64(wantOut) {
		t.Errorf("%d records in %s, want %d", n, defaultReplayOutputTopic, wantOut)
	}
	if n := topicRecords(ctx, s.broker.Addr(), defaultReplayDLQTopic); n != int64(wantDLQ) {
		t.Errorf("%d records in %s, want %d", n, defaultReplayDLQTopic, wantDLQ)
	}
	if !strings.Contains(stderr, "replay progress") && !strings.Contains(stderr, "replaying partition") {
		t.Errorf("no progress logged:\n%s", stderr)
	}
	if strings.Contains(stdout+stderr, testSecret) {
		t.Error("the secret key appears in the output")
	}

	code, stdout, stderr = runApp(t, ctx, args...)
	if code != 0 || !strings.Contains(stdout, "resumed at") || summaryNumber(t, stdout, `(\d+) read`) != 0 {
		t.Fatalf("second run: exit code %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if n := topicRecords(ctx, s.broker.Addr(), defaultReplayOutputTopic); n != int64(wantOut) {
		t.Errorf("second run published: %d records, want %d", n, wantOut)
	}
}

// TestReplayCommandInterruptResume: an interrupted replay exits 1 saying
// how to resume; the same command then finishes the range with every
// record once.
func TestReplayCommandInterruptResume(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a replay")
	}
	s := newReplayStack(t, 150)
	s.env(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// A slow budget and a small in-flight bound keep the first run going
	// until it is interrupted (records in flight at the interrupt finish).
	var out, errb testsupport.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"enricher", "replay", "--api-rate", "20", "--max-in-flight", "8", "--progress", "log", "--progress-interval", "50ms"}, &out, &errb)
	}()
	deadline := time.NewTimer(60 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for topicRecords(ctx, s.broker.Addr(), defaultReplayOutputTopic) < 20 {
		select {
		case c := <-done:
			t.Fatalf("replay exited with %d before the interrupt\n%s", c, errb.String())
		case <-deadline.C:
			t.Fatalf("nothing replayed after 60s\n%s", errb.String())
		case <-tick.C:
		}
	}
	cancel()
	var code int
	select {
	case code = <-done:
	case <-deadline.C:
		t.Fatal("replay did not stop after the interrupt")
	}
	if code != 1 || !strings.Contains(errb.String(), "run the same command again to resume") || !strings.HasPrefix(out.String(), "replay incomplete") {
		t.Fatalf("interrupted: exit code %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}

	ctx2, cancel2 := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel2()
	code, stdout, stderr := runApp(t, ctx2, "replay", "--api-rate", "20", "--progress", "log")
	if code != 0 || !strings.Contains(stdout, "after a clean stop") {
		t.Fatalf("resumed: exit code %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	// The interrupt drained and checkpointed: nothing twice, nothing lost.
	out2 := topicRecords(ctx2, s.broker.Addr(), defaultReplayOutputTopic)
	dlq2 := topicRecords(ctx2, s.broker.Addr(), defaultReplayDLQTopic)
	if int(out2+dlq2) != len(s.events) {
		t.Fatalf("%d output + %d DLQ records for %d events", out2, dlq2, len(s.events))
	}
}

// TestReplayCommandErrors: bad ranges exit 2 naming the flag; a key the
// API rejects exits 1 naming the setting to fix.
func TestReplayCommandErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a replay")
	}
	s := newReplayStack(t, 20)
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		code    int
		setting string
	}{
		{name: "bad from", args: []string{"--from", "yesterday"}, code: 2, setting: "--from"},
		{name: "bad to", args: []string{"--to", "2026-13-01"}, code: 2, setting: "--to"},
		{name: "reversed", args: []string{"--from", "2026-10-02T00:00:00Z", "--to", "2026-10-01T00:00:00Z"}, code: 2, setting: "--from"},
		{name: "bad offsets", args: []string{"--offsets", "0:5"}, code: 2, setting: "--offsets"},
		{name: "offsets end before start", args: []string{"--offsets", "0=5:4"}, code: 2, setting: "--offsets"},
		{name: "offsets partition twice", args: []string{"--offsets", "0=1,0=2"}, code: 2, setting: "--offsets"},
		{name: "no such partition", args: []string{"--offsets", "9=0"}, code: 2, setting: "--offsets"},
		{name: "bad progress", args: []string{"--progress", "fancy"}, code: 2, setting: "--progress"},
		{name: "api rate above the budget", args: []string{"--api-rate", "500"}, code: 2, setting: "--api-rate"},
		{name: "same topics", args: []string{"--output-topic", "user-events"}, code: 2, setting: "--output-topic"},
		{name: "missing input topic", args: []string{"--input-topic", "no-such-input"}, code: 2, setting: "--input-topic"},
		{name: "missing output topic", args: []string{"--output-topic", "no-such-output"}, code: 2, setting: "--auto-create-topics"},
		{name: "wrong key", env: map[string]string{envSecretKey: "wrong-key-sentinel-0b7d"}, code: 1, setting: envSecretKey + " or --im-secret-key-file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.env(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			code, stdout, stderr := runApp(t, ctx, append([]string{"replay", "--log-level", "error", "--progress", "log"}, tt.args...)...)
			if code != tt.code {
				t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, stdout, stderr)
			}
			lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "enricher: ") || !strings.Contains(last, tt.setting) {
				t.Errorf("last stderr line should name %q, got %q", tt.setting, last)
			}
			if tt.code == 2 && len(lines) != 1 {
				t.Errorf("bad configuration should be one line, got %q", stderr)
			}
			if strings.Contains(stdout+stderr, testSecret) || strings.Contains(stdout+stderr, "wrong-key-sentinel") {
				t.Error("a secret key appears in the output")
			}
		})
	}
}

func TestParseRange(t *testing.T) {
	from := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		from, to, offsets string
		want              processor.ReplayRange
		bad               bool
	}{
		{want: processor.ReplayRange{}},
		{from: "2026-10-01T00:00:00Z", want: processor.ReplayRange{From: from}},
		{from: "2026-10-01T08:00:00+08:00", to: "2026-10-01T00:00:01Z", want: processor.ReplayRange{From: from, To: from.Add(time.Second)}},
		{offsets: "0=100, 1=200:300", want: processor.ReplayRange{Offsets: map[int]processor.OffsetRange{0: {Start: 100, End: -1}, 1: {Start: 200, End: 300}}}},
		{from: "2026-10-01", bad: true},
		{to: "now", bad: true},
		{from: "2026-10-01T00:00:00Z", to: "2026-10-01T00:00:00Z", bad: true},
		{offsets: "a=1", bad: true},
		{offsets: "-1=1", bad: true},
		{offsets: "0=-1", bad: true},
		{offsets: "0=1:x", bad: true},
		{offsets: "0=1,", bad: true},
	}
	for _, tt := range tests {
		got, err := parseRange(tt.from, tt.to, tt.offsets, dashName)
		if tt.bad {
			if err == nil {
				t.Errorf("parseRange(%q, %q, %q) = %v, want an error", tt.from, tt.to, tt.offsets, got)
			}
			continue
		}
		if err != nil || got.String() != tt.want.String() {
			t.Errorf("parseRange(%q, %q, %q) = %v, %v; want %v", tt.from, tt.to, tt.offsets, got, err, tt.want)
		}
	}
}

// FuzzParseRange: whatever the flags hold, parseRange returns a
// configuration error or a valid range.
func FuzzParseRange(f *testing.F) {
	f.Add("2026-10-01T00:00:00Z", "2026-10-02T00:00:00Z", "0=1,1=2:3")
	f.Add("", "", "0=5:4")
	f.Add("2026-10-01", "x", "=,:")
	f.Fuzz(func(t *testing.T, from, to, offsets string) {
		r, err := parseRange(from, to, offsets, dashName)
		if err != nil {
			var ue usageError
			if !errors.As(err, &ue) {
				t.Fatalf("error %v is not a usage error", err)
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("parseRange(%q, %q, %q) = %v, invalid: %v", from, to, offsets, r, err)
		}
	})
}

// dashName names a flag without its environment variable.
func dashName(flag string) string { return "--" + flag }
