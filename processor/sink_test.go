package processor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tencentchat-enricher/enricher/client/simulator"
)

// bigDataset has user "big" with 400 subscriptions carrying 3 KB custom
// strings (an enriched record of about 1.2 MB) and users "small-<i>" with
// one subscription each.
func bigDataset(t testing.TB, small int) *simulator.Dataset {
	t.Helper()
	pad := strings.Repeat("x", 3000)
	accounts := make([]simulator.Account, 400)
	subs := map[string][]simulator.Subscription{}
	for i := range accounts {
		id := fmt.Sprintf("%sacct%d", simulator.AccountPrefix, i)
		accounts[i] = simulator.Account{OfficialAccount: id, Name: "Account", CustomString: pad}
		subs["big"] = append(subs["big"], simulator.Subscription{OfficialAccount: id, SubscribeTime: 1700000000})
	}
	for i := range small {
		subs[fmt.Sprintf("small-%d", i)] = []simulator.Subscription{{OfficialAccount: accounts[i].OfficialAccount}}
	}
	ds, err := simulator.NewDataset(accounts, subs)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// TestOversizedOutputDLQ: through the simulator and the broker, a user
// whose enriched record exceeds MaxRecordBytes sends its input to the DLQ
// as output_too_large, the other records of the partition are published,
// the commit reaches the end, and shutdown is prompt.
func TestOversizedOutputDLQ(t *testing.T) {
	srv, err := simulator.NewServer(simulator.Config{SDKAppID: devAppID, Admin: devAdmin, SecretKey: devSecret, Dataset: bigDataset(t, 10)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	c := startCluster(t, 1)
	msgs := []kafka.Message{{Key: []byte("k-big"), Value: event("big", 0)}}
	for i := range 10 {
		msgs = append(msgs, kafka.Message{Key: []byte(fmt.Sprintf("k-%d", i)), Value: event(fmt.Sprintf("small-%d", i), i+1)})
	}
	c.produce(msgs)
	p := newSimProcessor(t, c.config("too-large"), newClient(t, srv, nil))
	run := runProcessor(t, p)
	waitCommitted(t, p, c.endOffsets())
	start := time.Now()
	if err := run.stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("shutdown took %s", d)
	}
	checkExactlyOnce(t, c, len(msgs))
	m := dlqOf(t, c, tp{0, 0})
	if got := header(m, HeaderErrorClass); got != string(ClassOutputTooLarge) || string(m.Value) != string(msgs[0].Value) || string(m.Key) != "k-big" {
		t.Fatalf("DLQ record class %q key %s value %s", got, m.Key, m.Value)
	}
	if st := p.Stats(); st.Out != 10 || st.DLQByClass[ClassOutputTooLarge] != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestTooLargeInputDLQ: an input larger than MaxEventBytes and than the
// record size limit reaches the DLQ with its value omitted (its size in a
// header) instead of blocking its partition.
func TestTooLargeInputDLQ(t *testing.T) {
	c := startCluster(t, 1)
	w := &kafka.Writer{Addr: kafka.TCP(c.b.Addr()), Topic: "in", BatchBytes: 8 << 20, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	huge := `{"user_id":"u","pad":"` + strings.Repeat("x", 100<<10) + `"}`
	for _, m := range []kafka.Message{{Key: []byte("k"), Value: []byte(huge)}, {Key: []byte("k"), Value: event("u", 1)}} {
		if err := w.WriteMessages(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	_ = w.Close()
	cfg := c.config("too-large-input")
	cfg.MaxEventBytes, cfg.MaxRecordBytes = 64<<10, 64<<10
	p := newFakeProcessor(t, cfg, okLookup(1))
	run := runProcessor(t, p)
	waitCommitted(t, p, c.endOffsets())
	if err := run.stop(); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, c, 2)
	m := dlqOf(t, c, tp{0, 0})
	if header(m, HeaderErrorClass) != string(ClassTooLarge) || len(m.Value) != 0 || header(m, HeaderOriginalBytes) != strconv.Itoa(len(huge)) {
		t.Fatalf("DLQ record class %q, %d value bytes, original %q", header(m, HeaderErrorClass), len(m.Value), header(m, HeaderOriginalBytes))
	}
}

// TestPublishErrors: transient write errors are retried; a record too
// large for the output goes to the DLQ; other permanent errors stop the
// pipeline with a *TopicError naming the topic's setting; UnknownTopic is
// permanent only after it persists.
func TestPublishErrors(t *testing.T) {
	tooLarge := func(m kafka.Message) error { return kafka.MessageTooLargeError{Message: m} }
	tests := []struct {
		name      string
		out, dlq  func(n int64, m kafka.Message) error // error of the n-th write (1-based) to the topic
		wantTopic string                               // where the record lands; "" none
		wantClass ErrorClass
		fatal     string // the Config field the TopicError names
	}{
		{name: "transient then ok", out: func(n int64, _ kafka.Message) error {
			if n < 3 {
				return kafka.WriteErrors{kafka.NotEnoughReplicas}
			}
			return nil
		}, wantTopic: "out"},
		{name: "output too large", out: func(_ int64, m kafka.Message) error { return tooLarge(m) }, wantTopic: "dlq", wantClass: ClassOutputTooLarge},
		{name: "broker says too large", out: func(int64, kafka.Message) error { return kafka.WriteErrors{kafka.MessageSizeTooLarge} },
			wantTopic: "dlq", wantClass: ClassOutputTooLarge},
		{name: "output not authorized", out: func(int64, kafka.Message) error { return kafka.WriteErrors{kafka.TopicAuthorizationFailed} }, fatal: "OutputTopic"},
		{name: "output invalid", out: func(int64, kafka.Message) error { return kafka.InvalidTopic }, fatal: "OutputTopic"},
		{name: "output unknown persists", out: func(int64, kafka.Message) error { return kafka.UnknownTopicOrPartition }, fatal: "OutputTopic"},
		{name: "output unknown briefly", out: func(n int64, _ kafka.Message) error {
			if n < unknownTopicAttempts {
				return kafka.UnknownTopicOrPartition
			}
			return nil
		}, wantTopic: "out"},
		{name: "output and DLQ too large", out: func(_ int64, m kafka.Message) error { return tooLarge(m) },
			dlq: func(_ int64, m kafka.Message) error { return tooLarge(m) }, fatal: "DLQTopic"},
		{name: "DLQ not authorized", out: func(_ int64, m kafka.Message) error { return tooLarge(m) },
			dlq: func(int64, kafka.Message) error { return kafka.TopicAuthorizationFailed }, fatal: "DLQTopic"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var nOut, nDLQ atomic.Int64
			cfg := testConfig()
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			pub := &memPublisher{fail: func(m kafka.Message) error {
				switch {
				case m.Topic == "out" && tc.out != nil:
					return tc.out(nOut.Add(1), m)
				case m.Topic == "dlq" && tc.dlq != nil:
					return tc.dlq(nDLQ.Add(1), m)
				}
				return nil
			}}
			p, err := newPipeline(cfg.withDefaults(), okLookup(1), pub)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = p.Close() })
			c := p.Claim("in", 0)
			ctx := context.Background()
			if err := c.Submit(ctx, kafka.Message{Topic: "in", Key: []byte("k"), Offset: 0, Value: event("u", 0)}); err != nil {
				t.Fatal(err)
			}
			dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := c.Drain(dctx); err != nil {
				t.Fatal(err)
			}
			msgs := pub.messages()
			if tc.fatal != "" {
				var fe *TopicError
				if !errors.As(p.Err(), &fe) || fe.Field != tc.fatal || len(msgs) != 0 {
					t.Fatalf("err %v, %d published; want a fatal error naming %s", p.Err(), len(msgs), tc.fatal)
				}
				if off, ok := c.Committable(); ok {
					t.Fatalf("committable %d after a failed write", off)
				}
				return
			}
			if p.Err() != nil || len(msgs) != 1 || msgs[0].Topic != tc.wantTopic || header(msgs[0], HeaderErrorClass) != string(tc.wantClass) {
				t.Fatalf("err %v, published %d %v", p.Err(), len(msgs), msgs)
			}
			if tc.wantClass != "" && string(msgs[0].Value) != string(event("u", 0)) {
				t.Fatalf("DLQ value %s is not the input", msgs[0].Value)
			}
		})
	}
}

// TestFatalWriteStopsProcessor: a permanent write error stops Run with the
// *TopicError; the commit stays behind the unpublished record.
func TestFatalWriteStopsProcessor(t *testing.T) {
	c := startCluster(t, 1)
	c.produce(seqEvents(0, 5))
	cfg := c.config("fatal-write")
	cfg.OutputTopic = "no-such-topic"
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	p := newFakeProcessor(t, cfg, okLookup(1))
	run := runProcessor(t, p)
	err := run.wait(t)
	var fe *TopicError
	if !errors.As(err, &fe) || fe.Topic != "no-such-topic" || fe.Field != "OutputTopic" {
		t.Fatalf("Run = %v, want a fatal error naming OutputTopic", err)
	}
	if got := c.committed("fatal-write"); got[0] > 0 {
		t.Fatalf("committed %v with nothing published", got)
	}
}
