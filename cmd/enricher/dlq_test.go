package main

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tencentchat-enricher/enricher/client/simulator"
	"github.com/tencentchat-enricher/enricher/internal/testsupport"
	"github.com/tencentchat-enricher/enricher/processor"
)

// writeDeadLetters writes n dead letters of class as the processor writes
// them, for users user-0 .. user-(n-1), starting at time at.
func writeDeadLetters(t *testing.T, addr, class string, n int, at time.Time) {
	t.Helper()
	var msgs []kafka.Message
	for i := range n {
		user := simulator.UserID(i)
		value := `{"user_id":"` + user + `","type":"login"}`
		if class == string(processor.ClassNotJSON) {
			value = `{"user_id":` // cut short
		}
		msgs = append(msgs, kafka.Message{Key: []byte(user), Value: []byte(value), Time: at.Add(time.Duration(i) * time.Millisecond),
			Headers: []kafka.Header{
				{Key: processor.HeaderErrorClass, Value: []byte(class)},
				{Key: processor.HeaderErrorMessage, Value: []byte("the API kept failing for this user")},
				{Key: processor.HeaderSourceTopic, Value: []byte(defaultInputTopic)},
				{Key: processor.HeaderSourcePartition, Value: []byte(strconv.Itoa(i % 3))},
				{Key: processor.HeaderSourceOffset, Value: []byte(strconv.Itoa(i))},
				{Key: processor.HeaderAttempts, Value: []byte("5")},
			}})
	}
	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: defaultDLQTopic, Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}

// TestDLQListShowRedrive: after an outage, the enrichment_unavailable dead
// letters are counted, shown, re-driven once (a second run re-drives
// nothing), and the processor enriches them.
func TestDLQListShowRedrive(t *testing.T) {
	b, sim := startBrokerAndSimulator(t, 3, defaultInputTopic, defaultOutputTopic, defaultDLQTopic)
	outage := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	writeDeadLetters(t, b.Addr(), "enrichment_unavailable", 12, outage)
	writeDeadLetters(t, b.Addr(), "not_json", 3, outage.Add(2*time.Hour))
	clearEnv(t)
	t.Setenv("ENRICHER_BROKERS", b.Addr())
	t.Setenv("ENRICHER_LOG_LEVEL", "warn")
	ctx := context.Background()

	code, out, errs := runApp(t, ctx, "dlq", "list")
	if code != 0 || !strings.Contains(out, "15 dead letters") || !strings.Contains(out, "by class    enrichment_unavailable=12 not_json=3") {
		t.Fatalf("dlq list: exit %d\n%s%s", code, out, errs)
	}
	code, out, _ = runApp(t, ctx, "dlq", "show", "--class", "not_json", "--limit", "2")
	if code != 0 || strings.Count(out, "  key ") != 2 || !strings.Contains(out, "source user-events/") || !strings.Contains(out, "(first 2 shown") {
		t.Fatalf("dlq show: exit %d\n%s", code, out)
	}

	// Nothing selected: refused; an unknown class: refused, naming the flag.
	if code, _, errs := runApp(t, ctx, "dlq", "redrive"); code != exitCodeUsage || !strings.Contains(errs, "--all (ENRICHER_DLQ_ALL)") {
		t.Fatalf("redrive without a selection: exit %d %s", code, errs)
	}
	if code, _, errs := runApp(t, ctx, "dlq", "redrive", "--class", "broken"); code != exitCodeUsage || !strings.Contains(errs, "--class (ENRICHER_DLQ_CLASS) must be among") {
		t.Fatalf("redrive --class broken: exit %d %s", code, errs)
	}
	if code, _, errs := runApp(t, ctx, "dlq", "list", "--offsets", "7=0"); code != exitCodeUsage || !strings.Contains(errs, "--offsets (ENRICHER_DLQ_OFFSETS) names partition 7") {
		t.Fatalf("list --offsets 7=0: exit %d %s", code, errs)
	}

	code, out, errs = runApp(t, ctx, "dlq", "redrive", "--class", "enrichment_unavailable", "--to", outage.Add(time.Hour).Format(time.RFC3339))
	if code != 0 || !strings.Contains(out, "redriven 12 (enrichment_unavailable=12), already redriven 0") {
		t.Fatalf("redrive: exit %d\n%s%s", code, out, errs)
	}
	code, out, _ = runApp(t, ctx, "dlq", "redrive", "--all")
	if code != 0 || !strings.Contains(out, "redriven 3 (not_json=3), already redriven 12") {
		t.Fatalf("redrive --all: exit %d\n%s", code, out)
	}
	if n := topicEnd(t, b.Addr(), defaultInputTopic); n != 15 {
		t.Fatalf("input topic holds %d records, want the 15 re-driven", n)
	}

	// The processor enriches the re-driven records; the not_json ones go
	// back to the DLQ, marked as re-driven.
	t.Setenv("ENRICHER_IM_BASE_URL", sim.URL())
	t.Setenv("ENRICHER_IM_SDKAPPID", "1400000001")
	t.Setenv("ENRICHER_IM_ADMIN", "administrator")
	t.Setenv(envSecretKey, testSecret)
	t.Setenv("ENRICHER_HTTP_ADDR", "")
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan int, 1)
	var rout, rerr testsupport.SyncBuffer
	go func() { done <- run(runCtx, []string{"enricher", "run"}, &rout, &rerr) }()
	testsupport.WaitFor(t, 60*time.Second, "the re-driven records published", func() bool {
		return topicEnd(t, b.Addr(), defaultOutputTopic) == 12 && topicEnd(t, b.Addr(), defaultDLQTopic) == 15+3
	})
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("run: exit %d: %s", code, rerr.String())
	}
	code, out, _ = runApp(t, ctx, "dlq", "list", "--class", "not_json")
	if code != 0 || !strings.Contains(out, "6 dead letters") || !strings.Contains(out, "3 of them failed again after a redrive") {
		t.Fatalf("dlq list after the redrive: exit %d\n%s", code, out)
	}
}
