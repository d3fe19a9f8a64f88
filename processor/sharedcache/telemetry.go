package sharedcache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	mnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tnoop "go.opentelemetry.io/otel/trace/noop"
)

const instrumentationName = "github.com/tencentchat-enricher/enricher/processor/sharedcache"

// Metric names; every counter has the attribute result.
const (
	MetricGets          = "enricher.sharedcache.gets"           // result: hit|miss|error
	MetricSets          = "enricher.sharedcache.sets"           // result: ok|error
	MetricLeases        = "enricher.sharedcache.leases"         // result: acquired|contended|present|error
	MetricWaits         = "enricher.sharedcache.waits"          // result: value|free|timeout|error
	MetricPatches       = "enricher.sharedcache.patches"        // result: replaced|deleted|kept|stale|error
	MetricRedisDuration = "enricher.sharedcache.redis.duration" // histogram (s), attr op

	attrResult = attribute.Key("enricher.sharedcache.result")
	attrOp     = attribute.Key("enricher.sharedcache.op")
)

type telemetry struct {
	tracer   trace.Tracer
	gets     metric.Int64Counter
	sets     metric.Int64Counter
	leases   metric.Int64Counter
	waits    metric.Int64Counter
	patches  metric.Int64Counter
	redisDur metric.Float64Histogram
}

func newTelemetry(cfg Config) (*telemetry, error) {
	mp := cfg.MeterProvider
	if mp == nil {
		mp = mnoop.NewMeterProvider()
	}
	tp := cfg.TracerProvider
	if tp == nil {
		tp = tnoop.NewTracerProvider()
	}
	m := mp.Meter(instrumentationName)
	t := &telemetry{tracer: tp.Tracer(instrumentationName)}
	var err error
	counter := func(name, desc string) metric.Int64Counter {
		if err != nil {
			return nil
		}
		var c metric.Int64Counter
		c, err = m.Int64Counter(name, metric.WithDescription(desc))
		return c
	}
	t.gets = counter(MetricGets, "Shared cache reads by result.")
	t.sets = counter(MetricSets, "Shared cache writes by result.")
	t.leases = counter(MetricLeases, "Shared cache lease attempts by result.")
	t.waits = counter(MetricWaits, "Waits for another process's value by result.")
	t.patches = counter(MetricPatches, "Changes applied to shared values (webhooks) by result.")
	if err == nil {
		t.redisDur, err = m.Float64Histogram(MetricRedisDuration, metric.WithUnit("s"), metric.WithDescription("Latency of the shared cache's Redis calls."))
	}
	if err != nil {
		return nil, fmt.Errorf("sharedcache: metrics: %w", err)
	}
	return t, nil
}

func (t *telemetry) get(ctx context.Context, result string) {
	t.gets.Add(ctx, 1, metric.WithAttributes(attrResult.String(result)))
}
func (t *telemetry) set(ctx context.Context, result string) {
	t.sets.Add(ctx, 1, metric.WithAttributes(attrResult.String(result)))
}
func (t *telemetry) lease(ctx context.Context, result string) {
	t.leases.Add(ctx, 1, metric.WithAttributes(attrResult.String(result)))
}
func (t *telemetry) wait(ctx context.Context, result string) {
	t.waits.Add(ctx, 1, metric.WithAttributes(attrResult.String(result)))
}

func (t *telemetry) patch(ctx context.Context, result string) {
	t.patches.Add(ctx, 1, metric.WithAttributes(attrResult.String(result)))
}

// run performs one Redis call with a RedisTimeout deadline, a span and the
// latency metric. redis.Nil is passed through unwrapped in meaning
// (errors.Is works) and not recorded as a span error.
func (s *Store) run(ctx context.Context, op string, call func(context.Context) (any, error)) (any, error) {
	ctx, span := s.tel.tracer.Start(ctx, "enricher.sharedcache.redis "+op,
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrOp.String(op)))
	defer span.End()
	cctx, cancel := context.WithTimeout(ctx, s.cfg.RedisTimeout)
	defer cancel()
	start := time.Now()
	v, err := call(cctx)
	s.tel.redisDur.Record(ctx, time.Since(start).Seconds(), metric.WithAttributes(attrOp.String(op)))
	if errors.Is(err, redis.Nil) {
		return nil, err
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "redis call failed")
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("sharedcache: redis %s: %w", op, err)
	}
	return v, nil
}
