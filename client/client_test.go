package client

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tencentyun/tls-sig-api-v2-golang/tencentyun"
)

func TestRequestFollowsSpec(t *testing.T) {
	f := newFake(t, func(int, seenRequest) (int, any) {
		return 200, okBody(1, 1, 0, account("@TOA#_a"))
	})
	cfg := testConfig(f.URL)
	cfg.Filter = &ResponseFilter{OfficialAccountBaseInfoFilter: []string{"Name", "FaceUrl"}, SelfInfoFilter: []string{"SubscribeTime"}}
	c := newTestClient(t, cfg)

	ctx := context.Background()
	if _, err := c.GetPage(ctx, PageRequest{SubscriberAccount: "107867", Offset: 400}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetPage(ctx, PageRequest{SubscriberAccount: "107867", Limit: 10, Filter: &ResponseFilter{}}); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	r := reqs[0]
	if r.Method != http.MethodPost || r.Path != APIPath {
		t.Errorf("%s %s", r.Method, r.Path)
	}
	// Query parameters in the order of the spec.
	var names []string
	for _, kv := range strings.Split(r.RawQuery, "&") {
		names = append(names, strings.SplitN(kv, "=", 2)[0])
	}
	if got := strings.Join(names, ","); got != "sdkappid,identifier,usersig,random,contenttype" {
		t.Errorf("query order = %s", got)
	}
	q := url.Values(r.Query)
	if q.Get("sdkappid") != strconv.Itoa(testAppID) || q.Get("identifier") != testAdmin || q.Get("contenttype") != "json" {
		t.Errorf("query = %v", q)
	}
	if err := tencentyun.VerifyUserSig(testAppID, testSecret, testAdmin, q.Get("usersig"), time.Now()); err != nil {
		t.Errorf("usersig does not verify: %v", err)
	}
	if _, err := strconv.ParseUint(q.Get("random"), 10, 32); err != nil {
		t.Errorf("random %q is not a uint32: %v", q.Get("random"), err)
	}
	if r.CType != "application/json" {
		t.Errorf("Content-Type = %q", r.CType)
	}
	var body map[string]any
	if err := json.Unmarshal(r.RawBody, &body); err != nil {
		t.Fatal(err)
	}
	if body["Subscriber_Account"] != "107867" || body["Limit"] != 200.0 || body["Offset"] != 400.0 {
		t.Errorf("body = %s", r.RawBody)
	}
	rf, _ := body["ResponseFilter"].(map[string]any)
	if rf == nil || len(rf["OfficialAccountBaseInfoFilter"].([]any)) != 2 || len(rf["SelfInfoFilter"].([]any)) != 1 {
		t.Errorf("ResponseFilter = %v", body["ResponseFilter"])
	}
	// Second request: explicit limit, empty filter = all fields = absent.
	var body2 map[string]any
	_ = json.Unmarshal(reqs[1].RawBody, &body2)
	if body2["Limit"] != 10.0 || body2["Offset"] != 0.0 {
		t.Errorf("body2 = %s", reqs[1].RawBody)
	}
	if _, ok := body2["ResponseFilter"]; ok {
		t.Errorf("empty filter sent: %s", reqs[1].RawBody)
	}
}

func TestRandomIsFreshPerRequest(t *testing.T) {
	f := newFake(t, func(int, seenRequest) (int, any) { return 200, okBody(0, 1, 0) })
	c := newTestClient(t, testConfig(f.URL))
	for range 50 {
		if _, err := c.GetPage(context.Background(), PageRequest{SubscriberAccount: "u"}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	var high bool
	for _, r := range f.requests() {
		v := url.Values(r.Query).Get("random")
		seen[v] = true
		n, _ := strconv.ParseUint(v, 10, 64)
		high = high || n > 1<<31
	}
	// 50 uniform uint32 draws: a repeat has probability ~3e-7, and all
	// below 2^31 has probability 2^-50.
	if len(seen) != 50 || !high {
		t.Errorf("random values not fresh/uniform: %d distinct, any above 2^31: %v", len(seen), high)
	}
}

func TestGetPageRejectsBadRequests(t *testing.T) {
	f := newFake(t, func(int, seenRequest) (int, any) { return 200, okBody(0, 1, 0) })
	c := newTestClient(t, testConfig(f.URL))
	tests := []PageRequest{
		{SubscriberAccount: ""},
		{SubscriberAccount: "u", Limit: 201},
		{SubscriberAccount: "u", Limit: -1},
		{SubscriberAccount: "u", Filter: &ResponseFilter{SelfInfoFilter: []string{"Bogus"}}},
	}
	for _, req := range tests {
		_, err := c.GetPage(context.Background(), req)
		if !errors.Is(err, ErrInvalidRequest) || Classify(err) != ClassPermanent {
			t.Errorf("GetPage(%+v) = %v", req, err)
		}
	}
	if f.calls() != 0 {
		t.Errorf("invalid requests reached the server %d times", f.calls())
	}
}

// TestErrorBodiesAreNeverData: an HTTP 200 answer with an ErrorCode is an
// error for every code in the reference table, never a page.
func TestErrorBodiesAreNeverData(t *testing.T) {
	for code := range codeRules {
		if code == 0 {
			continue
		}
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			f := newFake(t, func(int, seenRequest) (int, any) { return 200, errBody(code) })
			cfg := testConfig(f.URL)
			cfg.MaxAttempts = 3
			c := newTestClient(t, cfg)
			c.lim.recoverPerSec = 1e12 // keep this test quick after throttling answers
			c.bo.base, c.bo.max = time.Microsecond, time.Microsecond
			p, err := c.GetPage(context.Background(), PageRequest{SubscriberAccount: "u"})
			if p != nil || err == nil {
				t.Fatalf("GetPage = %+v, %v", p, err)
			}
			var apiErr *APIError
			if !errors.As(err, &apiErr) || apiErr.Code != code || apiErr.HTTPStatus != 200 || apiErr.Attempt < 1 {
				t.Fatalf("err = %v", err)
			}
			wantCalls := 1
			switch cl := CodeClass(code); {
			case cl == ClassResign || code == CodeResponseJSONError:
				wantCalls = 2 // one corrective retry, then fatal
				if code == CodeSigCheckRateLimited {
					wantCalls = 1 // 70050 pauses all calls instead (see Test70050PausesThenFatal)
				} else if Classify(err) != ClassFatal {
					t.Errorf("repeated %d classified %s, want fatal", code, Classify(err))
				}
			case cl.Retryable():
				wantCalls = cfg.MaxAttempts
			}
			if f.calls() != wantCalls {
				t.Errorf("calls = %d, want %d", f.calls(), wantCalls)
			}
		})
	}
}

func TestTransportErrorRedactsURL(t *testing.T) {
	// A port that refuses connections.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	cfg := testConfig("http://" + addr)
	cfg.MaxAttempts = 2
	c := newTestClient(t, cfg)
	sig, _ := c.sig.get()
	_, err = c.GetPage(context.Background(), PageRequest{SubscriberAccount: "u"})
	var te *TransportError
	if !errors.As(err, &te) || Classify(err) != ClassTransient {
		t.Fatalf("err = %v", err)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		t.Error("*url.Error (which carries the URL) leaked")
	}
	if strings.Contains(err.Error(), sig) || strings.Contains(err.Error(), testSecret) {
		t.Errorf("error text leaks credentials: %s", err)
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	var followed bool
	target := newFake(t, func(int, seenRequest) (int, any) { followed = true; return 200, okBody(0, 1, 0) })
	f := newFake(t, func(int, seenRequest) (int, any) { return 0, nil })
	f.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+r.URL.RequestURI(), http.StatusTemporaryRedirect)
	})
	c := newTestClient(t, testConfig(f.URL))
	_, err := c.GetPage(context.Background(), PageRequest{SubscriberAccount: "u"})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatus != http.StatusTemporaryRedirect || Classify(err) != ClassFatal {
		t.Fatalf("err = %v", err)
	}
	if followed {
		t.Error("redirect followed: the UserSig went to another URL")
	}
}

func TestClosedClient(t *testing.T) {
	f := newFake(t, func(int, seenRequest) (int, any) { return 200, okBody(0, 1, 0) })
	c := newTestClient(t, testConfig(f.URL))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetAll(context.Background(), "u"); !errors.Is(err, ErrClosed) || Classify(err) != ClassCanceled {
		t.Errorf("GetAll after Close = %v", err)
	}
}

func TestCustomHTTPClientIsUsedNotModified(t *testing.T) {
	f := newFake(t, func(int, seenRequest) (int, any) { return 200, okBody(0, 1, 0) })
	var used bool
	hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		used = true
		return http.DefaultTransport.RoundTrip(r)
	})}
	cfg := testConfig(f.URL)
	cfg.HTTPClient = hc
	c := newTestClient(t, cfg)
	if _, err := c.GetPage(context.Background(), PageRequest{SubscriberAccount: "u"}); err != nil {
		t.Fatal(err)
	}
	if !used || hc.CheckRedirect != nil {
		t.Errorf("used=%v, caller's client modified=%v", used, hc.CheckRedirect != nil)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
