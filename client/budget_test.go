package client_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tencentchat-enricher/enricher/client"
	"github.com/tencentchat-enricher/enricher/client/budget"
	"github.com/tencentchat-enricher/enricher/client/simulator"
	"github.com/tencentchat-enricher/enricher/internal/redistest"
)

// fakeBudget grants at once (or blocks until ctx ends, or fails) and
// counts what the client asked of it.
type fakeBudget struct {
	takes, throttles atomic.Int64
	block            bool
	fail             error
	rate             float64
}

func (f *fakeBudget) Take(ctx context.Context) (time.Duration, error) {
	f.takes.Add(1)
	if f.fail != nil {
		return 0, f.fail
	}
	if f.block {
		<-ctx.Done()
		return 0, ctx.Err()
	}
	return 0, nil
}

func (f *fakeBudget) Throttled(context.Context) (float64, bool) {
	f.throttles.Add(1)
	return f.rate / 2, true
}

func (f *fakeBudget) Rate() float64 { return f.rate }

var _ client.Budget = (*budget.Budget)(nil)

// Every attempt takes a token, every frequency-limit answer is reported to
// the shared budget, and EffectiveRate is the shared rate.
func TestBudgetEveryAttemptTakesAToken(t *testing.T) {
	srv := startSimulator(t, simulator.Config{Faults: simulator.Faults{ForceCode: map[string]int{"user-1": client.CodeFrequencyLimit}}})
	fb := &fakeBudget{rate: 123}
	c := simClient(t, srv.URL(), func(cfg *client.Config) { cfg.MaxAttempts = 3; cfg.Budget = fb })
	if got := c.EffectiveRate(); got != 123 {
		t.Errorf("EffectiveRate = %g, want the budget's 123", got)
	}
	_, err := c.GetAll(context.Background(), "user-1")
	if client.Classify(err) != client.ClassRateLimited {
		t.Fatalf("err = %v, want rate-limited", err)
	}
	if n := fb.takes.Load(); n != 3 {
		t.Errorf("%d takes for 3 attempts", n)
	}
	if n := fb.throttles.Load(); n != 3 {
		t.Errorf("%d Throttled calls for 3 frequency-limit answers", n)
	}

	// Pages count too: a user with three pages takes three tokens.
	data := simulator.Generate(simulator.GenConfig{Seed: 2, Users: 40, HeavyShare: 1, UnknownShare: -1})
	srv2 := startSimulator(t, simulator.Config{Dataset: data})
	fb2 := &fakeBudget{rate: 195}
	c2 := simClient(t, srv2.URL(), func(cfg *client.Config) { cfg.Budget = fb2 })
	subs, err := c2.GetAll(context.Background(), simulator.UserID(0))
	if err != nil {
		t.Fatal(err)
	}
	if subs.Pages < 2 || fb2.takes.Load() != int64(subs.Pages) || srv2.Stats().Total != subs.Pages {
		t.Errorf("%d pages, %d takes, %d calls: want one take per page", subs.Pages, fb2.takes.Load(), srv2.Stats().Total)
	}
}

