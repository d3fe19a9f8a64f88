package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/tencentchat-enricher/enricher/processor"
	"github.com/tencentchat-enricher/enricher/processor/webhook"
	"github.com/tencentchat-enricher/enricher/schemas"
)

const (
	appID = 1400000001
	token = "webhook-test-token"
)

// recorder is an Applier and a Writer that keep what they were given.
type recorder struct {
	mu      sync.Mutex
	changes []processor.Change
	msgs    []kafka.Message
	outcome processor.ChangeOutcome
}

func (r *recorder) ApplyChange(_ context.Context, c processor.Change) ([]processor.ChangeOutcome, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.changes = append(r.changes, c)
	out := make([]processor.ChangeOutcome, len(c.Users))
	for i := range out {
		out[i] = r.outcome
	}
	return out, nil
}

func (r *recorder) WriteMessages(_ context.Context, msgs ...kafka.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, msgs...)
	return nil
}

var now = time.Unix(1670574500, 0)

func addBody(command string) string {
	return `{"CallbackCommand":"` + command + `","Official_Account":"@TOA#_example","Operator_Account":"107867",` +
		`"SubscribeAccountList":[{"Subscriber_Account":"jared"},{"Subscriber_Account":"leckie"}],"EventTime":1670574414123}`
}

// query is a webhook URL's query as Tencent sends it, signed at t.
func query(app int, command string, t time.Time, sign string) url.Values {
	q := url.Values{"SdkAppid": {strconv.Itoa(app)}, "CallbackCommand": {command}, "contenttype": {"json"},
		"ClientIP": {"10.0.0.1"}, "OptPlatform": {"RESTAPI"}}
	rt := strconv.FormatInt(t.Unix(), 10)
	q.Set("RequestTime", rt)
	if sign == "" {
		sign = webhook.Sign(token, rt)
	}
	q.Set("Sign", sign)
	return q
}

func newReceiver(t *testing.T, tok string) (*httptest.Server, *recorder, *metric.ManualReader, *tracetest.SpanRecorder) {
	t.Helper()
	rec := &recorder{outcome: processor.ChangePatched}
	reader := metric.NewManualReader()
	spans := tracetest.NewSpanRecorder()
	r, err := webhook.New(webhook.Config{
		SDKAppID: appID, Token: tok, Applier: rec, Changes: rec, MaxBodyBytes: 4096,
		Logger:         slog.New(slog.DiscardHandler),
		MeterProvider:  metric.NewMeterProvider(metric.WithReader(reader)),
		TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)),
		Now:            func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv, rec, reader, spans
}

func post(t *testing.T, srv *httptest.Server, method string, q url.Values, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+"/im/callback?"+q.Encode(), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// outcomes reads the requests counter by outcome.
func outcomes(t *testing.T, reader *metric.ManualReader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != webhook.MetricRequests {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				o, _ := dp.Attributes.Value("webhook.outcome")
				out[o.AsString()] += dp.Value
			}
		}
	}
	return out
}

