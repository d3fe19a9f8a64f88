package processor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tencentchat-enricher/enricher/internal/devkafka"
	"github.com/tencentchat-enricher/enricher/internal/testsupport"
	"github.com/tencentchat-enricher/enricher/schemas"
)

// cluster is an in-process broker over TCP with the three topics.
type cluster struct {
	t     testing.TB
	b     *devkafka.Broker
	parts int
}

func startCluster(t testing.TB, partitions int) *cluster {
	t.Helper()
	b, err := devkafka.Start(devkafka.Config{Partitions: partitions, Topics: []string{"in", "out", "dlq"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return &cluster{t: t, b: b, parts: partitions}
}

func (c *cluster) config(group string) Config {
	return Config{
		Brokers: []string{c.b.Addr()}, InputTopic: "in", OutputTopic: "out", DLQTopic: "dlq", Group: group,
		CommitInterval: 20 * time.Millisecond, FetchMaxWait: 50 * time.Millisecond,
		HeartbeatInterval: 200 * time.Millisecond, SessionTimeout: 6 * time.Second, RebalanceTimeout: 2 * time.Second,
		BatchTimeout: time.Millisecond,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// produce writes msgs to "in", keyed by Hash, and returns them with their
// partitions and offsets as read back.
func (c *cluster) produce(msgs []kafka.Message) {
	c.t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(c.b.Addr()), Topic: "in", Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, BatchSize: 1000}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		c.t.Fatal(err)
	}
}

// readAll returns every record of topic, partition by partition in offset
// order, up to the partitions' current end.
func (c *cluster) readAll(topic string) []kafka.Message {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []kafka.Message
	for p := range c.parts {
		conn, err := kafka.DialLeader(ctx, "tcp", c.b.Addr(), topic, p)
		if err != nil {
			c.t.Fatal(err)
		}
		first, last, err := conn.ReadOffsets()
		conn.Close()
		if err != nil {
			c.t.Fatal(err)
		}
		if last <= first {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{c.b.Addr()}, Topic: topic, Partition: p, MaxWait: 50 * time.Millisecond})
		if err := r.SetOffset(first); err != nil {
			c.t.Fatal(err)
		}
		for {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				c.t.Fatal(err)
			}
			out = append(out, m)
			if m.Offset >= last-1 {
				break
			}
		}
		r.Close()
	}
	return out
}

// endOffsets returns the end offset of each partition of "in".
func (c *cluster) endOffsets() map[int]int64 {
	c.t.Helper()
	ends := map[int]int64{}
	for p := range c.parts {
		conn, err := kafka.DialLeader(context.Background(), "tcp", c.b.Addr(), "in", p)
		if err != nil {
			c.t.Fatal(err)
		}
		last, err := conn.ReadLastOffset()
		conn.Close()
		if err != nil {
			c.t.Fatal(err)
		}
		ends[p] = last
	}
	return ends
}

// committed returns the group's committed offsets of "in" (-1: none).
func (c *cluster) committed(group string) map[int]int64 {
	c.t.Helper()
	parts := make([]int, c.parts)
	for i := range parts {
		parts[i] = i
	}
	cl := &kafka.Client{Addr: kafka.TCP(c.b.Addr()), Timeout: 10 * time.Second}
	res, err := cl.OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{"in": parts}})
	if err != nil {
		c.t.Fatal(err)
	}
	out := map[int]int64{}
	for _, p := range res.Topics["in"] {
		out[p.Partition] = p.CommittedOffset
	}
	return out
}

// running is a processor whose Run is in progress.
type running struct {
	cancel   context.CancelFunc
	finished chan struct{}
	err      error
}

// chainAt counts the records of at's partition from at's offset to end
// with the key of the record at it: a stalled record and those queued
// behind it.
func chainAt(in []kafka.Message, at tp, end int64) int {
	var key []byte
	n := 0
	for _, m := range in {
		if m.Partition != at.partition || m.Offset < at.offset || m.Offset >= end {
			continue
		}
		if m.Offset == at.offset {
			key = m.Key
		}
		if key != nil && string(m.Key) == string(key) {
			n++
		}
	}
	return n
}

