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
