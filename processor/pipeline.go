package processor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/semaphore"

	"github.com/tencentchat-enricher/enricher/schemas"
)

// Pipeline decodes, orders, enriches and publishes records that Sources
// submit through Claims. Safe for concurrent use; create it with
// NewPipeline, close it with Close.
type Pipeline struct {
	cfg    Config
	dec    *decoder
	enr    *enricher
	out    publisher
	met    *metrics
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	// spanNames holds the span names per topic ("process "+topic).
	spanNames spanNames
	// recycle: out is a kafka-go Writer, which keeps no reference to a
	// message it acknowledged, so output values go back to valueBufs.
	recycle bool
	values  *valueBufs // output values to reuse
	pause   *pauseGate
	global  *semaphore.Weighted // in-flight slots: records being built and published, over all partitions

	base    context.Context // parent of all record work; canceled by abort
	abort   context.CancelFunc
	aborted bool

	failOnce sync.Once
	failed   chan struct{}
	fatal    error

	closeOnce sync.Once
	closeErr  error

	// publishLog and lookupLog log the repeated warnings of the publish
	// retries and the failing lookups, at most every repeatWarnEvery.
	publishLog, lookupLog *kafkaErrorLog

	probes      probeSet     // users whose records are being enriched
	lookupUsers *userGate    // users whose records wait for the API
	lastAnswer  atomic.Int64 // Config.Now of the last API lookup that succeeded, unix nanos

	mu     sync.Mutex
	claims map[*Claim]struct{}
}

// newPipeline builds a pipeline from a validated, defaulted cfg.
func newPipeline(cfg Config, fetch lookupFunc, out publisher) (*Pipeline, error) {
	dec, err := newDecoder(cfg.UserIDPointer, cfg.MaxEventBytes)
	if err != nil {
		return nil, &ConfigError{Field: "UserIDPointer", Value: cfg.UserIDPointer, Reason: err.Error()}
	}
	base, abort := context.WithCancel(context.Background())
	enr, err := newEnricher(base, cfg, fetch)
	if err != nil {
		abort()
		return nil, err
	}
	tp := cfg.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	p := &Pipeline{
		cfg:    cfg,
		dec:    dec,
		enr:    enr,
		out:    out,
		tracer: tp.Tracer(instrumentationName),
		prop:   otel.GetTextMapPropagator(),
		global: semaphore.NewWeighted(int64(cfg.MaxInFlight)),
		base:   base,
		abort:  abort,
		failed: make(chan struct{}),
		claims: map[*Claim]struct{}{},
		values: newValueBufs(cfg.MaxInFlight),
	}
	_, p.recycle = out.(*kafka.Writer)
	if len(p.prop.Fields()) == 0 { // the global default propagates nothing
		p.prop = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	}
	p.lookupUsers = newUserGate(nil, cfg.DrainTimeout)
	p.publishLog = newRateLog(cfg.Logger, repeatWarnEvery)
	p.lookupLog = newRateLog(cfg.Logger, repeatWarnEvery)
	p.met = newMetrics(cfg.MeterProvider, p)
	p.pause = newPauseGate(cfg.UnavailableAfter == 0, cfg.PauseBackoff, func() bool { return p.probes.users() < minProbeUsers }, cfg.Now)
	return p, nil
}

// repeatWarnEvery is the least time between two lines of a warning that
// repeats per record or per retry; each line counts the ones left out.
const repeatWarnEvery = time.Second

// NewPipeline returns a pipeline enriching with f and publishing with a
// kafka-go writer to cfg.Brokers; Run feeds it from a Source.
func NewPipeline(cfg Config, f Fetcher) (*Pipeline, error) {
	if f == nil {
		return nil, &ConfigError{Field: "Fetcher", Reason: "is nil"}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	p, err := newPipeline(cfg, fetcherLookup(f, cfg.Now), newWriter(cfg))
	if err != nil {
		return nil, err
	}
	p.paceLookups(f)
	return p, nil
}

// paceLookups bounds the users waiting for an API lookup by f's rate, when
// f paces its calls (rater).
func (p *Pipeline) paceLookups(f Fetcher) {
	if r, ok := f.(rater); ok {
		p.lookupUsers = newUserGate(r.EffectiveRate, min(p.cfg.DrainTimeout, lookupQueueTime))
	}
}

// Run feeds the pipeline from src until ctx ends, src is exhausted or an
// app-fatal error stops the pipeline, then closes src and the pipeline. For
// every Assignment of src it runs one fetch loop per partition (fetch.go)
// and commits every Config.CommitInterval; when the assignment is revoked,
// ctx ends or the pipeline fails, it stops fetching, drains (Config.
// DrainTimeout on revocation, Config.ShutdownTimeout otherwise; a bounded
// assignment read to its end drains without limit until one of those
// happens), releases the partitions and commits once more. It returns nil
// on a clean stop or an exhausted source, the *FatalError, *TopicError or
// *PartitionError that stopped the pipeline, or src's error. Run runs once.
func (p *Pipeline) Run(ctx context.Context, src Source) error {
	sctx, cancel := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-p.Failed():
			cancel()
		case <-p.base.Done(): // hard stop
			cancel()
		case <-sctx.Done():
		}
	}()
	var err error
	for sctx.Err() == nil {
		a, aerr := src.Assign(sctx)
		if aerr != nil {
			if !errors.Is(aerr, ErrSourceDone) && sctx.Err() == nil {
				err = aerr
			}
			break
		}
		p.runAssignment(sctx, a)
	}
	cancel()
	<-watched
	if cerr := src.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("processor: close source: %w", cerr)
	}
	cerr := p.Close()
	if fe := p.Err(); fe != nil {
		return fe
	}
	if err != nil {
		return err
	}
	return cerr
}

