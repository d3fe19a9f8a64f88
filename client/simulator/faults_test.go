package simulator

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tencentchat-enricher/enricher/internal/testsupport"
)

func TestFrequencyLimit(t *testing.T) {
	const rate = 20
	e := newEnv(t, func(c *Config) { c.Rate = rate })

	// Exactly rate calls pass in one second; the next fails.
	for i := range rate {
		if a := e.call(t, userBody("alice")); a.ErrorCode != 0 {
			t.Fatalf("call %d: %+v", i, a)
		}
	}
	if a := e.call(t, userBody("alice")); a.ErrorCode != CodeRateLimited {
		t.Fatalf("call %d: ErrorCode %d, want %d", rate+1, a.ErrorCode, CodeRateLimited)
	}
	// Still limited at the end of the second: the window is trailing.
	e.clock.Advance(999 * time.Millisecond)
	if a := e.call(t, userBody("alice")); a.ErrorCode != CodeRateLimited {
		t.Fatalf("at +999ms: ErrorCode %d, want %d", a.ErrorCode, CodeRateLimited)
	}
	// One second after the burst only the refused attempt at +999ms is in
	// the window: rate-1 more calls pass, then the limit again.
	e.clock.Advance(time.Millisecond)
	for i := range rate - 1 {
		if a := e.call(t, userBody("alice")); a.ErrorCode != 0 {
			t.Fatalf("second burst call %d: %+v", i, a)
		}
	}
	if a := e.call(t, userBody("alice")); a.ErrorCode != CodeRateLimited {
		t.Fatalf("second burst: ErrorCode %d, want %d", a.ErrorCode, CodeRateLimited)
	}

	st := e.srv.Stats()
	if st.ByCode[0] != 2*rate-1 || st.ByCode[CodeRateLimited] != 3 || st.Total != 2*rate+2 {
		t.Fatalf("stats %+v", st)
	}
	// Every arrival counts in MaxPerSecond, refused ones included.
	if st.MaxPerSecond != rate+2 {
		t.Fatalf("MaxPerSecond %d, want %d", st.MaxPerSecond, rate+2)
	}
	if st.RateLimit != rate {
		t.Fatalf("RateLimit %d", st.RateLimit)
	}
}

func TestFrequencyLimitTrailingNotFixed(t *testing.T) {
	// Five calls 200ms apart, limit 5: at +1s the call at 0 has left the
	// window, so one more passes; a fixed per-second window would differ.
	e := newEnv(t, func(c *Config) { c.Rate = 5 })
	for i := range 5 {
		if a := e.call(t, userBody("alice")); a.ErrorCode != 0 {
			t.Fatalf("call %d: %+v", i, a)
		}
		e.clock.Advance(200 * time.Millisecond)
	}
	if a := e.call(t, userBody("alice")); a.ErrorCode != 0 {
		t.Fatalf("at +1s: %+v", a)
	}
	if a := e.call(t, userBody("alice")); a.ErrorCode != CodeRateLimited {
		t.Fatalf("second call at +1s: ErrorCode %d", a.ErrorCode)
	}
}

func TestFrequencyLimitAfterAuthentication(t *testing.T) {
	// Unauthenticated calls do not use the app's budget.
	e := newEnv(t, func(c *Config) { c.Rate = 1 })
	q := e.params()
	q.Set("usersig", genSig(t, testAppID, "another-key", testAdmin, 3600))
	for range 3 {
		if a := e.callWith(t, q, userBody("alice")); a.ErrorCode != CodeSigVerify {
			t.Fatalf("ErrorCode %d", a.ErrorCode)
		}
	}
	if a := e.call(t, userBody("alice")); a.ErrorCode != 0 {
		t.Fatalf("%+v", a)
	}
	if a := e.call(t, userBody("alice")); a.ErrorCode != CodeRateLimited {
		t.Fatalf("ErrorCode %d", a.ErrorCode)
	}
}

func TestUnlimitedRate(t *testing.T) {
	sim, err := New(Config{SDKAppID: testAppID, Admin: testAdmin, SecretKey: testKey, Dataset: testData(t), Rate: -1, Now: newFakeClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{sig: genSig(t, testAppID, testKey, testAdmin, 3600)}
	target := Path + "?" + e.params().Encode()
	for i := range 2000 {
		rec := httptest.NewRecorder()
		sim.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, target, strings.NewReader(userBody("alice"))))
		if !strings.Contains(rec.Body.String(), `"ErrorCode":0`) {
			t.Fatalf("call %d: %s", i, rec.Body)
		}
	}
	if st := sim.Stats(); st.MaxPerSecond != 2000 || st.ByCode[0] != 2000 {
		t.Fatalf("stats MaxPerSecond %d ByCode %v", st.MaxPerSecond, st.ByCode)
	}
}

