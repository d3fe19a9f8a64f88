package processor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// batchPublisher records each WriteMessages call and the messages it
// wrote. write, if set, returns the error of a call (0-based): messages
// whose kafka.WriteErrors entry is nil are written, and none on any other
// error.
type batchPublisher struct {
	mu    sync.Mutex
	calls [][]kafka.Message
	msgs  []kafka.Message
	write func(call int, msgs []kafka.Message) error
}

func (b *batchPublisher) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	call := len(b.calls)
	b.calls = append(b.calls, append([]kafka.Message(nil), msgs...))
	var err error
	if b.write != nil {
		err = b.write(call, msgs)
	}
	var we kafka.WriteErrors
	switch {
	case err == nil:
		b.msgs = append(b.msgs, msgs...)
	case errors.As(err, &we) && len(we) == len(msgs):
		for i, e := range we {
			if e == nil {
				b.msgs = append(b.msgs, msgs[i])
			}
		}
	}
	return err
}

func (b *batchPublisher) Close() error { return nil }

func (b *batchPublisher) snapshot() (calls [][]kafka.Message, msgs []kafka.Message) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([][]kafka.Message(nil), b.calls...), append([]kafka.Message(nil), b.msgs...)
}

func offsets(t testing.TB, msgs []kafka.Message) []int64 {
	t.Helper()
	offs := make([]int64, len(msgs))
	for i, m := range msgs {
		if m.Topic == "dlq" {
			fmt.Sscan(header(m, HeaderSourceOffset), &offs[i])
			continue
		}
		offs[i] = decodeOut(t, m).Source.Offset
	}
	return offs
}

// runHotKey submits n records of one user and key to a pipeline writing
// to pub, with the first lookup held until all are queued behind it, and
// waits until they are done.
func runHotKey(t *testing.T, cfg Config, pub publisher, n int) *Claim {
	t.Helper()
	release := make(chan struct{})
	fetch := func(ctx context.Context, user string) (lookup, error) {
		select {
		case <-release:
		case <-ctx.Done():
			return lookup{}, ctx.Err()
		}
		return okLookup(1)(ctx, user)
	}
	cfg.MaxInFlight, cfg.MaxInFlightPerPartition = n, n
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := newPipeline(cfg.withDefaults(), fetch, pub)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	c := p.Claim("in", 0)
	ctx := context.Background()
	for i := range n {
		if err := c.Submit(ctx, kafka.Message{Topic: "in", Offset: int64(i), Key: []byte("hot"), Value: event("hot", i)}); err != nil {
			t.Fatal(err)
		}
	}
	close(release)
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.Drain(dctx); err != nil {
		t.Fatal(err)
	}
	if p.Err() != nil {
		t.Fatal(p.Err())
	}
	return c
}

// TestHotKeyPublishedInBatches: the records queued behind a key's running
// record whose user is cached are published together, in offset order, in
// writes of at most BatchSize records.
func TestHotKeyPublishedInBatches(t *testing.T) {
	const n = 300
	cfg := testConfig()
	cfg.BatchSize = 100
	pub := &batchPublisher{}
	c := runHotKey(t, cfg, pub, n)
	if off, ok := c.Committable(); !ok || off != n {
		t.Fatalf("committable %d,%v, want %d", off, ok, n)
	}
	calls, msgs := pub.snapshot()
	// The first record waits for the lookup; the 299 behind it are cached.
	if len(calls) != 1+3 {
		t.Fatalf("%d writes for %d records of one key, want 4", len(calls), n)
	}
	for i, call := range calls {
		if len(call) > cfg.BatchSize {
			t.Fatalf("write %d holds %d records, more than BatchSize %d", i, len(call), cfg.BatchSize)
		}
	}
	got := offsets(t, msgs)
	if len(got) != n {
		t.Fatalf("published %d, want %d", len(got), n)
	}
	for i, off := range got {
		if off != int64(i) {
			t.Fatalf("record %d published has offset %d: not in offset order", i, off)
		}
	}
}

