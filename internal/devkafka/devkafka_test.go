package devkafka_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tencentchat-enricher/enricher/internal/devkafka"
)

// TestKafkaGoRoundTrip proves that kafka-go's writer and consumer-group
// reader work against the embedded broker over TCP, including committed
// offsets surviving a reader restart.
func TestKafkaGoRoundTrip(t *testing.T) {
	b, err := devkafka.Start(devkafka.Config{Partitions: 3, Topics: []string{"in"}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	w := &kafka.Writer{Addr: kafka.TCP(b.Addr()), Topic: "in", Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	const n = 30
	var msgs []kafka.Message
	for i := range n {
		msgs = append(msgs, kafka.Message{Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprint("v", i))})
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()

	read := func(limit int) map[string]bool {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{b.Addr()}, GroupID: "g", Topic: "in", StartOffset: kafka.FirstOffset, MaxWait: 50 * time.Millisecond})
		defer r.Close()
		seen := map[string]bool{}
		for len(seen) < limit {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			seen[string(m.Value)] = true
			if err := r.CommitMessages(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
		return seen
	}
	first := read(n)
	if len(first) != n {
		t.Fatalf("read %d, want %d", len(first), n)
	}
	// Committed offsets: a new reader in the same group sees only new messages.
	if err := (&kafka.Writer{Addr: kafka.TCP(b.Addr()), Topic: "in", RequiredAcks: kafka.RequireAll}).WriteMessages(ctx, kafka.Message{Value: []byte("late")}); err != nil {
		t.Fatal(err)
	}
	second := read(1)
	if !second["late"] {
		t.Fatalf("after restart got %v, want only the new message", second)
	}
}

// TestRestartKeepsLogAndCommits: a broker with a DataDir, stopped and
// started again, listens on the same address and still has its records and
// the group's committed offsets with their metadata; clients that were
// connected before reconnect.
func TestRestartKeepsLogAndCommits(t *testing.T) {
	b, err := devkafka.Start(devkafka.Config{Partitions: 2, Topics: []string{"in"}, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	addr := b.Addr()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: "in", Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	write := func(from, n int) {
		t.Helper()
		var msgs []kafka.Message
		for i := from; i < from+n; i++ {
			msgs = append(msgs, kafka.Message{Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprint("v", i))})
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
	}
	write(0, 20)
	cl := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 10 * time.Second}
	if _, err := cl.OffsetCommit(ctx, &kafka.OffsetCommitRequest{GroupID: "g", GenerationID: -1,
		Topics: map[string][]kafka.OffsetCommit{"in": {{Partition: 1, Offset: 3, Metadata: "meta-3"}}}}); err != nil {
		t.Fatal(err)
	}
	ends := func() (total int64) {
		t.Helper()
		for p := range 2 {
			conn, err := kafka.DialLeader(ctx, "tcp", addr, "in", p)
			if err != nil {
				t.Fatal(err)
			}
			last, err := conn.ReadLastOffset()
			conn.Close()
			if err != nil {
				t.Fatal(err)
			}
			total += last
		}
		return total
	}
	if got := ends(); got != 20 {
		t.Fatalf("before the restart: %d records, want 20", got)
	}

	b.Close()
	if _, err := kafka.DialLeader(ctx, "tcp", addr, "in", 0); err == nil {
		t.Fatal("a stopped broker accepted a connection")
	}
	if err := b.Restart(); err != nil {
		t.Fatal(err)
	}
	if b.Addr() != addr {
		t.Fatalf("restarted on %s, want %s", b.Addr(), addr)
	}
	if got := ends(); got != 20 {
		t.Fatalf("after the restart: %d records, want 20", got)
	}
	// A client with a transport of its own: the connections that the
	// default transport pooled before the restart fail (EOF) until it
	// dials again, a few hundred milliseconds later.
	fresh := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 10 * time.Second, Transport: &kafka.Transport{}}
	res, err := fresh.OffsetFetch(ctx,
		&kafka.OffsetFetchRequest{GroupID: "g", Topics: map[string][]int{"in": {1}}})
	if err != nil {
		t.Fatal(err)
	}
	if p := res.Topics["in"]; len(p) != 1 || p[0].CommittedOffset != 3 || p[0].Metadata != "meta-3" {
		t.Fatalf("committed after the restart: %+v, want offset 3 with its metadata", p)
	}
	write(20, 5) // the writer from before the restart reconnects
	if got := ends(); got != 25 {
		t.Fatalf("after writing again: %d records, want 25", got)
	}
	// Restarting a running broker stops it first.
	if err := b.Restart(); err != nil {
		t.Fatal(err)
	}
	if got := ends(); got != 25 {
		t.Fatalf("after a second restart: %d records, want 25", got)
	}
}

func TestRestartNeedsDataDir(t *testing.T) {
	b, err := devkafka.Start(devkafka.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Restart(); err == nil {
		t.Fatal("Restart of a broker in memory: no error")
	}
}