// runProcessor starts p.Run; the test's cleanup stops it.
func runProcessor(t testing.TB, p *Processor) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, finished: make(chan struct{})}
	go func() {
		defer close(r.finished)
		r.err = p.Run(ctx)
	}()
	t.Cleanup(func() { _ = r.stop() })
	return r
}

// wait waits for Run to return by itself and returns its error.
func (r *running) wait(t testing.TB) error {
	t.Helper()
	select {
	case <-r.finished:
		return r.err
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not return")
		return nil
	}
}

// stop cancels Run's context and returns Run's error.
func (r *running) stop() error {
	r.cancel()
	select {
	case <-r.finished:
		return r.err
	case <-time.After(60 * time.Second):
		return errors.New("Run did not return within 60s of cancel")
	}
}

func newFakeProcessor(t testing.TB, cfg Config, fetch lookupFunc) *Processor {
	t.Helper()
	p, err := newProcessor(cfg, func(Config) lookupFunc { return fetch })
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type tp struct {
	partition int
	offset    int64
}

// sourceOf returns the input position of an output or DLQ record.
func sourceOf(t testing.TB, m kafka.Message) tp {
	t.Helper()
	if m.Topic == "dlq" {
		var p int
		var o int64
		if _, err := fmt.Sscan(header(m, HeaderSourcePartition), &p); err != nil {
			t.Fatal(err)
		}
		if _, err := fmt.Sscan(header(m, HeaderSourceOffset), &o); err != nil {
			t.Fatal(err)
		}
		return tp{p, o}
	}
	r := decodeOut(t, m)
	return tp{r.Source.Partition, r.Source.Offset}
}

// mixedEvents returns n events over keys, with every outcome: ok users,
// unknown and invalid users and malformed values.
func mixedEvents(n, keys int, seed uint64) []kafka.Message {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		key := fmt.Sprintf("key-%d", rng.IntN(keys))
		var value []byte
		switch i % 10 {
		case 7:
			value = event("gone", i)
		case 8:
			value = event("bad", i)
		case 9:
			value = []byte(fmt.Sprintf(`{"seq":%d}`, i)) // no user id
		default:
			value = event(fmt.Sprintf("user-%d", rng.IntN(50)), i)
		}
		msgs[i] = kafka.Message{Key: []byte(key), Value: value}
	}
	return msgs
}

func tableLookup(latency func() time.Duration) lookupFunc {
	return func(ctx context.Context, user string) (lookup, error) {
		if latency != nil {
			t := time.NewTimer(latency())
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return lookup{}, ctx.Err()
			}
		}
		switch user {
		case "gone":
			return lookup{status: schemas.StatusUserNotFound, complete: true, fetchedAt: time.Now()}, nil
		case "bad":
			return lookup{status: schemas.StatusInvalidUser, complete: true, fetchedAt: time.Now()}, nil
		}
		return okLookup(2)(ctx, user)
	}
}

func randomLatency(max time.Duration) func() time.Duration {
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(7, 8))
	return func() time.Duration {
		mu.Lock()
		defer mu.Unlock()
		return time.Duration(rng.Int64N(int64(max)))
	}
}

// waitCommitted waits until the group committed every partition to its end.
func waitCommitted(t testing.TB, p *Processor, ends map[int]int64) {
	t.Helper()
	defer func() {
		if t.Failed() {
			t.Logf("ends %v, stats %+v", ends, p.Stats())
		}
	}()
	testsupport.WaitFor(t, 60*time.Second, "commits up to the end offsets", func() bool {
		got := map[int]int64{}
		for _, ps := range p.Stats().Partitions {
			got[ps.Partition] = ps.Committed
		}
		for part, end := range ends {
			if end > 0 && got[part] != end {
				return false
			}
		}
		return true
	})
}

