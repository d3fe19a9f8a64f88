// Package processor consumes user events from Kafka, enriches each with the
// official accounts its user subscribes to, and publishes one enriched
// record (or one dead-letter record) per event: at least once, in offset
// order per key, with many keys in flight at once, traced end to end.
//
// The pipeline is decode → schedule → enrich → publish → watermark:
//
//   - a Source (the consumer group, or a bounded replay) claims partitions
//     from the Pipeline and submits their records in offset order;
//   - the Claim decodes each record, orders it behind earlier records of the
//     same key and bounds the records in flight (backpressure to the fetch);
//   - the enricher answers from a bounded cache or one coalesced API call per
//     user;
//   - the record is published (output or DLQ topic, acknowledged by all
//     in-sync replicas) and marked done in the partition's watermark;
//   - the Source commits Claim.Committable, which never passes a record that
//     is not published.
//
// Processor wires a Pipeline to the consumer-group source; RunSource runs
// the same pipeline from any other Source, such as a Replay: a bounded,
// resumable read of a time or offset range of the input topic.
package processor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/tencentchat-enricher/enricher/schemas"
)

// Source feeds a Pipeline. The consumer group (GroupSource) is one; a
// bounded replay (records between offsets or times fixed at start) is
// another. A Source:
//
//   - calls Pipeline.Claim for each partition it reads, and Claim.Submit
//     for each record of it in offset order (Submit blocks for
//     backpressure and while the API is unavailable), or Claim.Skip for a
//     record it reads but leaves out;
//   - stops fetching when ctx ends or Pipeline.Failed is closed, then calls
//     Claim.Drain with a deadline and Claim.Release;
//   - commits, if it commits at all, only Claim.Committable (and reports it
//     with Claim.Committed), periodically and after Release, unless
//     Pipeline.Aborted;
//   - returns nil when ctx ends or a bounded source is exhausted.
type Source interface {
	Run(ctx context.Context, p *Pipeline) error
}

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
	pause  *pauseGate
	global chan struct{} // global in-flight slots

	base    context.Context // parent of all record work; canceled by abort
	abort   context.CancelFunc
	aborted bool

	failOnce sync.Once
	failed   chan struct{}
	fatal    error

	closeOnce sync.Once
	closeErr  error

	probes     probeSet     // users whose records are being enriched
	lastAnswer atomic.Int64 // Config.Now of the last API lookup that succeeded, unix nanos

	mu     sync.Mutex
	claims map[*Claim]struct{}
}

// newPipeline builds a pipeline from a validated, defaulted cfg.
func newPipeline(cfg Config, fetch lookupFunc, out publisher) (*Pipeline, error) {
	dec, err := newDecoder(cfg.UserIDPointer, cfg.MaxEventBytes)
	if err != nil {
		return nil, fmt.Errorf("%w: UserIDPointer: %w", ErrConfig, err)
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
		global: make(chan struct{}, cfg.MaxInFlight),
		base:   base,
		abort:  abort,
		failed: make(chan struct{}),
		claims: map[*Claim]struct{}{},
	}
	if len(p.prop.Fields()) == 0 { // the global default propagates nothing
		p.prop = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	}
	p.met = newMetrics(cfg.MeterProvider, p)
	p.pause = newPauseGate(cfg.UnavailableAfter == 0, cfg.PauseBackoff, func() bool { return p.probes.users() < minProbeUsers })
	return p, nil
}