// A budget that never grants ends the page at the retry deadline; one that
// fails reports the client closed; neither sends a call.
func TestBudgetWaitAndFailure(t *testing.T) {
	srv := startSimulator(t, simulator.Config{})
	blocked := simClient(t, srv.URL(), func(cfg *client.Config) {
		cfg.Budget = &fakeBudget{block: true, rate: 1}
		cfg.RetryDeadline = 50 * time.Millisecond
	})
	_, err := blocked.GetPage(context.Background(), client.PageRequest{SubscriberAccount: "user-1"})
	var rde *client.RetryDeadlineError
	if !errors.As(err, &rde) {
		t.Errorf("never granted: err = %v, want a *RetryDeadlineError", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := blocked.GetPage(ctx, client.PageRequest{SubscriberAccount: "user-1"}); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: err = %v", err)
	}

	failing := simClient(t, srv.URL(), func(cfg *client.Config) { cfg.Budget = &fakeBudget{fail: budget.ErrClosed, rate: 1} })
	_, err = failing.GetPage(context.Background(), client.PageRequest{SubscriberAccount: "user-1"})
	if !errors.Is(err, client.ErrClosed) || !errors.Is(err, budget.ErrClosed) || client.Classify(err) != client.ClassCanceled {
		t.Errorf("closed budget: err = %v (class %s)", err, client.Classify(err))
	}
	if n := srv.Stats().Total; n != 0 {
		t.Errorf("%d calls sent without a token", n)
	}
}

// Behind a budget that grants everything at once, the client's guard still
// caps what it sends in any trailing second at floor(RateSafety*Rate). (The
// in-process simulator timestamps calls when its handlers get to run, so
// its trailing-second count of bursts is not the client's: the elapsed
// time is what shows the cap.)
func TestBudgetGuardCapsTrailingSecond(t *testing.T) {
	srv := startSimulator(t, simulator.Config{Dataset: simulator.Generate(simulator.GenConfig{Seed: 1, Users: 45, UnknownShare: -1})})
	c := simClient(t, srv.URL(), func(cfg *client.Config) { cfg.Rate = 20; cfg.Budget = &fakeBudget{rate: 19} })
	start := time.Now()
	forEachUser(45, 16, func(user string) {
		if _, err := c.GetPage(context.Background(), client.PageRequest{SubscriberAccount: user}); err != nil {
			t.Errorf("%s: %v", user, err)
		}
	})
	took := time.Since(start)
	if n := srv.Stats().Total; n != 45 {
		t.Errorf("%d calls, want 45", n)
	}
	if took < 2*time.Second {
		t.Errorf("45 calls at 19 per trailing second took %s, want >= 2s", took)
	}
}

// Several processes (a client, a go-redis client and a Budget each) share
// one app's budget in one Redis against one simulator that enforces the
// API's 200 calls per trailing second: no trailing second exceeds the
// rate, no call is refused, and every page is one call. How much of the
// budget they use together is a rate, measured by
// BenchmarkSharedBudgetSeveralClients.
func TestSharedBudgetSeveralClients(t *testing.T) {
	if testing.Short() {
		t.Skip("runs several seconds at the full rate")
	}
	perSec := sharedBudgetClients(t)
	t.Logf("%.1f calls/s together", perSec)
}

// BenchmarkSharedBudgetSeveralClients reports the calls per second three
// clients sharing one budget make together (the schedule paces 195/s).
func BenchmarkSharedBudgetSeveralClients(b *testing.B) {
	var sum float64
	for range b.N {
		sum += sharedBudgetClients(b)
	}
	b.ReportMetric(sum/float64(b.N), "calls/s")
}

// sharedBudgetClients runs TestSharedBudgetSeveralClients's three clients
// over 1,200 users, checks what does not depend on the machine's speed,
// and returns the calls per second in the full seconds of the run.
func sharedBudgetClients(t testing.TB) float64 {
	t.Helper()
	rs := redistest.Start(t)
	const procs, users = 3, 1200
	data := simulator.Generate(simulator.GenConfig{Seed: 5, Users: users, UnknownShare: -1})
	srv := startSimulator(t, simulator.Config{Dataset: data, Faults: simulator.Faults{Latency: 2 * time.Millisecond, Jitter: 8 * time.Millisecond}})

	clients := make([]*client.Client, procs)
	for i := range clients {
		b, err := budget.New(budget.Config{
			Redis: rs.Client(func(o *redis.Options) { o.MaxRetries = -1 }),
			Key:   "enricher:budget:" + fmt.Sprint(simAppID), Rate: client.DefaultRate,
			Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		clients[i] = simClient(t, srv.URL(), func(cfg *client.Config) { cfg.Budget = b })
	}

	var wg sync.WaitGroup
	var next atomic.Int64
	var pages atomic.Int64
	for i := range procs {
		for range 24 {
			wg.Go(func() {
				for {
					u := int(next.Add(1)) - 1
					if u >= users {
						return
					}
					subs, err := clients[i].GetAll(context.Background(), simulator.UserID(u))
					if err != nil {
						t.Errorf("process %d, %s: %v", i, simulator.UserID(u), err)
						continue
					}
					pages.Add(int64(subs.Pages))
				}
			})
		}
	}
	wg.Wait()

	st := srv.Stats()
	if n := st.ByCode[client.CodeFrequencyLimit]; n != 0 {
		t.Errorf("%d frequency-limit answers", n)
	}
	if st.MaxPerSecond > simulator.DefaultRate {
		t.Errorf("%d calls in one trailing second, limit %d", st.MaxPerSecond, simulator.DefaultRate)
	}
	if int64(st.Total) != pages.Load() {
		t.Errorf("%d calls for %d pages", st.Total, pages.Load())
	}
	// The full seconds between the first and the last (both partial).
	first, last := -1, -1
	for i, n := range st.PerSecond {
		if n > 0 {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if last-first < 3 {
		t.Fatalf("calls spread over %d seconds only: %v", last-first+1, st.PerSecond)
	}
	mid := 0
	for _, n := range st.PerSecond[first+1 : last] {
		mid += n
	}
	perSec := float64(mid) / float64(last-first-1)
	t.Logf("%d calls, max %d per trailing second, %.1f calls/s in the full seconds %v", st.Total, st.MaxPerSecond, perSec, st.PerSecond[first:last+1])
	return perSec
}