// checkExactlyOnce asserts every input position has exactly one output or
// DLQ record, that outputs validate, and that per-key order holds.
func checkExactlyOnce(t testing.TB, c *cluster, n int) {
	t.Helper()
	v, err := schemas.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	in := c.readAll("in")
	if len(in) != n {
		t.Fatalf("input has %d records, want %d", len(in), n)
	}
	out := append(c.readAll("out"), c.readAll("dlq")...)
	seen := map[tp]int{}
	for _, m := range out {
		seen[sourceOf(t, m)]++
		if m.Topic == "out" {
			if err := v.ValidateRecord(m.Value); err != nil {
				t.Fatalf("output does not validate: %v", err)
			}
		}
	}
	for _, m := range in {
		if k := (tp{m.Partition, m.Offset}); seen[k] != 1 {
			t.Fatalf("input %v has %d output records, want exactly 1", k, seen[k])
		}
	}
	if len(out) != n {
		t.Fatalf("%d output+DLQ records for %d inputs", len(out), n)
	}
	checkKeyOrder(t, c.readAll("out"))
}

// checkKeyOrder: for each output key, source offsets increase in output
// order (output partitions are chosen by key, so one key is one partition).
func checkKeyOrder(t testing.TB, out []kafka.Message) {
	t.Helper()
	last := map[string]tp{}
	for _, m := range out {
		src := sourceOf(t, m)
		k := string(m.Key)
		if prev, ok := last[k]; ok && prev.partition == src.partition && src.offset <= prev.offset {
			t.Fatalf("key %s: input offset %d published after %d", k, src.offset, prev.offset)
		}
		last[k] = src
	}
}

// TestEndToEnd: through a real broker, every input record yields exactly one
// output or DLQ record, outputs validate, per-key order holds under random
// API latency, the group commits to the end, and Run returns nil on cancel.
func TestEndToEnd(t *testing.T) {
	c := startCluster(t, 3)
	const n = 600
	c.produce(mixedEvents(n, 40, 1))
	cfg := c.config("e2e")
	cfg.MaxInFlight, cfg.MaxInFlightPerPartition = 128, 64
	p := newFakeProcessor(t, cfg, tableLookup(randomLatency(3*time.Millisecond)))
	run := runProcessor(t, p)
	testsupport.WaitFor(t, 60*time.Second, "ready", p.Ready)
	ends := c.endOffsets()
	waitCommitted(t, p, ends)
	if err := run.stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	checkExactlyOnce(t, c, n)
	committed := c.committed("e2e")
	for part, end := range ends {
		if committed[part] != end {
			t.Fatalf("partition %d committed %d, want %d", part, committed[part], end)
		}
	}
	st := p.Stats()
	if st.ByStatus[schemas.StatusUserNotFound] != n/10 || st.ByStatus[schemas.StatusInvalidUser] != n/10 || st.DLQByClass[ClassMissingUserID] != n/10 {
		t.Fatalf("stats %+v", st)
	}
	if st.CacheHits == 0 || st.APICalls >= int64(n) {
		t.Fatalf("cache hits %d, API calls %d: cache not used", st.CacheHits, st.APICalls)
	}
}

