package budget

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

type quietRedisLog struct{}

func (quietRedisLog) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	redis.SetLogger(quietRedisLog{}) // dial errors are expected in the outage tests
	os.Exit(m.Run())
}

// logCounter is a slog handler counting records by level and keeping their
// messages. Safe for concurrent use.
type logCounter struct {
	mu   sync.Mutex
	msgs map[slog.Level][]string
}

func newLogCounter() *logCounter { return &logCounter{msgs: map[slog.Level][]string{}} }

func (l *logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCounter) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs[r.Level] = append(l.msgs[r.Level], r.Message)
	return nil
}
func (l *logCounter) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logCounter) WithGroup(string) slog.Handler      { return l }

func (l *logCounter) count(level slog.Level, substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs[level] {
		if strings.Contains(m, substr) {
			n++
		}
	}
	return n
}

// eventually polls cond every few milliseconds until it holds or timeout
// passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond) // poll interval, bounded by the deadline
	}
}

func newMini(t *testing.T) (*miniredis.Miniredis, *redis.Client) {
	t.Helper()
	mr := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	t.Cleanup(func() { _ = c.Close() })
	return mr, c
}

func newBudget(t *testing.T, cfg Config) *Budget {
	t.Helper()
	if cfg.Key == "" {
		cfg.Key = "enricher:budget:1400000000"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestConfigValidate(t *testing.T) {
	_, c := newMini(t)
	ok := Config{Redis: c, Key: "k"}
	if err := ok.Validate(); err != nil {
		t.Fatalf("minimal config: %v", err)
	}
	d := ok.withDefaults()
	if d.Rate != DefaultRate || d.Safety != DefaultSafety || d.MinRate != DefaultMinRate ||
		d.RateDecrease != DefaultRateDecrease || d.RateRecoverAfter != DefaultRateRecoverAfter ||
		d.RedisTimeout != DefaultRedisTimeout || d.HeartbeatInterval != DefaultHeartbeatInterval ||
		d.FallbackMinMembers != DefaultFallbackMinMembers || d.Now == nil || d.Logger == nil || d.Role != Live {
		t.Fatalf("defaults not applied: %+v", d)
	}
	bad := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no redis", Config{Key: "k"}, "Redis is required"},
		{"no key", Config{Redis: c}, "Key is required"},
		{"negative rate", Config{Redis: c, Key: "k", Rate: -1}, "Rate must be"},
		{"nan rate", Config{Redis: c, Key: "k", Rate: math.NaN()}, "Rate must be"},
		{"safety above 1", Config{Redis: c, Key: "k", Safety: 1.5}, "Safety must be"},
		{"bad role", Config{Redis: c, Key: "k", Role: Role(7)}, "Role must be"},
		{"cap on live", Config{Redis: c, Key: "k", Cap: 10}, "Cap applies to Role Replay"},
		{"negative cap", Config{Redis: c, Key: "k", Role: Replay, Cap: -1}, "Cap must be"},
		{"decrease 1", Config{Redis: c, Key: "k", RateDecrease: 1}, "RateDecrease must be"},
		{"negative recover", Config{Redis: c, Key: "k", RateRecoverAfter: -time.Second}, "RateRecoverAfter"},
		{"negative members", Config{Redis: c, Key: "k", FallbackMinMembers: -1}, "FallbackMinMembers"},
	}
	for _, tc := range bad {
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate() = %v, want an error containing %q", tc.name, err, tc.want)
		}
		if _, nerr := New(tc.cfg); nerr == nil {
			t.Errorf("%s: New accepted an invalid config", tc.name)
		}
	}
}

func TestPacedRate(t *testing.T) {
	for _, tc := range []struct{ rate, safety, want float64 }{
		{200, 0.98, 195},
		{50, 0.98, 48},
		{2, 1, 1},
		{1.5, 1, 0.75},
		{0.5, 0.98, 0.245},
	} {
		if got := PacedRate(tc.rate, tc.safety); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("PacedRate(%g, %g) = %g, want %g", tc.rate, tc.safety, got, tc.want)
		}
	}
}

