package budget

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tencentchat-enricher/enricher/internal/redistest"
)

// These tests run Budgets against a real redis-server, each "process" with
// a go-redis client and goroutines of its own.

const (
	testRate   = 50.0
	testSafety = 0.98
)

var (
	testBound = testSafety * testRate           // grants allowed in any trailing second
	testPaced = PacedRate(testRate, testSafety) // 48/s
)

// grant is one recorded grant.
type grant struct {
	proc   int
	role   Role
	shared bool
	slot   time.Time // server time of the shared slot
	at     time.Time // local time the grant was made
}

// when is the time the grant counts at: the slot for shared grants (the
// schedule's own clock), the local time for fallback grants. Redis runs on
// this machine, so both clocks are the same.
func (g grant) when() time.Time {
	if g.shared {
		return g.slot
	}
	return g.at
}

type recorder struct {
	mu     sync.Mutex
	grants []grant
}

func (r *recorder) add(g grant) {
	r.mu.Lock()
	r.grants = append(r.grants, g)
	r.mu.Unlock()
}

func (r *recorder) snapshot() []grant {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.grants)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// proc is one simulated process: a client, a Budget and takers.
type proc struct {
	b      *Budget
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startProc(t *testing.T, srv *redistest.Server, rec *recorder, idx int, cfg Config, takers int) *proc {
	t.Helper()
	cfg.Redis = srv.Client(func(o *redis.Options) {
		o.MaxRetries = -1
		o.DialTimeout = 100 * time.Millisecond
	})
	if cfg.Key == "" {
		cfg.Key = "enricher:budget:test"
	}
	if cfg.Rate == 0 {
		cfg.Rate, cfg.Safety = testRate, testSafety
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, nil)).With("proc", idx)
	}
	b := newBudget(t, cfg)
	b.onGrant = func(slot time.Time, shared bool) {
		rec.add(grant{proc: idx, role: cfg.Role, shared: shared, slot: slot, at: time.Now()})
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &proc{b: b, cancel: cancel}
	for range takers {
		p.wg.Go(func() {
			for ctx.Err() == nil {
				if _, err := b.Take(ctx); err != nil && ctx.Err() == nil {
					t.Errorf("process %d: Take: %v", idx, err)
					return
				}
			}
		})
	}
	t.Cleanup(p.stop)
	return p
}

// stop ends the takers and closes the Budget. Safe to call twice.
func (p *proc) stop() {
	p.cancel()
	p.wg.Wait()
	_ = p.b.Close()
}

// maxInWindow returns the most grants in any closed window of length w.
func maxInWindow(ts []time.Time, w time.Duration) int {
	ts = slices.Clone(ts)
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	best, i := 0, 0
	for j := range ts {
		for ts[j].Sub(ts[i]) > w {
			i++
		}
		best = max(best, j-i+1)
	}
	return best
}

func times(gs []grant, keep func(grant) bool, at func(grant) time.Time) []time.Time {
	var out []time.Time
	for _, g := range gs {
		if keep(g) {
			out = append(out, at(g))
		}
	}
	return out
}

func all(grant) bool { return true }

func between(from, to time.Time) func(grant) bool {
	return func(g grant) bool { return !g.at.Before(from) && g.at.Before(to) }
}

func checkBound(t *testing.T, gs []grant) {
	t.Helper()
	if got := maxInWindow(times(gs, all, grant.when), time.Second); float64(got) > testBound {
		t.Errorf("%d grants in one trailing second, limit %g", got, testBound)
	}
	// Local grant times trail the slots by the reply's latency; report them.
	t.Logf("trailing-second maximum: %d by schedule time, %d by local time (limit %g)",
		maxInWindow(times(gs, all, grant.when), time.Second),
		maxInWindow(times(gs, all, func(g grant) time.Time { return g.at }), time.Second), testBound)
}

func checkRate(t *testing.T, what string, n int, d time.Duration, want float64) {
	t.Helper()
	got := float64(n) / d.Seconds()
	t.Logf("%s: %d grants in %s = %.1f/s (want >= %.1f/s)", what, n, d.Round(time.Millisecond), got, want)
	if got < want {
		t.Errorf("%s: %.1f grants/s, want >= %.1f", what, got, want)
	}
}

