package client

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
)

// instrumentationName names the tracer and meter of this package.
const instrumentationName = "github.com/tencentchat-enricher/enricher/client"

// Span and metric attribute keys. None of them ever carries the secret key
// or the UserSig; the subscriber account is not recorded either.
const (
	attrErrorCode    = attribute.Key("tencentchat.error_code")
	attrClass        = attribute.Key("tencentchat.class")
	attrHTTPStatus   = attribute.Key("http.response.status_code")
	attrPage         = attribute.Key("tencentchat.page")
	attrOffset       = attribute.Key("tencentchat.offset")
	attrAttempt      = attribute.Key("tencentchat.attempt")
	attrBreaker      = attribute.Key("tencentchat.breaker.state")
	attrLimiterWait  = attribute.Key("tencentchat.limiter.wait_ms")
	attrAccounts     = attribute.Key("tencentchat.accounts")
	attrPages        = attribute.Key("tencentchat.pages")
	attrComplete     = attribute.Key("tencentchat.complete_flag")
	attrRenewReason  = attribute.Key("tencentchat.usersig.reason")
	attrBreakerTo    = attribute.Key("tencentchat.breaker.to")
	attrBreakerFrom  = attribute.Key("tencentchat.breaker.from")
	attrOutcome      = attribute.Key("tencentchat.outcome")
	spanGetAll       = "tencentchat.get_subscribed_official_account_list.all"
	spanGetPage      = "tencentchat.get_subscribed_official_account_list"
	spanAttempt      = "tencentchat.attempt"
	metricCalls      = "tencentchat.client.calls"
	metricLatency    = "tencentchat.client.call.duration"
	metricWait       = "tencentchat.client.limiter.wait"
	metricBreaker    = "tencentchat.client.breaker.state"
	metricBreakerChg = "tencentchat.client.breaker.transitions"
	metricRate       = "tencentchat.client.rate.effective"
	metricRenewals   = "tencentchat.client.usersig.renewals"
)

// telemetry holds the tracer, instruments and logger. Recording never fails
// the data path: an instrument that cannot be created is replaced by a no-op
// and the problem is logged once.
type telemetry struct {
	tracer      trace.Tracer
	log         *slog.Logger
	calls       metric.Int64Counter
	latency     metric.Float64Histogram
	wait        metric.Float64Histogram
	breaker     metric.Int64Gauge
	transitions metric.Int64Counter
	rate        metric.Float64Gauge
	renewals    metric.Int64Counter
}

func newTelemetry(cfg Config) *telemetry {
	tp := cfg.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	mp := cfg.MeterProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	t := &telemetry{tracer: tp.Tracer(instrumentationName), log: log.With("component", "tencentchat-client")}
	m := mp.Meter(instrumentationName)
	nm := noop.NewMeterProvider().Meter(instrumentationName)
	var errs []error
	pick := func(err error) bool {
		if err != nil {
			errs = append(errs, err)
			return false
		}
		return true
	}
	var err error
	if t.calls, err = m.Int64Counter(metricCalls, metric.WithUnit("{call}"),
		metric.WithDescription("HTTP attempts by outcome (error code and class)")); !pick(err) {
		t.calls, _ = nm.Int64Counter(metricCalls)
	}
	if t.latency, err = m.Float64Histogram(metricLatency, metric.WithUnit("s"),
		metric.WithDescription("Duration of one HTTP attempt")); !pick(err) {
		t.latency, _ = nm.Float64Histogram(metricLatency)
	}
	if t.wait, err = m.Float64Histogram(metricWait, metric.WithUnit("s"),
		metric.WithDescription("Time spent waiting for the rate limiter")); !pick(err) {
		t.wait, _ = nm.Float64Histogram(metricWait)
	}
	if t.breaker, err = m.Int64Gauge(metricBreaker,
		metric.WithDescription("Circuit breaker state: 0 closed, 1 half-open, 2 open")); !pick(err) {
		t.breaker, _ = nm.Int64Gauge(metricBreaker)
	}
	if t.transitions, err = m.Int64Counter(metricBreakerChg, metric.WithUnit("{transition}"),
		metric.WithDescription("Circuit breaker state changes")); !pick(err) {
		t.transitions, _ = nm.Int64Counter(metricBreakerChg)
	}
	if t.rate, err = m.Float64Gauge(metricRate, metric.WithUnit("{call}/s"),
		metric.WithDescription("Effective client-side rate limit")); !pick(err) {
		t.rate, _ = nm.Float64Gauge(metricRate)
	}
	if t.renewals, err = m.Int64Counter(metricRenewals, metric.WithUnit("{signature}"),
		metric.WithDescription("UserSig generations by reason")); !pick(err) {
		t.renewals, _ = nm.Int64Counter(metricRenewals)
	}
	if len(errs) > 0 {
		t.log.Warn("tencentchat client: some metrics are disabled", "error", errors.Join(errs...))
	}
	return t
}

// outcomeAttrs describes an attempt's outcome for metrics and spans.
func outcomeAttrs(err error) (code int, httpStatus int, class Class) {
	class = Classify(err)
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code, apiErr.HTTPStatus, class
	}
	return 0, 0, class
}

func (t *telemetry) recordAttempt(ctx context.Context, span trace.Span, err error, httpStatus int, elapsed time.Duration) {
	code, st, class := outcomeAttrs(err)
	if st == 0 {
		st = httpStatus
	}
	outcome := "ok"
	switch {
	case err == nil:
	case code != 0:
		outcome = strconv.Itoa(code)
	case st != 0 && st != 200:
		outcome = "http_" + strconv.Itoa(st)
	default:
		outcome = class.String()
	}
	attrs := metric.WithAttributes(attrOutcome.String(outcome), attrClass.String(class.String()))
	t.calls.Add(ctx, 1, attrs)
	t.latency.Record(ctx, elapsed.Seconds(), attrs)

	span.SetAttributes(attrErrorCode.Int(code), attrClass.String(class.String()))
	if st != 0 {
		span.SetAttributes(attrHTTPStatus.Int(st))
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
}

func (t *telemetry) recordWait(ctx context.Context, d time.Duration) {
	t.wait.Record(ctx, d.Seconds())
}

func (t *telemetry) breakerChanged(from, to BreakerState) {
	ctx := context.Background()
	t.breaker.Record(ctx, int64(to))
	t.transitions.Add(ctx, 1, metric.WithAttributes(attrBreakerFrom.String(from.String()), attrBreakerTo.String(to.String())))
	level := slog.LevelInfo
	if to == BreakerOpen {
		level = slog.LevelWarn
	}
	t.log.Log(ctx, level, "tencentchat client: circuit breaker state changed", "from", from.String(), "to", to.String())
}

func (t *telemetry) rateChanged(r float64, reason string) {
	t.rate.Record(context.Background(), r)
	t.log.Warn("tencentchat client: server throttled calls, lowering rate", "rate", r, "reason", reason)
}

func (t *telemetry) sigRenewed(reason string) {
	t.renewals.Add(context.Background(), 1, metric.WithAttributes(attrRenewReason.String(reason)))
	level := slog.LevelInfo
	if reason == "initial" {
		level = slog.LevelDebug
	}
	t.log.Log(context.Background(), level, "tencentchat client: UserSig generated", "reason", reason)
}
