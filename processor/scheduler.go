package processor

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
)

// record is one input record moving through the pipeline.
type record struct {
	msg       kafka.Message
	fetched   time.Time
	userID    string
	decodeErr *DecodeError
	key       string // ordering key; "" orders against nothing
}

// chain is the queue of records of one key waiting behind the running one.
type chain struct{ queue []*record }

// Claim is the pipeline's handle on one partition, owned by the Source that
// feeds it. The source submits records in offset order; the claim runs
// records of different keys concurrently and records of one key one after
// the other (enriched and published in offset order). Two limits apply
// backpressure to Submit: Config.MaxInFlight bounds records being processed
// over all partitions, Config.MaxInFlightPerPartition bounds the records of
// this partition not yet behind its watermark (processing, or published
// after a record still processing). Committable tells the source how far
// it may commit.
//
// Submit is called from one goroutine; the other methods are safe for
// concurrent use.
type Claim struct {
	p         *Pipeline
	topic     string
	partition int
	wm        *watermark
	sem       chan struct{} // per-partition in-flight slots
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup // admitted records not finished
	released  atomic.Bool

	mu     sync.Mutex
	chains map[string]*chain // a key is present while one of its records runs

	highWater atomic.Int64 // partition high watermark seen at the last fetch
	committed atomic.Int64 // last committed offset, -1 none
}

// Topic and Partition identify the claimed partition.
func (c *Claim) Topic() string  { return c.topic }
func (c *Claim) Partition() int { return c.partition }

// Submit admits one fetched record. It blocks while the in-flight limits are
// reached or while fetching is paused because the API is unavailable
// (backpressure), and returns ctx's error if ctx ends first. Records must be
// submitted in increasing offset order.
func (c *Claim) Submit(ctx context.Context, msg kafka.Message) error {
	if err := c.p.pause.wait(ctx); err != nil {
		return err
	}
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case c.p.global <- struct{}{}:
	case <-ctx.Done():
		<-c.sem
		return ctx.Err()
	}
	if c.released.Load() {
		c.releaseSlots()
		return errReleased
	}
	if err := c.wm.add(msg.Offset); err != nil {
		c.releaseSlots()
		return err
	}
	if msg.HighWaterMark > 0 {
		c.highWater.Store(msg.HighWaterMark)
	}
	r := c.p.newRecord(msg)
	c.wg.Add(1)
	c.p.met.recordIn(c.ctx)
	if r.key != "" {
		c.mu.Lock()
		if ch, busy := c.chains[r.key]; busy {
			ch.queue = append(ch.queue, r)
			c.mu.Unlock()
			return nil
		}
		c.chains[r.key] = &chain{}
		c.mu.Unlock()
	}
	go c.run(r)
	return nil
}

// Skip moves the watermark past offset without processing its record: a
// bounded source uses it for the records it reads but leaves out (outside a
// replay's time range), so that Committable still passes them. Order and
// backpressure are Submit's: offsets increase across Submit and Skip calls,
// and a skipped offset holds a per-partition slot until the watermark
// passes it.
func (c *Claim) Skip(ctx context.Context, offset int64) error {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	if c.released.Load() {
		<-c.sem
		return errReleased
	}
	if err := c.wm.add(offset); err != nil {
		<-c.sem
		return err
	}
	n, _ := c.wm.done(offset)
	for range n {
		<-c.sem
	}
	return nil
}

// run processes r, then the records queued behind it under the same key.
// Each round takes the head of the key's queue together with the records
// queued behind it that are ready to publish without an API lookup
// (Pipeline.ready), up to Config.BatchSize, and publishes them in one
// write: a key's chain advances by a batch per acknowledgement rather than
// a record per acknowledgement. A key has at most one round running, so
// its records are never written concurrently with each other.
func (c *Claim) run(r *record) {
	batch := []*record{r}
	for {
		published := c.p.processBatch(c, batch)
		for i, r := range batch {
			<-c.p.global
			if published[i] {
				// A partition slot is held until the watermark passes the
				// record, so the records a crash would duplicate
				// (published, not committed) stay within the
				// per-partition limit.
				n, _ := c.wm.done(r.msg.Offset)
				for range n {
					<-c.sem
				}
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
		limit := max(c.p.cfg.BatchSize, 1)
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

func (c *Claim) releaseSlots() {
	<-c.p.global
	<-c.sem
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

// minProbeUsers is how many distinct users' records a paused pipeline keeps
// in enrichment: they are the probes that find the API back, so one user
// the API keeps failing for cannot be the only probe.
const minProbeUsers = 4

// probeSet counts the records being enriched per user. Safe for concurrent
// use.
type probeSet struct {
	mu sync.Mutex
	n  map[string]int
}

func (s *probeSet) enter(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == nil {
		s.n = map[string]int{}
	}
	s.n[user]++
}

func (s *probeSet) leave(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n[user]--; s.n[user] <= 0 {
		delete(s.n, user)
	}
}

// users returns the number of distinct users being enriched.
func (s *probeSet) users() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.n)
}

// pauseGate pauses fetching while the API as a whole is unavailable. In
// hold mode (no UnavailableAfter) the pause lasts until an API call
// succeeds again; meanwhile the waiting records are the probes, and while
// fewer than minProbeUsers users are being enriched new records are let
// through to probe too. Otherwise a pause lasts for the wait the client
// advised. Safe for concurrent use.
type pauseGate struct {
	hold    bool
	recheck time.Duration // hold mode: how often a waiting fetcher re-checks the probes
	idle    func() bool   // hold mode: too few probes are in flight
	mu      sync.Mutex
	down    bool
	until   time.Time
	wake    chan struct{} // closed by resume
	pauses  atomic.Int64
}

func newPauseGate(hold bool, recheck time.Duration, idle func() bool) *pauseGate {
	return &pauseGate{hold: hold, recheck: recheck, idle: idle, wake: make(chan struct{})}
}

// pauseFor marks the API down, for at least d from now.
func (g *pauseGate) pauseFor(d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	if !g.down || (!g.hold && !g.until.After(now)) {
		g.pauses.Add(1)
	}
	g.down = true
	if t := now.Add(d); t.After(g.until) {
		g.until = t
	}
}

// resume ends a pause (the API answered again).
func (g *pauseGate) resume() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.down {
		return
	}
	g.down, g.until = false, time.Time{}
	close(g.wake)
	g.wake = make(chan struct{})
}

func (g *pauseGate) paused() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.down && (g.hold || g.until.After(time.Now()))
}

// wait returns when fetching may go on, or with ctx's error.
func (g *pauseGate) wait(ctx context.Context) error {
	for {
		g.mu.Lock()
		down, d, wake := g.down, time.Until(g.until), g.wake
		g.mu.Unlock()
		switch {
		case !down:
			return ctx.Err()
		case g.hold:
			if g.idle() {
				return ctx.Err() // probe
			}
			d = g.recheck
		case d <= 0:
			return ctx.Err()
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-wake:
			t.Stop()
		case <-t.C:
		}
	}
}