func count(gs []grant, keep ...func(grant) bool) int {
	n := 0
outer:
	for _, g := range gs {
		for _, k := range keep {
			if !k(g) {
				continue outer
			}
		}
		n++
	}
	return n
}

// Four processes hammer one budget; one of them stops halfway. No trailing
// second exceeds Safety*Rate, and the others keep the budget at full rate.
func TestRedisProcessesShareBudget(t *testing.T) {
	srv := redistest.Start(t)
	rec := &recorder{}
	start := time.Now()
	procs := make([]*proc, 4)
	for i := range procs {
		procs[i] = startProc(t, srv, rec, i, Config{}, 3)
	}
	time.Sleep(1500 * time.Millisecond) // run length
	procs[0].stop()
	half := time.Now()
	time.Sleep(1500 * time.Millisecond) // run length
	end := time.Now()
	for _, p := range procs {
		p.stop()
	}
	gs := rec.snapshot()
	checkBound(t, gs)
	checkRate(t, "4 processes", count(gs, between(start, half)), half.Sub(start), 0.9*testPaced)
	settled := half.Add(100 * time.Millisecond)
	checkRate(t, "3 processes after one stopped", count(gs, between(settled, end)), end.Sub(settled), 0.9*testPaced)
	for i := 1; i < len(procs); i++ {
		if n := count(gs, between(settled, end), func(g grant) bool { return g.proc == i }); n == 0 {
			t.Errorf("process %d got no grant after process 0 stopped", i)
		}
	}
	if n := count(gs, func(g grant) bool { return !g.shared }); n != 0 {
		t.Errorf("%d fallback grants with Redis up", n)
	}
}

// A replay alone runs at the whole budget; once live saturates it, live
// gets at least 90% within a second.
func TestRedisLivePriority(t *testing.T) {
	srv := redistest.Start(t)
	rec := &recorder{}
	start := time.Now()
	startProc(t, srv, rec, 0, Config{Role: Replay}, 3)
	time.Sleep(1500 * time.Millisecond) // replay-alone phase
	liveStart := time.Now()
	gs := rec.snapshot()
	checkRate(t, "replay alone", count(gs, between(start, liveStart)), liveStart.Sub(start), 0.9*testPaced)

	startProc(t, srv, rec, 1, Config{Role: Live}, 3)
	startProc(t, srv, rec, 2, Config{Role: Live}, 3)
	time.Sleep(2500 * time.Millisecond) // live-and-replay phase
	end := time.Now()
	gs = rec.snapshot()
	checkBound(t, gs)

	yielded := liveStart.Add(time.Second)
	window := between(yielded, end)
	total := count(gs, window)
	live := count(gs, window, func(g grant) bool { return g.role == Live })
	checkRate(t, "live and replay together", total, end.Sub(yielded), 0.9*testPaced)
	share := float64(live) / float64(max(total, 1))
	t.Logf("live share with live saturating: %d of %d = %.1f%%", live, total, 100*share)
	if share < 0.9 {
		t.Errorf("live got %.1f%% of the grants, want >= 90%%", 100*share)
	}
}

// A frequency-limit answer seen by one process lowers the rate of all.
func TestRedisSharedThrottle(t *testing.T) {
	srv := redistest.Start(t)
	rec := &recorder{}
	a := startProc(t, srv, rec, 0, Config{RateDecrease: 0.5}, 2)
	b := startProc(t, srv, rec, 1, Config{RateDecrease: 0.5}, 2)
	time.Sleep(time.Second) // full-rate phase
	r, lowered := a.b.Throttled(context.Background())
	if !lowered || math.Abs(r-testPaced/2) > 1 {
		t.Fatalf("Throttled = %g, %v; want about %g, true", r, lowered, testPaced/2)
	}
	throttledAt := time.Now()
	time.Sleep(time.Second) // throttled phase
	end := time.Now()
	if got := b.b.Rate(); got > 0.75*testPaced {
		t.Errorf("the other process's Rate() = %g, want the lowered rate (<= %g)", got, 0.75*testPaced)
	}
	a.stop()
	b.stop()
	gs := rec.snapshot()
	checkBound(t, gs)
	// Over the next second the rate recovers from 24 to 28.8/s: about 26.
	n := count(gs, between(throttledAt, end))
	if float64(n) > 0.7*testPaced || float64(n) < 0.4*testPaced {
		t.Errorf("%d grants in the second after Throttled, want about %g", n, 0.55*testPaced)
	}
	for i := range 2 {
		if c := count(gs, between(throttledAt, end), func(g grant) bool { return g.proc == i }); c == 0 {
			t.Errorf("process %d got no grant after the throttle", i)
		}
	}
}

