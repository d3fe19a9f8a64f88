package processor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/tencentchat-enricher/enricher/client"
	"github.com/tencentchat-enricher/enricher/schemas"
)

// This file is the enrich stage: a record's process span starts, its user
// is looked up in the cache or, coalesced with concurrent lookups of the
// same user, through the API (Fetcher); lookups that fail while the API is
// unavailable retry, pausing fetching during an outage.

// prepare starts r's process span and enriches r, returning the message to
// publish, or nil if r is dropped (its span then ended).
func (p *Pipeline) prepare(c *Claim, r *record) *job {
	if c.ctx.Err() != nil || p.Err() != nil {
		return nil
	}
	ctx := p.prop.Extract(c.lookups, (*HeaderCarrier)(&r.msg.Headers))
	ctx, span := p.tracer.Start(ctx, p.spanNames.get("process ", r.msg.Topic), spanConsumer)
	if span.IsRecording() {
		// Built only for a span that records: with tracing off or the
		// record not sampled, a record costs no attribute.
		span.SetAttributes(
			semconv.MessagingSystemKafka,
			semconv.MessagingOperationTypeProcess,
			semconv.MessagingOperationName("process"),
			semconv.MessagingDestinationName(r.msg.Topic),
			semconv.MessagingDestinationPartitionID(strconv.Itoa(r.msg.Partition)),
			semconv.MessagingKafkaOffset(int(r.msg.Offset)),
			semconv.MessagingConsumerGroupName(p.cfg.Group),
			semconv.MessagingMessageBodySize(len(r.msg.Value)),
		)
		if len(r.msg.Key) > 0 {
			span.SetAttributes(semconv.MessagingKafkaMessageKey(string(r.msg.Key)))
		}
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
			// The enriched record cannot be written (a record timestamp
			// past year 9999, which JSON times cannot carry): the input
			// goes to the DLQ, and its partition moves on.
			j.class, j.status = ClassEncodeFailed, ""
			j.msg = p.dlqMessage(r, j.class, fmt.Sprintf("cannot encode the enriched record: %v", err), attempts)
		}
	}
	return j
}

