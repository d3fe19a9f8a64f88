// Package sharedcache is a cache of opaque byte values per user kept in
// Redis and shared by every process, with short leases so that one user is
// fetched by one process at a time.
//
// # Keys
//
// For a user u and Config.Prefix P:
//
//	P{u}:v  the value (a Redis string with the entry's TTL)
//	P{u}:l  the lease: a random token, with LeaseTTL
//	Pset    the pub/sub channel on which Set and Release publish u
//
// The braces make the value and the lease of a user one cluster hash slot,
// so the scripts below touch a single slot.
//
// # Protocol
//
// A process that misses its local cache:
//
//  1. Get(u): a hit is used as is (with its remaining TTL).
//  2. On a miss, Acquire(u). The script returns "not acquired" when the value
//     exists by then (a Set won the race: go back to Get), otherwise it sets
//     the lease with SET NX PX LeaseTTL and a random token.
//  3. The lease holder fetches the user and calls Set(u, value, ttl): one
//     script stores the value, deletes the lease if it still holds the
//     caller's token, and publishes u on Pset. A holder that cannot produce
//     a value calls Lease.Release, which deletes the lease only if the token
//     matches, and publishes u too.
//  4. A process that did not get the lease calls Wait(u, maxWait). Wait
//     subscribes to Pset (one subscription per Store, confirmed before the
//     first check), then checks the value and the lease in one script: a
//     value is returned; no value and no lease (released, or expired because
//     its holder died) returns ok=false at once, so the caller goes back to
//     step 2 and may take the lease itself; otherwise it waits for a
//     notification for u or RecheckInterval, whichever comes first, and
//     checks again, until maxWait passes (ok=false) or ctx ends. A lost
//     notification thus costs at most RecheckInterval, and a dead holder at
//     most its lease's remaining TTL plus RecheckInterval.
//
// Errors from Redis are returned, wrapped, never panicked on: the caller is
// expected to fall back to its local cache and fetch by itself.
//
// # Integration
//
// The processor keeps its local cache in front and its singleflight per
// process; on a local miss, inside the singleflight call, it follows the
// protocol above (see Example) with Prefix "enricher:subs:<sdkappid>:", and
// stores each lookup in a compact encoding of its own with the TTL of its
// status (negative answers too). Values are opaque here. For
// stale-while-revalidate, the value may carry its fetch time and be stored
// for TTL plus the stale window; Get's ttlLeft tells how far it is in.
package sharedcache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Defaults applied by New to zero-valued Config fields.
const (
	DefaultLeaseTTL        = 10 * time.Second
	DefaultRecheckInterval = 250 * time.Millisecond
	DefaultRedisTimeout    = 250 * time.Millisecond
)

// ErrClosed is returned by the methods of a closed Store.
var ErrClosed = errors.New("sharedcache: closed")

// Config configures a Store. The zero value of every field but Redis and
// Prefix selects the documented default. A Config is copied by New.
type Config struct {
	// Redis holds the cache (required): a single node, failover or cluster
	// client.
	Redis redis.UniversalClient
	// Prefix starts every key and the channel name (required), by convention
	// "enricher:subs:<sdkappid>:".
	Prefix string
	// LeaseTTL is the life of a lease (default 10s): a holder that dies
	// blocks the others at most that long. Use Lease.Extend for fetches that
	// may take longer.
	LeaseTTL time.Duration
	// RecheckInterval bounds the wait for a notification before Wait checks
	// Redis again (default 250ms).
	RecheckInterval time.Duration
	// RedisTimeout bounds each Redis call (default 250ms).
	RedisTimeout time.Duration
	// Now is the clock of Lease.Expires (default time.Now).
	Now func() time.Time
	// Logger receives subscription problems (default slog.Default()).
	Logger *slog.Logger
	// MeterProvider and TracerProvider; nil = no-op. With a TracerProvider
	// every Redis call gets a span, parented by the caller's context.
	MeterProvider  metric.MeterProvider
	TracerProvider trace.TracerProvider
}