// TestHardStopRestart: a processor killed mid-stream (nothing flushed or
// committed at the end) and a new one in the same group lose nothing; the
// records published above the stalled watermark before the last commit are
// in that commit's completed set, and the new one skips them: no duplicate.
func TestHardStopRestart(t *testing.T) {
	c := startCluster(t, 2)
	const n = 400
	msgs := userEvents(0, n, 25, plainUser)
	c.produce(msgs)
	cfg := c.config("crash")
	cfg.MaxInFlight, cfg.MaxInFlightPerPartition = 32, 16
	// Run 1 stalls on u150: its partition's watermark stops there while
	// records of other keys go on being published, up to the limit.
	stall := make(chan struct{})
	defer close(stall)
	fetch1 := func(ctx context.Context, user string) (lookup, error) {
		if user == "u150" {
			select {
			case <-stall:
			case <-ctx.Done():
				return lookup{}, ctx.Err()
			}
		}
		return okLookup(1)(ctx, user)
	}
	p1 := newFakeProcessor(t, cfg, fetch1)
	run1 := runProcessor(t, p1)
	ends := c.endOffsets()
	var stallAt tp
	for _, m := range c.readAll("in") {
		if string(m.Value) == string(event("u150", 150)) {
			stallAt = tp{m.Partition, m.Offset}
		}
	}
	// Quiescent: the stalled partition's watermark stopped at u150, every
	// record after it but u150's key's is published and in the committed
	// completed set, the other partition is done, and both are committed
	// up to their watermarks.
	chain := chainAt(c.readAll("in"), stallAt, ends[stallAt.partition])
	testsupport.WaitFor(t, 60*time.Second, "run 1 stalled with all watermarks committed", func() bool {
		st := p1.Stats()
		if len(st.Partitions) != 2 {
			return false
		}
		for _, ps := range st.Partitions {
			want := ends[ps.Partition]
			if ps.Partition == stallAt.partition {
				want = stallAt.offset
				g := c.commits("crash")[ps.Partition]
				if g.offset != want || g.done.len() != ends[ps.Partition]-stallAt.offset-int64(chain) {
					return false
				}
			}
			if ps.Committed != want {
				return false
			}
		}
		return true
	})
	committedAtKill := c.committed("crash")
	p1.pipe.stopHard()
	// Run's context is still live: the hard stop alone ends it.
	if err := run1.wait(t); err != nil {
		t.Fatalf("run 1 = %v", err)
	}
	before := c.readAll("out")
	if got := c.committed("crash"); fmt.Sprint(got) != fmt.Sprint(committedAtKill) {
		t.Fatalf("committed after the hard stop: %v, before %v", got, committedAtKill)
	}
	uncommitted := 0
	for _, m := range before {
		if src := sourceOf(t, m); src.offset >= committedAtKill[src.partition] {
			uncommitted++
		}
	}
	p2 := newFakeProcessor(t, cfg, okLookup(1))
	run2 := runProcessor(t, p2)
	waitCommitted(t, p2, ends)
	if err := run2.stop(); err != nil {
		t.Fatal(err)
	}
	out := c.readAll("out")
	seen := map[tp]int{}
	for _, m := range out {
		seen[sourceOf(t, m)]++
	}
	dups := 0
	for _, m := range c.readAll("in") {
		k := tp{m.Partition, m.Offset}
		switch {
		case seen[k] == 0:
			t.Fatalf("input %v lost", k)
		case seen[k] > 1:
			dups += seen[k] - 1
			if m.Offset < committedAtKill[m.Partition] {
				t.Fatalf("input %v below the committed offset %d was processed again", k, committedAtKill[m.Partition])
			}
		}
	}
	// The records published above the stalled watermark were committed in
	// the completed set of the last commit: the restart skips them all.
	if uncommitted == 0 {
		t.Fatal("nothing published above the watermark: the kill did not happen mid-stream")
	}
	if dups != 0 || p2.Stats().SkippedPublished != int64(uncommitted) {
		t.Fatalf("%d duplicates, %d skipped; %d records were published above the committed offset at the kill (all in the completed set)",
			dups, p2.Stats().SkippedPublished, uncommitted)
	}
	checkKeyOrder(t, out[len(before):])
	t.Logf("after the hard stop: %d duplicates, %d records above the committed offset skipped", dups, uncommitted)
}

// TestFatalStopsAndCommitsPublished: an app-fatal answer stops Run with the
// *FatalError; committed offsets never pass an unpublished record.
func TestFatalStopsAndCommitsPublished(t *testing.T) {
	c := startCluster(t, 2)
	const n = 200
	msgs := userEvents(0, n, 10, plainUser)
	c.produce(msgs)
	fetch := func(ctx context.Context, user string) (lookup, error) {
		if user == "u120" {
			return lookup{}, &FatalError{Code: 131000, Setting: "SDKAppID: enable the official-account service"}
		}
		return okLookup(0)(ctx, user)
	}
	p := newFakeProcessor(t, c.config("fatal"), fetch)
	err := runProcessor(t, p).wait(t)
	var fe *FatalError
	if !errors.As(err, &fe) || fe.Code != 131000 {
		t.Fatalf("Run = %v, want *FatalError 131000", err)
	}
	published := map[tp]bool{}
	for _, m := range c.readAll("out") {
		published[sourceOf(t, m)] = true
	}
	committed := c.committed("fatal")
	in := c.readAll("in")
	var fatalPos tp
	for _, m := range in {
		if string(m.Value) == string(event("u120", 120)) {
			fatalPos = tp{m.Partition, m.Offset}
		}
	}
	if published[fatalPos] {
		t.Fatal("the record with the fatal answer was published")
	}
	if committed[fatalPos.partition] > fatalPos.offset {
		t.Fatalf("committed %d past the unpublished record at %d", committed[fatalPos.partition], fatalPos.offset)
	}
	for _, m := range in {
		if m.Offset < committed[m.Partition] && !published[tp{m.Partition, m.Offset}] {
			t.Fatalf("offset %d of partition %d committed but never published", m.Offset, m.Partition)
		}
	}
	if committed[fatalPos.partition] < 0 {
		t.Log("nothing committed on the fatal partition")
	}
}

