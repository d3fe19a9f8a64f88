package main

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

func TestBuildInfoString(t *testing.T) {
	b := buildInfo{Version: "v1.2.3", Revision: "abc123", Time: "2026-12-01T00:00:00Z", Modified: true, GoVersion: "go1.26.8"}
	if got, want := b.String(), "enricher v1.2.3 (revision abc123, 2026-12-01T00:00:00Z, modified) go1.26.8"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	if got := (buildInfo{Version: "dev", GoVersion: "go1.26.8"}).String(); got != "enricher dev go1.26.8" {
		t.Errorf("without VCS: %q", got)
	}
}

// TestBuildInfoGauge: the build is exported as enricher.build.info = 1
// with its version and Go version.
func TestBuildInfoGauge(t *testing.T) {
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	defer mp.Shutdown(context.Background())
	registerBuildInfo(mp, buildInfo{Version: "v9.9.9", Revision: "r1", GoVersion: "go1.26.8"})
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "enricher.build.info" {
				continue
			}
			g := m.Data.(metricdata.Gauge[int64])
			dp := g.DataPoints[0]
			v, _ := dp.Attributes.Value(attribute.Key("version"))
			gv, _ := dp.Attributes.Value(attribute.Key("goversion"))
			if dp.Value != 1 || v.AsString() != "v9.9.9" || !strings.HasPrefix(gv.AsString(), "go1.") {
				t.Fatalf("build info %+v", dp)
			}
			return
		}
	}
	t.Fatal("no enricher.build.info")
}
