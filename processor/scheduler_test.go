package processor

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tencentchat-enricher/enricher/internal/testsupport"
)

// TestClaimOrdersPerKeyUnderConcurrency: with random lookup latency and many
// keys in flight, each key's records are published in offset order, keys
// run concurrently, and the watermark ends one past the last offset.
func TestClaimOrdersPerKeyUnderConcurrency(t *testing.T) {
	var conc concurrency
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(1, 2))
	lat := func() time.Duration {
		mu.Lock()
		defer mu.Unlock()
		return time.Duration(rng.IntN(2000)) * time.Microsecond
	}
	fetch := func(ctx context.Context, user string) (lookup, error) {
		conc.enter()
		defer conc.leave()
		t := time.NewTimer(lat())
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return lookup{}, ctx.Err()
		}
		return okLookup(1)(ctx, user)
	}
	cfg := testConfig()
	cfg.MaxInFlight, cfg.MaxInFlightPerPartition = 64, 64
	cfg.CacheSize = 1 // nearly every record needs a lookup
	cfg.CacheTTL = time.Nanosecond
	p, pub := newTestPipeline(t, cfg, fetch)
	c := p.Claim("in", 0)
	const n, keys = 2000, 40
	ctx := context.Background()
	keyRng := rand.New(rand.NewPCG(3, 4))
	for i := range n {
		key := fmt.Sprintf("k%d", keyRng.IntN(keys))
		user := fmt.Sprintf("u%d", i) // distinct users: no coalescing hides concurrency
		if err := c.Submit(ctx, kafka.Message{Topic: "in", Offset: int64(i), Key: []byte(key), Value: event(user, i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if off, ok := c.Release(); !ok || off != n {
		t.Fatalf("final watermark %d,%v, want %d", off, ok, n)
	}
	msgs := pub.messages()
	if len(msgs) != n {
		t.Fatalf("published %d, want %d", len(msgs), n)
	}
	last := map[string]int64{}
	for _, m := range msgs {
		r := decodeOut(t, m)
		k := string(m.Key)
		if prev, ok := last[k]; ok && r.Source.Offset <= prev {
			t.Fatalf("key %s: offset %d published after %d", k, r.Source.Offset, prev)
		}
		last[k] = r.Source.Offset
	}
	if conc.max.Load() < 8 {
		t.Fatalf("max concurrent lookups %d: keys did not run concurrently", conc.max.Load())
	}
	t.Logf("max concurrent lookups: %d", conc.max.Load())
}

// TestClaimBackpressure: Submit blocks once the per-partition window is
// full, and the window bounds concurrent lookups; records waiting for the
// API do not count against the global in-flight limit.
func TestClaimBackpressure(t *testing.T) {
	release := make(chan struct{})
	var conc concurrency
	fetch := func(ctx context.Context, user string) (lookup, error) {
		conc.enter()
		defer conc.leave()
		select {
		case <-release:
		case <-ctx.Done():
			return lookup{}, ctx.Err()
		}
		return okLookup(0)(ctx, user)
	}
	cfg := testConfig()
	cfg.MaxInFlight, cfg.MaxInFlightPerPartition = 8, 4
	p, pub := newTestPipeline(t, cfg, fetch)
	c := p.Claim("in", 0)
	ctx := context.Background()
	for i := range 4 {
		if err := c.Submit(ctx, kafka.Message{Offset: int64(i), Value: event(fmt.Sprint("u", i), i)}); err != nil {
			t.Fatal(err)
		}
	}
	testsupport.WaitFor(t, 5*time.Second, "4 lookups in flight", func() bool { return conc.cur.Load() == 4 })
	// The fifth Submit must block: it returns only because its deadline passes.
	tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	err := c.Submit(tctx, kafka.Message{Offset: 4, Value: event("u4", 4)})
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Submit over the limit = %v, want it blocked until its deadline", err)
	}
	if got := p.Stats().InFlight; got != 4 {
		t.Fatalf("in flight %d, want 4", got)
	}
	// Records waiting for the API hold no global slot (8): two more
	// partitions admit 6 more, 10 lookups in flight in all.
	c2, c3 := p.Claim("in", 1), p.Claim("in", 2)
	for i := range 6 {
		cl := c2
		if i >= 4 {
			cl = c3
		}
		if err := cl.Submit(ctx, kafka.Message{Offset: int64(i), Value: event(fmt.Sprint("v", i), i)}); err != nil {
			t.Fatal(err)
		}
	}
	testsupport.WaitFor(t, 5*time.Second, "10 lookups in flight", func() bool { return conc.cur.Load() == 10 })
	close(release)
	for _, cl := range []*Claim{c, c2, c3} {
		if err := cl.Drain(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(pub.messages()); got != 10 {
		t.Fatalf("published %d, want 10", got)
	}
	// The blocked offset 4 was never admitted: the next Submit may reuse it.
	if err := c.Submit(ctx, kafka.Message{Offset: 4, Value: event("u4", 4)}); err != nil {
		t.Fatal(err)
	}
	if err := c.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if off, _ := c.Committable(); off != 5 {
		t.Fatalf("watermark %d, want 5", off)
	}
}

// TestClaimSpanBounds: records published ahead of an unpublished one take
// no per-partition slot, but the partition's span stops fetching while
// their completed set takes most of the commit metadata (until a commit
// finds it smaller), and past partitionSpan offsets; once the stalled
// record is published, fetching goes on.
func TestClaimSpanBounds(t *testing.T) {
	release := make(chan struct{})
	fetch := func(ctx context.Context, user string) (lookup, error) {
		if user == "stall" {
			select {
			case <-release:
			case <-ctx.Done():
				return lookup{}, ctx.Err()
			}
		}
		return okLookup(0)(ctx, user)
	}
	cfg := testConfig()
	cfg.MaxInFlight, cfg.MaxInFlightPerPartition = 64, 21
	p, pub := newTestPipeline(t, cfg, fetch)
	c := p.Claim("in", 0)
	ctx := context.Background()
	// Even offsets stall under one key, odd ones are published: 20 runs
	// of one offset each above the watermark at 0.
	const n = 40
	for i := range n {
		key, user := fmt.Sprint("k", i), fmt.Sprint("u", i)
		if i%2 == 0 {
			key, user = "stall", "stall"
		}
		if err := c.Submit(ctx, kafka.Message{Offset: int64(i), Key: []byte(key), Value: event(user, i)}); err != nil {
			t.Fatal(err)
		}
	}
	testsupport.WaitFor(t, 5*time.Second, "the odd offsets published", func() bool { return len(pub.messages()) == n/2 })
	blocked := func(offset int64) bool {
		tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		err := c.Submit(tctx, kafka.Message{Offset: offset, Value: event("late", int(offset))})
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatal(err)
		}
		return err != nil
	}
	if blocked(n) {
		t.Fatal("Submit blocked with room in the span")
	}

	defer func(b int) { commitMetadataBudget = b }(commitMetadataBudget)
	m := &committer{last: map[*Claim]Position{}, overflow: func() { t.Error("the set did not fit") }}
	set, _ := c.wm.completed()
	enc, _ := encodeMetadata(commitMeta{done: set}, math.MaxInt)
	commitMetadataBudget = len(enc) + 1 // fits, but more than spanFullShare
	m.position(c, false)
	if !blocked(n + 1) {
		t.Fatal("Submit admitted while the completed set fills the commit metadata")
	}
	admitted := make(chan error, 1)
	go func() { admitted <- c.Submit(ctx, kafka.Message{Offset: n + 1, Value: event("late", n+1)}) }()
	commitMetadataBudget = 4 * len(enc) // the next commit finds room
	m.position(c, false)
	if err := <-admitted; err != nil {
		t.Fatal(err)
	}
	if !blocked(partitionSpan) {
		t.Fatal("Submit admitted partitionSpan offsets past the watermark")
	}
	close(release)
	testsupport.WaitFor(t, 5*time.Second, "every record published", func() bool { return len(pub.messages()) == n+2 })
	if blocked(partitionSpan) {
		t.Fatal("Submit blocked with every record published")
	}
	if err := c.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if off, _ := c.Committable(); off != partitionSpan+1 {
		t.Fatalf("watermark %d, want %d", off, partitionSpan+1)
	}
}

// TestGlobalInFlightBoundsPublishing: MaxInFlight bounds the records being
// built and published: a cached record's Submit blocks while the slots are
// taken by records whose writes have not returned, while a record waiting
// for the API is admitted, and every record is published once the writes
// return.
func TestGlobalInFlightBoundsPublishing(t *testing.T) {
	cfg := testConfig()
	cfg.MaxInFlight, cfg.MaxInFlightPerPartition = 2, 16
	p, pub := newTestPipeline(t, cfg, okLookup(1))
	ctx := context.Background()
	c := p.Claim("in", 0)
	off := int64(0)
	submit := func(ctx context.Context, user string) error {
		err := c.Submit(ctx, kafka.Message{Offset: off, Key: []byte(user), Value: event(user, int(off))})
		if err == nil {
			off++
		}
		return err
	}
	for _, u := range []string{"a", "b", "c"} { // cache a, b and c
		if err := submit(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	hold := pub.hold()
	for _, u := range []string{"a", "b"} {
		if err := submit(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	testsupport.WaitFor(t, 5*time.Second, "two writes waiting", func() bool { return pub.waiting.Load() == 2 })
	tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	err := submit(tctx, "c")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Submit of a cached record with the slots taken = %v, want blocked until its deadline", err)
	}
	if err := submit(ctx, "d"); err != nil { // waits for the API: no slot needed
		t.Fatalf("Submit of an uncached record = %v", err)
	}
	close(hold)
	if err := submit(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if err := c.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if got := len(pub.messages()); got != int(off) || off != 7 {
		t.Fatalf("published %d of %d submitted, want 7", got, off)
	}
	if w, ok := c.Committable(); !ok || w != off {
		t.Fatalf("watermark %d,%v, want %d", w, ok, off)
	}
}

// TestClaimReleaseDropsWithoutPassingGaps: records stuck in enrichment are
// dropped by Release and the watermark stays before the first of them.
func TestClaimReleaseDropsWithoutPassingGaps(t *testing.T) {
	fetch := func(ctx context.Context, user string) (lookup, error) {
		if user == "stuck" {
			<-ctx.Done()
			return lookup{}, ctx.Err()
		}
		return okLookup(0)(ctx, user)
	}
	p, pub := newTestPipeline(t, testConfig(), fetch)
	c := p.Claim("in", 0)
	ctx := context.Background()
	users := []string{"a", "b", "stuck", "c", "d"}
	for i, u := range users {
		if err := c.Submit(ctx, kafka.Message{Offset: int64(10 + i), Value: event(u, i)}); err != nil {
			t.Fatal(err)
		}
	}
	testsupport.WaitFor(t, 5*time.Second, "4 records published", func() bool { return len(pub.messages()) == 4 })
	tctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	if err := c.Drain(tctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drain = %v, want deadline (one record stuck)", err)
	}
	cancel()
	off, ok := c.Release()
	if !ok || off != 12 {
		t.Fatalf("watermark after release %d,%v, want 12 (before the stuck record)", off, ok)
	}
	if err := c.Submit(ctx, kafka.Message{Offset: 20, Value: event("e", 0)}); !errors.Is(err, errReleased) {
		t.Fatalf("Submit after Release = %v", err)
	}
}

func TestPauseGateTimed(t *testing.T) {
	g := newPauseGate(false, time.Hour, nil, time.Now)
	if g.paused() {
		t.Fatal("paused at start")
	}
	g.pauseFor(time.Hour)
	if !g.paused() || g.pauses.Load() != 1 {
		t.Fatal("not paused")
	}
	g.pauseFor(time.Minute) // same pause
	if g.pauses.Load() != 1 {
		t.Fatalf("pauses = %d", g.pauses.Load())
	}
	done := make(chan error)
	go func() { done <- g.wait(context.Background()) }()
	g.resume()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	g.pauseFor(time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := g.wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait = %v", err)
	}
	g.resume()
	g.pauseFor(-time.Second) // already over
	if g.paused() {
		t.Fatal("paused after the advised wait")
	}
	if err := g.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestPauseGateHold: in hold mode the pause outlasts the advised wait while
// records are in flight, lets one probe through when none is, and ends on
// resume.
func TestPauseGateHold(t *testing.T) {
	var idle atomic.Bool
	g := newPauseGate(true, time.Millisecond, idle.Load, time.Now)
	g.pauseFor(0)
	if !g.paused() {
		t.Fatal("hold-mode pause ended with its advised wait")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	err := g.wait(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait while records in flight = %v, want blocked", err)
	}
	idle.Store(true)
	if err := g.wait(context.Background()); err != nil {
		t.Fatalf("probe: %v", err)
	}
	idle.Store(false)
	done := make(chan error)
	go func() { done <- g.wait(context.Background()) }()
	g.resume()
	if err := <-done; err != nil || g.paused() {
		t.Fatalf("after resume: %v, paused %v", err, g.paused())
	}
}

// BenchmarkClaimThroughput: records through Submit → decode → schedule →
// enrich (cache hits over 100 users) → encode → publish (in memory) →
// watermark.
func BenchmarkClaimThroughput(b *testing.B) {
	cfg := testConfig()
	p, _ := newTestPipeline(b, cfg, okLookup(3))
	c := p.Claim("in", 0)
	ctx := context.Background()
	values := make([][]byte, 100)
	for i := range values {
		values[i] = event(fmt.Sprint("u", i), i)
	}
	b.ReportAllocs()
	var off int64
	for b.Loop() {
		if err := c.Submit(ctx, kafka.Message{Topic: "in", Offset: off, Key: []byte(fmt.Sprint("k", off%64)), Value: values[off%100]}); err != nil {
			b.Fatal(err)
		}
		off++
	}
	if err := c.Drain(ctx); err != nil {
		b.Fatal(err)
	}
	if got, _ := c.Committable(); got != off {
		b.Fatalf("watermark %d, want %d", got, off)
	}
}
