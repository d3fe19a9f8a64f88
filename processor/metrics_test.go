package processor

import (
	"context"
	"testing"

	"github.com/segmentio/kafka-go"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// TestMetrics: records in/out/DLQ by status, cache hits and misses, and the
// per-partition committed watermark and lag are exported.
func TestMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	cfg := testConfig()
	cfg.MeterProvider = mp
	p, _ := newTestPipeline(t, cfg, tableLookup(nil))
	c := p.Claim("in", 3)
	ctx := context.Background()
	values := [][]byte{event("u1", 0), event("u1", 1), event("gone", 2), []byte("nope")}
	for i, v := range values {
		if err := c.Submit(ctx, kafka.Message{Topic: "in", Partition: 3, Offset: int64(i), Value: v, HighWaterMark: 10}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	c.Committed(4)
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	sums := map[string]int64{}
	gauges := map[string]int64{}
	var ratio float64
	var oldest []metricdata.DataPoint[float64]
	hist := map[string]uint64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					key := m.Name
					for _, kv := range dp.Attributes.ToSlice() {
						key += "/" + kv.Value.String()
					}
					sums[key] += dp.Value
				}
			case metricdata.Gauge[int64]:
				for _, dp := range d.DataPoints {
					gauges[m.Name] = dp.Value
				}
			case metricdata.Gauge[float64]:
				switch m.Name {
				case "enricher.cache.hit_ratio":
					ratio = d.DataPoints[0].Value
				case "enricher.partition.oldest_unfinished_age":
					oldest = d.DataPoints
				}
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					hist[m.Name] += dp.Count
				}
			}
		}
	}
	want := map[string]int64{
		"enricher.records.in": 4, "enricher.records.out/ok": 2, "enricher.records.out/user_not_found": 1,
		"enricher.records.dlq/not_json": 1, "enricher.cache.hits/local": 1, "enricher.cache.misses": 2, "enricher.records.inflight": 0,
	}
	for k, v := range want {
		if sums[k] != v {
			t.Errorf("%s = %d, want %d (all: %v)", k, sums[k], v, sums)
		}
	}
	if gauges["enricher.consumer.committed_offset"] != 4 || gauges["enricher.consumer.lag"] != 6 {
		t.Errorf("gauges %v, want committed 4, lag 6", gauges)
	}
	if len(oldest) != 1 || oldest[0].Value != 0 {
		t.Errorf("oldest unfinished age %+v, want one partition at 0 (every record finished)", oldest)
	}
	if ratio < 0.33 || ratio > 0.34 {
		t.Errorf("hit ratio %v, want 1/3", ratio)
	}
	if hist["enricher.record.duration"] != 4 {
		t.Errorf("duration histogram counts %v", hist)
	}
}