// At a fixed server time, the script reserves the current slot and the
// next two (up to two intervals ahead) for live, then refuses with the time until
// the next reservation may succeed.
func TestScriptLiveSchedule(t *testing.T) {
	mr, c := newMini(t)
	t0 := time.Unix(1_800_000_000, 0)
	mr.SetTime(t0)
	b := newBudget(t, Config{Redis: c, Rate: 11, Safety: 1, HeartbeatInterval: time.Hour}) // paced 10/s: 100ms apart
	ctx := context.Background()

	r1, err := b.eval(ctx, "take")
	if err != nil {
		t.Fatal(err)
	}
	if !r1.granted || r1.wait != 0 || !r1.slot.Equal(t0) {
		t.Fatalf("first take = %+v, want a grant now", r1)
	}
	r2, _ := b.eval(ctx, "take")
	if !r2.granted || r2.wait != 100*time.Millisecond || !r2.slot.Equal(t0.Add(100*time.Millisecond)) {
		t.Fatalf("second take = %+v, want the slot 100ms ahead", r2)
	}
	r3, _ := b.eval(ctx, "take")
	if !r3.granted || r3.wait != 200*time.Millisecond {
		t.Fatalf("third take = %+v, want the slot 200ms ahead", r3)
	}
	r3, _ = b.eval(ctx, "take")
	if r3.granted || r3.wait != 100*time.Millisecond {
		t.Fatalf("fourth take = %+v, want a refusal with 100ms to wait", r3)
	}
	mr.SetTime(t0.Add(100 * time.Millisecond))
	r4, _ := b.eval(ctx, "take")
	if !r4.granted || !r4.slot.Equal(t0.Add(300*time.Millisecond)) {
		t.Fatalf("take after the wait = %+v, want the slot at +300ms", r4)
	}
	if r4.rate != 10 {
		t.Fatalf("rate = %g, want 10", r4.rate)
	}
}

// A replay reserves at most one interval ahead (live two) and is refused
// while a live take waits (the mark lasts until the live slot plus
// liveHold).
func TestScriptReplayPriority(t *testing.T) {
	mr, c := newMini(t)
	t0 := time.Unix(1_800_000_000, 0)
	mr.SetTime(t0)
	cfg := Config{Redis: c, Rate: 11, Safety: 1, HeartbeatInterval: time.Hour}
	live := newBudget(t, cfg)
	cfg.Role = Replay
	replay := newBudget(t, cfg)
	ctx := context.Background()

	if r, _ := replay.eval(ctx, "take"); !r.granted || !r.slot.Equal(t0) {
		t.Fatalf("replay on an idle budget = %+v, want a grant now", r)
	}
	if r, _ := replay.eval(ctx, "take"); !r.granted || r.wait != 100*time.Millisecond {
		t.Fatalf("replay one interval ahead = %+v, want the slot at +100ms", r)
	}
	r, _ := replay.eval(ctx, "take")
	if r.granted || r.wait != 100*time.Millisecond {
		t.Fatalf("replay two intervals ahead = %+v, want refusal, 100ms to wait", r)
	}
	// Live reserves the next slot although the replay could not.
	if r, _ := live.eval(ctx, "take"); !r.granted || !r.slot.Equal(t0.Add(200*time.Millisecond)) {
		t.Fatalf("live = %+v, want the slot at +200ms", r)
	}
	// Live has to wait now: the mark refuses replays until slot+liveHold.
	if r, _ := live.eval(ctx, "take"); r.granted {
		t.Fatalf("live = %+v, want a refusal", r)
	}
	mr.SetTime(t0.Add(400 * time.Millisecond)) // past every slot, inside the mark
	r, _ = replay.eval(ctx, "take")
	wantWait := 300*time.Millisecond + liveHold - 400*time.Millisecond
	if r.granted || r.wait != wantWait {
		t.Fatalf("replay while live waits = %+v, want refusal, %s to wait", r, wantWait)
	}
	mr.SetTime(t0.Add(300*time.Millisecond + liveHold))
	if r, _ := replay.eval(ctx, "take"); !r.granted {
		t.Fatalf("replay after the mark = %+v, want a grant", r)
	}
}