// enrich looks the user up, retrying while the API is unavailable. It
// returns the attempts made.
//
// A failure the client reports as an outage of the whole API (breaker open)
// pauses fetching; the record retries after the breaker's RetryAfter, or
// as soon as the breaker's probe ends (BreakerOpenError.Ready), as one of
// the half-open probes. Any other unavailable answer (retries
// exhausted with the breaker closed: a user the API keeps failing for)
// backs off this record alone, doubling from PauseBackoff. That failing
// time, not counting intervals in which the API as a whole was down,
// is bounded by Config.RecordRetryDeadline: then the record goes to the
// DLQ (a *retryDeadlineError). With Config.UnavailableAfter set, a record
// unavailable for that long in total is published with status
// unavailable instead.
func (p *Pipeline) enrich(ctx context.Context, r *record) (lookup, schemas.CacheResult, int, error) {
	ctx, span := p.tracer.Start(ctx, "enrich", spanInternal)
	defer span.End()
	if l, from, ok := p.enr.local(r.userID); ok {
		// A cache hit: no lookup, so the record is not a probe.
		return l, p.answered(ctx, span, l, from), 1, nil
	}
	p.probes.enter(r.userID)
	defer p.probes.leave(r.userID)
	start := p.cfg.Now()
	mark := start             // end of the last interval accounted for
	var failing time.Duration // failing time counted toward RecordRetryDeadline
	backoff := p.cfg.PauseBackoff
	for attempt := 1; ; attempt++ {
		l, from, err := p.enr.get(ctx, r.userID)
		if err == nil {
			if from == layerAPI {
				p.apiAnswered() // the API answered: it is up
			}
			return l, p.answered(ctx, span, l, from), attempt, nil
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
				p.lookupLog.warn("lookup failing for one user, backing off (other keys go on)",
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
		case <-ue.ready: // the breaker's probe ended: try again
			t.Stop()
		}
	}
}

// answered counts where l came from, records it on the enrich span, and
// returns the record's cache result.
func (p *Pipeline) answered(ctx context.Context, span trace.Span, l lookup, from layer) schemas.CacheResult {
	p.met.cache(ctx, from)
	if span.IsRecording() {
		span.SetAttributes(attrStatus.String(string(l.status)), attrCache.String(string(from.result())), attrCacheLayer.String(from.String()))
	}
	return from.result()
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

// Fetcher is what the processor needs from the Tencent Chat client: every
// subscription of one user, all pages. *client.Client implements it. It
// must be safe for concurrent use; the processor calls it from many
// goroutines and relies on it for rate limiting, retries and the breaker.
type Fetcher interface {
	GetAll(ctx context.Context, user string) (*client.Subscriptions, error)
}

// breakerStater is implemented by fetchers with a circuit breaker, such as
// *client.Client: a failed lookup with the breaker open afterwards is part
// of an outage of the whole API.
type breakerStater interface {
	BreakerState() client.BreakerState
}

// fetcherLookup maps the client's answers to lookups: subscriptions → ok;
// the per-record codes of the status table → user_not_found / invalid_user;
// other per-record failures → enrichError (DLQ); app-fatal → *FatalError;
// everything the client gave up retrying (transient, throttled, breaker
// open) → unavailableError, marked as an outage when the breaker refused
// the call or is open after it.
func fetcherLookup(f Fetcher, now func() time.Time) lookupFunc {
	return func(ctx context.Context, user string) (lookup, error) {
		subs, err := f.GetAll(ctx, user)
		if err == nil {
			return lookup{
				status:    schemas.StatusOK,
				accounts:  subs.Accounts,
				total:     subs.TotalCount,
				complete:  true,
				fetchedAt: now(),
			}, nil
		}
		var apiErr *client.APIError
		errors.As(err, &apiErr)
		switch client.Classify(err) {
		case client.ClassPermanent:
			if apiErr != nil {
				switch apiErr.Code {
				case client.CodeUserNotFound:
					return lookup{status: schemas.StatusUserNotFound, complete: true, fetchedAt: now()}, nil
				case client.CodeInvalidUserID, client.CodeInvalidParameter, client.CodeInvalidPacket:
					return lookup{status: schemas.StatusInvalidUser, complete: true, fetchedAt: now()}, nil
				}
				return lookup{}, &enrichError{code: apiErr.Code, err: err}
			}
			return lookup{}, &enrichError{err: err}
		case client.ClassFatal:
			fe := &FatalError{Setting: fatalSetting(apiErr), Err: err}
			if apiErr != nil {
				fe.Code, fe.HTTPStatus = apiErr.Code, apiErr.HTTPStatus
			}
			return lookup{}, fe
		case client.ClassCanceled:
			if ctx.Err() != nil {
				return lookup{}, ctx.Err()
			}
		}
		ue := &unavailableError{err: err}
		if d, ok := client.RetryAfter(err); ok {
			ue.retryAfter = d
		}
		var boe *client.BreakerOpenError
		if errors.As(err, &boe) {
			ue.ready = boe.Ready
		}
		if errors.Is(err, client.ErrHoldOff) {
			ue.outage = true
		} else if bs, ok := f.(breakerStater); ok && bs.BreakerState() == client.BreakerOpen {
			ue.outage = true
		}
		return lookup{}, ue
	}
}

// fatalSetting names the configuration to fix for an app-fatal answer.
func fatalSetting(e *client.APIError) string {
	if e == nil {
		return "the API client configuration"
	}
	return e.Hint()
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
	now     func() time.Time
	mu      sync.Mutex
	down    bool
	until   time.Time
	wake    chan struct{} // closed by resume
	pauses  atomic.Int64
}

func newPauseGate(hold bool, recheck time.Duration, idle func() bool, now func() time.Time) *pauseGate {
	return &pauseGate{hold: hold, recheck: recheck, idle: idle, now: now, wake: make(chan struct{})}
}

// pauseFor marks the API down, for at least d from now.
func (g *pauseGate) pauseFor(d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
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
	return g.down && (g.hold || g.until.After(g.now()))
}

// wait returns when fetching may go on, or with ctx's error.
func (g *pauseGate) wait(ctx context.Context) error {
	for {
		g.mu.Lock()
		down, d, wake := g.down, g.until.Sub(g.now()), g.wake
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

// rater is implemented by fetchers that pace their calls, such as
// *client.Client: the calls per second they make now.
type rater interface {
	EffectiveRate() float64
}

// minLookupUsers is the fewest users the lookup gate lets wait for the API.
const minLookupUsers = 16

// lookupQueueTime is how much of the API budget the users waiting for a
// lookup may take: a queue of seconds keeps the API busy, while every
// user in it holds a goroutine and its records in memory (users never
// seen would otherwise queue for 10 s of budget: skewed peak RSS 327 MiB,
// against 280 with 4 s at 256 records per partition; 328 with 10 s at
// 4,096, 283 with 4 s at 2,048).
const lookupQueueTime = 4 * time.Second

// userGate bounds the distinct users whose records wait for an API lookup
// to what the API budget serves within lookupQueueTime (or
// Config.DrainTimeout if shorter), so that a revocation or a crash strands
// few records that cost budget again and the records waiting stay few;
// records of users already waiting, and cached users, pass. Without a rate (a
// fetcher that does not pace) it does not bound. Safe for concurrent use.
type userGate struct {
	limit func() int // 0: no bound

	mu    sync.Mutex
	users map[string]int
	freed chan struct{} // closed and replaced when a user leaves
}

func newUserGate(rate func() float64, window time.Duration) *userGate {
	g := &userGate{users: map[string]int{}, freed: make(chan struct{})}
	g.limit = func() int {
		if rate == nil {
			return 0
		}
		return max(minLookupUsers, int(rate()*window.Seconds()))
	}
	return g
}

// enter waits until user may wait for the API, or ctx ends.
func (g *userGate) enter(ctx context.Context, user string) error {
	for {
		g.mu.Lock()
		if n, in := g.users[user]; in || g.limit() == 0 || len(g.users) < g.limit() {
			g.users[user] = n + 1
			g.mu.Unlock()
			return nil
		}
		freed := g.freed
		g.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// leave ends one record's wait for user.
func (g *userGate) leave(user string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.users[user]--; g.users[user] > 0 {
		return
	}
	delete(g.users, user)
	close(g.freed)
	g.freed = make(chan struct{})
}
