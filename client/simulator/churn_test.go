package simulator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tencentchat-enricher/enricher/internal/testsupport"
)

// hookCall is one webhook call the test's receiver got.
type hookCall struct {
	query url.Values
	body  map[string]any
}

func hookServer(t *testing.T, status int) (*httptest.Server, func() []hookCall) {
	t.Helper()
	var mu sync.Mutex
	var calls []hookCall
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		mu.Lock()
		calls = append(calls, hookCall{r.URL.Query(), m})
		mu.Unlock()
		w.WriteHeader(status)
		_, _ = io.WriteString(w, `{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0}`)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []hookCall {
		mu.Lock()
		defer mu.Unlock()
		return append([]hookCall(nil), calls...)
	}
}

func accountsOf(subs []Subscription) string {
	var ids []string
	for _, s := range subs {
		ids = append(ids, s.OfficialAccount)
	}
	return strings.Join(ids, ",")
}

// TestSubscribeUnsubscribe: a change is served by the API at once and
// reported to the webhook as Tencent does (query, body, signature);
// repeats and unknown names change nothing.
func TestSubscribeUnsubscribe(t *testing.T) {
	hook, calls := hookServer(t, http.StatusOK)
	e := newEnv(t, func(c *Config) { c.Webhook = Webhook{URL: hook.URL + "/cb?x=1", Token: "tok"} })
	sim := e.srv.Simulator
	ctx := context.Background()

	if changed, err := sim.Unsubscribe(ctx, "alice", "@TOA#_music"); !changed || err != nil {
		t.Fatalf("unsubscribe: %v, %v", changed, err)
	}
	if changed, err := sim.Subscribe(ctx, "bob", "@TOA#_news"); !changed || err != nil {
		t.Fatalf("subscribe: %v, %v", changed, err)
	}
	if changed, err := sim.Subscribe(ctx, "bob", "@TOA#_news"); changed || err != nil {
		t.Fatalf("repeat: %v, %v", changed, err)
	}
	if _, err := sim.Subscribe(ctx, "carol", "@TOA#_news"); err != ErrUnknown {
		t.Fatalf("unknown user: %v", err)
	}
	if _, err := sim.Subscribe(ctx, "bob", "@TOA#_nope"); err != ErrUnknown {
		t.Fatalf("unknown account: %v", err)
	}
	if got := accountsOf(sim.Subscriptions("alice")); got != "@TOA#_news,@TOA#_sport" {
		t.Fatalf("alice: %s", got)
	}
	// The API serves the change.
	status, b := e.post(t, e.params(), `{"Subscriber_Account":"bob"}`)
	var a answer
	if err := json.Unmarshal(b, &a); status != 200 || err != nil || a.TotalCount != 1 || a.OfficialAccountInfoList[0]["Official_Account"] != "@TOA#_news" {
		t.Fatalf("bob's answer: %d %s", status, b)
	}

	cs := calls()
	if len(cs) != 2 {
		t.Fatalf("%d webhook calls, want 2", len(cs))
	}
	for i, want := range []struct{ command, account, user string }{
		{CommandDeleteSubscriber, "@TOA#_music", "alice"}, {CommandAddSubscriber, "@TOA#_news", "bob"},
	} {
		q, body := cs[i].query, cs[i].body
		if q.Get("SdkAppid") != strconv.Itoa(testAppID) || q.Get("CallbackCommand") != want.command || q.Get("contenttype") != "json" || q.Get("x") != "1" {
			t.Fatalf("call %d query %v", i, q)
		}
		h := sha256.Sum256([]byte("tok" + q.Get("RequestTime")))
		if q.Get("Sign") != hex.EncodeToString(h[:]) {
			t.Fatalf("call %d: Sign %q does not sign RequestTime %q", i, q.Get("Sign"), q.Get("RequestTime"))
		}
		list, _ := body["SubscribeAccountList"].([]any)
		if body["CallbackCommand"] != want.command || body["Official_Account"] != want.account || len(list) != 1 ||
			list[0].(map[string]any)["Subscriber_Account"] != want.user {
			t.Fatalf("call %d body %v", i, body)
		}
	}
	if cs[1].body["EventTime"].(float64) <= cs[0].body["EventTime"].(float64) {
		t.Fatal("event times do not increase")
	}
	if st := sim.WebhookStats(); st.Sent != 2 || st.Failed != 0 {
		t.Fatalf("webhook stats %+v", st)
	}
}

// TestSubscriptionsEndpoint: POST /subscriptions changes a list; a webhook
// that fails is reported in the answer and counted.
func TestSubscriptionsEndpoint(t *testing.T) {
	hook, _ := hookServer(t, http.StatusForbidden)
	e := newEnv(t, func(c *Config) { c.Webhook = Webhook{URL: hook.URL} })
	post := func(body string) (int, map[string]any) {
		resp, err := http.Post(e.srv.URL()+"/subscriptions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	status, m := post(`{"user":"alice","account":"@TOA#_news","subscribed":false}`)
	if status != 200 || m["changed"] != true || !strings.Contains(m["webhook"].(string), "403") {
		t.Fatalf("%d %v", status, m)
	}
	if got := accountsOf(e.srv.Subscriptions("alice")); got != "@TOA#_music,@TOA#_sport" {
		t.Fatalf("alice: %s", got)
	}
	if status, _ := post(`{"user":"nobody","account":"@TOA#_news","subscribed":true}`); status != 404 {
		t.Fatalf("unknown user: %d", status)
	}
	if status, _ := post(`not json`); status != 400 {
		t.Fatalf("bad body: %d", status)
	}
	if st := e.srv.WebhookStats(); st.Failed != 1 {
		t.Fatalf("webhook stats %+v", st)
	}
}

// TestRunChurn: churn changes about the asked share of users a minute,
// each reported to the webhook.
func TestRunChurn(t *testing.T) {
	hook, calls := hookServer(t, http.StatusOK)
	sim, err := New(Config{SDKAppID: testAppID, Admin: testAdmin, SecretKey: testKey, Rate: -1,
		Dataset: Generate(GenConfig{Users: 1000, Seed: 3}), Webhook: Webhook{URL: hook.URL}, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	// 60% of 1000 users a minute: 10 changes a second.
	go func() { done <- sim.RunChurn(ctx, 0.6, 1000) }()
	testsupport.WaitFor(t, 20*time.Second, "20 changes", func() bool {
		st := sim.ChurnStats()
		return st.Subscribed+st.Unsubscribed >= 20
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st := sim.ChurnStats()
	if st.Subscribed == 0 || st.Unsubscribed == 0 {
		t.Fatalf("churn %+v: want both kinds", st)
	}
	// Every change calls the webhook; the cancel may abort the last call,
	// before or after the receiver saw it.
	wh := sim.WebhookStats()
	if wh.Sent+wh.Failed != st.Subscribed+st.Unsubscribed || wh.Failed > 1 {
		t.Fatalf("webhooks %+v for %d changes", wh, st.Subscribed+st.Unsubscribed)
	}
	if n := int64(len(calls())); n < wh.Sent || n > wh.Sent+wh.Failed {
		t.Fatalf("%d webhook calls received, %+v sent", n, wh)
	}
}