// runAssignment runs one assignment from its fetch loops to its final
// commit, and hands it back (Assignment.Done).
func (p *Pipeline) runAssignment(ctx context.Context, a Assignment) {
	defer a.Done()
	log := p.cfg.Logger.With("topic", a.Topic())
	fetchCtx, stopFetch := context.WithCancel(ctx)
	defer stopFetch()

	parts := a.Partitions()
	log.Info("partitions assigned", "partitions", len(parts))
	claims := make([]*Claim, 0, len(parts))
	var wg sync.WaitGroup
	for _, ps := range parts {
		c := p.Claim(a.Topic(), ps.Partition)
		c.Committed(ps.Committed)
		claims = append(claims, c)
		if ps.End >= 0 && ps.Offset >= ps.End {
			continue // nothing to read
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.fetch(fetchCtx, a, c, ps, log)
		}()
	}
	fetched := make(chan struct{})
	go func() {
		wg.Wait()
		close(fetched)
	}()

	commits := newCommitter(a, claims, log, p.met.recordMetadataOverflow)
	tick := time.NewTicker(p.cfg.CommitInterval)
	defer tick.Stop()
	revoked := a.Revoked()
	bounded, timeout := false, p.cfg.ShutdownTimeout
fetching:
	for {
		select {
		case <-fetched: // a bounded assignment read to its end
			break fetching
		case <-revoked:
			bounded, timeout = true, p.cfg.DrainTimeout
			for _, c := range claims {
				c.StopLookups() // drain only what finishes quickly
			}
			break fetching
		case <-ctx.Done(): // shutdown, or the pipeline failed
			bounded = true
			for _, c := range claims {
				// As on revocation: a record waiting for the API is read
				// again by the next reader rather than spending the
				// budget and the shutdown time (a window can hold
				// thousands); the ones published after it are in the
				// final commit's completed set.
				c.StopLookups()
			}
			break fetching
		case <-tick.C:
			commits.commit(ctx, false, false)
		}
	}
	stopFetch()
	<-fetched

	clean := p.drain(ctx, claims, revoked, bounded, timeout, tick.C, func() { commits.commit(ctx, false, false) }, log)
	for _, c := range claims {
		c.Release()
	}
	if p.Aborted() {
		return
	}
	commits.commit(ctx, true, clean)
	log.Info("partitions released", "partitions", len(claims))
}

// drain waits until every record submitted to claims is published,
// committing on every tick. When bounded it waits at most timeout;
// otherwise (a bounded assignment read to its end) without limit until ctx
// ends (ShutdownTimeout) or the assignment is revoked (DrainTimeout). It
// reports whether every record finished; the others are dropped by
// Release, unpublished and uncommitted, for the partition's next reader.
func (p *Pipeline) drain(ctx context.Context, claims []*Claim, revoked <-chan struct{}, bounded bool, timeout time.Duration,
	tick <-chan time.Time, commit func(), log *slog.Logger) bool {
	dctx, cancel := context.WithCancel(p.base)
	defer cancel()
	drained := make(chan error, 1)
	go func() {
		for _, c := range claims {
			if err := c.Drain(dctx); err != nil {
				drained <- err
				return
			}
		}
		drained <- nil
	}()
	done := ctx.Done()
	var timer *time.Timer
	var bound <-chan time.Time
	limit := func(d time.Duration) {
		timer = time.NewTimer(d)
		bound, revoked, done = timer.C, nil, nil
	}
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	if bounded {
		limit(timeout)
	}
	for {
		select {
		case err := <-drained:
			if err != nil {
				pending := 0
				for _, c := range claims {
					pending += c.wm.pending()
				}
				log.Warn("drain incomplete, dropping unpublished records (they are read again)", "pending", pending)
			}
			return err == nil
		case <-revoked:
			for _, c := range claims {
				c.StopLookups()
			}
			limit(p.cfg.DrainTimeout)
		case <-done:
			for _, c := range claims {
				c.StopLookups()
			}
			limit(p.cfg.ShutdownTimeout)
		case <-bound:
			cancel()
		case <-tick:
			commit()
		}
	}
}

