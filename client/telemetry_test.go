package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"

	"github.com/tencentyun/tls-sig-api-v2-golang/tencentyun"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/tencentchat-enricher/enricher/internal/testsupport"
)

type telemetryHarness struct {
	spans  *tracetest.SpanRecorder
	reader *sdkmetric.ManualReader
	logs   *testsupport.SyncBuffer
}

func newHarness(cfg *Config) *telemetryHarness {
	h := &telemetryHarness{spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader(), logs: &testsupport.SyncBuffer{}}
	cfg.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(h.spans))
	cfg.MeterProvider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(h.reader))
	cfg.Logger = slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return h
}

func (h *telemetryHarness) metrics(t *testing.T) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := h.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

// spanText flattens everything a span exporter could record.
func spanText(s sdktrace.ReadOnlySpan) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s ", s.Name(), s.Status().Code, s.Status().Description)
	for _, a := range s.Attributes() {
		fmt.Fprintf(&b, "%s=%s ", a.Key, a.Value.String())
	}
	for _, e := range s.Events() {
		fmt.Fprintf(&b, "%s ", e.Name)
		for _, a := range e.Attributes {
			fmt.Fprintf(&b, "%s=%s ", a.Key, a.Value.String())
		}
	}
	return b.String()
}

func attrOf(s sdktrace.ReadOnlySpan, k attribute.Key) (attribute.Value, bool) {
	for _, a := range s.Attributes() {
		if a.Key == k {
			return a.Value, true
		}
	}
	return attribute.Value{}, false
}

// TestTelemetry walks a three-page list where the second page first fails
// with 10004 (echoing the request URL, as a misbehaving proxy might) and
// the third page's first UserSig is rejected with 70001.
func TestTelemetry(t *testing.T) {
	var sigs []string
	f := newFake(t, func(n int, r seenRequest) (int, any) {
		sig := url.Values(r.Query).Get("usersig")
		sigs = append(sigs, sig)
		switch {
		case r.Body.Offset == 1 && n == 2:
			return 200, map[string]any{"ActionStatus": "FAIL", "ErrorCode": CodeInternalError,
				"ErrorInfo": "internal error for " + r.Path + "?" + r.RawQuery}
		case r.Body.Offset == 2 && n == 4:
			return 200, errBody(CodeUserSigExpired)
		case r.Body.Offset < 2:
			return 200, okBody(3, 0, r.Body.Offset+1, account("@TOA#_a"))
		}
		return 200, okBody(3, 1, 0, account("@TOA#_c"))
	})
	cfg := testConfig(f.URL)
	h := newHarness(&cfg)
	c := newTestClient(t, cfg)
	c.sig.gen = func(appID int, key, id string, exp int) (string, error) {
		// Real signatures, made distinct per generation.
		s, err := tencentyun.GenUserSig(appID, key, id, exp)
		return s + fmt.Sprint(len(sigs)), err
	}

	subs, err := c.GetAll(context.Background(), "107867")
	if err != nil {
		t.Fatal(err)
	}
	if subs.Pages != 3 || f.calls() != 5 {
		t.Fatalf("pages %d calls %d", subs.Pages, f.calls())
	}

	spans := h.spans.Ended()
	byName := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byName[s.Name()] = append(byName[s.Name()], s)
	}
	if len(byName[spanGetAll]) != 1 || len(byName[spanGetPage]) != 3 || len(byName[spanAttempt]) != 5 {
		t.Fatalf("spans: all %d, pages %d, attempts %d", len(byName[spanGetAll]), len(byName[spanGetPage]), len(byName[spanAttempt]))
	}
	root := byName[spanGetAll][0]
	pageIDs := map[string]int{}
	for _, p := range byName[spanGetPage] {
		if p.Parent().SpanID() != root.SpanContext().SpanID() {
			t.Errorf("page span not a child of the GetAll span")
		}
		v, _ := attrOf(p, attrPage)
		pageIDs[p.SpanContext().SpanID().String()] = int(v.AsInt64())
	}
	type att struct{ page, attempt, code int64 }
	var got []att
	for _, a := range byName[spanAttempt] {
		page, ok := pageIDs[a.Parent().SpanID().String()]
		if !ok {
			t.Errorf("attempt span not a child of a page span")
		}
		n, _ := attrOf(a, attrAttempt)
		code, _ := attrOf(a, attrErrorCode)
		if v, ok := attrOf(a, attrBreaker); !ok || v.AsString() != "closed" {
			t.Errorf("attempt span breaker state = %v", v.AsString())
		}
		if _, ok := attrOf(a, attrLimiterWait); !ok {
			t.Errorf("attempt span has no limiter wait")
		}
		got = append(got, att{int64(page), n.AsInt64(), code.AsInt64()})
	}
	want := map[att]bool{{1, 1, 0}: true, {2, 1, 10004}: true, {2, 2, 0}: true, {3, 1, 70001}: true, {3, 2, 0}: true}
	for _, g := range got {
		if !want[g] {
			t.Errorf("unexpected attempt span %+v (want %v)", g, want)
		}
		delete(want, g)
	}
	if len(want) != 0 {
		t.Errorf("missing attempt spans %v", want)
	}

	// Metrics.
	ms := h.metrics(t)
	calls, ok := ms[metricCalls].Data.(metricdata.Sum[int64])
	if !ok {
		t.Fatalf("no %s metric", metricCalls)
	}
	outcomes := map[string]int64{}
	for _, dp := range calls.DataPoints {
		v, _ := dp.Attributes.Value(attrOutcome)
		outcomes[v.AsString()] += dp.Value
	}
	if outcomes["ok"] != 3 || outcomes["10004"] != 1 || outcomes["70001"] != 1 {
		t.Errorf("calls by outcome = %v", outcomes)
	}
	for _, name := range []string{metricLatency, metricWait} {
		hist, ok := ms[name].Data.(metricdata.Histogram[float64])
		var n uint64
		for _, dp := range hist.DataPoints {
			n += dp.Count
		}
		if !ok || n != 5 {
			t.Errorf("%s: %d observations", name, n)
		}
	}
	if g, ok := ms[metricBreaker].Data.(metricdata.Gauge[int64]); !ok || len(g.DataPoints) == 0 || g.DataPoints[0].Value != 0 {
		t.Errorf("breaker state gauge = %+v", ms[metricBreaker].Data)
	}
	if _, ok := ms[metricRate].Data.(metricdata.Gauge[float64]); !ok {
		t.Errorf("no rate gauge")
	}
	if r, ok := ms[metricRenewals].Data.(metricdata.Sum[int64]); !ok || len(r.DataPoints) != 2 {
		t.Errorf("renewals = %+v", ms[metricRenewals].Data)
	}

	// No credentials anywhere a recorder could see them.
	if len(sigs) == 0 || sigs[0] == sigs[len(sigs)-1] {
		t.Fatal("test did not see two distinct signatures")
	}
	var recorded []string
	for _, s := range spans {
		recorded = append(recorded, spanText(s))
	}
	for _, m := range ms {
		recorded = append(recorded, fmt.Sprintf("%+v", m))
	}
	recorded = append(recorded, h.logs.String())
	assertNoSecrets(t, strings.Join(recorded, "\n"), sigs)
	if !strings.Contains(h.logs.String(), "reason=rejected") {
		t.Errorf("re-sign not logged:\n%s", h.logs.String())
	}
}

