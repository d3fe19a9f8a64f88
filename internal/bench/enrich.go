package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/tencentchat-enricher/enricher/client"
	"github.com/tencentchat-enricher/enricher/internal/telemetry"
	"github.com/tencentchat-enricher/enricher/processor"
)

// runProcessor runs the processor with its defaults, enriching through a
// client of the simulated API that keeps the job's budget, until ctx is
// canceled. Warnings and errors go to standard error (the parent keeps the
// last line for failure reports); telemetry is set up as `enricher run`
// sets it up (internal/telemetry, from the OTEL_* environment: without an
// exporter, spans only carry trace context; metrics are recorded for a
// Prometheus registry nobody scrapes).
func runProcessor(ctx context.Context, j job) (any, error) {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	prov, err := telemetry.New(ctx, telemetry.Config{ServiceName: "enricher-bench"})
	if err != nil {
		return nil, fmt.Errorf("bench processor: %w", err)
	}
	defer prov.Shutdown(context.WithoutCancel(ctx))
	prov.SetGlobal()
	c, err := client.New(client.Config{
		SDKAppID: devAppID, Admin: devAdmin, SecretKey: devSecret,
		BaseURL: j.APIURL, Rate: j.Rate, Logger: log,
		TracerProvider: prov.TracerProvider, MeterProvider: prov.MeterProvider,
	})
	if err != nil {
		return nil, fmt.Errorf("bench processor: client: %w", err)
	}
	defer c.Close()
	p, err := processor.New(processor.Config{
		Brokers: j.Brokers, InputTopic: j.Input, OutputTopic: j.Output, DLQTopic: j.DLQ, Group: j.Group,
		SessionTimeout: j.SessionTimeout, CommitInterval: j.CommitInterval,
		OutputCompression: j.Compression,
		Logger:            log, TracerProvider: prov.TracerProvider, MeterProvider: prov.MeterProvider,
	}, c)
	if err != nil {
		return nil, fmt.Errorf("bench processor: %w", err)
	}
	err = p.Run(ctx)
	return p.Stats(), err
}
