package processor

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tencentchat-enricher/enricher/internal/devkafka"
	"github.com/tencentchat-enricher/enricher/internal/testsupport"
)

// The tests of this file disrupt a running group — hard kills, a broker
// restart, an instance joining, a completed set too large for the commit
// metadata — and check what the partitions' next owners publish again:
// nothing is lost, a record is published again only when the last commit
// before the disruption did not cover it, and per-key order holds on each
// record's first copy.

// startPersistentCluster is startCluster with a DataDir: the broker can be
// stopped and started again (c.b.Restart) with its log and commits.
func startPersistentCluster(t testing.TB, partitions int) *cluster {
	t.Helper()
	b, err := devkafka.Start(devkafka.Config{Partitions: partitions, Topics: []string{"in", "out", "dlq"}, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return &cluster{t: t, b: b, parts: partitions}
}

// groupCommit is a partition's committed offset and the completed set of
// its metadata (empty when the metadata carries none).
type groupCommit struct {
	offset int64
	done   completedSet
	meta   string
}

// covers reports whether the commit says the record at off is done.
func (g groupCommit) covers(off int64) bool { return off < g.offset || g.done.contains(off) }

// commits returns the group's commits of "in" by partition, through a
// transport of its own (the default transport's pooled connections fail
// for a while after a broker restart).
func (c *cluster) commits(group string) map[int]groupCommit {
	c.t.Helper()
	parts := make([]int, c.parts)
	for i := range parts {
		parts[i] = i
	}
	cl := &kafka.Client{Addr: kafka.TCP(c.b.Addr()), Timeout: 10 * time.Second, Transport: &kafka.Transport{}}
	defer cl.Transport.(*kafka.Transport).CloseIdleConnections()
	res, err := cl.OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{"in": parts}})
	if err == nil && res.Error != nil {
		err = res.Error
	}
	if err != nil {
		c.t.Fatal(err)
	}
	out := map[int]groupCommit{}
	for _, p := range res.Topics["in"] {
		g := groupCommit{offset: p.CommittedOffset, meta: p.Metadata}
		m, err := decodeMetadata(p.Metadata)
		if err != nil {
			c.t.Fatalf("partition %d: commit metadata %q: %v", p.Partition, p.Metadata, err)
		}
		if set, ok := m.completedAt(p.CommittedOffset); ok {
			g.done = set
		}
		out[p.Partition] = g
	}
	return out
}

// waitGroupCommitted waits until group committed every partition of "in"
// to its end.
func waitGroupCommitted(t testing.TB, c *cluster, group string, ends map[int]int64) {
	t.Helper()
	testsupport.WaitFor(t, 60*time.Second, "the group's commits up to the end offsets", func() bool {
		got := c.commits(group)
		for part, end := range ends {
			if end > 0 && got[part].offset != end {
				return false
			}
		}
		return true
	})
}

// copyOf is an output or DLQ record with the input position it is a copy
// of.
type copyOf struct {
	msg kafka.Message
	src tp
}

// copies reads topic and the input position of each record.
func copies(t testing.TB, c *cluster, topic string) []copyOf {
	t.Helper()
	msgs := c.readAll(topic)
	out := make([]copyOf, len(msgs))
	for i, m := range msgs {
		if topic == "dlq" {
			out[i] = copyOf{msg: m, src: sourceOf(t, m)}
			continue
		}
		// The source alone: cheaper than sourceOf's whole record.
		var r struct {
			Source struct {
				Partition int   `json:"partition"`
				Offset    int64 `json:"offset"`
			} `json:"source"`
		}
		if err := json.Unmarshal(m.Value, &r); err != nil {
			t.Fatalf("output not JSON: %v: %s", err, m.Value)
		}
		out[i] = copyOf{msg: m, src: tp{r.Source.Partition, r.Source.Offset}}
	}
	return out
}