// TestOnePartitionConcurrency: a one-partition topic still runs many API
// lookups at once.
func TestOnePartitionConcurrency(t *testing.T) {
	c := startCluster(t, 1)
	const n = 300
	msgs := userEvents(0, n, 0, plainUser)
	c.produce(msgs)
	var conc concurrency
	fetch := func(ctx context.Context, user string) (lookup, error) {
		conc.enter()
		defer conc.leave()
		t := time.NewTimer(5 * time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return lookup{}, ctx.Err()
		}
		return okLookup(0)(ctx, user)
	}
	cfg := c.config("one")
	cfg.MaxInFlight, cfg.MaxInFlightPerPartition = 64, 64
	p := newFakeProcessor(t, cfg, fetch)
	run := runProcessor(t, p)
	waitCommitted(t, p, c.endOffsets())
	if err := run.stop(); err != nil {
		t.Fatal(err)
	}
	if m := conc.max.Load(); m < 16 {
		t.Fatalf("max concurrent lookups on one partition: %d, want >= 16", m)
	}
	t.Logf("max concurrent lookups on one partition: %d", conc.max.Load())
	checkExactlyOnce(t, c, n)
}

// TestGracefulShutdownMidStream: canceling Run while records are in flight
// finishes the ones being published, drops the ones waiting for the API,
// commits (with the completed set), and returns nil; a restart then
// processes the rest with no duplicate.
func TestGracefulShutdownMidStream(t *testing.T) {
	c := startCluster(t, 2)
	const n = 400
	c.produce(seqEvents(0, n))
	cfg := c.config("graceful")
	cfg.MaxInFlight, cfg.MaxInFlightPerPartition = 32, 16
	slow := func(ctx context.Context, user string) (lookup, error) {
		t := time.NewTimer(10 * time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return lookup{}, ctx.Err()
		}
		return okLookup(0)(ctx, user)
	}
	p1 := newFakeProcessor(t, cfg, slow)
	run1 := runProcessor(t, p1)
	testsupport.WaitFor(t, 60*time.Second, "some records published", func() bool { return p1.Stats().Out >= 50 })
	if err := run1.stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	// Records being published finished; those still waiting for the API
	// were dropped for the next reader (the ones published after them
	// travel in the final commit's completed set): nothing is left in
	// flight, and the restart publishes every record exactly once.
	st := p1.Stats()
	if st.InFlight != 0 || st.Out > st.In || st.Out >= n {
		t.Fatalf("after shutdown: in %d, out %d, in flight %d: records left in flight (or nothing left to restart)", st.In, st.Out, st.InFlight)
	}
	p2 := newFakeProcessor(t, cfg, okLookup(0))
	run2 := runProcessor(t, p2)
	waitCommitted(t, p2, c.endOffsets())
	if err := run2.stop(); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, c, n)
}

// BenchmarkProcessorBroker: records per second through the in-process
// broker (4 partitions), cache hits over 100 users, output acknowledged and
// committed.
func BenchmarkProcessorBroker(b *testing.B) {
	c := startCluster(b, 4)
	n := max(b.N, 1000)
	c.produce(userEvents(0, n, 0, func(i int) string { return fmt.Sprintf("u%d", i%100) }))
	cfg := c.config("bench")
	cfg.CommitInterval = 100 * time.Millisecond
	p := newFakeProcessor(b, cfg, okLookup(3))
	b.ResetTimer()
	run := runProcessor(b, p)
	waitCommitted(b, p, c.endOffsets())
	b.StopTimer()
	if err := run.stop(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}
