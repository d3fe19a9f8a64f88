package simulator

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tencentchat-enricher/enricher/internal/testsupport"
)

func TestStatsCounts(t *testing.T) {
	e := newEnv(t, nil)
	start := e.clock.Now()
	// Second 0: alice twice, bob once; second 1: carol (unknown) and a bad
	// body; second 3: alice.
	e.call(t, userBody("alice"))
	e.call(t, userBody("alice"))
	e.call(t, userBody("bob"))
	e.clock.Advance(1500 * time.Millisecond)
	e.call(t, userBody("carol"))
	e.call(t, `{"Limit":3}`)
	e.clock.Advance(1500 * time.Millisecond)
	e.call(t, userBody("alice"))

	st := e.srv.Stats()
	if !st.Start.Equal(start) {
		t.Fatalf("Start %v, want %v", st.Start, start)
	}
	if st.Total != 6 || st.InFlight != 0 || st.Abandoned != 0 {
		t.Fatalf("Total %d InFlight %d Abandoned %d", st.Total, st.InFlight, st.Abandoned)
	}
	if fmt.Sprint(st.ByCode) != fmt.Sprint(map[int]int{0: 4, CodeUserNotFound: 1, CodeInvalidParameter: 1}) {
		t.Fatalf("ByCode %v", st.ByCode)
	}
	if fmt.Sprint(st.PerUser) != fmt.Sprint(map[string]int{"alice": 3, "bob": 1, "carol": 1}) {
		t.Fatalf("PerUser %v", st.PerUser)
	}
	if fmt.Sprint(st.PerSecond) != "[3 2 0 1]" {
		t.Fatalf("PerSecond %v", st.PerSecond)
	}
	// Trailing windows: (0.5s, 1.5s] holds the two at 1.5s, and [0,1) the
	// first three: max 3.
	if st.MaxPerSecond != 3 {
		t.Fatalf("MaxPerSecond %d", st.MaxPerSecond)
	}

	// The same over HTTP.
	_, b := e.do(t, http.MethodGet, "/stats", "")
	var got Stats
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("GET /stats %s: %v", b, err)
	}
	if fmt.Sprint(got.ByCode) != fmt.Sprint(st.ByCode) || got.Total != st.Total || fmt.Sprint(got.PerSecond) != fmt.Sprint(st.PerSecond) {
		t.Fatalf("GET /stats %+v, want %+v", got, st)
	}

	// DELETE /stats resets.
	if status, _ := e.do(t, http.MethodDelete, "/stats", ""); status != http.StatusNoContent {
		t.Fatalf("DELETE /stats: HTTP %d", status)
	}
	if st := e.srv.Stats(); st.Total != 0 || len(st.ByCode) != 0 || len(st.PerUser) != 0 || len(st.PerSecond) != 0 || st.MaxPerSecond != 0 {
		t.Fatalf("after reset %+v", st)
	}
}

func TestStatsMaxPerSecondSlidingAcrossSecondBoundaries(t *testing.T) {
	// Two bursts of 3 in different calendar seconds but within one
	// trailing second: the series shows 3 and 3, the max is 6.
	e := newEnv(t, nil)
	e.clock.Advance(700 * time.Millisecond)
	for range 3 {
		e.call(t, userBody("alice"))
	}
	e.clock.Advance(600 * time.Millisecond)
	for range 3 {
		e.call(t, userBody("alice"))
	}
	st := e.srv.Stats()
	if fmt.Sprint(st.PerSecond) != "[3 3]" || st.MaxPerSecond != 6 {
		t.Fatalf("PerSecond %v MaxPerSecond %d", st.PerSecond, st.MaxPerSecond)
	}
}

func TestStatsSeriesKeepsTheLastHour(t *testing.T) {
	e := newEnv(t, nil)
	start := e.clock.Now()
	e.call(t, userBody("alice"))
	e.clock.Advance((maxSeries + 9) * time.Second)
	e.call(t, userBody("alice"))
	st := e.srv.Stats()
	if len(st.PerSecond) != maxSeries || st.PerSecond[maxSeries-1] != 1 || st.PerSecond[0] != 0 {
		t.Fatalf("series of %d, last %d", len(st.PerSecond), st.PerSecond[len(st.PerSecond)-1])
	}
	if want := start.Add(10 * time.Second); !st.Start.Equal(want) {
		t.Fatalf("Start %v, want %v", st.Start, want)
	}
}

func TestStatsConcurrency(t *testing.T) {
	const n = 8
	e := newEnv(t, func(c *Config) { c.Faults = Faults{SlowProbability: 1, SlowDelay: time.Hour} })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.srv.URL()+Path+"?"+e.params().Encode(), strings.NewReader(userBody(fmt.Sprint("user-", i))))
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		})
	}
	testsupport.WaitFor(t, waitLimit, "all calls in flight", func() bool { return e.srv.Stats().InFlight == n })
	if st := e.srv.Stats(); st.MaxConcurrent != n {
		t.Fatalf("MaxConcurrent %d, want %d", st.MaxConcurrent, n)
	}
	cancel()
	wg.Wait()
	testsupport.WaitFor(t, waitLimit, "all calls abandoned", func() bool {
		st := e.srv.Stats()
		return st.InFlight == 0 && st.Abandoned == n
	})
	if st := e.srv.Stats(); st.MaxConcurrent != n || st.Total != n || len(st.ByCode) != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestServerCloseAbortsCallsInFlight(t *testing.T) {
	clock := newFakeClock()
	srv, err := NewServer(Config{SDKAppID: testAppID, Admin: testAdmin, SecretKey: testKey, Dataset: testData(t), Now: clock.Now,
		Faults: Faults{Latency: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{srv: srv, clock: clock, sig: genSig(t, testAppID, testKey, testAdmin, 3600)}
	errc := make(chan error, 1)
	go func() {
		resp, err := http.Post(srv.URL()+Path+"?"+e.params().Encode(), "application/json", strings.NewReader(userBody("alice")))
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	testsupport.WaitFor(t, waitLimit, "the call in flight", func() bool { return srv.Stats().InFlight == 1 })
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err == nil {
		t.Fatal("the call in flight got an answer after Close")
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestStatsPerUserCountsEveryOutcome(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Rate = 1 })
	e.call(t, userBody("alice")) // OK
	e.call(t, userBody("alice")) // frequency limit
	q := e.params()
	q.Set("usersig", "bad")
	e.callWith(t, q, userBody("alice")) // UserSig
	if err := e.srv.SetFaults(Faults{P502: 1}); err != nil {
		t.Fatal(err)
	}
	e.post(t, e.params(), userBody("alice")) // 502
	st := e.srv.Stats()
	if st.PerUser["alice"] != 4 || st.ByCode[0] != 1 || st.ByCode[CodeRateLimited] != 1 || st.ByCode[CodeSigInvalid] != 1 || st.ByCode[502] != 1 {
		t.Fatalf("PerUser %v ByCode %v", st.PerUser, st.ByCode)
	}
}