func TestInjectedFaults(t *testing.T) {
	tests := []struct {
		name   string
		faults Faults
		user   string
		status int
		code   int
	}{
		{"none", Faults{}, "alice", http.StatusOK, 0},
		{"502", Faults{P502: 1}, "alice", http.StatusBadGateway, 0},
		{"10004", Faults{P10004: 1}, "alice", http.StatusOK, CodeInternal},
		{"20005", Faults{P20005: 1}, "alice", http.StatusOK, CodeInternalRetry},
		{"forced for the user", Faults{ForceCode: map[string]int{"alice": CodeNoService}}, "alice", http.StatusOK, CodeNoService},
		{"forced for another user", Faults{ForceCode: map[string]int{"bob": CodeNoService}}, "alice", http.StatusOK, 0},
		{"forced for all", Faults{ForceCode: map[string]int{AllUsers: CodeNoPermission}}, "alice", http.StatusOK, CodeNoPermission},
		{"own entry beats all", Faults{ForceCode: map[string]int{AllUsers: CodeNoPermission, "alice": CodeBadUserID}}, "alice", http.StatusOK, CodeBadUserID},
		{"forced 502", Faults{ForceCode: map[string]int{"alice": 502}}, "alice", http.StatusBadGateway, 0},
		{"forced for unknown user", Faults{ForceCode: map[string]int{"zed": CodeInternal}}, "zed", http.StatusOK, CodeInternal},
		{"outage", Faults{OutageFor: time.Minute}, "alice", http.StatusBadGateway, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.Faults = tt.faults })
			status, b := e.post(t, e.params(), userBody(tt.user))
			if status != tt.status {
				t.Fatalf("HTTP %d, want %d: %s", status, tt.status, b)
			}
			if status != http.StatusOK {
				if json.Valid(b) {
					t.Fatalf("a 502 body is a gateway page, not JSON: %s", b)
				}
				if st := e.srv.Stats(); st.ByCode[http.StatusBadGateway] != 1 {
					t.Fatalf("ByCode %v", st.ByCode)
				}
				return
			}
			var a answer
			if err := json.Unmarshal(b, &a); err != nil {
				t.Fatal(err)
			}
			if a.ErrorCode != tt.code {
				t.Fatalf("ErrorCode %d, want %d", a.ErrorCode, tt.code)
			}
			if st := e.srv.Stats(); st.ByCode[tt.code] != 1 {
				t.Fatalf("ByCode %v", st.ByCode)
			}
		})
	}
}

func TestOutageWindow(t *testing.T) {
	e := newEnv(t, nil)
	if err := e.srv.SetFaults(Faults{OutageFor: 10 * time.Second}); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		advance time.Duration
		status  int
	}{{0, 502}, {9 * time.Second, 502}, {999 * time.Millisecond, 502}, {time.Millisecond, 200}} {
		e.clock.Advance(step.advance)
		if status, _ := e.post(t, e.params(), userBody("alice")); status != step.status {
			t.Fatalf("after +%v: HTTP %d, want %d", step.advance, status, step.status)
		}
	}
}

func TestFaultProbability(t *testing.T) {
	// Seeded dice: the share of failures is near the probability.
	sim, err := New(Config{SDKAppID: testAppID, Admin: testAdmin, SecretKey: testKey, Dataset: testData(t), Rate: -1, Seed: 3,
		Faults: Faults{P502: 0.2, P10004: 0.25}})
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{sig: genSig(t, testAppID, testKey, testAdmin, 3600)}
	target := Path + "?" + e.params().Encode()
	const n = 4000
	for range n {
		sim.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, target, strings.NewReader(userBody("alice"))))
	}
	st := sim.Stats()
	// P502 first, then P10004 on what is left: 0.2 and 0.8*0.25 = 0.2.
	for _, c := range []int{502, CodeInternal} {
		if got := float64(st.ByCode[c]) / n; got < 0.17 || got > 0.23 {
			t.Fatalf("share of %d = %.3f, want about 0.2 (%v)", c, got, st.ByCode)
		}
	}
	if st.ByCode[0]+st.ByCode[502]+st.ByCode[CodeInternal] != n {
		t.Fatalf("ByCode %v", st.ByCode)
	}
}

func TestLatency(t *testing.T) {
	const latency = 30 * time.Millisecond
	e := newEnv(t, func(c *Config) { c.Faults = Faults{Latency: latency, Jitter: 10 * time.Millisecond} })
	start := time.Now()
	if a := e.call(t, userBody("alice")); a.ErrorCode != 0 {
		t.Fatalf("%+v", a)
	}
	if took := time.Since(start); took < latency {
		t.Fatalf("answered in %v, before the %v latency", took, latency)
	}
}

