package deadletter

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tencentchat-enricher/enricher/internal/devkafka"
	"github.com/tencentchat-enricher/enricher/processor"
)

const (
	inTopic  = "user-events"
	dlqTopic = "user-events-dlq"
)

func startBroker(t *testing.T) Config {
	t.Helper()
	b, err := devkafka.Start(devkafka.Config{Partitions: 4, Topics: []string{inTopic, dlqTopic}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return Config{Brokers: []string{b.Addr()}, Topic: dlqTopic}
}

// letter is a dead letter as the processor writes it.
func letter(class string, srcPartition int, srcOffset int64, at time.Time) kafka.Message {
	return kafka.Message{
		Key: []byte("user-" + strconv.FormatInt(srcOffset, 10)), Value: []byte(`{"user_id":"user-` + strconv.FormatInt(srcOffset, 10) + `"}`), Time: at,
		Headers: []kafka.Header{
			{Key: "traceparent", Value: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")},
			{Key: processor.HeaderErrorClass, Value: []byte(class)},
			{Key: processor.HeaderErrorMessage, Value: []byte("lookup kept failing")},
			{Key: processor.HeaderSourceTopic, Value: []byte(inTopic)},
			{Key: processor.HeaderSourcePartition, Value: []byte(strconv.Itoa(srcPartition))},
			{Key: processor.HeaderSourceOffset, Value: []byte(strconv.FormatInt(srcOffset, 10))},
			{Key: processor.HeaderAttempts, Value: []byte("7")},
		},
	}
}

func write(t *testing.T, cfg Config, topic string, msgs ...kafka.Message) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(cfg.Brokers...), Topic: topic, Balancer: &kafka.RoundRobin{}, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}

// inputRecords reads every record of the input topic.
func inputRecords(t *testing.T, cfg Config) []Letter {
	t.Helper()
	in := cfg
	in.Topic = inTopic
	var out []Letter
	if err := Scan(context.Background(), in, Selection{}, func(l Letter) error { out = append(out, l); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func header(l Letter, key string) string {
	for _, h := range l.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func TestRedriveByClassOnceAndResumes(t *testing.T) {
	cfg := startBroker(t)
	t0 := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	var msgs []kafka.Message
	for i := range 40 {
		class := string(processor.ClassEnrichmentUnavailable)
		if i%4 == 3 {
			class = string(processor.ClassNotJSON)
		}
		msgs = append(msgs, letter(class, i%4, int64(100+i), t0.Add(time.Duration(i)*time.Second)))
	}
	write(t, cfg, dlqTopic, msgs...)

	// list: counts by class over the whole topic.
	counts := map[string]int{}
	if err := Scan(context.Background(), cfg, Selection{}, func(l Letter) error { counts[l.Class]++; return nil }); err != nil {
		t.Fatal(err)
	}
	if counts["enrichment_unavailable"] != 30 || counts["not_json"] != 10 {
		t.Fatalf("counts %v, want 30 enrichment_unavailable and 10 not_json", counts)
	}

	rc := RedriveConfig{Config: cfg, InputTopic: inTopic, Group: "enricher-redrive", BatchSize: 4}
	sel := Selection{Classes: []string{"enrichment_unavailable"}}

	// An interrupted run: stop after the first checkpoint.
	ctx, cancel := context.WithCancel(context.Background())
	afterCheckpoint = cancel
	first, err := Redrive(ctx, rc, sel)
	afterCheckpoint = nil
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted redrive: %v, want context.Canceled", err)
	}
	if first.Redriven == 0 || first.Redriven >= 30 {
		t.Fatalf("interrupted run redrove %d, want some of 30", first.Redriven)
	}

	// The same command resumes and re-drives the rest, none twice.
	second, err := Redrive(context.Background(), rc, sel)
	if err != nil {
		t.Fatal(err)
	}
	if second.Resumed == 0 {
		t.Error("second run did not resume")
	}
	if got := first.Redriven + second.Redriven; got != 30 {
		t.Fatalf("redriven %d + %d = %d, want 30", first.Redriven, second.Redriven, got)
	}

	// Run again: nothing left; a wider selection re-drives only the rest.
	again, err := Redrive(context.Background(), rc, sel)
	if err != nil || again.Redriven != 0 {
		t.Fatalf("third run: %v, %v; want nothing redriven", again, err)
	}
	all, err := Redrive(context.Background(), rc, Selection{})
	if err != nil {
		t.Fatal(err)
	}
	if all.Redriven != 10 || all.ByClass["not_json"] != 10 || all.Already != 30 {
		t.Fatalf("all classes: %v, want the 10 not_json redriven and 30 already", all)
	}

	recs := inputRecords(t, cfg)
	if len(recs) != 40 {
		t.Fatalf("input topic holds %d records, want 40", len(recs))
	}
	seen := map[string]bool{}
	for _, r := range recs {
		of := header(r, HeaderRedriveOf)
		if of == "" || seen[of] {
			t.Fatalf("record %d/%d: redrive-of %q empty or seen twice", r.Partition, r.Offset, of)
		}
		seen[of] = true
		if r.Class != "" || header(r, processor.HeaderSourceOffset) != "" {
			t.Errorf("record %d/%d keeps the dead letter's headers: %v", r.Partition, r.Offset, r.Headers)
		}
		if header(r, "traceparent") == "" {
			t.Errorf("record %d/%d lost the original traceparent", r.Partition, r.Offset)
		}
		src, _ := strconv.Atoi(string(r.Key[len("user-"):]))
		if want := (src - 100) % 4; r.Partition != want {
			t.Errorf("record of source offset %d went to partition %d, want its source partition %d", src, r.Partition, want)
		}
	}
}

func TestRedriveSelectsTimeRangeAndOffsets(t *testing.T) {
	cfg := startBroker(t)
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	var msgs []kafka.Message
	for i := range 20 {
		msgs = append(msgs, letter("enrichment_unavailable", 0, int64(i), t0.Add(time.Duration(i)*time.Minute)))
	}
	write(t, cfg, dlqTopic, msgs...)
	rc := RedriveConfig{Config: cfg, InputTopic: inTopic, Group: "g"}

	// The outage: minutes 5 to 9.
	res, err := Redrive(context.Background(), rc, Selection{From: t0.Add(5 * time.Minute), To: t0.Add(10 * time.Minute)})
	if err != nil || res.Redriven != 5 {
		t.Fatalf("time range: %v, %v; want 5 redriven", res, err)
	}
	// Partition 1 offsets 0-2 (round robin: minutes 1, 5, 9): 1 is new, 5 and 9 are done.
	res, err = Redrive(context.Background(), rc, Selection{Offsets: map[int]OffsetRange{1: {Start: 0, End: 3}}})
	if err != nil || res.Redriven != 1 || res.Already != 2 {
		t.Fatalf("offsets: %v, %v; want 1 redriven, 2 already", res, err)
	}
	var pe *PartitionError
	if _, err := Redrive(context.Background(), rc, Selection{Offsets: map[int]OffsetRange{9: {End: -1}}}); !errors.As(err, &pe) {
		t.Fatalf("partition 9: %v, want a PartitionError", err)
	}
}

func TestRedrivenLetterThatFailsAgainIsRecognisable(t *testing.T) {
	cfg := startBroker(t)
	m := letter("enrichment_unavailable", 0, 1, time.Now())
	m.Headers = append(m.Headers, kafka.Header{Key: HeaderRedriveOf, Value: []byte("user-events-dlq/2/7")})
	write(t, cfg, dlqTopic, m)
	var got []Letter
	if err := Scan(context.Background(), cfg, Selection{}, func(l Letter) error { got = append(got, l); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].RedriveOf != "user-events-dlq/2/7" || got[0].Class != "enrichment_unavailable" || got[0].Attempts != 7 {
		t.Fatalf("letters %+v", got)
	}
}

func TestCheckpointGroupOfAnotherConsumerIsRefused(t *testing.T) {
	cfg := startBroker(t)
	write(t, cfg, dlqTopic, letter("not_json", 0, 1, time.Now()))
	cl := cfg.client()
	if _, err := cl.OffsetCommit(context.Background(), &kafka.OffsetCommitRequest{GroupID: "other", GenerationID: -1,
		Topics: map[string][]kafka.OffsetCommit{dlqTopic: {{Partition: 0, Offset: 1}, {Partition: 1, Offset: 1}, {Partition: 2, Offset: 1}, {Partition: 3, Offset: 1}}}}); err != nil {
		t.Fatal(err)
	}
	_, err := Redrive(context.Background(), RedriveConfig{Config: cfg, InputTopic: inTopic, Group: "other"}, Selection{})
	if !errors.Is(err, ErrNotLedger) {
		t.Fatalf("err %v, want ErrNotLedger", err)
	}
}