func (c Config) withDefaults() Config {
	if c.LeaseTTL == 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.RecheckInterval == 0 {
		c.RecheckInterval = DefaultRecheckInterval
	}
	if c.RedisTimeout == 0 {
		c.RedisTimeout = DefaultRedisTimeout
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports every problem of the configuration after defaults are
// applied.
func (c Config) Validate() error {
	d := c.withDefaults()
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf("sharedcache: "+format, a...)) }
	if d.Redis == nil {
		add("Redis is required")
	}
	if d.Prefix == "" {
		add("Prefix is required (e.g. \"enricher:subs:<sdkappid>:\")")
	}
	if d.LeaseTTL < time.Millisecond {
		add("LeaseTTL must be at least 1ms, got %s", d.LeaseTTL)
	}
	if d.RecheckInterval <= 0 {
		add("RecheckInterval must be positive, got %s", d.RecheckInterval)
	}
	if d.RedisTimeout <= 0 {
		add("RedisTimeout must be positive, got %s", d.RedisTimeout)
	}
	return errors.Join(errs...)
}

var (
	// getScript: KEYS value. Returns false or {value, pttl}.
	getScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then return false end
return {v, redis.call('PTTL', KEYS[1])}
`)
	// acquireScript: KEYS value, lease; ARGV token, ttl ms.
	// Returns 2 (value present), 1 (acquired) or 0 (held by another).
	acquireScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 2 end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
`)
	// setScript: KEYS value, lease; ARGV value, ttl ms, token ('' = none),
	// channel, user. Returns 1 if the caller's lease was released.
	setScript = redis.NewScript(`
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local released = 0
if ARGV[3] ~= '' and redis.call('GET', KEYS[2]) == ARGV[3] then
  redis.call('DEL', KEYS[2])
  released = 1
end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return released
`)
	// releaseScript: KEYS lease; ARGV token, channel, user.
	releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], ARGV[3])
  return 1
end
return 0
`)
	// extendScript: KEYS lease; ARGV token, ttl ms.
	extendScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)
	// peekScript: KEYS value, lease. Returns {1, value, pttl} or
	// {0, lease exists}.
	peekScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then return {1, v, redis.call('PTTL', KEYS[1])} end
return {0, redis.call('EXISTS', KEYS[2])}
`)
)

// Store is the shared cache of one app. Safe for concurrent use.
type Store struct {
	cfg     Config
	channel string
	tel     *telemetry

	mu      sync.Mutex
	closed  bool
	leases  map[string]*Lease                     // leases this Store holds, by user
	waiters map[string]map[chan struct{}]struct{} // Wait calls, by user
	sub     *redis.PubSub                         // nil until the first Wait
	subDone chan struct{}                         // closed when the dispatch goroutine ends
}

// New returns a Store. It does not contact Redis.
func New(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	tel, err := newTelemetry(cfg)
	if err != nil {
		return nil, err
	}
	return &Store{
		cfg:     cfg,
		channel: cfg.Prefix + "set",
		tel:     tel,
		leases:  map[string]*Lease{},
		waiters: map[string]map[chan struct{}]struct{}{},
	}, nil
}

// Close ends the notification subscription and waits for its goroutine.
// Leases still held are left to expire. Safe to call more than once.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	sub, done := s.sub, s.subDone
	s.mu.Unlock()
	if sub == nil {
		return nil
	}
	err := sub.Close()
	<-done
	if err != nil {
		return fmt.Errorf("sharedcache: close subscription: %w", err)
	}
	return nil
}

func (s *Store) valueKey(user string) string { return s.cfg.Prefix + "{" + user + "}:v" }
func (s *Store) leaseKey(user string) string { return s.cfg.Prefix + "{" + user + "}:l" }

func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Get returns the user's value and its remaining TTL; ok is false on a
// miss. Redis errors are returned.
func (s *Store) Get(ctx context.Context, user string) (value []byte, ttlLeft time.Duration, ok bool, err error) {
	if s.isClosed() {
		return nil, 0, false, ErrClosed
	}
	v, err := s.run(ctx, "get", func(ctx context.Context) (any, error) {
		return getScript.Run(ctx, s.cfg.Redis, []string{s.valueKey(user)}).Slice()
	})
	if errors.Is(err, redis.Nil) {
		s.tel.get(ctx, "miss")
		return nil, 0, false, nil
	}
	if err != nil {
		s.tel.get(ctx, "error")
		return nil, 0, false, err
	}
	value, ttlLeft, err = parseValue(v.([]any))
	if err != nil {
		s.tel.get(ctx, "error")
		return nil, 0, false, err
	}
	s.tel.get(ctx, "hit")
	return value, ttlLeft, true, nil
}

