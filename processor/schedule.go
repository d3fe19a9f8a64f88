package processor

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/codes"
)

// This file is the schedule stage: a partition's Claim orders its records
// per key, bounds the records in flight, and runs each key's records one
// after the other through enrich (enrich.go), encode (encode.go) and
// publish (publish.go), then moves the watermark (commit.go).

// chain is the queue of records of one key waiting behind the running one.
type chain struct{ queue []*record }

// Claim is the pipeline's handle on one partition, owned by the Source that
// feeds it. The source submits records in offset order; the claim runs
// records of different keys concurrently and records of one key one after
// the other (enriched and published in offset order). Three limits apply
// backpressure to Submit: Config.MaxInFlight bounds records being built
// and published over all partitions, Config.MaxInFlightPerPartition bounds
// this partition's records not yet published (waiting for the API, queued
// behind their key, or being published), and the partition's span bounds
// how far past its first unpublished record it fetches: as far as the
// completed set of the records published meanwhile fits most of a
// commit's metadata (committer), at most partitionSpan offsets. Committable
// tells the source how far it may commit.
//
// Submit is called from one goroutine; the other methods are safe for
// concurrent use.
type Claim struct {
	p         *Pipeline
	topic     string
	partition int
	wm        *watermark
	sem       chan struct{} // per-partition slots of records not yet published
	ctx       context.Context
	cancel    context.CancelFunc
	// lookups is the context of the records' API lookups: canceled by
	// StopLookups (revocation), which drops the records still waiting
	// for the API while the others finish.
	lookups     context.Context
	stopLookups context.CancelFunc
	wg          sync.WaitGroup // admitted records not finished
	released    atomic.Bool

	mu     sync.Mutex
	chains map[string]*chain // a key is present while one of its records runs

	highWater atomic.Int64 // partition high watermark seen at the last fetch
	committed atomic.Int64 // last committed offset, -1 none
}

// Topic and Partition identify the claimed partition.
func (c *Claim) Topic() string  { return c.topic }
func (c *Claim) Partition() int { return c.partition }

// Claim starts processing a partition. The caller owns the Claim until it
// calls Release.
func (p *Pipeline) Claim(topic string, partition int) *Claim {
	ctx, cancel := context.WithCancel(p.base)
	lookups, stopLookups := context.WithCancel(ctx)
	c := &Claim{
		p: p, topic: topic, partition: partition,
		wm:     newWatermark(),
		sem:    make(chan struct{}, p.cfg.MaxInFlightPerPartition),
		ctx:    ctx,
		cancel: cancel,
		chains: map[string]*chain{},

		lookups: lookups, stopLookups: stopLookups,
	}
	c.committed.Store(-1)
	p.mu.Lock()
	p.claims[c] = struct{}{}
	p.mu.Unlock()
	return c
}

func (p *Pipeline) unregister(c *Claim) {
	p.mu.Lock()
	delete(p.claims, c)
	p.mu.Unlock()
}

// Submit admits one fetched record. It blocks while the partition's span
// has no room for it, while the in-flight limits are reached, while the
// users waiting for an API lookup are as many as the API budget serves
// within a few seconds (userGate), or while
// fetching is paused because the API is unavailable (backpressure), and
// returns ctx's error if ctx ends first. Records must be submitted in
// increasing offset order.
func (c *Claim) Submit(ctx context.Context, msg kafka.Message) error {
	if err := c.p.pause.wait(ctx); err != nil {
		return err
	}
	if err := c.waitRoom(ctx, msg.Offset); err != nil {
		return err
	}
	r := c.p.newRecord(msg)
	if r.decodeErr == nil && !c.p.ready(r) {
		if err := c.p.lookupUsers.enter(ctx, r.userID); err != nil {
			return err
		}
		r.gated = true
	}
	leave := func() {
		if r.gated {
			c.p.lookupUsers.leave(r.userID)
		}
	}
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		leave()
		return ctx.Err()
	}
	// A record that can be published at once takes its in-flight slot
	// here, so that fetching waits while the slots are taken. A record
	// waiting for the API takes it once its lookup is answered, and one
	// queued behind its key when the key's batch reaches it (run).
	held := 0
	if !r.gated && !c.busy(r.key) {
		if err := c.p.global.Acquire(ctx, 1); err != nil {
			<-c.sem
			leave()
			return err
		}
		held = 1
	}
	unwind := func() {
		c.p.global.Release(int64(held))
		<-c.sem
		leave()
	}
	if c.released.Load() {
		unwind()
		return errReleased
	}
	if err := c.wm.addAt(msg.Offset, r.fetched); err != nil {
		unwind()
		return err
	}
	if msg.HighWaterMark > 0 {
		c.highWater.Store(msg.HighWaterMark)
	}
	c.wg.Add(1)
	c.p.met.recordIn(c.ctx)
	if r.key != "" {
		c.mu.Lock()
		if ch, busy := c.chains[r.key]; busy {
			ch.queue = append(ch.queue, r)
			c.mu.Unlock()
			c.p.global.Release(int64(held))
			return nil
		}
		c.chains[r.key] = &chain{}
		c.mu.Unlock()
	}
	go c.run(r, held)
	return nil
}

