package processor

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"
)

// txn is one transaction of a test's transactional producer: n records
// over the partitions, committed or aborted.
type txn struct {
	n     int
	abort bool
}

// produceTxns writes txns to "in" with one transactional producer, records
// spread over the partitions in turn, and returns the positions of the
// committed and of the aborted records. Every partition gets a transaction
// marker after each transaction.
func (c *cluster) produceTxns(t *testing.T, txns []txn) (committed, aborted map[tp]bool) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.b.Addr()), kgo.TransactionalID("txn-test"),
		kgo.DefaultProduceTopic("in"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	committed, aborted = map[tp]bool{}, map[tp]bool{}
	seq := 0
	for _, tx := range txns {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		recs := make([]*kgo.Record, tx.n)
		for i := range recs {
			user := fmt.Sprintf("user-%d", seq%50)
			if tx.abort {
				user = fmt.Sprintf("aborted-%d", seq)
			}
			recs[i] = &kgo.Record{Partition: int32(seq % c.parts), Key: []byte(user), Value: event(user, seq)}
			seq++
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(!tx.abort)); err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			pos := tp{int(r.Partition), r.Offset}
			if tx.abort {
				aborted[pos] = true
			} else {
				committed[pos] = true
			}
		}
	}
	return committed, aborted
}

// checkPublished asserts that the output and DLQ records come from exactly
// the positions want, once each, and that none is a transaction marker's.
func checkPublished(t *testing.T, c *cluster, want map[tp]bool, p *Processor) {
	t.Helper()
	seen := c.outputs(t)
	for pos, n := range seen {
		if !want[pos] || n != 1 {
			t.Fatalf("input %v published %d times; expected: %v", pos, n, want[pos])
		}
	}
	if len(seen) != len(want) {
		t.Fatalf("%d inputs published, want %d", len(seen), len(want))
	}
	if st := p.Stats(); st.DLQ != 0 || st.Out != int64(len(want)) {
		t.Fatalf("stats: %d out, %d dead-lettered (%v), want %d and 0", st.Out, st.DLQ, st.DLQByClass, len(want))
	}
}

var testTxns = []txn{{n: 400}, {n: 100, abort: true}, {n: 300}, {n: 300}}

// TestTransactionalInputRun: with read_committed (the default) a group
// consumer publishes every committed record once, none of an aborted
// transaction, dead-letters no transaction marker, and commits past the
// markers to the partitions' ends; with read_uncommitted it publishes the
// aborted records too, and still no marker.
func TestTransactionalInputRun(t *testing.T) {
	for _, level := range []IsolationLevel{"", ReadUncommitted} {
		t.Run(string(cmp.Or(level, "default")), func(t *testing.T) {
			c := startCluster(t, 2)
			committed, aborted := c.produceTxns(t, testTxns)
			if len(committed) != 1000 || len(aborted) != 100 {
				t.Fatalf("%d committed, %d aborted records", len(committed), len(aborted))
			}
			cfg := c.config("txn")
			cfg.IsolationLevel = level
			p := newFakeProcessor(t, cfg, okLookup(1))
			run := runProcessor(t, p)
			ends := c.endOffsets()
			for part, end := range ends {
				if end != int64(550+len(testTxns)) {
					t.Fatalf("partition %d ends at %d, want 550 records and %d markers", part, end, len(testTxns))
				}
			}
			waitCommitted(t, p, ends)
			if err := run.stop(); err != nil {
				t.Fatal(err)
			}
			want := committed
			if level == ReadUncommitted {
				want = maps.Clone(committed)
				maps.Copy(want, aborted)
			}
			checkPublished(t, c, want, p)
			for part, off := range c.committed("txn") {
				if off != ends[part] {
					t.Fatalf("partition %d committed at %d, want its end %d", part, off, ends[part])
				}
			}
		})
	}
}