// published counts the output and DLQ records by input position.
func published(t testing.TB, c *cluster) map[tp]int {
	t.Helper()
	seen := map[tp]int{}
	for _, topic := range []string{"out", "dlq"} {
		for _, cp := range copies(t, c, topic) {
			seen[cp.src]++
		}
	}
	return seen
}

// redelivery is the outcome of a disrupted run: every input record's
// copies counted.
type redelivery struct {
	lost  []tp
	dups  map[tp]int      // input position → copies beyond the first
	n     int             // all duplicate copies
	first []kafka.Message // the output records that are their input's first copy, in output order
}

// countRedelivery counts the copies of every input record below ends (the
// input's offsets are contiguous: no transactions, no compaction).
func countRedelivery(t testing.TB, c *cluster, ends map[int]int64) redelivery {
	t.Helper()
	r := redelivery{dups: map[tp]int{}}
	seen := map[tp]int{}
	for _, cp := range copies(t, c, "out") {
		if seen[cp.src] == 0 {
			r.first = append(r.first, cp.msg)
		}
		seen[cp.src]++
	}
	for _, cp := range copies(t, c, "dlq") {
		seen[cp.src]++
	}
	for part, end := range ends {
		for off := range end {
			k := tp{part, off}
			switch n := seen[k]; {
			case n == 0:
				r.lost = append(r.lost, k)
			case n > 1:
				r.dups[k] = n - 1
				r.n += n - 1
			}
		}
	}
	return r
}

// logCapture is a slog handler keeping every message with its attributes,
// shared by the loggers derived from it. Safe for concurrent use.
type logCapture struct {
	lines *capturedLines
	attrs []slog.Attr
}

type capturedLines struct {
	mu    sync.Mutex
	lines []string
}

func newLogCapture() *logCapture { return &logCapture{lines: &capturedLines{}} }

func (h *logCapture) Enabled(context.Context, slog.Level) bool { return true }

func (h *logCapture) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	for _, a := range h.attrs {
		b.WriteString(" " + a.String())
	}
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	h.lines.mu.Lock()
	defer h.lines.mu.Unlock()
	h.lines.lines = append(h.lines.lines, b.String())
	return nil
}

func (h *logCapture) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &logCapture{lines: h.lines, attrs: append(append([]slog.Attr(nil), h.attrs...), attrs...)}
}

func (h *logCapture) WithGroup(string) slog.Handler { return h }