// parseValue reads {value, pttl}.
func parseValue(v []any) ([]byte, time.Duration, error) {
	if len(v) != 2 {
		return nil, 0, fmt.Errorf("sharedcache: unexpected answer of %d values", len(v))
	}
	str, ok1 := v[0].(string)
	pttl, ok2 := v[1].(int64)
	if !ok1 || !ok2 {
		return nil, 0, fmt.Errorf("sharedcache: unexpected answer %T, %T", v[0], v[1])
	}
	return []byte(str), time.Duration(max(0, pttl)) * time.Millisecond, nil
}

// Set stores the user's value for ttl (at least 1ms) and publishes a
// notification. If this Store holds the user's lease, the same script
// releases it.
func (s *Store) Set(ctx context.Context, user string, value []byte, ttl time.Duration) error {
	if s.isClosed() {
		return ErrClosed
	}
	if ttl < time.Millisecond {
		return fmt.Errorf("sharedcache: Set %q: ttl must be at least 1ms, got %s", user, ttl)
	}
	s.mu.Lock()
	lease := s.leases[user]
	s.mu.Unlock()
	token := ""
	if lease != nil {
		token = lease.token
	}
	_, err := s.run(ctx, "set", func(ctx context.Context) (any, error) {
		return setScript.Run(ctx, s.cfg.Redis, []string{s.valueKey(user), s.leaseKey(user)},
			value, ttl.Milliseconds(), token, s.channel, user).Int64()
	})
	if err != nil {
		s.tel.set(ctx, "error")
		return err
	}
	s.tel.set(ctx, "ok")
	if lease != nil {
		s.forget(lease)
	}
	return nil
}

// Lease is the right to fetch one user, held by one Store until it Sets the
// user's value, Releases the lease, or LeaseTTL passes. Safe for concurrent
// use.
type Lease struct {
	s       *Store
	user    string
	token   string
	expires time.Time
}

// User returns the leased user.
func (l *Lease) User() string { return l.user }

// Expires returns when the lease lapses unless extended (by Config.Now,
// measured from before the acquiring call).
func (l *Lease) Expires() time.Time {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	return l.expires
}

// Acquire tries to take the user's lease. acquired is false when another
// process holds it, or when the value exists by now (call Get again). A
// Store holds at most one lease per user: a second Acquire of a user it
// holds returns false.
func (s *Store) Acquire(ctx context.Context, user string) (lease *Lease, acquired bool, err error) {
	if s.isClosed() {
		return nil, false, ErrClosed
	}
	token, err := newToken()
	if err != nil {
		return nil, false, err
	}
	start := s.cfg.Now()
	v, err := s.run(ctx, "acquire", func(ctx context.Context) (any, error) {
		return acquireScript.Run(ctx, s.cfg.Redis, []string{s.valueKey(user), s.leaseKey(user)},
			token, s.cfg.LeaseTTL.Milliseconds()).Int64()
	})
	if err != nil {
		s.tel.lease(ctx, "error")
		return nil, false, err
	}
	switch v.(int64) {
	case 1:
		l := &Lease{s: s, user: user, token: token, expires: start.Add(s.cfg.LeaseTTL)}
		s.mu.Lock()
		s.leases[user] = l
		s.mu.Unlock()
		s.tel.lease(ctx, "acquired")
		return l, true, nil
	case 2:
		s.tel.lease(ctx, "present")
	default:
		s.tel.lease(ctx, "contended")
	}
	return nil, false, nil
}

// Release gives the lease up without a value (the fetch failed) and
// notifies waiters, so one of them may take it. It deletes the lease only if
// it still holds this lease's token; releasing a lease already released,
// expired or consumed by Set is a no-op.
func (l *Lease) Release(ctx context.Context) error {
	s := l.s
	_, err := s.run(ctx, "release", func(ctx context.Context) (any, error) {
		return releaseScript.Run(ctx, s.cfg.Redis, []string{s.leaseKey(l.user)}, l.token, s.channel, l.user).Int64()
	})
	s.forget(l)
	return err
}

