package main

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tencentchat-enricher/enricher/internal/testsupport"
	"github.com/tencentchat-enricher/enricher/processor/webhook"
)

// TestRunWebhooks: `run --webhook-addr` serves the receiver on its own
// listener: a forged webhook is refused, a signed one accepted, both
// counted on /metrics.
func TestRunWebhooks(t *testing.T) {
	st := newRunStack(t, 40, 10)
	httpAddr, hookAddr := freeAddr(t), freeAddr(t)
	st.env(t, httpAddr)
	for k, v := range map[string]string{
		"ENRICHER_LOG_LEVEL": "warn", "ENRICHER_WEBHOOK_ADDR": hookAddr, envWebhookToken: "tok",
		"ENRICHER_CACHE_TTL": "24h", "ENRICHER_CACHE_REFRESH_AFTER": "1h",
	} {
		t.Setenv(k, v)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var out, errb testsupport.SyncBuffer
	go func() { done <- run(ctx, []string{"enricher", "run"}, &out, &errb) }()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("run: exit %d: %s", code, errb.String())
		}
	}()
	post := func(sign string) int {
		rt := strconv.FormatInt(time.Now().Unix(), 10)
		if sign == "" {
			sign = webhook.Sign("tok", rt)
		}
		q := url.Values{"SdkAppid": {"1400000001"}, "CallbackCommand": {webhook.CommandDelete}, "contenttype": {"json"},
			"RequestTime": {rt}, "Sign": {sign}}
		body := `{"CallbackCommand":"` + webhook.CommandDelete + `","Official_Account":"@TOA#_oa-1",` +
			`"SubscribeAccountList":[{"Subscriber_Account":"user-1"}],"EventTime":` + strconv.FormatInt(time.Now().UnixMilli(), 10) + `}`
		resp, err := http.Post("http://"+hookAddr+webhookPath+"?"+q.Encode(), "application/json", strings.NewReader(body))
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	testsupport.WaitFor(t, 60*time.Second, "the webhook receiver answering", func() bool { return post("") == http.StatusOK })
	if code := post(strings.Repeat("0", 64)); code != http.StatusUnauthorized {
		t.Fatalf("forged webhook: %d, want 401", code)
	}
	testsupport.WaitFor(t, 30*time.Second, "webhook outcomes on /metrics", func() bool {
		code, b, err := httpGet("http://" + httpAddr + "/metrics")
		return err == nil && code == 200 && strings.Contains(b, `webhook_outcome="bad_sign"`) && strings.Contains(b, `webhook_outcome="accepted"`)
	})
	if code, _, _ := httpGet("http://" + httpAddr + webhookPath); code != http.StatusNotFound {
		t.Fatalf("the ops port serves the webhook path: %d", code)
	}
}