// TestTransactionalInputReplay: a replay of a transactional input
// publishes every committed record once and nothing aborted, dead-letters
// no marker, and completes, also when its range ends in a transaction
// marker or in the records of an aborted transaction.
func TestTransactionalInputReplay(t *testing.T) {
	c := startCluster(t, 2)
	committed, aborted := c.produceTxns(t, testTxns)
	// Partition 0: 200 committed (0-199), marker (200), 50 aborted
	// (201-250), marker (251), ...
	abortedP0 := slices.Sorted(func(yield func(int64) bool) {
		for pos := range aborted {
			if pos.partition == 0 && !yield(pos.offset) {
				return
			}
		}
	})
	firstAborted, lastAborted := abortedP0[0], abortedP0[len(abortedP0)-1]
	below := func(part int, end int64) map[tp]bool {
		out := map[tp]bool{}
		for pos := range committed {
			if pos.partition == part && pos.offset < end {
				out[pos] = true
			}
		}
		return out
	}
	tests := []struct {
		name string
		rng  ReplayRange
		want map[tp]bool
	}{
		{"everything", ReplayRange{}, committed},
		{"ends after an abort marker", ReplayRange{Offsets: map[int]OffsetRange{0: {Start: 0, End: lastAborted + 2}}}, below(0, lastAborted+2)},
		{"ends in a commit marker", ReplayRange{Offsets: map[int]OffsetRange{0: {Start: 0, End: firstAborted}}}, below(0, firstAborted)},
		{"ends in aborted records", ReplayRange{Offsets: map[int]OffsetRange{0: {Start: 0, End: firstAborted + 10}}}, below(0, firstAborted)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := c.replayConfig(tt.rng)
			run := startReplay(t, cfg, tt.rng, newFakeProcessor(t, cfg, okLookup(1)))
			if err := run.wait(t); err != nil {
				t.Fatal(err)
			}
			if pr := run.r.Progress(); !pr.Complete || pr.Done != pr.Total {
				t.Fatalf("progress %+v", pr)
			}
			checkPublished(t, c, tt.want, run.p)
			cleanOutputs(t, c)
		})
	}
}

// cleanOutputs empties "out" and "dlq" between the subtests of one cluster.
func cleanOutputs(t *testing.T, c *cluster) {
	t.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(c.b.Addr()), Timeout: 10 * time.Second}
	ctx := context.Background()
	for _, topic := range []string{"out", "dlq"} {
		res, err := cl.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{topic}})
		if err != nil || res.Errors[topic] != nil {
			t.Fatalf("delete %s: %v %v", topic, err, res)
		}
		cres, err := cl.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: c.parts, ReplicationFactor: 1}}})
		if err != nil || cres.Errors[topic] != nil {
			t.Fatalf("create %s: %v %v", topic, err, cres)
		}
	}
}

// TestCompactedRange: a replay whose range ends on offsets compaction
// removed completes, and a group consumer commits past removed offsets to
// the partition's end.
func TestCompactedRange(t *testing.T) {
	c := startCluster(t, 1)
	cl := &kafka.Client{Addr: kafka.TCP(c.b.Addr()), Timeout: 10 * time.Second}
	res, err := cl.IncrementalAlterConfigs(context.Background(), &kafka.IncrementalAlterConfigsRequest{
		Resources: []kafka.IncrementalAlterConfigsRequestResource{{
			ResourceType: kafka.ResourceTypeTopic, ResourceName: "in",
			Configs: []kafka.IncrementalAlterConfigsRequestConfig{{Name: "cleanup.policy", Value: "compact", ConfigOperation: kafka.ConfigOperationSet}},
		}},
	})
	if err != nil || res.Resources[0].Error != nil {
		t.Fatalf("alter configs: %v %+v", err, res)
	}
	batch := func(prefix string, from, n int) []kafka.Message {
		msgs := make([]kafka.Message, n)
		for i := range msgs {
			msgs[i] = kafka.Message{Key: []byte(fmt.Sprintf("%s-%d", prefix, i)), Value: event(fmt.Sprintf("user-%d", i), from+i)}
		}
		return msgs
	}
	c.produce(batch("a", 0, 100))  // offsets 0-99, kept
	c.produce(batch("b", 100, 50)) // 100-149, superseded below
	c.produce(batch("b", 150, 50)) // 150-199
	c.produce(batch("c", 200, 1))  // 200: the active batch, never compacted
	c.b.Cluster().Compact()
	in := c.readAll("in")
	if len(in) != 151 || in[99].Offset != 99 || in[100].Offset != 150 {
		t.Fatalf("compaction left %d records (offsets %d, %d)", len(in), in[99].Offset, in[100].Offset)
	}
	want := map[tp]bool{}
	for i := range int64(100) {
		want[tp{0, i}] = true
	}
	rng := ReplayRange{Offsets: map[int]OffsetRange{0: {Start: 0, End: 150}}}
	cfg := c.replayConfig(rng)
	run := startReplay(t, cfg, rng, newFakeProcessor(t, cfg, okLookup(1)))
	if err := run.wait(t); err != nil {
		t.Fatal(err)
	}
	if pr := run.r.Progress(); !pr.Complete || pr.Done != 150 {
		t.Fatalf("progress %+v", pr)
	}
	checkPublished(t, c, want, run.p)
	cleanOutputs(t, c)

	// A group consumer over the whole partition.
	p := newFakeProcessor(t, c.config("compacted"), okLookup(1))
	live := runProcessor(t, p)
	waitCommitted(t, p, map[int]int64{0: 201})
	if err := live.stop(); err != nil {
		t.Fatal(err)
	}
	for _, m := range in {
		want[tp{0, m.Offset}] = true
	}
	checkPublished(t, c, want, p)
}
