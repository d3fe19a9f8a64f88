package client_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tencentchat-enricher/enricher/client"
	"github.com/tencentchat-enricher/enricher/client/simulator"
)

// Tests against the Tencent simulator: real UserSig verification, the
// spec's pagination and codes, and injected faults.

const (
	simAppID  = 1400000001
	simAdmin  = "administrator"
	simSecret = "dev-only-secret-key"
)

func startSimulator(t testing.TB, cfg simulator.Config) *simulator.Server {
	t.Helper()
	cfg.SDKAppID, cfg.Admin, cfg.SecretKey = simAppID, simAdmin, simSecret
	srv, err := simulator.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

func simClient(t testing.TB, url string, mod func(*client.Config)) *client.Client {
	t.Helper()
	cfg := client.Config{SDKAppID: simAppID, Admin: simAdmin, SecretKey: simSecret, BaseURL: url,
		BackoffBase: time.Millisecond, BackoffMax: 10 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}
	if mod != nil {
		mod(&cfg)
	}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// forEachUser runs fn for users 0..n-1 with the given concurrency.
func forEachUser(n, workers int, fn func(user string)) {
	var wg sync.WaitGroup
	var next atomic.Int64
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				fn(simulator.UserID(i))
			}
		})
	}
	wg.Wait()
}

func TestSimulatorGetAll(t *testing.T) {
	data := simulator.Generate(simulator.GenConfig{Seed: 7, Users: 150, HeavyShare: 0.1})
	srv := startSimulator(t, simulator.Config{Dataset: data})
	c := simClient(t, srv.URL(), nil)

	var heavy, unknown atomic.Int64
	forEachUser(150, 8, func(user string) {
		subs, err := c.GetAll(context.Background(), user)
		if !data.Known(user) {
			var apiErr *client.APIError
			if !errors.As(err, &apiErr) || apiErr.Code != client.CodeUserNotFound || client.Classify(err) != client.ClassPermanent {
				t.Errorf("%s (unknown): %v", user, err)
			}
			unknown.Add(1)
			return
		}
		if err != nil {
			t.Errorf("%s: %v", user, err)
			return
		}
		want := data.SubscriptionCount(user)
		wantPages := max(1, (want+199)/200)
		if len(subs.Accounts) != want || subs.TotalCount != want || subs.Pages != wantPages {
			t.Errorf("%s: %d accounts (total %d) in %d pages, want %d in %d", user, len(subs.Accounts), subs.TotalCount, subs.Pages, want, wantPages)
		}
		seen := map[string]bool{}
		for _, a := range subs.Accounts {
			if seen[a.OfficialAccount] || a.Name == nil || a.SelfInfo == nil || a.SelfInfo.SubscribeTime == nil {
				t.Errorf("%s: account %+v duplicated or incomplete", user, a)
				break
			}
			seen[a.OfficialAccount] = true
		}
		if wantPages > 1 {
			heavy.Add(1)
		}
	})
	if heavy.Load() == 0 || unknown.Load() == 0 {
		t.Errorf("dataset exercised %d multi-page and %d unknown users; want some of each", heavy.Load(), unknown.Load())
	}
	st := srv.Stats()
	for code, n := range st.ByCode {
		if code != 0 && code != client.CodeUserNotFound {
			t.Errorf("simulator answered %d x %d (UserSig or request rejected?)", n, code)
		}
	}
}

func TestSimulatorFilter(t *testing.T) {
	data := simulator.Generate(simulator.GenConfig{Seed: 3, Users: 20, UnknownShare: -1})
	srv := startSimulator(t, simulator.Config{Dataset: data})
	c := simClient(t, srv.URL(), func(cfg *client.Config) {
		cfg.Filter = &client.ResponseFilter{OfficialAccountBaseInfoFilter: []string{"Name"}, SelfInfoFilter: []string{"SubscribeTime"}}
	})
	for i := range 20 {
		subs, err := c.GetAll(context.Background(), simulator.UserID(i))
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range subs.Accounts {
			if a.Name == nil || a.SubscriberNum != nil || a.FaceURL != nil || a.SelfInfo == nil ||
				a.SelfInfo.SubscribeTime == nil || a.SelfInfo.CustomString != nil {
				t.Fatalf("filtered account = %+v", a)
			}
		}
	}
}

func TestSimulatorFaultsAreRetried(t *testing.T) {
	data := simulator.Generate(simulator.GenConfig{Seed: 11, Users: 60, UnknownShare: -1})
	srv := startSimulator(t, simulator.Config{Dataset: data, Seed: 5,
		Faults: simulator.Faults{P502: 0.1, P10004: 0.05, P20005: 0.05}})
	c := simClient(t, srv.URL(), func(cfg *client.Config) { cfg.MaxAttempts = 12 })
	forEachUser(60, 8, func(user string) {
		if _, err := c.GetAll(context.Background(), user); err != nil {
			t.Errorf("%s: %v", user, err)
		}
	})
	st := srv.Stats()
	if st.ByCode[502] == 0 || st.ByCode[client.CodeInternalError]+st.ByCode[client.CodeInternalError2] == 0 {
		t.Errorf("faults not injected: %v", st.ByCode)
	}
	if c.BreakerState() != client.BreakerClosed {
		t.Errorf("breaker %s", c.BreakerState())
	}
}

