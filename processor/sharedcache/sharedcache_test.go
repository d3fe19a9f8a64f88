package sharedcache

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

type quietRedisLog struct{}

func (quietRedisLog) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	redis.SetLogger(quietRedisLog{}) // dial errors are expected in the failure tests
	os.Exit(m.Run())
}

const prefix = "enricher:subs:1400000000:"

func newMini(t *testing.T) (*miniredis.Miniredis, *redis.Client) {
	t.Helper()
	mr := miniredis.RunT(t)
	return mr, newClient(t, mr.Addr())
}

func newClient(t *testing.T, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func newStore(t *testing.T, cfg Config) *Store {
	t.Helper()
	if cfg.Prefix == "" {
		cfg.Prefix = prefix
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConfigValidate(t *testing.T) {
	_, c := newMini(t)
	ok := Config{Redis: c, Prefix: prefix}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	d := ok.withDefaults()
	if d.LeaseTTL != DefaultLeaseTTL || d.RecheckInterval != DefaultRecheckInterval ||
		d.RedisTimeout != DefaultRedisTimeout || d.Now == nil || d.Logger == nil {
		t.Fatalf("defaults not applied: %+v", d)
	}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Prefix: prefix}, "Redis is required"},
		{Config{Redis: c}, "Prefix is required"},
		{Config{Redis: c, Prefix: prefix, LeaseTTL: time.Microsecond}, "LeaseTTL"},
		{Config{Redis: c, Prefix: prefix, RecheckInterval: -1}, "RecheckInterval"},
		{Config{Redis: c, Prefix: prefix, RedisTimeout: -1}, "RedisTimeout"},
	} {
		if err := tc.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
		if _, err := New(tc.cfg); err == nil {
			t.Errorf("New accepted %+v", tc.cfg)
		}
	}
}

