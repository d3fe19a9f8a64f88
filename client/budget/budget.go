// Package budget is the API call budget of one app shared by every process
// through Redis: a GCRA schedule with priorities, a shared adaptive rate
// and a conservative local fallback when Redis is unreachable.
//
// # Shared schedule
//
// The hash Config.Key holds a GCRA schedule with burst 1 at the paced rate
// r (PacedRate: Safety*Rate-1 for Safety*Rate >= 2). One Lua script decides
// a grant in one round trip, with the Redis server's clock: a grant gets the
// slot s = max(tat, now) and moves tat to s + 1/r. Slots are thus at least
// 1/r apart whatever the number of processes, so no trailing second holds
// more than r+1 = Safety*Rate grants. A grant may reserve a slot slightly
// ahead (live: two intervals, replay: one); Take then sleeps until
// the slot. A take that cannot be granted gets the time until it may
// succeed and sleeps it before asking again. Callers of one Budget queue
// locally, so only one of them at a time asks Redis; once it holds a
// reservation the next one asks, from the time its own slot may be
// reserved, so in the common case each grant costs one round trip.
//
// # Priority
//
// Live takes reserve two intervals ahead, replay takes one, so a live take
// asking in time gets the next slot before any replay.
// When a live take cannot be granted it marks "live is waiting" until its
// slot plus 250ms, and replay takes are refused while the mark holds. A
// replay thus runs at the whole budget while live is idle and yields at
// once when live needs the slots.
//
// # Shared throttling
//
// Throttled, called after a frequency-limit answer, multiplies the shared
// rate by RateDecrease (at most once per second for all processes, never
// below MinRate). The script recovers it linearly to the paced rate over
// RateRecoverAfter at every call, so every process follows the same rate.
//
// # Redis failures
//
// A Redis call that fails or exceeds RedisTimeout switches the Budget to a
// local golang.org/x/time/rate limiter (degraded mode; one warn log line).
// Its budget is b = Safety*Rate * share, share = FallbackShare() if set,
// else 1/max(N, FallbackMinMembers) with N the number of processes seen in
// the member set at the last heartbeat; it is paced at PacedRate(b) (and the
// replay Cap), so no process exceeds its share in any trailing second. The
// local limiter grants nothing during its first 1s + one interval, so the
// local grants of a second never add to shared grants of the same second.
// The heartbeat probes Redis every HeartbeatInterval; when it answers, the
// Budget pushes the shared schedule forward by HeartbeatInterval +
// RedisTimeout + 1s (every process leaves its fallback within a heartbeat,
// and its last local grant is then over a second old), then resumes shared
// mode (one info log line). Take never returns an error for a Redis failure.
//
// The bound assumes Redis is unreachable for all processes alike; a process
// cut off alone spends its fallback share on top of the others' budget until
// the frequency-limit answers lower the shared rate.
//
// # Integration
//
// One Budget per process and app, built with Key "enricher:budget:<sdkappid>"
// and the client's Rate, RateSafety (as Safety), MinRate, RateDecrease and
// RateRecoverAfter: Role Live for the live processor, Role Replay with Cap =
// the replay's --api-rate for a replay. The client calls Take before every
// attempt and every page, with the attempt's context (where it calls its
// limiter's wait today), Throttled on a frequency-limit answer (where it
// calls the limiter's throttled), reports Rate as its effective rate and
// Degraded on /readyz, and calls Close at shutdown. FallbackShare may return
// 1 / the consumer group's member count. The per-process limiter may stay in
// front as a second guard at the full budget: it never binds while the
// shared budget works.
package budget

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
)

// ErrClosed is returned by Take after Close.
var ErrClosed = errors.New("budget: closed")

//go:embed budget.lua
var budgetLua string

var budgetScript = redis.NewScript(budgetLua)

