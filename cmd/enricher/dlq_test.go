package main

import (
	"context"
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tencentchat-enricher/enricher/client/simulator"
	"github.com/tencentchat-enricher/enricher/internal/deadletter"
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

// TestDLQRedriveAfterOutage: the API keeps failing for some users while it
// answers for the others (a partial outage: a full one never dead-letters,
// the breaker holds the records instead), so their events are dead-lettered
// as enrichment_unavailable after --record-retry-deadline. Once the API
// answers for them again, `dlq redrive --class enrichment_unavailable`
// re-publishes them, the running processor enriches them, and a second
// redrive re-drives nothing.
func TestDLQRedriveAfterOutage(t *testing.T) {
	b, sim := startBrokerAndSimulator(t, 3, defaultInputTopic, defaultOutputTopic, defaultDLQTopic)
	clearEnv(t)
	t.Setenv("OTEL_TRACES_EXPORTER", "")
	t.Setenv("ENRICHER_BROKERS", b.Addr())
	t.Setenv("ENRICHER_LOG_LEVEL", "error")
	t.Setenv("ENRICHER_IM_BASE_URL", sim.URL())
	t.Setenv("ENRICHER_IM_SDKAPPID", "1400000001")
	t.Setenv("ENRICHER_IM_ADMIN", "administrator")
	t.Setenv(envSecretKey, testSecret)
	t.Setenv("ENRICHER_HTTP_ADDR", "")
	t.Setenv("ENRICHER_RECORD_RETRY_DEADLINE", "1s")
	ctx := context.Background()

	failing := []string{simulator.UserID(0), simulator.UserID(1), simulator.UserID(2), simulator.UserID(3)}
	codes := map[string]int{}
	for _, u := range failing {
		codes[u] = 20005 // internal error, retried, never cached
	}
	body, _ := json.Marshal(map[string]any{"ForceCode": codes})
	setFaults(t, sim.URL(), string(body))

	runCtx, stopRun := context.WithCancel(ctx)
	done := make(chan int, 1)
	var rerr testsupport.SyncBuffer
	go func() { done <- run(runCtx, []string{"enricher", "run"}, io.Discard, &rerr) }()
	defer func() {
		stopRun()
		if code := <-done; code != 0 {
			t.Errorf("run: exit %d: %s", code, rerr.String())
		}
	}()

	// The failing users' events, among a steady stream of other users'
	// (each a new user, so the API keeps answering).
	w := newEventWriter(kafkaSettings{Brokers: []string{b.Addr()}}, defaultInputTopic)
	defer w.Close()
	event := func(user string, i int) kafka.Message {
		return kafka.Message{Key: []byte(user), Value: []byte(`{"user_id":"` + user + `","type":"login","seq":` + strconv.Itoa(i) + `}`)}
	}
	var msgs []kafka.Message
	for i, u := range failing {
		msgs = append(msgs, event(u, i))
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	// The stream's writer is closed (flushing a write the cancellation
	// interrupted) before it reports, so the input topic is complete then.
	streamCtx, stopStream := context.WithCancel(ctx)
	streamed := make(chan error, 1)
	go func() {
		sw := newEventWriter(kafkaSettings{Brokers: []string{b.Addr()}}, defaultInputTopic)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-streamCtx.Done():
				sw.Close()
				streamed <- nil
				return
			case <-tick.C:
			}
			if err := sw.WriteMessages(streamCtx, event(simulator.UserID(10+i%900), i)); err != nil && streamCtx.Err() == nil {
				sw.Close()
				streamed <- err
				return
			}
		}
	}()
	testsupport.WaitFor(t, 60*time.Second, "the failing users' events dead-lettered", func() bool {
		return topicEnd(t, b.Addr(), defaultDLQTopic) >= len(failing)
	})
	stopStream()
	if err := <-streamed; err != nil {
		t.Fatal(err)
	}
	inputBefore := topicEnd(t, b.Addr(), defaultInputTopic)
	healthy := inputBefore - len(failing)
	testsupport.WaitFor(t, 60*time.Second, "every healthy event published", func() bool {
		return topicEnd(t, b.Addr(), defaultOutputTopic) == healthy
	})
	code, out, errs := runApp(t, ctx, "dlq", "list")
	if code != 0 || !strings.Contains(out, "by class    enrichment_unavailable="+strconv.Itoa(len(failing))+"\n") {
		t.Fatalf("dlq list after the outage: exit %d\n%s%s", code, out, errs)
	}
	t.Logf("outage: %d events of other users enriched, %d dead-lettered", healthy, len(failing))

	// The API answers for them again; the dead letters are re-driven once.
	setFaults(t, sim.URL(), `{"ForceCode":null}`)
	code, out, errs = runApp(t, ctx, "dlq", "redrive", "--class", "enrichment_unavailable")
	if code != 0 || !strings.Contains(out, "redriven 4 (enrichment_unavailable=4), already redriven 0") {
		t.Fatalf("redrive: exit %d\n%s%s", code, out, errs)
	}
	t.Logf("first redrive: %s", strings.TrimSpace(out))
	if n := topicEnd(t, b.Addr(), defaultInputTopic); n != inputBefore+len(failing) {
		t.Errorf("input topic holds %d records, want %d + the %d re-driven", n, inputBefore, len(failing))
	}
	testsupport.WaitFor(t, 60*time.Second, "the re-driven records enriched", func() bool {
		return topicEnd(t, b.Addr(), defaultOutputTopic) == healthy+len(failing)
	})
	enriched := map[string]string{}
	for _, m := range readAll(t, b.Addr(), defaultOutputTopic) {
		for _, h := range m.Headers {
			if h.Key == deadletter.HeaderRedriveOf {
				var rec struct {
					Event struct {
						UserID string `json:"user_id"`
					}
					Enrichment struct{ Status string }
				}
				if err := json.Unmarshal(m.Value, &rec); err != nil {
					t.Fatal(err)
				}
				enriched[rec.Event.UserID] = rec.Enrichment.Status
			}
		}
	}
	for _, u := range failing {
		if s := enriched[u]; s != "ok" && s != "user_not_found" {
			t.Errorf("re-driven event of %s: status %q in the output, want it enriched (%v)", u, s, enriched)
		}
	}
	if n := topicEnd(t, b.Addr(), defaultDLQTopic); n != len(failing) {
		t.Errorf("DLQ holds %d records after the redrive, want the %d of the outage (none failed again)", n, len(failing))
	}

	code, out, _ = runApp(t, ctx, "dlq", "redrive", "--class", "enrichment_unavailable")
	if code != 0 || !strings.Contains(out, "redriven 0 (), already redriven 0") {
		t.Fatalf("second redrive: exit %d\n%s", code, out)
	}
	t.Logf("second redrive: %s", strings.TrimSpace(out))
	if n := topicEnd(t, b.Addr(), defaultInputTopic); n != inputBefore+len(failing) {
		t.Errorf("the second redrive wrote to the input topic: %d records", n)
	}
}