// Failed is closed when an app-fatal API answer, a permanent write failure
// or a partition that cannot go on stopped the pipeline; Err then returns
// the *FatalError, *TopicError or *PartitionError. Sources stop fetching
// when it closes.
func (p *Pipeline) Failed() <-chan struct{} { return p.failed }

// Err returns the *FatalError, *TopicError or *PartitionError that stopped
// the pipeline, or nil.
func (p *Pipeline) Err() error {
	select {
	case <-p.failed:
		return p.fatal
	default:
		return nil
	}
}

func (p *Pipeline) fail(err error) {
	p.failOnce.Do(func() {
		p.fatal = err
		close(p.failed)
		p.cfg.Logger.Error("stopping: fatal error", "error", err)
	})
}

// Aborted reports whether the pipeline was stopped hard: sources must not
// commit.
func (p *Pipeline) Aborted() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.aborted
}

// stopHard cancels all record work at once, without publishing or
// committing anything more (a crash, as far as Kafka can tell).
func (p *Pipeline) stopHard() {
	p.mu.Lock()
	p.aborted = true
	p.mu.Unlock()
	p.abort()
}

// Close flushes and closes the writer and stops the cache. Call it after
// every Source has returned; later calls return the first call's result.
func (p *Pipeline) Close() error {
	p.closeOnce.Do(func() {
		p.met.close()
		p.enr.close()
		if err := p.out.Close(); err != nil {
			p.closeErr = fmt.Errorf("processor: close writer: %w", err)
		}
		p.abort()
	})
	return p.closeErr
}

// Stats returns a snapshot of the pipeline's counters.
func (p *Pipeline) Stats() Stats {
	m := p.met
	s := Stats{
		In: m.nIn.Load(), Out: m.nOut.Load(), DLQ: m.nDLQ.Load(), InFlight: m.nInFlight.Load(),
		ByStatus:    map[schemas.Status]int64{},
		DLQByClass:  map[ErrorClass]int64{},
		CacheHits:   p.enr.hits.Load(),
		CacheMisses: p.enr.misses.Load(),
		APICalls:    p.enr.calls.Load(),
		Pauses:      p.pause.pauses.Load(),
		Paused:      p.pause.paused(),
		Partitions:  p.partitionStats(),

		SkippedPublished: m.nSkipped.Load(), MetadataOverflows: m.nOverflows.Load(),
		CacheShared: p.enr.byLayer[layerShared].Load(), CacheStale: p.enr.byLayer[layerStale].Load(),
		SharedCacheErrors: p.enr.sharedErr.Load(),
	}
	for i, st := range statuses {
		if n := m.byStatus[i].Load(); n > 0 {
			s.ByStatus[st] = n
		}
	}
	for i, c := range classes {
		if n := m.byClass[i].Load(); n > 0 {
			s.DLQByClass[c] = n
		}
	}
	s.CacheHitRatio = p.enr.hitRatio()
	s.CacheRefreshes = p.enr.refreshed.Load()
	s.CacheChanges = map[ChangeOutcome]int64{}
	for i := range m.nChanges {
		if n := m.nChanges[i].Load(); n > 0 {
			s.CacheChanges[ChangeOutcome(i)] = n
		}
	}
	return s
}

// Stalled returns an error naming the partitions whose oldest unfinished
// record is older than Config.StallTimeout, or nil when none is.
func (p *Pipeline) Stalled() error {
	var stalled []string
	for _, ps := range p.partitionStats() {
		if ps.OldestUnfinished > p.cfg.StallTimeout {
			stalled = append(stalled, fmt.Sprintf("%s/%d (%d pending, oldest %s)", ps.Topic, ps.Partition, ps.Pending, ps.OldestUnfinished.Round(time.Second)))
		}
	}
	if len(stalled) == 0 {
		return nil
	}
	return fmt.Errorf("partitions not moving for more than %s: %s", p.cfg.StallTimeout, strings.Join(stalled, ", "))
}

func (p *Pipeline) partitionStats() []PartitionStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]PartitionStats, 0, len(p.claims))
	for c := range p.claims {
		out = append(out, c.stats())
	}
	slices.SortFunc(out, func(a, b PartitionStats) int {
		return cmp.Or(strings.Compare(a.Topic, b.Topic), a.Partition-b.Partition)
	})
	return out
}