// TestForgedRequests: every malformed or foreign request is refused with a
// 4xx and counted by reason, and applies nothing; a genuine one is applied,
// answered as Tencent expects, and written to the changes topic.
func TestForgedRequests(t *testing.T) {
	srv, rec, reader, spans := newReceiver(t, token)
	huge := `{"CallbackCommand":"` + webhook.CommandAdd + `","Official_Account":"@TOA#_x","SubscribeAccountList":[` +
		strings.Repeat(`{"Subscriber_Account":"u"},`, 200) + `{"Subscriber_Account":"u"}],"EventTime":1}`
	cases := []struct {
		name   string
		method string
		q      url.Values
		body   string
		status int
		reason string
	}{
		{"GET", http.MethodGet, query(appID, webhook.CommandAdd, now, ""), "", 405, webhook.ReasonMethod},
		{"no SdkAppid", http.MethodPost, func() url.Values { q := query(appID, webhook.CommandAdd, now, ""); q.Del("SdkAppid"); return q }(), addBody(webhook.CommandAdd), 400, webhook.ReasonBadQuery},
		{"no command", http.MethodPost, query(appID, "", now, ""), addBody(webhook.CommandAdd), 400, webhook.ReasonBadQuery},
		{"wrong SdkAppid", http.MethodPost, query(appID+1, webhook.CommandAdd, now, ""), addBody(webhook.CommandAdd), 403, webhook.ReasonForeignApp},
		{"bad token", http.MethodPost, query(appID, webhook.CommandAdd, now, webhook.Sign("other-token", strconv.FormatInt(now.Unix(), 10))), addBody(webhook.CommandAdd), 401, webhook.ReasonBadSign},
		{"no Sign", http.MethodPost, func() url.Values { q := query(appID, webhook.CommandAdd, now, ""); q.Del("Sign"); return q }(), addBody(webhook.CommandAdd), 401, webhook.ReasonBadSign},
		{"Sign of another time", http.MethodPost, func() url.Values {
			q := query(appID, webhook.CommandAdd, now, "")
			q.Set("RequestTime", strconv.FormatInt(now.Unix()-1, 10))
			return q
		}(), addBody(webhook.CommandAdd), 401, webhook.ReasonBadSign},
		{"stale RequestTime", http.MethodPost, query(appID, webhook.CommandAdd, now.Add(-6*time.Minute), ""), addBody(webhook.CommandAdd), 401, webhook.ReasonStaleTime},
		{"future RequestTime", http.MethodPost, query(appID, webhook.CommandAdd, now.Add(6*time.Minute), ""), addBody(webhook.CommandAdd), 401, webhook.ReasonStaleTime},
		{"oversized body", http.MethodPost, query(appID, webhook.CommandAdd, now, ""), huge, 413, webhook.ReasonTooLarge},
		{"bad JSON", http.MethodPost, query(appID, webhook.CommandAdd, now, ""), `{"CallbackCommand":`, 400, webhook.ReasonBadJSON},
		{"JSON of another type", http.MethodPost, query(appID, webhook.CommandAdd, now, ""), `[1,2]`, 400, webhook.ReasonBadJSON},
		{"command mismatch", http.MethodPost, query(appID, webhook.CommandAdd, now, ""), addBody(webhook.CommandDelete), 400, webhook.ReasonBadBody},
		{"no subscribers", http.MethodPost, query(appID, webhook.CommandAdd, now, ""), `{"CallbackCommand":"` + webhook.CommandAdd + `","Official_Account":"@TOA#_x","EventTime":1}`, 400, webhook.ReasonBadBody},
		{"no EventTime", http.MethodPost, query(appID, webhook.CommandAdd, now, ""), `{"CallbackCommand":"` + webhook.CommandAdd + `","Official_Account":"@TOA#_x","SubscribeAccountList":[{"Subscriber_Account":"u"}]}`, 400, webhook.ReasonBadBody},
		{"empty subscriber", http.MethodPost, query(appID, webhook.CommandAdd, now, ""), `{"CallbackCommand":"` + webhook.CommandAdd + `","Official_Account":"@TOA#_x","SubscribeAccountList":[{"Subscriber_Account":""}],"EventTime":1}`, 400, webhook.ReasonBadBody},
	}
	want := map[string]int64{}
	for _, c := range cases {
		status, body := post(t, srv, c.method, c.q, c.body)
		if status != c.status || !strings.Contains(body, c.reason) {
			t.Errorf("%s: %d %s; want %d naming %s", c.name, status, body, c.status, c.reason)
		}
		want[c.reason]++
	}
	if len(rec.changes) != 0 || len(rec.msgs) != 0 {
		t.Fatalf("forged requests applied %d changes, wrote %d records", len(rec.changes), len(rec.msgs))
	}

	// Another command is answered OK and applies nothing.
	if status, body := post(t, srv, http.MethodPost, query(appID, "State.StateChange", now, ""), `{}`); status != 200 || body != `{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0}` {
		t.Fatalf("other command: %d %s", status, body)
	}
	want["ignored"]++
	if len(rec.changes) != 0 {
		t.Fatal("another command applied a change")
	}

	// The genuine webhook.
	status, body := post(t, srv, http.MethodPost, query(appID, webhook.CommandAdd, now, ""), addBody(webhook.CommandAdd))
	if status != 200 || body != `{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0}` {
		t.Fatalf("genuine webhook: %d %s", status, body)
	}
	want["accepted"]++
	if len(rec.changes) != 1 {
		t.Fatalf("%d changes applied, want 1", len(rec.changes))
	}
	c := rec.changes[0]
	if c.Account != "@TOA#_example" || !c.Subscribed || !c.EventTime.Equal(time.UnixMilli(1670574414123)) || strings.Join(c.Users, ",") != "jared,leckie" {
		t.Fatalf("change %+v", c)
	}
	v, err := schemas.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.msgs) != 2 {
		t.Fatalf("%d change records, want 2", len(rec.msgs))
	}
	for i, m := range rec.msgs {
		if err := v.ValidateChange(m.Value); err != nil {
			t.Fatalf("change record %s: %v", m.Value, err)
		}
		var sc schemas.SubscriptionChange
		_ = json.Unmarshal(m.Value, &sc)
		if string(m.Key) != c.Users[i] || sc.UserID != c.Users[i] || sc.Change != schemas.ChangeSubscribed || sc.OperatorAccount != "107867" {
			t.Fatalf("change record key %s: %+v", m.Key, sc)
		}
	}

	got := outcomes(t, reader)
	for k, n := range want {
		if got[k] != n {
			t.Errorf("outcome %s counted %d, want %d (all: %v)", k, got[k], n, got)
		}
	}
	var named bool
	for _, s := range spans.Ended() {
		if s.Name() == "webhook "+webhook.CommandAdd {
			named = true
		}
	}
	if !named {
		t.Error("no span named after the command")
	}
}

// TestNoToken: without a token, RequestTime and Sign are not required; a
// duplicate (ignored by the cache) writes no change record.
func TestNoToken(t *testing.T) {
	srv, rec, _, _ := newReceiver(t, "")
	q := query(appID, webhook.CommandDelete, now, "")
	q.Del("Sign")
	q.Del("RequestTime")
	rec.outcome = processor.ChangeIgnored
	if status, _ := post(t, srv, http.MethodPost, q, addBody(webhook.CommandDelete)); status != 200 {
		t.Fatalf("status %d", status)
	}
	if len(rec.changes) != 1 || rec.changes[0].Subscribed {
		t.Fatalf("changes %+v", rec.changes)
	}
	if len(rec.msgs) != 0 {
		t.Fatalf("%d records for an ignored change", len(rec.msgs))
	}
}

// FuzzReceiver: no body crashes the receiver, and what it accepts names
// an account and at least one user.
func FuzzReceiver(f *testing.F) {
	f.Add([]byte(addBody(webhook.CommandAdd)))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"CallbackCommand":"` + webhook.CommandAdd + `","SubscribeAccountList":null}`))
	rec := &recorder{}
	r, err := webhook.New(webhook.Config{SDKAppID: appID, Applier: rec, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		q := query(appID, webhook.CommandAdd, time.Now(), "")
		req := httptest.NewRequest(http.MethodPost, "/?"+q.Encode(), bytes.NewReader(b))
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		if w.Code == 200 {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			last := rec.changes[len(rec.changes)-1]
			if last.Account == "" || len(last.Users) == 0 {
				t.Fatalf("accepted %s as %+v", b, last)
			}
		}
	})
}
