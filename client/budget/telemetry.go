package budget

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	mnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tnoop "go.opentelemetry.io/otel/trace/noop"
)

const instrumentationName = "github.com/tencentchat-enricher/enricher/client/budget"

// Metric names and attribute keys.
const (
	MetricGrants        = "enricher.budget.grants"         // counter, attrs role, mode (shared|fallback)
	MetricWait          = "enricher.budget.wait"           // histogram (s), attrs role, mode
	MetricRedisDuration = "enricher.budget.redis.duration" // histogram (s), attr op
	MetricRedisErrors   = "enricher.budget.redis.errors"   // counter, attr op
	MetricDegraded      = "enricher.budget.degraded"       // gauge 0/1, attr role
	MetricRate          = "enricher.budget.rate"           // gauge, calls/s in force, attr role

	attrRole = attribute.Key("enricher.budget.role")
	attrMode = attribute.Key("enricher.budget.mode")
	attrOp   = attribute.Key("enricher.budget.op")
)

type telemetry struct {
	tracer   trace.Tracer
	grants   metric.Int64Counter
	wait     metric.Float64Histogram
	redisDur metric.Float64Histogram
	redisErr metric.Int64Counter
	degraded metric.Int64Gauge
	reg      metric.Registration
	role     attribute.KeyValue
}

func newTelemetry(cfg Config, b *Budget) (*telemetry, error) {
	mp := cfg.MeterProvider
	if mp == nil {
		mp = mnoop.NewMeterProvider()
	}
	tp := cfg.TracerProvider
	if tp == nil {
		tp = tnoop.NewTracerProvider()
	}
	m := mp.Meter(instrumentationName)
	t := &telemetry{tracer: tp.Tracer(instrumentationName), role: attrRole.String(cfg.Role.String())}
	var err error
	wrap := func(e error) error { return fmt.Errorf("budget: metrics: %w", e) }
	if t.grants, err = m.Int64Counter(MetricGrants, metric.WithDescription("Calls granted by the API budget.")); err != nil {
		return nil, wrap(err)
	}
	if t.wait, err = m.Float64Histogram(MetricWait, metric.WithUnit("s"), metric.WithDescription("Time a Take waited for its grant.")); err != nil {
		return nil, wrap(err)
	}
	if t.redisDur, err = m.Float64Histogram(MetricRedisDuration, metric.WithUnit("s"), metric.WithDescription("Latency of the budget's Redis calls.")); err != nil {
		return nil, wrap(err)
	}
	if t.redisErr, err = m.Int64Counter(MetricRedisErrors, metric.WithDescription("Budget Redis calls that failed or timed out.")); err != nil {
		return nil, wrap(err)
	}
	if t.degraded, err = m.Int64Gauge(MetricDegraded, metric.WithDescription("1 while the budget runs on its local fallback.")); err != nil {
		return nil, wrap(err)
	}
	rateG, err := m.Float64ObservableGauge(MetricRate, metric.WithUnit("{call}/s"), metric.WithDescription("Rate in force for this process's budget."))
	if err != nil {
		return nil, wrap(err)
	}
	t.reg, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveFloat64(rateG, b.Rate(), metric.WithAttributes(t.role))
		return nil
	}, rateG)
	if err != nil {
		return nil, wrap(err)
	}
	t.degraded.Record(context.Background(), 0, metric.WithAttributes(t.role))
	return t, nil
}

func (t *telemetry) close() { _ = t.reg.Unregister() }

func mode(shared bool) attribute.KeyValue {
	if shared {
		return attrMode.String("shared")
	}
	return attrMode.String("fallback")
}

func (t *telemetry) grant(ctx context.Context, _ Role, shared bool, waited time.Duration) {
	attrs := metric.WithAttributes(t.role, mode(shared))
	t.grants.Add(ctx, 1, attrs)
	t.wait.Record(ctx, waited.Seconds(), attrs)
}

func (t *telemetry) setDegraded(on bool) {
	v := int64(0)
	if on {
		v = 1
	}
	t.degraded.Record(context.Background(), v, metric.WithAttributes(t.role))
}

// run performs one Redis call with a RedisTimeout deadline, a span and the
// latency and error metrics.
func (b *Budget) run(ctx context.Context, op string, call func(context.Context) (any, error)) (any, error) {
	ctx, span := b.tel.tracer.Start(ctx, "enricher.budget.redis "+op,
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrOp.String(op), b.tel.role))
	defer span.End()
	cctx, cancel := context.WithTimeout(ctx, b.cfg.RedisTimeout)
	defer cancel()
	start := time.Now()
	v, err := call(cctx)
	attrs := metric.WithAttributes(attrOp.String(op))
	b.tel.redisDur.Record(ctx, time.Since(start).Seconds(), attrs)
	if err != nil {
		b.tel.redisErr.Add(ctx, 1, attrs)
		span.RecordError(err)
		span.SetStatus(codes.Error, "redis call failed")
		return nil, fmt.Errorf("budget: redis %s: %w", op, err)
	}
	return v, nil
}

// defaultID names this process: hostname, pid and a random suffix.
func defaultID() (string, error) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	var r [6]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", fmt.Errorf("budget: process id: %w", err)
	}
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(r[:])), nil
}