// TestTelemetryErrorsCarryNoSecrets: error answers that echo the URL,
// transport failures and fatal answers never leak the key or UserSig into
// errors, spans or logs.
func TestTelemetryErrorsCarryNoSecrets(t *testing.T) {
	var sigs []string
	f := newFake(t, func(n int, r seenRequest) (int, any) {
		sigs = append(sigs, url.Values(r.Query).Get("usersig"))
		echo := r.Path + "?" + r.RawQuery
		switch n % 3 {
		case 0:
			return 502, "<html>upstream " + echo + "</html>"
		case 1:
			return 200, map[string]any{"ActionStatus": "FAIL", "ErrorCode": CodeNoPermission, "ErrorInfo": "denied " + echo}
		}
		return 200, map[string]any{"ActionStatus": "FAIL", "ErrorCode": CodeSigVerifyFailed, "ErrorInfo": "bad sig " + echo}
	})
	cfg := testConfig(f.URL)
	cfg.MaxAttempts = 2
	h := newHarness(&cfg)
	c := newTestClient(t, cfg)
	var errs []string
	for range 6 {
		_, err := c.GetAll(context.Background(), "u")
		if err == nil {
			t.Fatal("want an error")
		}
		errs = append(errs, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", errors.Unwrap(err)))
	}
	// Plus a transport error against a closed server.
	f.Close()
	_, err := c.GetPage(context.Background(), PageRequest{SubscriberAccount: "u"})
	if Classify(err) != ClassTransient {
		t.Fatalf("closed server: %v", err)
	}
	errs = append(errs, err.Error())

	var recorded []string
	for _, s := range h.spans.Ended() {
		recorded = append(recorded, spanText(s))
	}
	recorded = append(recorded, h.logs.String())
	recorded = append(recorded, errs...)
	if len(sigs) == 0 {
		t.Fatal("no calls")
	}
	assertNoSecrets(t, strings.Join(recorded, "\n"), sigs)
}

func assertNoSecrets(t *testing.T, text string, sigs []string) {
	t.Helper()
	if strings.Contains(text, testSecret) {
		t.Errorf("secret key recorded")
	}
	for _, s := range sigs {
		if s == "" {
			continue
		}
		if strings.Contains(text, s) || strings.Contains(text, url.QueryEscape(s)) {
			t.Errorf("UserSig recorded")
			return
		}
	}
}