// matching returns the lines that contain s.
func (h *logCapture) matching(s string) []string {
	h.lines.mu.Lock()
	defer h.lines.mu.Unlock()
	var out []string
	for _, l := range h.lines.lines {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

func sumOf(xs []int) (sum int) {
	for _, x := range xs {
		sum += x
	}
	return sum
}

// claimsOf returns the pipeline's current claims.
func claimsOf(p *Pipeline) []*Claim {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*Claim
	for c := range p.claims {
		out = append(out, c)
	}
	return out
}

// jitteryLookup answers every user after 1–5 ms, so that a partition's
// records finish out of order and the in-flight window stays full.
func jitteryLookup() lookupFunc {
	lat := randomLatency(4 * time.Millisecond)
	return tableLookup(func() time.Duration { return time.Millisecond + lat() })
}

// TestRedeliverKillRestart: a processor killed hard mid-stream (nothing
// more published or committed, as far as Kafka can tell) three times on a
// persistent broker, restarted each time in the same group. Nothing is
// lost; a record is published again only if it was published after the
// last commit before a kill (neither below the committed offset nor in the
// commit's completed set), which is at most the partitions' in-flight
// window per kill; the restarted runs skip the records in the completed
// sets; per-key order holds on first copies.
func TestRedeliverKillRestart(t *testing.T) {
	c := startPersistentCluster(t, 4)
	const n, kills = 3000, 3
	c.produce(userEvents(0, n, 60, plainUser))
	ends := c.endOffsets()
	cfg := c.config("kill")
	cfg.MaxInFlight, cfg.MaxInFlightPerPartition = 256, 64
	window := c.parts * cfg.MaxInFlightPerPartition

	stranded := map[tp]bool{} // published, not covered by the last commit before some kill
	var perKill []int
	var skipped int64
	for k := range kills {
		p := newFakeProcessor(t, cfg, jitteryLookup())
		run := runProcessor(t, p)
		testsupport.WaitFor(t, 60*time.Second, "records published mid-stream", func() bool { return p.Stats().Out+p.Stats().DLQ >= n/5 })
		p.pipe.stopHard()
		if err := run.wait(t); err != nil {
			t.Fatalf("run %d = %v", k+1, err)
		}
		skipped += p.Stats().SkippedPublished
		commits := c.commits("kill")
		above := 0
		for pos := range published(t, c) {
			if !commits[pos.partition].covers(pos.offset) {
				stranded[pos] = true
				above++
			}
		}
		perKill = append(perKill, above)
		if above > window {
			t.Errorf("kill %d: %d records published above the last commit, more than the in-flight window %d", k+1, above, window)
		}
	}
	p := newFakeProcessor(t, cfg, jitteryLookup())
	run := runProcessor(t, p)
	waitGroupCommitted(t, c, "kill", ends)
	if err := run.stop(); err != nil {
		t.Fatal(err)
	}
	skipped += p.Stats().SkippedPublished

	r := countRedelivery(t, c, ends)
	if len(r.lost) > 0 {
		t.Fatalf("%d input records lost, first %v", len(r.lost), r.lost[0])
	}
	for pos, extra := range r.dups {
		if !stranded[pos] {
			t.Fatalf("input %v published %d more times although every commit before a kill covered it", pos, extra)
		}
	}
	if total := sumOf(perKill); r.n > total {
		t.Fatalf("%d duplicates, more than the %d records published above the last commits before the kills", r.n, total)
	}
	if skipped == 0 {
		t.Fatal("no restarted run skipped a record published before the last commit: the completed sets were not used")
	}
	checkKeyOrder(t, r.first)
	t.Logf("%d records, %d kills: %d duplicates in all; published above the last commit at each kill: %v (window %d); the restarts skipped %d records already published",
		n, kills, r.n, perKill, window, skipped)
}

// TestRedeliverBrokerRestart: the broker is stopped mid-stream and started
// again on the same address and data directory; the processor rides it out
// (fetches, writes and commits fail meanwhile, the group is joined again).
// Nothing is lost and few records are published again.
func TestRedeliverBrokerRestart(t *testing.T) {
	c := startPersistentCluster(t, 4)
	const n = 3000
	c.produce(userEvents(0, n, 60, plainUser))
	ends := c.endOffsets()
	cfg := c.config("restart")
	cfg.MaxInFlight, cfg.MaxInFlightPerPartition = 256, 64
	logs := newLogCapture()
	cfg.Logger = slog.New(logs)
	p := newFakeProcessor(t, cfg, jitteryLookup())
	run := runProcessor(t, p)
	testsupport.WaitFor(t, 60*time.Second, "records published mid-stream", func() bool { return p.Stats().Out+p.Stats().DLQ >= n/3 })
	c.b.Close()
	before := p.Stats().Out + p.Stats().DLQ
	// The outage: a fixed length, not a wait for a condition.
	outage := time.NewTimer(time.Second)
	<-outage.C
	if err := c.b.Restart(); err != nil {
		t.Fatal(err)
	}
	if before >= n {
		t.Fatal("everything was published before the broker stopped")
	}
	waitGroupCommitted(t, c, "restart", ends)
	if err := run.stop(); err != nil {
		t.Fatal(err)
	}
	r := countRedelivery(t, c, ends)
	if len(r.lost) > 0 {
		t.Fatalf("%d input records lost, first %v", len(r.lost), r.lost[0])
	}
	window := c.parts * cfg.MaxInFlightPerPartition
	if r.n > window {
		t.Fatalf("%d duplicates after a broker restart, more than the in-flight window %d", r.n, window)
	}
	checkKeyOrder(t, r.first)
	t.Logf("%d records, broker stopped for 1s after %d: %d duplicates (window %d), %d skipped as already published, %d incomplete drains",
		n, before, r.n, window, p.Stats().SkippedPublished, len(logs.matching("drain incomplete")))
}

// TestRedeliverScaleOut: two instances share a group mid-stream when a
// third joins; the rebalance revokes partitions, whose drains finish and
// whose final commits carry the completed sets. Nothing is lost, no drain
// is incomplete, and few records (none, normally) are published again.
func TestRedeliverScaleOut(t *testing.T) {
	c := startCluster(t, 6)
	const n = 3000
	c.produce(userEvents(0, n, 60, plainUser))
	ends := c.endOffsets()
	cfg := c.config("scale")
	cfg.MaxInFlight, cfg.MaxInFlightPerPartition = 256, 64
	var logs []*logCapture
	var procs []*Processor
	var runs []*running
	start := func() {
		lc := newLogCapture()
		pcfg := cfg
		pcfg.Logger = slog.New(lc)
		p := newFakeProcessor(t, pcfg, jitteryLookup())
		logs, procs = append(logs, lc), append(procs, p)
		runs = append(runs, runProcessor(t, p))
	}
	out := func() (sum int64) {
		for _, p := range procs {
			sum += p.Stats().Out + p.Stats().DLQ
		}
		return sum
	}
	start()
	start()
	testsupport.WaitFor(t, 60*time.Second, "two instances sharing the partitions", func() bool {
		return len(procs[0].Stats().Partitions) > 0 && len(procs[1].Stats().Partitions) > 0 && out() >= n/4
	})
	start()
	testsupport.WaitFor(t, 60*time.Second, "the third instance assigned partitions", func() bool { return len(procs[2].Stats().Partitions) > 0 })
	joinedAt := out()
	waitGroupCommitted(t, c, "scale", ends)
	for _, r := range runs {
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
	}
	if joinedAt >= n {
		t.Fatal("everything was published before the third instance joined")
	}
	for i, lc := range logs {
		if bad := lc.matching("drain incomplete"); len(bad) > 0 {
			t.Errorf("instance %d: %s", i+1, bad[0])
		}
	}
	r := countRedelivery(t, c, ends)
	if len(r.lost) > 0 {
		t.Fatalf("%d input records lost, first %v", len(r.lost), r.lost[0])
	}
	if r.n > cfg.MaxInFlightPerPartition {
		t.Fatalf("%d duplicates after a rebalance, more than one partition's in-flight window %d", r.n, cfg.MaxInFlightPerPartition)
	}
	checkKeyOrder(t, r.first)
	var skipped int64
	for _, p := range procs {
		skipped += p.Stats().SkippedPublished
	}
	t.Logf("%d records, third instance assigned after %d published: %d duplicates, %d skipped as already published", n, joinedAt, r.n, skipped)
}

// prefixOf reports whether p holds a prefix of c's offsets: c's first runs,
// the last of them possibly ending early.
func prefixOf(p, c completedSet) bool {
	if p.base != c.base || len(p.runs) > len(c.runs) {
		return false
	}
	for i, r := range p.runs {
		if r.first != c.runs[i].first || r.last > c.runs[i].last || r.last < c.runs[i].last && i < len(p.runs)-1 {
			return false
		}
	}
	return true
}

// TestRedeliverMetadataOverflow: a partition whose completed set cannot fit
// the commit metadata. A record stalls at offset 100 while the records
// after it finish, except every eighth (queued behind it under its key):
// the set above the watermark spans 16,000 offsets in 2,000 runs, beyond
// both encodings within a budget of 1,500 bytes (the span bound, which
// would stop fetching before, is off). The commit carries the longest
// prefix of the set that fits, counted in MetadataOverflows; after a hard
// kill the next owner skips what the commit carried, publishes again
// exactly the published records it did not carry, and loses nothing.
func TestRedeliverMetadataOverflow(t *testing.T) {
	c := startCluster(t, 1)
	const head, window, every = 100, 16_000, 8
	defer func(b int) { commitMetadataBudget, spanBounded = b, true }(commitMetadataBudget)
	commitMetadataBudget, spanBounded = 1500, false
	n := head + window
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		key, user := fmt.Sprintf("k%d", i%50), fmt.Sprintf("u%d", i%100)
		switch {
		case i == head:
			key, user = "stall", "stall"
		case i > head && (i-head)%every == 0:
			key = "stall"
		}
		msgs[i] = kafka.Message{Key: []byte(key), Value: event(user, i)}
	}
	c.produce(msgs)
	ends := c.endOffsets()
	cfg := c.config("overflow")
	cfg.MaxInFlight, cfg.MaxInFlightPerPartition = window, window
	fetch1 := func(ctx context.Context, user string) (lookup, error) {
		if user == "stall" {
			<-ctx.Done() // until the kill
			return lookup{}, ctx.Err()
		}
		return okLookup(0)(ctx, user)
	}
	p1 := newFakeProcessor(t, cfg, fetch1)
	run1 := runProcessor(t, p1)
	stalled := window / every // the stalled record and those behind it
	finished := int64(n - stalled)
	var g groupCommit
	var set completedSet
	testsupport.WaitFor(t, 60*time.Second, "every record but the stalled key's published, the set committed cut to the budget", func() bool {
		st := p1.Stats()
		if st.Out != finished || st.MetadataOverflows == 0 {
			return false
		}
		set, _ = claimsOf(p1.pipe)[0].wm.completed()
		g = c.commits("overflow")[0]
		return g.offset == head && !g.done.empty() && g.done.len() < set.len() && prefixOf(g.done, set)
	})
	if len(g.meta) > commitMetadataBudget {
		t.Fatalf("commit metadata of %d bytes, more than the budget %d", len(g.meta), commitMetadataBudget)
	}
	if enc, fits := encodeMetadata(commitMeta{done: set}, commitMetadataBudget); fits {
		t.Fatalf("the completed set fits the budget after all (%d bytes): the test does not overflow", len(enc))
	}
	overflows := p1.Stats().MetadataOverflows
	p1.pipe.stopHard()
	if err := run1.wait(t); err != nil {
		t.Fatalf("run 1 = %v", err)
	}

	p2 := newFakeProcessor(t, cfg, okLookup(0))
	run2 := runProcessor(t, p2)
	waitCommitted(t, p2, ends)
	if err := run2.stop(); err != nil {
		t.Fatal(err)
	}
	r := countRedelivery(t, c, ends)

	if len(r.lost) > 0 {
		t.Fatalf("%d input records lost, first %v", len(r.lost), r.lost[0])
	}
	// The records published above the watermark and left out of the
	// committed prefix are published again; none below the watermark and
	// none the prefix carried.
	if want := int(finished) - head - int(g.done.len()); r.n != want {
		t.Fatalf("%d duplicates, want the %d published records above the watermark the commit did not carry", r.n, want)
	}
	for pos := range r.dups {
		if pos.offset < head || g.done.contains(pos.offset) {
			t.Fatalf("input %v published again: below the committed watermark or in the committed set", pos)
		}
	}
	if s := p2.Stats().SkippedPublished; s != g.done.len() {
		t.Fatalf("the next owner skipped %d records, want the %d the commit carried", s, g.done.len())
	}
	checkKeyOrder(t, r.first)
	t.Logf("%d records, %d stalled at offset %d: %d commits cut to the budget (%d of %d runs over %d offsets), %d duplicates after the kill",
		n, stalled, head, overflows, len(g.done.runs), len(set.runs), window, r.n)
}