// TestPublishRetriesFromFirstFailure: on a partial failure the write is
// retried from the first failed message onward, in order, rewriting the
// later messages that succeeded (duplicates, never reordering).
func TestPublishRetriesFromFirstFailure(t *testing.T) {
	pub := &batchPublisher{write: func(call int, msgs []kafka.Message) error {
		if call == 0 {
			we := make(kafka.WriteErrors, len(msgs))
			we[2], we[4] = kafka.NotEnoughReplicas, kafka.LeaderNotAvailable
			return we
		}
		return nil
	}}
	p, err := newPipeline(testConfig().withDefaults(), okLookup(1), pub)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	msgs := make([]kafka.Message, 6)
	for i := range msgs {
		msgs[i] = kafka.Message{Topic: "out", Key: []byte("k"), Value: []byte{byte('0' + i)}}
	}
	n, err := p.publish(context.Background(), msgs)
	if n != len(msgs) || err != nil {
		t.Fatalf("publish = %d, %v; want %d, nil", n, err, len(msgs))
	}
	calls, written := pub.snapshot()
	var seq []string
	for _, call := range calls {
		s := ""
		for _, m := range call {
			s += string(m.Value)
		}
		seq = append(seq, s)
	}
	if fmt.Sprint(seq) != "[012345 2345]" {
		t.Fatalf("writes %v, want [012345 2345]", seq)
	}
	w := ""
	for _, m := range written {
		w += string(m.Value)
	}
	if w != "01352345" {
		t.Fatalf("written %q, want 01352345", w)
	}
}

// TestPublishPermanentFailureInBatch: a permanent failure of one message
// returns how many before it were acknowledged; a failure the writer does
// not attribute to a message (MessageTooLargeError writes nothing) is
// attributed by writing messages alone.
func TestPublishPermanentFailureInBatch(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(call int, msgs []kafka.Message) error
	}{
		{"per message", func(_ int, msgs []kafka.Message) error {
			we := make(kafka.WriteErrors, len(msgs))
			for i, m := range msgs {
				if string(m.Value) == "2" {
					we[i] = kafka.MessageSizeTooLarge
				}
			}
			return we
		}},
		{"whole call", func(_ int, msgs []kafka.Message) error {
			for i, m := range msgs {
				if string(m.Value) == "2" {
					return messageTooLargeError(msgs, i)
				}
			}
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pub := &batchPublisher{write: tc.write}
			p, err := newPipeline(testConfig().withDefaults(), okLookup(1), pub)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = p.Close() })
			msgs := make([]kafka.Message, 4)
			for i := range msgs {
				msgs[i] = kafka.Message{Topic: "out", Value: []byte{byte('0' + i)}}
			}
			n, err := p.publish(context.Background(), msgs)
			var we *writeError
			if n != 2 || !errors.As(err, &we) || !we.tooLarge {
				t.Fatalf("publish = %d, %v; want 2 and a too-large *writeError", n, err)
			}
			_, written := pub.snapshot()
			if len(written) < 2 || string(written[0].Value)+string(written[1].Value) != "01" {
				t.Fatalf("written %v, want 0 and 1 first", written)
			}
		})
	}
}

func messageTooLargeError(msgs []kafka.Message, i int) error {
	rest := append(append([]kafka.Message(nil), msgs[:i]...), msgs[i+1:]...)
	return kafka.MessageTooLargeError{Message: msgs[i], Remaining: rest}
}

// TestHotKeyOversizeInBatch: a record of a batch too large for the output
// goes to the DLQ alone, and the records after it are still published, in
// order.
func TestHotKeyOversizeInBatch(t *testing.T) {
	const n = 10
	pub := &batchPublisher{write: func(_ int, msgs []kafka.Message) error {
		for i, m := range msgs {
			if m.Topic == "out" && decodeOut(t, m).Source.Offset == 5 {
				return messageTooLargeError(msgs, i)
			}
		}
		return nil
	}}
	c := runHotKey(t, testConfig(), pub, n)
	if off, ok := c.Committable(); !ok || off != n {
		t.Fatalf("committable %d,%v, want %d", off, ok, n)
	}
	calls, msgs := pub.snapshot()
	got := offsets(t, msgs)
	if fmt.Sprint(got) != "[0 1 2 3 4 5 6 7 8 9]" {
		t.Fatalf("published offsets %v", got)
	}
	if msgs[5].Topic != "dlq" || header(msgs[5], HeaderErrorClass) != string(ClassOutputTooLarge) {
		t.Fatalf("offset 5 went to %s with class %q, want the DLQ with %s", msgs[5].Topic, header(msgs[5], HeaderErrorClass), ClassOutputTooLarge)
	}
	if len(calls) >= n {
		t.Fatalf("%d writes for %d records: not batched", len(calls), n)
	}
}