func TestScriptReplayCap(t *testing.T) {
	mr, c := newMini(t)
	t0 := time.Unix(1_800_000_000, 0)
	mr.SetTime(t0)
	b := newBudget(t, Config{Redis: c, Rate: 101, Safety: 1, Role: Replay, Cap: 4, HeartbeatInterval: time.Hour})
	ctx := context.Background()
	if r, _ := b.eval(ctx, "take"); !r.granted {
		t.Fatalf("first = %+v", r)
	}
	mr.SetTime(t0.Add(50 * time.Millisecond)) // the budget allows it, the cap (250ms) does not
	r, _ := b.eval(ctx, "take")
	if r.granted || r.wait != 200*time.Millisecond-10*time.Millisecond {
		t.Fatalf("capped take = %+v, want refusal until one interval (10ms) before +250ms", r)
	}
	mr.SetTime(t0.Add(250 * time.Millisecond))
	if r, _ := b.eval(ctx, "take"); !r.granted {
		t.Fatalf("take at the cap's slot = %+v, want a grant", r)
	}
}

// Throttled lowers the shared rate at most once per second, never below
// MinRate, and the rate recovers linearly, for every Budget on the key.
func TestScriptSharedThrottle(t *testing.T) {
	mr, c := newMini(t)
	t0 := time.Unix(1_800_000_000, 0)
	mr.SetTime(t0)
	cfg := Config{Redis: c, Rate: 41, Safety: 1, MinRate: 15, RateDecrease: 0.5, RateRecoverAfter: 10 * time.Second, HeartbeatInterval: time.Hour}
	a := newBudget(t, cfg)
	other := newBudget(t, cfg)
	ctx := context.Background()

	if r, lowered := a.Throttled(ctx); !lowered || r != 20 {
		t.Fatalf("Throttled = %g, %v; want 20, true", r, lowered)
	}
	if r, lowered := other.Throttled(ctx); lowered || r != 20 {
		t.Fatalf("second Throttled within 1s = %g, %v; want 20, false", r, lowered)
	}
	res, _ := other.eval(ctx, "peek")
	if res.rate != 20 {
		t.Fatalf("other budget sees rate %g, want 20", res.rate)
	}
	mr.SetTime(t0.Add(time.Second)) // recovery: 40/10s = 4/s per second
	if r, lowered := other.Throttled(ctx); !lowered || r != 15 {
		t.Fatalf("Throttled after 1s = %g, %v; want max(MinRate 15, 24*0.5), true", r, lowered)
	}
	mr.SetTime(t0.Add(3 * time.Second))
	res, _ = a.eval(ctx, "peek")
	if math.Abs(res.rate-23) > 1e-6 {
		t.Fatalf("rate 2s after = %g, want 15+2*4 = 23", res.rate)
	}
	if got := a.Rate(); math.Abs(got-23) > 0.5 {
		t.Fatalf("Rate() = %g, want about 23", got)
	}
	mr.SetTime(t0.Add(20 * time.Second))
	res, _ = a.eval(ctx, "peek")
	if res.rate != 40 {
		t.Fatalf("rate after recovery = %g, want 40", res.rate)
	}
	// The slot spacing follows the lowered rate.
	mr.SetTime(t0.Add(30 * time.Second))
	a.Throttled(ctx)
	r1, _ := a.eval(ctx, "take")
	r2, _ := a.eval(ctx, "take")
	if got := r2.slot.Sub(r1.slot); got != 50*time.Millisecond {
		t.Fatalf("slots %s apart at 20/s, want 50ms", got)
	}
}