// Claim starts processing a partition. The caller owns the Claim until it
// calls Release.
func (p *Pipeline) Claim(topic string, partition int) *Claim {
	ctx, cancel := context.WithCancel(p.base)
	c := &Claim{
		p: p, topic: topic, partition: partition,
		wm:     newWatermark(),
		sem:    make(chan struct{}, p.cfg.MaxInFlightPerPartition),
		ctx:    ctx,
		cancel: cancel,
		chains: map[string]*chain{},
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

// Failed is closed when an app-fatal API answer stopped the pipeline; Err
// then returns the *FatalError. Sources stop fetching when it closes.
func (p *Pipeline) Failed() <-chan struct{} { return p.failed }

// Err returns the *FatalError that stopped the pipeline, or nil.
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

// newRecord decodes msg and picks its ordering key.
func (p *Pipeline) newRecord(msg kafka.Message) *record {
	r := &record{msg: msg, fetched: time.Now()}
	id, err := p.dec.decode(msg.Value)
	if err != nil {
		errors.As(err, &r.decodeErr)
	}
	r.userID = id
	switch {
	case p.cfg.OrderBy == OrderByKafkaKey && len(msg.Key) > 0:
		r.key = "k" + string(msg.Key)
	case id != "":
		r.key = "u" + id
	}
	return r
}

// job is a record enriched (or dead-lettered) and ready to publish, with
// its process span, open until the record is published or given up on.
type job struct {
	r        *record
	ctx      context.Context
	span     trace.Span
	msg      kafka.Message
	status   schemas.Status
	class    ErrorClass
	attempts int
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
func (p *Pipeline) processBatch(c *Claim, rs []*record) []bool {
	published := make([]bool, len(rs))
	jobs := make([]*job, 0, len(rs))
	idx := make([]int, 0, len(rs))
	for i, r := range rs {
		if j := p.prepare(c, r); j != nil {
			jobs = append(jobs, j)
			idx = append(idx, i)
		}
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
	return published
}

// prepare starts r's process span and enriches r, returning the message to
// publish, or nil if r is dropped (its span then ended).
func (p *Pipeline) prepare(c *Claim, r *record) *job {
	if c.ctx.Err() != nil || p.Err() != nil {
		return nil
	}
	ctx := p.prop.Extract(c.ctx, (*HeaderCarrier)(&r.msg.Headers))
	ctx, span := p.tracer.Start(ctx, "process "+r.msg.Topic, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			semconv.MessagingSystemKafka,
			semconv.MessagingOperationTypeProcess,
			semconv.MessagingOperationName("process"),
			semconv.MessagingDestinationName(r.msg.Topic),
			semconv.MessagingDestinationPartitionID(strconv.Itoa(r.msg.Partition)),
			semconv.MessagingKafkaOffset(int(r.msg.Offset)),
			semconv.MessagingConsumerGroupName(p.cfg.Group),
			semconv.MessagingMessageBodySize(len(r.msg.Value)),
		))
	if len(r.msg.Key) > 0 {
		span.SetAttributes(semconv.MessagingKafkaMessageKey(string(r.msg.Key)))
	}
	j := &job{r: r, ctx: ctx, span: span, attempts: 1}
	if r.decodeErr != nil {
		j.class = r.decodeErr.Class
		j.msg = p.dlqMessage(r, j.class, r.decodeErr.Detail, 1)
		return j
	}
	l, cache, attempts, err := p.enrich(ctx, r)
	j.attempts = attempts
	var (
		ee *enrichError
		de *retryDeadlineError
	)
	switch {
	case errors.As(err, &ee):
		j.class = ClassEnrichment
		j.msg = p.dlqMessage(r, j.class, ee.Error(), attempts)
	case errors.As(err, &de):
		j.class = ClassEnrichmentUnavailable
		j.msg = p.dlqMessage(r, j.class, de.Error(), attempts)
	case err != nil:
		var fe *FatalError
		if errors.As(err, &fe) {
			p.fail(fe)
		}
		span.SetStatus(codes.Error, err.Error())
		span.End()
		return nil
	default:
		j.status = l.status
		j.msg, err = p.outputMessage(r, l, cache)
		if err != nil {
			// The event passed the decoder, so it is one JSON value:
			// encoding cannot fail. Keep the record unpublished.
			span.SetStatus(codes.Error, err.Error())
			p.cfg.Logger.Error("encode failed", "topic", r.msg.Topic, "partition", r.msg.Partition, "offset", r.msg.Offset, "error", err)
			span.End()
			return nil
		}
	}
	return j
}

// finish completes j given err, the result of writing j.msg: a record too
// large for its topic is dead-lettered (or written without its value), a
// permanent failure fails the pipeline. It records the metrics, ends j's
// span and reports whether the record was published.
func (p *Pipeline) finish(j *job, err error) bool {
	defer j.span.End()
	r, msg, class, span, ctx := j.r, j.msg, j.class, j.span, j.ctx
	var we *writeError
	if errors.As(err, &we) && we.tooLarge && class == "" {
		// The enriched record cannot be written: dead-letter the input.
		p.cfg.Logger.Warn("enriched record too large, sent to the DLQ", "topic", r.msg.Topic, "partition", r.msg.Partition,
			"offset", r.msg.Offset, "bytes", len(msg.Value), "max_record_bytes", p.cfg.MaxRecordBytes)
		class = ClassOutputTooLarge
		msg = p.dlqMessage(r, class, fmt.Sprintf("enriched record of %d bytes exceeds the record size limit (MaxRecordBytes %d): %v",
			len(msg.Value), p.cfg.MaxRecordBytes, we.err), j.attempts)
		err = p.send(ctx, msg)
	}
	if errors.As(err, &we) && we.tooLarge && msg.Topic == p.cfg.DLQTopic && len(msg.Value) > 0 {
		// The input itself is too large for the DLQ: keep its key and
		// headers, and where to find it.
		(*HeaderCarrier)(&msg.Headers).Set(HeaderOriginalBytes, strconv.Itoa(len(msg.Value)))
		msg.Value = nil
		err = p.send(ctx, msg)
	}
	if class != "" {
		span.SetAttributes(attrErrorClass.String(string(class)))
	} else {
		span.SetAttributes(attrStatus.String(string(j.status)))
	}
	if err != nil {
		if errors.As(err, &we) {
			p.fail(p.writeFatal(msg.Topic, err))
		}
		span.SetStatus(codes.Error, err.Error())
		return false
	}
	now := time.Now()
	if class != "" {
		p.met.recordDLQ(ctx, class, r.msg.Time, r.fetched, now)
	} else {
		p.met.recordOut(ctx, j.status, r.msg.Time, r.fetched, now)
	}
	return true
}

// startSend starts msg's producer span and injects its trace context into
// a copy of msg's headers.
func (p *Pipeline) startSend(ctx context.Context, msg kafka.Message) (kafka.Message, trace.Span) {
	pctx, pspan := p.tracer.Start(ctx, "send "+msg.Topic, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			semconv.MessagingSystemKafka,
			semconv.MessagingOperationTypeSend,
			semconv.MessagingOperationName("send"),
			semconv.MessagingDestinationName(msg.Topic),
			semconv.MessagingKafkaMessageKey(string(msg.Key)),
			semconv.MessagingMessageBodySize(len(msg.Value)),
		))
	msg.Headers = append([]kafka.Header(nil), msg.Headers...)
	p.prop.Inject(pctx, (*HeaderCarrier)(&msg.Headers))
	return msg, pspan
}

// send publishes msg alone, in a producer span.
func (p *Pipeline) send(ctx context.Context, msg kafka.Message) error {
	msg, pspan := p.startSend(ctx, msg)
	defer pspan.End()
	_, err := p.publish(ctx, []kafka.Message{msg})
	if err != nil {
		pspan.SetStatus(codes.Error, err.Error())
	}
	return err
}

// sendBatch publishes the messages of jobs in order, each in its own
// producer span, and returns publish's result: how many leading messages
// were acknowledged and the error of the first one that was not.
func (p *Pipeline) sendBatch(ctx context.Context, jobs []*job) (int, error) {
	msgs := make([]kafka.Message, len(jobs))
	spans := make([]trace.Span, len(jobs))
	for i, j := range jobs {
		msgs[i], spans[i] = p.startSend(j.ctx, j.msg)
	}
	n, err := p.publish(ctx, msgs)
	for i, s := range spans {
		if i == n && err != nil {
			s.SetStatus(codes.Error, err.Error())
		}
		s.End()
	}
	return n, err
}

// enrich looks the user up, retrying while the API is unavailable. It
// returns the attempts made.
//
// A failure the client reports as an outage of the whole API (breaker open)
// pauses fetching; the record retries after the breaker's RetryAfter, as
// one of the half-open probes. Any other unavailable answer (retries
// exhausted with the breaker closed: a user the API keeps failing for)
// backs off this record alone, doubling from PauseBackoff. That failing
// time, not counting intervals in which the API as a whole was down,
// is bounded by Config.RecordRetryDeadline: then the record goes to the
// DLQ (a *retryDeadlineError). With Config.UnavailableAfter set, a record
// unavailable for that long in total is published with status
// unavailable instead.
func (p *Pipeline) enrich(ctx context.Context, r *record) (lookup, schemas.CacheResult, int, error) {
	ctx, span := p.tracer.Start(ctx, "enrich", trace.WithSpanKind(trace.SpanKindInternal))
	defer span.End()
	p.probes.enter(r.userID)
	defer p.probes.leave(r.userID)
	start := p.cfg.Now()
	mark := start             // end of the last interval accounted for
	var failing time.Duration // failing time counted toward RecordRetryDeadline
	backoff := p.cfg.PauseBackoff
	for attempt := 1; ; attempt++ {
		l, cache, err := p.enr.get(ctx, r.userID)
		if err == nil {
			if cache == schemas.CacheMiss {
				p.apiAnswered() // the API answered: it is up
			}
			p.met.cache(ctx, cache)
			span.SetAttributes(attrStatus.String(string(l.status)), attrCache.String(string(cache)))
			return l, cache, attempt, nil
		}
		var ue *unavailableError
		if !errors.As(err, &ue) {
			span.SetStatus(codes.Error, err.Error())
			return lookup{}, "", attempt, err
		}
		now := p.cfg.Now()
		// An interval counts unless the API as a whole was down through
		// it: the breaker open and no lookup of any user answered.
		counted := !ue.outage || p.answeredSince(mark)
		if counted {
			failing += now.Sub(mark)
		}
		mark = now
		if p.cfg.UnavailableAfter > 0 && now.Sub(start) >= p.cfg.UnavailableAfter {
			span.SetAttributes(attrStatus.String(string(schemas.StatusUnavailable)))
			return lookup{status: schemas.StatusUnavailable}, schemas.CacheMiss, attempt, nil
		}
		if counted && failing >= p.cfg.RecordRetryDeadline {
			err := &retryDeadlineError{failing: failing, err: ue.err}
			span.SetStatus(codes.Error, err.Error())
			return lookup{}, "", attempt, err
		}
		var wait time.Duration
		if ue.outage {
			wait = ue.retryAfter
			if wait <= 0 {
				wait = p.cfg.PauseBackoff
			}
			p.pause.pauseFor(wait)
			span.AddEvent("api unavailable", trace.WithAttributes(attrRetryAfter.String(wait.String())))
		} else {
			wait = min(backoff, p.cfg.RecordRetryDeadline-failing)
			backoff = min(2*backoff, maxBackoffFactor*p.cfg.PauseBackoff)
			span.AddEvent("lookup failed, backing off", trace.WithAttributes(attrRetryAfter.String(wait.String())))
			if attempt == 1 {
				p.cfg.Logger.Warn("lookup failing for one user, backing off (other keys go on)",
					"topic", r.msg.Topic, "partition", r.msg.Partition, "offset", r.msg.Offset, "error", ue.err)
			}
		}
		if p.cfg.UnavailableAfter > 0 {
			wait = min(wait, max(p.cfg.UnavailableAfter-now.Sub(start), 0))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return lookup{}, "", attempt, ctx.Err()
		case <-t.C:
		}
	}
}

// maxBackoffFactor caps a failing record's backoff at this many
// PauseBackoffs.
const maxBackoffFactor = 32

// apiAnswered notes that an API lookup succeeded: the API is up, fetching
// resumes.
func (p *Pipeline) apiAnswered() {
	p.lastAnswer.Store(p.cfg.Now().UnixNano())
	p.pause.resume()
}

// answeredSince reports whether an API lookup succeeded after t.
func (p *Pipeline) answeredSince(t time.Time) bool {
	return p.lastAnswer.Load() > t.UnixNano()
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
	return s
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

// Processor is the enrichment service: a Pipeline fed by the consumer
// group of Config.Group. Create it with New and run it with Run once.
type Processor struct {
	pipe *Pipeline
	src  *GroupSource
}

// newProcessor validates cfg and wires a pipeline enriching with fetch to
// a group source.
func newProcessor(cfg Config, fetch func(Config) lookupFunc) (*Processor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	pipe, err := newPipeline(cfg, fetch(cfg), newWriter(cfg))
	if err != nil {
		return nil, err
	}
	return &Processor{pipe: pipe, src: NewGroupSource(cfg)}, nil
}

// Run consumes until ctx is canceled, then stops fetching, finishes the
// records in flight (within Config.ShutdownTimeout), flushes, commits and
// returns nil. On an app-fatal API answer it stops the same way and returns
// the *FatalError.
func (p *Processor) Run(ctx context.Context) error { return p.RunSource(ctx, p.src) }

// RunSource runs the processor's pipeline from src (for example a bounded
// replay), with Run's shutdown and error semantics, and closes the pipeline.
func (p *Processor) RunSource(ctx context.Context, src Source) error {
	sctx, cancel := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-p.pipe.Failed():
			cancel()
		case <-p.pipe.base.Done(): // hard stop
			cancel()
		case <-sctx.Done():
		}
	}()
	err := src.Run(sctx, p.pipe)
	cancel()
	<-watched
	cerr := p.pipe.Close()
	if fe := p.pipe.Err(); fe != nil {
		return fe
	}
	if err != nil {
		return err
	}
	return cerr
}

// Close releases the processor's resources. Run closes them on return;
// Close is for a processor that is never run. Safe to call more than once.
func (p *Processor) Close() error { return p.pipe.Close() }

// Ready reports whether the processor has joined its group and owns its
// partitions.
func (p *Processor) Ready() bool { return p.src.Ready() }

// Stats returns a snapshot of the processor's counters.
func (p *Processor) Stats() Stats { return p.pipe.Stats() }