func TestSimulatorForcedCodes(t *testing.T) {
	tests := []struct {
		code      int
		want      client.Class
		wantCalls int
	}{
		{client.CodeUserNotFound, client.ClassPermanent, 1},
		{client.CodeInvalidUserID, client.ClassPermanent, 1},
		{client.CodeInvalidParameter, client.ClassPermanent, 1},
		{client.CodeNoPermission, client.ClassFatal, 1},
		{client.CodeServiceNotEnabled, client.ClassFatal, 1},
		{client.CodeUserSigExpired, client.ClassFatal, 2}, // re-signed once, then fatal
		{client.CodeInternalError, client.ClassTransient, 3},
		{client.CodeFrequencyLimit, client.ClassRateLimited, 3},
	}
	for _, tt := range tests {
		t.Run(client.CodeClass(tt.code).String(), func(t *testing.T) {
			srv := startSimulator(t, simulator.Config{Faults: simulator.Faults{ForceCode: map[string]int{"user-1": tt.code}}})
			c := simClient(t, srv.URL(), func(cfg *client.Config) { cfg.MaxAttempts = 3 })
			_, err := c.GetAll(context.Background(), "user-1")
			var apiErr *client.APIError
			if !errors.As(err, &apiErr) || apiErr.Code != tt.code || client.Classify(err) != tt.want {
				t.Fatalf("err = %v (class %s), want code %d class %s", err, client.Classify(err), tt.code, tt.want)
			}
			if n := srv.Stats().PerUser["user-1"]; n != tt.wantCalls {
				t.Errorf("calls = %d, want %d", n, tt.wantCalls)
			}
		})
	}
}

func TestSimulatorOutageOpensBreaker(t *testing.T) {
	srv := startSimulator(t, simulator.Config{Faults: simulator.Faults{OutageFor: time.Hour}})
	c := simClient(t, srv.URL(), func(cfg *client.Config) {
		cfg.MaxAttempts = 2
		cfg.Breaker = client.BreakerConfig{Failures: 4, OpenFor: 100 * time.Millisecond}
	})
	ctx := context.Background()
	for c.BreakerState() == client.BreakerClosed {
		if _, err := c.GetAll(ctx, "user-1"); client.Classify(err) != client.ClassTransient {
			t.Fatalf("during outage: %v", err)
		}
		if srv.Stats().Total > 10 {
			t.Fatal("breaker never opened")
		}
	}
	calls := srv.Stats().Total
	_, err := c.GetAll(ctx, "user-1")
	if !errors.Is(err, client.ErrBreakerOpen) || srv.Stats().Total != calls {
		t.Fatalf("open breaker: %v, calls %d -> %d", err, calls, srv.Stats().Total)
	}
	if err := srv.SetFaults(simulator.Faults{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := c.GetAll(ctx, "user-1")
		if err == nil {
			break
		}
		if !errors.Is(err, client.ErrBreakerOpen) || time.Now().After(deadline) {
			t.Fatalf("after outage: %v", err)
		}
		var boe *client.BreakerOpenError
		errors.As(err, &boe)
		select { // wait as the processor would: RetryAfter
		case <-time.After(boe.RetryAfter + time.Millisecond):
		case <-ctx.Done():
		}
	}
	if c.BreakerState() != client.BreakerClosed {
		t.Errorf("breaker %s after recovery", c.BreakerState())
	}
}

// BenchmarkSimulatorFullLoad drives the client with 64 concurrent callers
// against the simulator (frequency limit 200/s) and reports the most calls
// the simulator counted in any trailing second and how many it throttled.
// The simulator timestamps calls when its handler runs in this process, so
// on a loaded machine its count includes scheduling delay; the kernel-time
// measurement is TestLimiterServerSideTrailingSecond.
//
//	go test -run '^$' -bench SimulatorFullLoad -benchtime 2000x ./client/
func BenchmarkSimulatorFullLoad(b *testing.B) {
	srv := startSimulator(b, simulator.Config{Dataset: simulator.Generate(simulator.GenConfig{Seed: 1, Users: 5000})})
	c := simClient(b, srv.URL(), nil)
	b.ResetTimer()
	forEachUser(b.N, 64, func(user string) { _, _ = c.GetAll(context.Background(), user) })
	b.StopTimer()
	st := srv.Stats()
	b.ReportMetric(float64(st.MaxPerSecond), "max-calls/trailing-s")
	b.ReportMetric(float64(st.ByCode[client.CodeFrequencyLimit]), "throttled")
	b.ReportMetric(float64(st.Total), "calls")
}