// Extend renews the lease for LeaseTTL from now. It returns false if the
// lease is no longer held (expired, released or consumed by Set).
func (l *Lease) Extend(ctx context.Context) (bool, error) {
	s := l.s
	start := s.cfg.Now()
	v, err := s.run(ctx, "extend", func(ctx context.Context) (any, error) {
		return extendScript.Run(ctx, s.cfg.Redis, []string{s.leaseKey(l.user)}, l.token, s.cfg.LeaseTTL.Milliseconds()).Int64()
	})
	if err != nil {
		return false, err
	}
	if v.(int64) != 1 {
		s.forget(l)
		return false, nil
	}
	s.mu.Lock()
	l.expires = start.Add(s.cfg.LeaseTTL)
	s.mu.Unlock()
	return true, nil
}

func (s *Store) forget(l *Lease) {
	s.mu.Lock()
	if s.leases[l.user] == l {
		delete(s.leases, l.user)
	}
	s.mu.Unlock()
}

// Wait waits up to maxWait for another process to Set the user's value and
// returns it. ok is false, with a nil error, when maxWait passes or when the
// user has neither a value nor a lease (the holder released it or died):
// the caller may then Acquire the lease itself. Redis errors and the
// context's error are returned.
func (s *Store) Wait(ctx context.Context, user string, maxWait time.Duration) (value []byte, ttlLeft time.Duration, ok bool, err error) {
	notify, err := s.watch(ctx, user)
	if err != nil {
		return nil, 0, false, err
	}
	defer s.unwatch(user, notify)
	deadline := time.Now().Add(maxWait)
	for {
		v, err := s.run(ctx, "peek", func(ctx context.Context) (any, error) {
			return peekScript.Run(ctx, s.cfg.Redis, []string{s.valueKey(user), s.leaseKey(user)}).Slice()
		})
		if err != nil {
			s.tel.wait(ctx, "error")
			return nil, 0, false, err
		}
		a := v.([]any)
		if len(a) == 3 {
			value, ttlLeft, err := parseValue(a[1:])
			if err != nil {
				s.tel.wait(ctx, "error")
				return nil, 0, false, err
			}
			s.tel.wait(ctx, "value")
			return value, ttlLeft, true, nil
		}
		if len(a) == 2 && a[1] == int64(0) {
			s.tel.wait(ctx, "free")
			return nil, 0, false, nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			s.tel.wait(ctx, "timeout")
			return nil, 0, false, nil
		}
		timer := time.NewTimer(min(left, s.cfg.RecheckInterval))
		select {
		case <-notify:
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			s.tel.wait(ctx, "error")
			return nil, 0, false, ctx.Err()
		}
		timer.Stop()
	}
}

// watch registers a notification channel for user and makes sure the
// Store's subscription is active. A subscription that cannot be confirmed
// is not an error: Wait then relies on its rechecks.
func (s *Store) watch(ctx context.Context, user string) (chan struct{}, error) {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if s.waiters[user] == nil {
		s.waiters[user] = map[chan struct{}]struct{}{}
	}
	s.waiters[user][ch] = struct{}{}
	if s.sub == nil {
		// Subscribe under the lock: concurrent first Waits share one
		// subscription. The lock is held for one round trip at most once
		// per Store.
		sub := s.cfg.Redis.Subscribe(ctx, s.channel)
		cctx, cancel := context.WithTimeout(ctx, s.cfg.RedisTimeout)
		_, err := sub.Receive(cctx) // the subscription's confirmation
		cancel()
		if err != nil {
			_ = sub.Close()
			s.cfg.Logger.Warn("sharedcache: subscription not confirmed, waiting by rechecks", "channel", s.channel, "error", err)
			return ch, nil
		}
		s.sub = sub
		s.subDone = make(chan struct{})
		go s.dispatch(sub.Channel(), s.subDone)
	}
	return ch, nil
}

func (s *Store) unwatch(user string, ch chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.waiters[user], ch)
	if len(s.waiters[user]) == 0 {
		delete(s.waiters, user)
	}
}

// dispatch forwards notifications to the waiters of their user. It ends
// when the subscription is closed (Close).
func (s *Store) dispatch(msgs <-chan *redis.Message, done chan struct{}) {
	defer close(done)
	for m := range msgs {
		s.mu.Lock()
		for ch := range s.waiters[m.Payload] {
			select {
			case ch <- struct{}{}:
			default: // already notified
			}
		}
		s.mu.Unlock()
	}
}

func newToken() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("sharedcache: lease token: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