func TestGetSetRoundTripAndTTL(t *testing.T) {
	mr, c := newMini(t)
	s := newStore(t, Config{Redis: c})
	ctx := context.Background()
	if _, _, ok, err := s.Get(ctx, "alice"); ok || err != nil {
		t.Fatalf("Get on an empty cache = %v, %v", ok, err)
	}
	value := []byte{0, 1, 2, 0xff, '{', '}', 0}
	if err := s.Set(ctx, "alice", value, time.Minute); err != nil {
		t.Fatal(err)
	}
	got, ttl, ok, err := s.Get(ctx, "alice")
	if err != nil || !ok || !bytes.Equal(got, value) {
		t.Fatalf("Get = %v, %v, %v; want %v", got, ok, err, value)
	}
	if ttl <= 59*time.Second || ttl > time.Minute {
		t.Fatalf("ttl left %s, want about 1m", ttl)
	}
	// Users are opaque: braces and colons do not mix keys up.
	for _, u := range []string{"a}:v", "a", "{a}", ""} {
		if err := s.Set(ctx, u, []byte("v-"+u), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []string{"a}:v", "a", "{a}", ""} {
		if got, _, ok, _ := s.Get(ctx, u); !ok || string(got) != "v-"+u {
			t.Errorf("Get(%q) = %q, %v", u, got, ok)
		}
	}
	mr.FastForward(time.Minute)
	if _, _, ok, err := s.Get(ctx, "alice"); ok || err != nil {
		t.Fatalf("Get after the TTL = %v, %v; want a miss", ok, err)
	}
	if err := s.Set(ctx, "alice", value, 0); err == nil {
		t.Fatal("Set with ttl 0 accepted")
	}
}

func TestLeases(t *testing.T) {
	mr, c := newMini(t)
	a := newStore(t, Config{Redis: c, LeaseTTL: 5 * time.Second})
	b := newStore(t, Config{Redis: c, LeaseTTL: 5 * time.Second})
	ctx := context.Background()

	la, ok, err := a.Acquire(ctx, "bob")
	if err != nil || !ok || la.User() != "bob" {
		t.Fatalf("first Acquire = %v, %v", ok, err)
	}
	if _, ok, _ := b.Acquire(ctx, "bob"); ok {
		t.Fatal("second process acquired a held lease")
	}
	if _, ok, _ := a.Acquire(ctx, "bob"); ok {
		t.Fatal("the holder acquired its own lease twice")
	}
	// The lease expires if its holder dies.
	mr.FastForward(5 * time.Second)
	lb, ok, err := b.Acquire(ctx, "bob")
	if err != nil || !ok {
		t.Fatalf("Acquire after LeaseTTL = %v, %v", ok, err)
	}
	// The old holder's Release must not delete the new holder's lease.
	if err := la.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if !mr.Exists(prefix + "{bob}:l") {
		t.Fatal("a stale Release deleted another holder's lease")
	}
	// Set by the holder stores the value and releases the lease at once.
	if err := b.Set(ctx, "bob", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if mr.Exists(prefix + "{bob}:l") {
		t.Fatal("Set left the holder's lease")
	}
	if ok, err := lb.Extend(ctx); ok || err != nil {
		t.Fatalf("Extend after Set = %v, %v; want false", ok, err)
	}
	// With the value present, Acquire says so rather than leasing.
	if _, ok, _ := a.Acquire(ctx, "bob"); ok {
		t.Fatal("Acquire leased a user whose value exists")
	}
	// Set by another process does not release a lease it does not hold.
	lc, ok, _ := a.Acquire(ctx, "carol")
	if !ok {
		t.Fatal("Acquire carol")
	}
	if err := b.Set(ctx, "carol", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if !mr.Exists(prefix + "{carol}:l") {
		t.Fatal("Set released a lease held by another process")
	}
	if ok, err := lc.Extend(ctx); !ok || err != nil {
		t.Fatalf("Extend = %v, %v", ok, err)
	}
	if ttl := mr.TTL(prefix + "{carol}:l"); ttl != 5*time.Second {
		t.Fatalf("lease TTL after Extend %s", ttl)
	}
}

// Wait returns the value once the holder Sets it, and ok=false at once when
// the holder releases the lease without a value.
func TestWait(t *testing.T) {
	_, c := newMini(t)
	holder := newStore(t, Config{Redis: c})
	waiter := newStore(t, Config{Redis: c, RecheckInterval: time.Hour}) // notifications only
	ctx := context.Background()

	if _, ok, _ := holder.Acquire(ctx, "dave"); !ok {
		t.Fatal("Acquire")
	}
	type answer struct {
		v   []byte
		ok  bool
		err error
	}
	done := make(chan answer, 1)
	go func() {
		v, _, ok, err := waiter.Wait(ctx, "dave", time.Minute)
		done <- answer{v, ok, err}
	}()
	eventually(t, 2*time.Second, "waiter registered", func() bool { return waiter.watching("dave") })
	if err := holder.Set(ctx, "dave", []byte("accounts"), time.Minute); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-done:
		if a.err != nil || !a.ok || string(a.v) != "accounts" {
			t.Fatalf("Wait = %q, %v, %v", a.v, a.ok, a.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return after Set")
	}

	lease, ok, _ := holder.Acquire(ctx, "erin")
	if !ok {
		t.Fatal("Acquire erin")
	}
	go func() {
		v, _, ok, err := waiter.Wait(ctx, "erin", time.Minute)
		done <- answer{v, ok, err}
	}()
	eventually(t, 2*time.Second, "waiter registered", func() bool { return waiter.watching("erin") })
	if err := lease.Release(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-done:
		if a.err != nil || a.ok {
			t.Fatalf("Wait after Release = %v, %v; want ok=false", a.ok, a.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return after Release")
	}
	if _, ok, _ := waiter.Acquire(ctx, "erin"); !ok {
		t.Fatal("the waiter could not take the released lease")
	}
}

// A lost notification costs one RecheckInterval; maxWait and ctx bound Wait.
func TestWaitRechecksAndBounds(t *testing.T) {
	mr, c := newMini(t)
	s := newStore(t, Config{Redis: c, RecheckInterval: 20 * time.Millisecond})
	ctx := context.Background()
	if _, ok, _ := s.Acquire(ctx, "frank"); !ok {
		t.Fatal("Acquire")
	}
	start := time.Now()
	if _, _, ok, err := s.Wait(ctx, "frank", 100*time.Millisecond); ok || err != nil {
		t.Fatalf("Wait with the lease held = %v, %v; want a timeout", ok, err)
	}
	if el := time.Since(start); el < 100*time.Millisecond {
		t.Fatalf("Wait returned after %s, before maxWait", el)
	}
	// A value written behind the Store's back (no notification) is found by
	// the recheck.
	type answer struct {
		v   []byte
		ok  bool
		err error
	}
	done := make(chan answer, 1)
	go func() {
		v, _, ok, err := s.Wait(ctx, "frank", 10*time.Second)
		done <- answer{v, ok, err}
	}()
	eventually(t, 2*time.Second, "waiter registered", func() bool { return s.watching("frank") })
	if err := mr.Set(prefix+"{frank}:v", "quiet"); err != nil {
		t.Fatal(err)
	}
	a := <-done
	if a.err != nil || !a.ok || string(a.v) != "quiet" {
		t.Fatalf("Wait = %q, %v, %v", a.v, a.ok, a.err)
	}
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, ok, _ := s.Acquire(ctx, "gina"); !ok {
		t.Fatal("Acquire gina")
	}
	if _, _, _, err := s.Wait(cctx, "gina", time.Minute); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait past ctx = %v, want DeadlineExceeded", err)
	}
}

func TestRedisErrorsReturned(t *testing.T) {
	mr, c := newMini(t)
	reader := sdkmetric.NewManualReader()
	s := newStore(t, Config{Redis: c, RedisTimeout: 100 * time.Millisecond,
		MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))})
	ctx := context.Background()
	if err := s.Set(ctx, "hank", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, _, ok, _ := s.Get(ctx, "hank"); !ok {
		t.Fatal("miss")
	}
	if _, _, ok, _ := s.Get(ctx, "nobody"); ok {
		t.Fatal("hit")
	}
	mr.Close()
	if _, _, _, err := s.Get(ctx, "hank"); err == nil || !strings.Contains(err.Error(), "sharedcache: redis get") {
		t.Fatalf("Get with Redis down = %v", err)
	}
	if err := s.Set(ctx, "hank", []byte("v"), time.Minute); err == nil {
		t.Fatal("Set with Redis down succeeded")
	}
	if _, _, err := s.Acquire(ctx, "hank"); err == nil {
		t.Fatal("Acquire with Redis down succeeded")
	}
	if _, _, _, err := s.Wait(ctx, "hank", time.Second); err == nil {
		t.Fatal("Wait with Redis down succeeded")
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	gets := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != MetricGets {
				continue
			}
			for _, p := range m.Data.(metricdata.Sum[int64]).DataPoints {
				r, _ := p.Attributes.Value(attrResult)
				gets[r.AsString()] += p.Value
			}
		}
	}
	if gets["hit"] != 1 || gets["miss"] != 1 || gets["error"] != 1 {
		t.Fatalf("gets by result %v, want one of each", gets)
	}
	_ = s.Close()
	if _, _, _, err := s.Get(ctx, "hank"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close = %v", err)
	}
}

// eventually polls cond until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond) // poll interval, bounded by the deadline
	}
}

// watching reports whether a Wait for user is registered (tests only).
func (s *Store) watching(user string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.waiters[user]) > 0
}