func TestSlowAnswerOutlivesClientTimeout(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Faults = Faults{SlowProbability: 1, SlowDelay: time.Hour} })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.srv.URL()+Path+"?"+e.params().Encode(), strings.NewReader(userBody("alice")))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("answered HTTP %d, want a client timeout", resp.StatusCode)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want a deadline", err)
	}
	// The handler notices the client left and stops waiting.
	testsupport.WaitFor(t, waitLimit, "the abandoned call", func() bool {
		st := e.srv.Stats()
		return st.Abandoned == 1 && st.InFlight == 0
	})
}

func TestFaultsKnobEndpoint(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Faults = Faults{Latency: time.Millisecond} })

	status, b := e.do(t, http.MethodPost, "/faults", `{"P10004":1,"Jitter":"2ms","ForceCode":{"bob":130002}}`)
	if status != http.StatusOK {
		t.Fatalf("HTTP %d %s", status, b)
	}
	want := Faults{Latency: time.Millisecond, Jitter: 2 * time.Millisecond, P10004: 1, ForceCode: map[string]int{"bob": CodeNoPermission}}
	if got := e.srv.Faults(); !equalFaults(got, want) {
		t.Fatalf("faults %+v, want %+v", got, want)
	}
	if a := e.call(t, userBody("alice")); a.ErrorCode != CodeInternal {
		t.Fatalf("ErrorCode %d after POST /faults", a.ErrorCode)
	}

	// GET returns the same faults; a 0 code removes an entry.
	_, b = e.do(t, http.MethodGet, "/faults", "")
	var got Faults
	if err := json.Unmarshal(b, &got); err != nil || !equalFaults(got, want) {
		t.Fatalf("GET /faults %s: %+v %v", b, got, err)
	}
	if status, b := e.do(t, http.MethodPost, "/faults", `{"P10004":0,"ForceCode":{"bob":0}}`); status != http.StatusOK {
		t.Fatalf("HTTP %d %s", status, b)
	}
	if got := e.srv.Faults(); got.P10004 != 0 || got.ForceCode != nil || got.Latency != time.Millisecond {
		t.Fatalf("faults %+v", got)
	}

	for _, bad := range []string{`{"P502":2}`, `{"Latency":"soon"}`, `{"Latency":"-1s"}`, `[`, `{"ForceCode":[1]}`} {
		if status, b := e.do(t, http.MethodPost, "/faults", bad); status != http.StatusBadRequest {
			t.Fatalf("POST /faults %s: HTTP %d %s", bad, status, b)
		}
	}
	if got := e.srv.Faults(); got.Latency != time.Millisecond {
		t.Fatalf("a refused POST changed the faults: %+v", got)
	}
	if err := e.srv.SetFaults(Faults{P20005: -0.1}); err == nil {
		t.Fatal("SetFaults accepted a negative probability")
	}
}

func equalFaults(a, b Faults) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

func TestSetFaultsWhileServing(t *testing.T) {
	e := newEnv(t, nil)
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			_ = e.srv.SetFaults(Faults{P10004: float64(i%2) / 2, ForceCode: map[string]int{"bob": i%3 + 1}})
		}
	})
	for range 50 {
		e.call(t, userBody("alice"))
	}
	cancel()
	wg.Wait()
}

func TestOutageKnob(t *testing.T) {
	e := newEnv(t, nil)
	if status, b := e.do(t, http.MethodPost, "/faults", `{"OutageFor":"10s"}`); status != http.StatusOK || !strings.Contains(string(b), `"OutageFor":"10s"`) {
		t.Fatalf("HTTP %d %s", status, b)
	}
	e.clock.Advance(4 * time.Second)
	if got := e.srv.Faults().OutageFor; got != 6*time.Second {
		t.Fatalf("remaining outage %v", got)
	}
	// Another knob leaves the outage running, without restarting it.
	if status, _ := e.do(t, http.MethodPost, "/faults", `{"P20005":0.5}`); status != http.StatusOK {
		t.Fatal(status)
	}
	if got := e.srv.Faults().OutageFor; got != 6*time.Second {
		t.Fatalf("remaining outage %v after another knob", got)
	}
	e.clock.Advance(6 * time.Second)
	if got := e.srv.Faults().OutageFor; got != 0 {
		t.Fatalf("remaining outage %v after the end", got)
	}
	if status, _ := e.do(t, http.MethodPost, "/faults", `{"P20005":0}`); status != http.StatusOK {
		t.Fatal(status)
	}
	if status, _ := e.post(t, e.params(), userBody("alice")); status != http.StatusOK {
		t.Fatalf("a knob restarted the outage: HTTP %d", status)
	}
	// SetFaults without OutageFor ends an outage.
	if err := e.srv.SetFaults(Faults{OutageFor: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.SetFaults(Faults{}); err != nil {
		t.Fatal(err)
	}
	if status, _ := e.post(t, e.params(), userBody("alice")); status != http.StatusOK {
		t.Fatalf("HTTP %d after SetFaults(Faults{})", status)
	}
}
