package main

// Wiring shared by run and dev: settings → package configs. No behaviour
// lives here beyond plugging components together.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/urfave/cli/v3"

	"github.com/tencentchat-enricher/enricher/client"
	"github.com/tencentchat-enricher/enricher/internal/opshttp"
	"github.com/tencentchat-enricher/enricher/internal/telemetry"
	"github.com/tencentchat-enricher/enricher/processor"
)

// newTelemetry builds the OTel providers and installs them as globals.
func newTelemetry(ctx context.Context) (*telemetry.Providers, error) {
	return newTelemetryTo(ctx, nil)
}

// newTelemetryTo is newTelemetry with the console trace exporter
// (OTEL_TRACES_EXPORTER=console) writing to console (nil: stdout).
func newTelemetryTo(ctx context.Context, console io.Writer) (*telemetry.Providers, error) {
	prov, err := telemetry.New(ctx, telemetry.Config{ServiceName: "enricher", ServiceVersion: readBuildInfo().Version, ConsoleWriter: console})
	if err != nil {
		// An invalid OTEL_* variable is a configuration error.
		return nil, badConfig("%w", err)
	}
	prov.SetGlobal()
	registerBuildInfo(prov.MeterProvider, readBuildInfo())
	return prov, nil
}

// newClient builds the Tencent client from its Config, with logging and
// telemetry; an invalid setting is reported as the flag of cmd that sets
// it. The caller closes it.
func newClient(cmd *cli.Command, cfg client.Config, log *slog.Logger, prov *telemetry.Providers) (*client.Client, error) {
	cfg.Logger, cfg.TracerProvider, cfg.MeterProvider = log, prov.TracerProvider, prov.MeterProvider
	api, err := client.New(cfg)
	if err != nil {
		return nil, configError(cmd, err)
	}
	return api, nil
}

// withKafka completes the processor's Config with the cluster connection
// and the telemetry.
func withKafka(c processor.Config, k kafkaSettings, log *slog.Logger, prov *telemetry.Providers) processor.Config {
	c.Brokers = k.Brokers
	c.Dialer = &kafka.Dialer{Timeout: 10 * time.Second, DualStack: true, TLS: k.TLS, SASLMechanism: k.SASL}
	c.Transport = &kafka.Transport{TLS: k.TLS, SASL: k.SASL}
	c.Logger = log
	c.TracerProvider = prov.TracerProvider
	c.MeterProvider = prov.MeterProvider
	return c
}

// readiness is what /readyz checks: the group is joined, no partition is
// stalled, a broker answers, and the API circuit breaker is not open.
func readiness(k kafkaSettings, proc *processor.Processor, c *client.Client) map[string]opshttp.Check {
	dialer := &kafka.Dialer{Timeout: 2 * time.Second, TLS: k.TLS, SASLMechanism: k.SASL}
	return map[string]opshttp.Check{
		"consumer-group": opshttp.CheckFunc(func(context.Context) error { return proc.Joined() }),
		"partitions":     opshttp.CheckFunc(func(context.Context) error { return proc.Stalled() }),
		"kafka": opshttp.CheckFunc(func(ctx context.Context) error {
			var errs []error
			for _, b := range k.Brokers {
				conn, err := dialer.DialContext(ctx, "tcp", b)
				if err == nil {
					return conn.Close()
				}
				errs = append(errs, err)
			}
			return fmt.Errorf("no broker reachable: %w", errors.Join(errs...))
		}),
		"api-breaker": opshttp.CheckFunc(func(context.Context) error {
			if st := c.BreakerState(); st == client.BreakerOpen {
				return fmt.Errorf("circuit breaker %s", st)
			}
			return nil
		}),
	}
}

// startOps listens on the ops address (nil, nil when it is disabled).
func startOps(s opsSettings, prov *telemetry.Providers, checks map[string]opshttp.Check, log *slog.Logger) (*opshttp.Server, error) {
	if s.HTTPAddr == "" {
		return nil, nil
	}
	srv, err := opshttp.New(opshttp.Config{Addr: s.HTTPAddr, Metrics: prov.MetricsHandler(), Checks: checks, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("--http-addr %s: %w", s.HTTPAddr, err)
	}
	return srv, nil
}

// shutdownTelemetry flushes spans with a bounded wait.
func shutdownTelemetry(prov *telemetry.Providers, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := prov.Shutdown(ctx); err != nil {
		log.Warn("telemetry shutdown", slog.Any("error", err))
	}
}