// busy reports whether a record of key is running: a record submitted
// under it now queues behind it.
func (c *Claim) busy(key string) bool {
	if key == "" {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.chains[key]
	return ok
}

// Skip moves the watermark past offset without processing its record: a
// bounded source uses it for the records it reads but leaves out (outside a
// replay's time range), so that Committable still passes them. Order and
// the span are Submit's: offsets increase across Submit and Skip calls,
// and Skip waits while the span has no room for offset.
func (c *Claim) Skip(ctx context.Context, offset int64) error {
	if err := c.waitRoom(ctx, offset); err != nil {
		return err
	}
	if c.released.Load() {
		return errReleased
	}
	if err := c.wm.add(offset); err != nil {
		return err
	}
	c.wm.done(offset)
	return nil
}

// waitRoom waits until the partition's span has room for a record at
// offset (watermark.room), or ctx ends.
func (c *Claim) waitRoom(ctx context.Context, offset int64) error {
	for {
		ok, moved := c.wm.room(offset, partitionSpan)
		if ok {
			return nil
		}
		select {
		case <-moved:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// batchBytes bounds the output a key's batch builds at once.
const batchBytes = 1 << 20

// run processes r, then the records queued behind it under the same key.
// Each round takes the head of the key's queue together with the records
// queued behind it that are ready to publish without an API lookup
// (Pipeline.ready), up to Config.BatchSize, and publishes them in one
// write: a key's chain advances by a batch per acknowledgement rather than
// a record per acknowledgement. A key has at most one round running, so
// its records are never written concurrently with each other. Once a
// record of the key is not published (dropped by a release or a
// revocation, or failed), the key's later records are dropped too: none is
// published ahead of an earlier one, and all are read again by the
// partition's next reader.
func (c *Claim) run(r *record, held int) {
	batch := []*record{r}
	dropped := false
	size := 0 // the largest output value of the key's last batch
	for {
		var published []bool
		if dropped {
			published = make([]bool, len(batch))
		} else {
			published, held, size = c.p.processBatch(c, batch, held)
		}
		c.p.global.Release(int64(held))
		held = 0
		for i, r := range batch {
			dropped = dropped || !published[i]
			if r.gated {
				c.p.lookupUsers.leave(r.userID)
			}
			if published[i] {
				// A dropped record keeps its slot: the claim is being
				// released, or its lookups stopped.
				c.wm.done(r.msg.Offset)
				<-c.sem
			}
			c.p.met.recordDone(c.ctx)
			c.wg.Done()
		}
		if r.key == "" {
			return
		}
		c.mu.Lock()
		ch := c.chains[r.key]
		if len(ch.queue) == 0 {
			delete(c.chains, r.key)
			c.mu.Unlock()
			return
		}
		// A batch is at most BatchSize records, MaxInFlight slots and
		// about batchBytes of output (a user with many subscriptions
		// has large records).
		limit := min(max(c.p.cfg.BatchSize, 1), c.p.cfg.MaxInFlight, max(batchBytes/max(size, 1), 1))
		n := 1
		for n < len(ch.queue) && n < limit && c.p.ready(ch.queue[n]) {
			n++
		}
		batch = append(batch[:0], ch.queue[:n]...)
		clear(ch.queue[:n])
		ch.queue = ch.queue[n:]
		c.mu.Unlock()
	}
}

// Drain waits until every submitted record is published (or dropped), or ctx
// ends. Submit must not be called concurrently with or after Drain.
func (c *Claim) Drain(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		c.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// StopLookups drops the records still waiting for an API lookup (and the
// records of their keys behind them), while records that are cached,
// dead-lettered or being published finish: a revoked partition drains
// quickly, and its next owner reads the dropped records again (the records
// published after them are in the commit's completed set, so they are not
// read again). Safe to call more than once.
func (c *Claim) StopLookups() { c.stopLookups() }

// Release drops the records not yet published (their enrichment and publish
// are canceled; they stay behind the watermark, to be read again by the
// partition's next owner), waits for their goroutines to return, and
// returns the final committable offset.
func (c *Claim) Release() (int64, bool) {
	c.released.Store(true)
	c.cancel()
	c.wg.Wait()
	c.p.unregister(c)
	return c.wm.committable()
}

// Committable returns the offset to commit for this partition (one past the
// last record of the contiguous published prefix) and whether there is one.
func (c *Claim) Committable() (int64, bool) { return c.wm.committable() }

// Committed records that the source committed offset, for lag and watermark
// metrics.
func (c *Claim) Committed(offset int64) { c.committed.Store(offset) }

func (c *Claim) stats() PartitionStats {
	ps := PartitionStats{Topic: c.topic, Partition: c.partition, Committed: c.committed.Load(), Lag: -1, Pending: c.wm.pending()}
	if at, ok := c.wm.oldest(); ok && !at.IsZero() {
		ps.OldestUnfinished = max(c.p.cfg.Now().Sub(at), 0)
	}
	if hw := c.highWater.Load(); hw > 0 {
		base := ps.Committed
		if base < 0 {
			base, _ = c.wm.committable()
		}
		if base >= 0 {
			ps.Lag = max(hw-base, 0)
		}
	}
	return ps
}

// ready reports whether r can be published without waiting for the API:
// it is dead-lettered for its decode error, or its user is cached.
func (p *Pipeline) ready(r *record) bool {
	return r.decodeErr != nil || (r.userID != "" && p.enr.cached(r.userID))
}

// processBatch enriches and publishes records of one key (in offset order)
// and reports which were published. The records are enriched one after the
// other, then written in as few calls as the writer allows, in order
// (publish). A record whose write fails permanently is dead-lettered or
// fails the pipeline on its own (finish) before the records after it are
// written; once a record is given up on, the records after it are dropped
// too, so that none is published ahead of it. A record of a released
// claim or a failed pipeline is dropped: never published.
func (p *Pipeline) processBatch(c *Claim, rs []*record, held int) (published []bool, _ int, largest int) {
	published = make([]bool, len(rs))
	jobs := make([]*job, 0, len(rs))
	idx := make([]int, 0, len(rs))
	for i, r := range rs {
		j := p.prepare(c, r)
		if j == nil {
			break // dropped: the records after it wait for the next reader too
		}
		if i == 0 && held < len(rs) {
			// The head's lookup is answered: the batch takes its
			// in-flight slots before its records are built.
			if err := p.global.Acquire(c.ctx, int64(len(rs)-held)); err != nil {
				j.span.SetStatus(codes.Error, "not published: "+err.Error())
				j.span.End()
				return published, held, 0
			}
			held = len(rs)
		}
		largest = max(largest, len(j.msg.Value))
		jobs = append(jobs, j)
		idx = append(idx, i)
	}
	for len(jobs) > 0 {
		n, err := p.sendBatch(c.ctx, jobs)
		for k := range n {
			published[idx[k]] = p.finish(jobs[k], nil)
		}
		if err == nil {
			break
		}
		ok := p.finish(jobs[n], err)
		published[idx[n]] = ok
		jobs, idx = jobs[n+1:], idx[n+1:]
		if !ok {
			for _, j := range jobs {
				j.span.SetStatus(codes.Error, "not published: an earlier record of its key was not")
				j.span.End()
			}
			break
		}
	}
	return published, held, largest
}