// Redis stopped mid-run: Take keeps granting at the fallback share and
// never above it; restarted on the same port, the shared budget resumes.
func TestRedisOutage(t *testing.T) {
	srv := redistest.Start(t)
	rec := &recorder{}
	cfg := Config{HeartbeatInterval: 200 * time.Millisecond, RedisTimeout: 100 * time.Millisecond, FallbackMinMembers: 1}
	procs := make([]*proc, 3)
	for i := range procs {
		procs[i] = startProc(t, srv, rec, i, cfg, 2)
	}
	eventually(t, 5*time.Second, "three members", func() bool {
		for _, p := range procs {
			if p.b.Members() != 3 {
				return false
			}
		}
		return true
	})
	time.Sleep(time.Second) // shared phase

	srv.Kill()
	down := time.Now()
	eventually(t, 5*time.Second, "every process degraded", func() bool {
		for _, p := range procs {
			if d, _ := p.b.Degraded(); !d {
				return false
			}
		}
		return true
	})
	time.Sleep(2500 * time.Millisecond) // degraded phase
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	up := time.Now()
	eventually(t, 5*time.Second, "every process resumed", func() bool {
		for _, p := range procs {
			if d, _ := p.b.Degraded(); d {
				return false
			}
		}
		return true
	})
	resumed := time.Now()
	time.Sleep(2500 * time.Millisecond) // resumed phase
	end := time.Now()
	for _, p := range procs {
		p.stop()
	}
	gs := rec.snapshot()
	checkBound(t, gs)

	share := testBound / 3
	for i := range procs {
		local := times(gs, func(g grant) bool { return g.proc == i && !g.shared }, grant.when)
		if got := maxInWindow(local, time.Second); float64(got) > share {
			t.Errorf("process %d: %d fallback grants in one second, share %.2f", i, got, share)
		}
	}
	fallbackRate := 3 * PacedRate(share, 1)
	// The fallback grants nothing for its first second.
	steady := down.Add(1500 * time.Millisecond)
	checkRate(t, "fallback", count(gs, between(steady, up), func(g grant) bool { return !g.shared }),
		up.Sub(steady), 0.8*fallbackRate)
	if n := count(gs, between(down.Add(200*time.Millisecond), up), func(g grant) bool { return g.shared }); n != 0 {
		t.Errorf("%d shared grants while Redis was down", n)
	}
	// The shared schedule restarts after the resume hold.
	hold := cfg.HeartbeatInterval + cfg.RedisTimeout + time.Second
	shared := resumed.Add(hold)
	checkRate(t, "shared after restart", count(gs, between(shared, end), func(g grant) bool { return g.shared }),
		end.Sub(shared), 0.9*testPaced)
	for i, p := range procs {
		if d, reason := p.b.Degraded(); d {
			t.Errorf("process %d still degraded: %s", i, reason)
		}
	}
}

// BenchmarkTakeRedis measures Take's overhead against a real Redis at an
// unlimited rate: one script round trip per grant.
func BenchmarkTakeRedis(b *testing.B) {
	srv := redistest.Start(b)
	bud, err := New(Config{Redis: srv.Client(), Key: fmt.Sprintf("enricher:budget:bench:%d", time.Now().UnixNano()),
		Rate: 1e12, Safety: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer bud.Close()
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if _, err := bud.Take(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if d, reason := bud.Degraded(); d {
		b.Fatalf("degraded during the benchmark: %s", reason)
	}
}
