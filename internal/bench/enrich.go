package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/tencentchat-enricher/enricher/client"
	"github.com/tencentchat-enricher/enricher/processor"
)

// runProcessor runs the processor with its defaults, enriching through a
// client of the simulated API that keeps the job's budget, until ctx is
// canceled. Warnings and errors go to standard error (the parent keeps the
// last line for failure reports); telemetry uses the otel globals, which
// are no-ops unless a program installs providers.
func runProcessor(ctx context.Context, j job) (any, error) {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := client.New(client.Config{
		SDKAppID: devAppID, Admin: devAdmin, SecretKey: devSecret,
		BaseURL: j.APIURL, Rate: j.Rate, Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("bench processor: client: %w", err)
	}
	defer c.Close()
	p, err := processor.New(processor.Config{
		Brokers: j.Brokers, InputTopic: j.Input, OutputTopic: j.Output, DLQTopic: j.DLQ, Group: j.Group,
		SessionTimeout: j.SessionTimeout, CommitInterval: j.CommitInterval,
		OutputCompression: j.Compression,
		Logger:            log,
	}, c)
	if err != nil {
		return nil, fmt.Errorf("bench processor: %w", err)
	}
	err = p.Run(ctx)
	return p.Stats(), err
}