func TestScriptResumeHold(t *testing.T) {
	mr, c := newMini(t)
	t0 := time.Unix(1_800_000_000, 0)
	mr.SetTime(t0)
	b := newBudget(t, Config{Redis: c, Rate: 11, Safety: 1, HeartbeatInterval: 500 * time.Millisecond, RedisTimeout: 100 * time.Millisecond})
	ctx := context.Background()
	if _, err := b.eval(ctx, "resume"); err != nil {
		t.Fatal(err)
	}
	r, _ := b.eval(ctx, "take")
	hold := 1600 * time.Millisecond
	if r.granted || r.wait != hold-200*time.Millisecond {
		t.Fatalf("take after resume = %+v, want refusal until two intervals before %s", r, hold)
	}
}

func TestTakeHonoursContext(t *testing.T) {
	_, c := newMini(t)
	b := newBudget(t, Config{Redis: c, Rate: 1.5, Safety: 1}) // one call per 1.33s
	if _, err := b.Take(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := b.Take(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Take = %v, want DeadlineExceeded", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("Take returned after %s, not at the deadline", el)
	}
	canceled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, err := b.Take(canceled); !errors.Is(err, context.Canceled) {
		t.Fatalf("Take(canceled) = %v", err)
	}
	if d, _ := b.Degraded(); d {
		t.Fatal("a context error must not degrade the budget")
	}
	_ = b.Close()
	if _, err := b.Take(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Take after Close = %v, want ErrClosed", err)
	}
}

// Takes from one Budget are spaced by the paced interval (server time).
func TestTakeSpacing(t *testing.T) {
	_, c := newMini(t)
	b := newBudget(t, Config{Redis: c, Rate: 101, Safety: 1}) // 100/s
	var mu sync.Mutex
	var slots []time.Time
	b.onGrant = func(s time.Time, shared bool) {
		mu.Lock()
		defer mu.Unlock()
		if !shared {
			t.Error("fallback grant against a healthy Redis")
		}
		slots = append(slots, s)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 5 {
				if _, err := b.Take(context.Background()); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if len(slots) != 20 {
		t.Fatalf("%d grants, want 20", len(slots))
	}
	for i := 1; i < len(slots); i++ {
		if d := slots[i].Sub(slots[i-1]); d < 10*time.Millisecond-time.Microsecond {
			t.Fatalf("grants %d and %d only %s apart", i-1, i, d)
		}
	}
}

// With Redis gone the Budget degrades (one warn line), keeps granting at
// the fallback share and resumes (one info line) when Redis is back.
func TestDegradedAndResume(t *testing.T) {
	mr, c := newMini(t)
	logs := newLogCounter()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	cfg := Config{Redis: c, Rate: 201, Safety: 1, HeartbeatInterval: 20 * time.Millisecond,
		RedisTimeout: 50 * time.Millisecond, FallbackMinMembers: 4, Logger: slog.New(logs), MeterProvider: mp}
	b := newBudget(t, cfg)
	ctx := context.Background()
	if _, err := b.Take(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "first heartbeat", func() bool { return b.Members() == 1 })

	mr.Close()
	// Takes keep working; the first local grant waits about a second.
	start := time.Now()
	for range 3 {
		if _, err := b.Take(ctx); err != nil {
			t.Fatalf("Take with Redis down: %v", err)
		}
	}
	if el := time.Since(start); el < time.Second {
		t.Fatalf("fallback granted after %s, want the 1s hold first", el)
	}
	d, reason := b.Degraded()
	if !d || !strings.Contains(reason, "unreachable") {
		t.Fatalf("Degraded() = %v, %q", d, reason)
	}
	// 201 * 1/4 = 50.25 per second, paced at 49.25.
	if r := b.Rate(); math.Abs(r-49.25) > 1e-9 {
		t.Fatalf("fallback rate %g, want 49.25", r)
	}
	if r, lowered := b.Throttled(ctx); !lowered || math.Abs(r-49.25*DefaultRateDecrease) > 1e-9 {
		t.Fatalf("Throttled while degraded = %g, %v", r, lowered)
	}
	if n := logs.count(slog.LevelWarn, "unreachable"); n != 1 {
		t.Fatalf("%d warn lines, want 1", n)
	}

	if err := mr.Restart(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "shared mode again", func() bool { d, _ := b.Degraded(); return !d })
	if n := logs.count(slog.LevelInfo, "resumed"); n != 1 {
		t.Fatalf("%d info lines, want 1", n)
	}
	if _, err := b.Take(ctx); err != nil {
		t.Fatal(err)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	grants := map[string]int64{}
	var redisErrors int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch m.Name {
			case MetricGrants:
				for _, p := range m.Data.(metricdata.Sum[int64]).DataPoints {
					md, _ := p.Attributes.Value(attrMode)
					role, _ := p.Attributes.Value(attrRole)
					if role != attribute.StringValue("live") {
						t.Errorf("grant with role %v", role.String())
					}
					grants[md.AsString()] += p.Value
				}
			case MetricRedisErrors:
				for _, p := range m.Data.(metricdata.Sum[int64]).DataPoints {
					redisErrors += p.Value
				}
			}
		}
	}
	if grants["shared"] != 2 || grants["fallback"] != 3 {
		t.Fatalf("grants by mode %v, want 2 shared and 3 fallback", grants)
	}
	if redisErrors == 0 {
		t.Fatal("no Redis error counted")
	}
}

// The fallback share follows the member count of the last heartbeat, with
// FallbackMinMembers as the floor, or FallbackShare when set.
func TestFallbackShare(t *testing.T) {
	_, c := newMini(t)
	cfg := Config{Redis: c, Rate: 100, Safety: 1, HeartbeatInterval: 20 * time.Millisecond, FallbackMinMembers: 1}
	bs := []*Budget{newBudget(t, cfg), newBudget(t, cfg), newBudget(t, cfg)}
	eventually(t, 2*time.Second, "three members", func() bool { return bs[0].Members() == 3 })
	if got := bs[0].fallbackBudget(); math.Abs(got-100.0/3) > 1e-9 {
		t.Fatalf("fallback budget %g with 3 members, want 33.3", got)
	}
	_ = bs[2].Close() // leaves the member set at once
	eventually(t, 2*time.Second, "two members", func() bool { return bs[0].Members() == 2 })
	if got := bs[0].fallbackBudget(); got != 50 {
		t.Fatalf("fallback budget %g with 2 members, want 50", got)
	}
	cfg.FallbackMinMembers = 5
	floor := newBudget(t, cfg)
	if got := floor.fallbackBudget(); got != 20 {
		t.Fatalf("fallback budget %g with the floor 5, want 20", got)
	}
	cfg.FallbackShare = func() float64 { return 0.1 }
	fixed := newBudget(t, cfg)
	if got := fixed.fallbackBudget(); got != 10 {
		t.Fatalf("fallback budget %g with FallbackShare 0.1, want 10", got)
	}
}

// Every Redis call gets a span, parented by the caller's context.
func TestSpanPerRedisCall(t *testing.T) {
	_, c := newMini(t)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	b := newBudget(t, Config{Redis: c, HeartbeatInterval: time.Hour, TracerProvider: tp})
	ctx, parent := tp.Tracer("test").Start(context.Background(), "record")
	if _, err := b.Take(ctx); err != nil {
		t.Fatal(err)
	}
	parent.End()
	var found bool
	for _, s := range rec.Ended() {
		if s.Name() == "enricher.budget.redis take" {
			found = true
			if s.Parent().SpanID() != parent.SpanContext().SpanID() {
				t.Errorf("take span parent %v, want the caller's span", s.Parent().SpanID())
			}
		}
	}
	if !found {
		t.Fatal("no span for the take's Redis call")
	}
}