// heartbeatScript registers a member (ARGV[1]) with the server's time in ms
// and drops members not seen for ARGV[2] ms; it returns the member count.
var heartbeatScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
redis.call('PEXPIRE', KEYS[1], ttl * 2)
return redis.call('ZCARD', KEYS[1])
`)

// Budget is the shared call budget of one app for one process and role.
// Safe for concurrent use.
type Budget struct {
	cfg        Config
	paced      float64 // the schedule's rate at full speed
	minRate    float64
	recoverPer float64 // calls/s per second
	membersKey string
	tel        *telemetry
	closed     atomic.Bool

	turn chan struct{} // held by the caller that asks Redis
	next time.Time     // under turn: when the next caller should ask (a hint)

	members atomic.Int64 // member count at the last heartbeat

	mu        sync.Mutex
	lastRate  float64 // shared rate at the last answer
	lastAt    time.Time
	degraded  bool
	reason    string
	since     time.Time
	fallback  *fallback
	degradedG atomic.Bool // mirrors degraded for lock-free reads

	onGrant func(slot time.Time, shared bool) // tests: every grant, shared slot in server time

	stop   context.CancelFunc
	wg     sync.WaitGroup
	closeM sync.Once
}

// New returns a Budget and starts its heartbeat. It does not wait for Redis:
// an unreachable Redis makes the first Take switch to the fallback.
func New(cfg Config) (*Budget, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if cfg.ID == "" {
		id, err := defaultID()
		if err != nil {
			return nil, err
		}
		cfg.ID = id
	}
	paced := PacedRate(cfg.Rate, cfg.Safety)
	b := &Budget{
		cfg:        cfg,
		paced:      paced,
		minRate:    min(cfg.MinRate, paced),
		membersKey: cfg.Key + ":members",
		turn:       make(chan struct{}, 1),
		lastRate:   paced,
		lastAt:     cfg.Now(),
	}
	if cfg.RateRecoverAfter > 0 {
		b.recoverPer = paced / cfg.RateRecoverAfter.Seconds()
	} else {
		b.recoverPer = paced * 1e9
	}
	tel, err := newTelemetry(cfg, b)
	if err != nil {
		return nil, err
	}
	b.tel = tel
	ctx, cancel := context.WithCancel(context.Background())
	b.stop = cancel
	b.wg.Add(1)
	go b.heartbeatLoop(ctx)
	return b, nil
}

// Close stops the heartbeat, removes this process from the member set (best
// effort) and unregisters the metrics callbacks. Takes after Close return
// ErrClosed; Takes in progress finish normally. Safe to call more than once.
func (b *Budget) Close() error {
	b.closeM.Do(func() {
		b.closed.Store(true)
		b.stop()
		b.wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), b.cfg.RedisTimeout)
		_ = b.cfg.Redis.ZRem(ctx, b.membersKey, b.cfg.ID).Err()
		cancel()
		b.tel.close()
	})
	return nil
}

// Take blocks until one call may be sent and returns the time waited. It
// returns an error only when ctx ends (the context's error) or after Close
// (ErrClosed); a Redis failure switches to the local fallback instead.
// A slot reserved ahead is lost if ctx ends before it.
func (b *Budget) Take(ctx context.Context) (time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if b.closed.Load() {
		return 0, ErrClosed
	}
	start := time.Now()
	select {
	case b.turn <- struct{}{}:
	case <-ctx.Done():
		return time.Since(start), ctx.Err()
	}
	held := true
	release := func() {
		if held {
			held = false
			<-b.turn
		}
	}
	defer release()

	for {
		if fb := b.currentFallback(); fb != nil {
			if err := fb.wait(ctx); err != nil {
				return time.Since(start), err
			}
			b.granted(ctx, start, false, time.Time{})
			return time.Since(start), nil
		}
		if err := sleep(ctx, time.Until(b.next)); err != nil {
			return time.Since(start), err
		}
		res, err := b.eval(ctx, "take")
		if err != nil {
			if ctx.Err() != nil {
				return time.Since(start), ctx.Err()
			}
			b.enterDegraded(err)
			continue
		}
		if !res.granted {
			if err := sleep(ctx, res.wait); err != nil {
				return time.Since(start), err
			}
			continue
		}
		// The slot is reserved: let the next caller reserve the following
		// one while this one sleeps, from when it may be granted, so a late
		// wakeup here does not delay the schedule.
		interval := time.Duration(float64(time.Second) / res.rate)
		b.next = time.Now().Add(res.wait + interval - b.lookahead(interval))
		release()
		if err := sleep(ctx, res.wait); err != nil {
			return time.Since(start), err
		}
		b.granted(ctx, start, true, res.slot)
		return time.Since(start), nil
	}
}

// lookahead is how far ahead of its slot a take of this role may reserve
// it (as in the script).
func (b *Budget) lookahead(interval time.Duration) time.Duration {
	if b.cfg.Role == Live {
		return 2 * interval
	}
	return interval
}

func (b *Budget) granted(ctx context.Context, start time.Time, shared bool, slot time.Time) {
	b.tel.grant(ctx, b.cfg.Role, shared, time.Since(start))
	if b.onGrant != nil {
		b.onGrant(slot, shared)
	}
}

// Throttled lowers the shared rate after a frequency-limit answer, for
// every process: by RateDecrease, at most once per second, never below
// MinRate. It returns the rate now in force and whether this call lowered
// it. While degraded it lowers the local fallback rate the same way.
func (b *Budget) Throttled(ctx context.Context) (float64, bool) {
	if fb := b.currentFallback(); fb != nil {
		return fb.throttled()
	}
	res, err := b.eval(ctx, "throttle")
	if err != nil {
		if ctx.Err() == nil {
			b.enterDegraded(err)
			if fb := b.currentFallback(); fb != nil {
				return fb.throttled()
			}
		}
		return b.Rate(), false
	}
	if res.granted {
		b.cfg.Logger.Info("budget: shared rate lowered after a frequency-limit answer",
			"key", b.cfg.Key, "rate", res.rate)
	}
	return res.rate, res.granted
}

// Rate returns the rate in force for this Budget, in calls/s: the shared
// rate as of the last Redis answer, with the linear recovery applied since;
// while degraded, the local fallback rate.
func (b *Budget) Rate() float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fallback != nil {
		return b.fallback.current()
	}
	return b.sharedRateLocked()
}

func (b *Budget) sharedRateLocked() float64 {
	dt := b.cfg.Now().Sub(b.lastAt).Seconds()
	return min(b.paced, b.lastRate+b.recoverPer*max(0, dt))
}

// PacedRate returns the schedule's rate at full speed, in calls/s.
func (b *Budget) PacedRate() float64 { return b.paced }

// Degraded reports whether the Budget runs on its local fallback because
// Redis was unreachable, and why.
func (b *Budget) Degraded() (bool, string) {
	if !b.degradedG.Load() {
		return false, ""
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.degraded {
		return false, ""
	}
	return true, fmt.Sprintf("shared budget unreachable since %s: %s", b.since.Format(time.RFC3339), b.reason)
}

// Members returns the number of processes seen at the last heartbeat (0
// before the first).
func (b *Budget) Members() int { return int(b.members.Load()) }

func (b *Budget) currentFallback() *fallback {
	if !b.degradedG.Load() {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.fallback
}

// fallbackBudget returns this process's share of Safety*Rate while degraded.
func (b *Budget) fallbackBudget() float64 {
	share := 0.0
	if b.cfg.FallbackShare != nil {
		share = b.cfg.FallbackShare()
	}
	if !(share > 0) || math.IsNaN(share) {
		n := max(int(b.members.Load()), b.cfg.FallbackMinMembers)
		share = 1 / float64(n)
	}
	share = min(share, 1)
	return b.cfg.Safety * b.cfg.Rate * share
}

func (b *Budget) enterDegraded(cause error) {
	b.mu.Lock()
	if b.degraded {
		b.mu.Unlock()
		return
	}
	budget := b.fallbackBudget()
	maxRate := PacedRate(budget, 1)
	if b.cfg.Cap > 0 {
		maxRate = min(maxRate, b.cfg.Cap)
	}
	// Keep the shared throttling in force: start at the same fraction of
	// the maximum as the shared rate.
	start := maxRate * min(1, b.sharedRateLocked()/b.paced)
	hold := time.Second + time.Duration(float64(time.Second)/b.paced)
	b.fallback = newFallback(maxRate, start, min(b.cfg.MinRate, maxRate), b.cfg.RateDecrease,
		b.cfg.RateRecoverAfter, b.cfg.Now, time.Now().Add(hold))
	b.degraded = true
	b.reason = cause.Error()
	b.since = b.cfg.Now()
	b.degradedG.Store(true)
	b.mu.Unlock()
	b.tel.setDegraded(true)
	b.cfg.Logger.Warn("budget: Redis unreachable, using a local share of the budget",
		"key", b.cfg.Key, "role", b.cfg.Role.String(), "fallback_rate", maxRate,
		"members", b.members.Load(), "error", cause)
}

func (b *Budget) leaveDegraded(rate float64) {
	b.mu.Lock()
	if !b.degraded {
		b.mu.Unlock()
		return
	}
	since := b.since
	b.degraded = false
	b.fallback = nil
	b.reason = ""
	b.lastRate, b.lastAt = rate, b.cfg.Now()
	b.degradedG.Store(false)
	b.mu.Unlock()
	b.tel.setDegraded(false)
	b.cfg.Logger.Info("budget: Redis reachable again, shared budget resumed",
		"key", b.cfg.Key, "role", b.cfg.Role.String(), "degraded_for", b.cfg.Now().Sub(since).Round(time.Millisecond))
}

// heartbeatLoop registers the process every HeartbeatInterval and, while
// degraded, resumes the shared budget once Redis answers.
func (b *Budget) heartbeatLoop(ctx context.Context) {
	defer b.wg.Done()
	t := time.NewTicker(b.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		b.heartbeat(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (b *Budget) heartbeat(ctx context.Context) {
	ttl := 3 * b.cfg.HeartbeatInterval
	n, err := b.run(ctx, "heartbeat", func(ctx context.Context) (any, error) {
		return heartbeatScript.Run(ctx, b.cfg.Redis, []string{b.membersKey}, b.cfg.ID, ttl.Milliseconds()).Int64()
	})
	if err != nil {
		if ctx.Err() == nil {
			b.enterDegraded(err)
		}
		return
	}
	b.members.Store(n.(int64))
	if !b.degradedG.Load() {
		return
	}
	res, err := b.eval(ctx, "resume")
	if err != nil {
		return
	}
	b.leaveDegraded(res.rate)
}

// result is the script's answer.
type result struct {
	granted bool
	wait    time.Duration
	rate    float64
	slot    time.Time
}

func (b *Budget) resumeHold() time.Duration {
	return b.cfg.HeartbeatInterval + b.cfg.RedisTimeout + time.Second
}

// eval runs the budget script once with a RedisTimeout deadline.
func (b *Budget) eval(ctx context.Context, op string) (result, error) {
	v, err := b.run(ctx, op, func(ctx context.Context) (any, error) {
		return budgetScript.Run(ctx, b.cfg.Redis, []string{b.cfg.Key},
			op, b.cfg.Role.String(), b.paced, b.minRate, b.cfg.RateDecrease, b.recoverPer,
			b.cfg.Cap, liveHold.Microseconds(), keyTTL(b.cfg.RateRecoverAfter).Milliseconds(),
			b.resumeHold().Microseconds()).Slice()
	})
	if err != nil {
		return result{}, err
	}
	res, err := parseResult(v.([]any))
	if err != nil {
		return result{}, err
	}
	b.mu.Lock()
	b.lastRate, b.lastAt = res.rate, b.cfg.Now()
	b.mu.Unlock()
	return res, nil
}

// keyTTL keeps an idle app's state for at least a minute and for twice the
// recovery time, so a lowered rate is never forgotten before it recovers.
func keyTTL(recoverAfter time.Duration) time.Duration {
	return max(time.Minute, 2*recoverAfter)
}

func parseResult(v []any) (result, error) {
	if len(v) != 5 {
		return result{}, fmt.Errorf("budget: script answered %d values, want 5", len(v))
	}
	granted, ok1 := v[0].(int64)
	wait, ok2 := v[1].(int64)
	rateS, ok3 := v[2].(string)
	slot, ok4 := v[3].(int64)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return result{}, fmt.Errorf("budget: unexpected script answer %v", v)
	}
	var r float64
	if _, err := fmt.Sscan(rateS, &r); err != nil || !(r > 0) {
		return result{}, fmt.Errorf("budget: unexpected rate %q in script answer", rateS)
	}
	return result{
		granted: granted == 1,
		wait:    time.Duration(max(0, wait)) * time.Microsecond,
		rate:    r,
		slot:    time.UnixMicro(slot),
	}, nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fallback is the local limiter used while degraded: a token bucket with
// burst 1 whose rate follows the same decrease and linear recovery as the
// shared one. Safe for concurrent use.
type fallback struct {
	lim       *rate.Limiter
	notBefore time.Time // wall clock: no grant before it
	now       func() time.Time
	maxRate   float64
	minRate   float64
	factor    float64
	recover   float64

	mu      sync.Mutex
	cur     float64
	last    time.Time
	lastDec time.Time
}

func newFallback(maxRate, start, minRate, factor float64, recoverAfter time.Duration, now func() time.Time, notBefore time.Time) *fallback {
	f := &fallback{
		now: now, maxRate: maxRate, minRate: minRate, factor: factor,
		cur: max(minRate, start), last: now(), notBefore: notBefore,
	}
	if recoverAfter > 0 {
		f.recover = maxRate / recoverAfter.Seconds()
	} else {
		f.recover = maxRate * 1e9
	}
	f.lim = rate.NewLimiter(rate.Limit(f.cur), 1)
	return f
}

func (f *fallback) current() float64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recoverLocked()
	return f.cur
}

func (f *fallback) recoverLocked() {
	now := f.now()
	if dt := now.Sub(f.last).Seconds(); dt > 0 && f.cur < f.maxRate {
		f.cur = min(f.maxRate, f.cur+f.recover*dt)
		f.lim.SetLimit(rate.Limit(f.cur))
	}
	f.last = now
}

func (f *fallback) throttled() (float64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recoverLocked()
	now := f.now()
	if !f.lastDec.IsZero() && now.Sub(f.lastDec) < time.Second {
		return f.cur, false
	}
	f.lastDec = now
	f.cur = max(f.minRate, f.cur*f.factor)
	f.lim.SetLimit(rate.Limit(f.cur))
	return f.cur, true
}

// wait blocks until the local limiter grants a call. Callers of one Budget
// come one at a time (the Budget's turn).
func (f *fallback) wait(ctx context.Context) error {
	if err := sleep(ctx, time.Until(f.notBefore)); err != nil {
		return err
	}
	f.mu.Lock()
	f.recoverLocked()
	r := f.lim.Reserve() // burst 1, one token: always OK
	f.mu.Unlock()
	if err := sleep(ctx, r.Delay()); err != nil {
		r.Cancel()
		return err
	}
	return nil
}
