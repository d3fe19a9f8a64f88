package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/redis/go-redis/v9"

	"github.com/tencentchat-enricher/enricher/client"
	"github.com/tencentchat-enricher/enricher/client/budget"
	"github.com/tencentchat-enricher/enricher/internal/sharedstate"
	"github.com/tencentchat-enricher/enricher/internal/telemetry"
	"github.com/tencentchat-enricher/enricher/processor"
)

// runProcessor runs the processor with its defaults, enriching through a
// client of the simulated API that keeps the job's budget, until ctx is
// canceled. With a RedisURL the budget and the cache are shared, built as
// run --redis-url builds them (replay --redis-url for a Replay job).
// Warnings and errors go to standard error (the parent keeps the last line
// for failure reports); telemetry is set up as `enricher run` sets it up
// (internal/telemetry, from the OTEL_* environment: without an exporter,
// spans only carry trace context; metrics are recorded for a Prometheus
// registry nobody scrapes).
func runProcessor(ctx context.Context, j job) (any, error) {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	prov, err := telemetry.New(ctx, telemetry.Config{ServiceName: "enricher-bench"})
	if err != nil {
		return nil, fmt.Errorf("bench processor: %w", err)
	}
	defer prov.Shutdown(context.WithoutCancel(ctx))
	prov.SetGlobal()
	tc := client.Config{
		SDKAppID: devAppID, Admin: devAdmin, SecretKey: devSecret,
		BaseURL: j.APIURL, Rate: j.Rate, Logger: log,
		TracerProvider: prov.TracerProvider, MeterProvider: prov.MeterProvider,
	}
	pc := processor.Config{
		Brokers: j.Brokers, InputTopic: j.Input, OutputTopic: j.Output, DLQTopic: j.DLQ, Group: j.Group,
		SessionTimeout: j.SessionTimeout, CommitInterval: j.CommitInterval,
		OutputCompression: j.Compression,
		Logger:            log, TracerProvider: prov.TracerProvider, MeterProvider: prov.MeterProvider,
	}
	if j.Replay && j.RedisURL == "" {
		return nil, errors.New("bench processor: a replay job needs a Redis URL")
	}
	if j.RedisURL != "" {
		o, err := redis.ParseURL(j.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("bench processor: %w", err)
		}
		sharedstate.FailFast(o)
		role := budget.Live
		if j.Replay {
			role = budget.Replay
		}
		st, err := sharedstate.New(sharedstate.Config{Redis: o, Client: tc, Role: role, Cap: j.Cap, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("bench processor: %w", err)
		}
		defer st.Close() // after the processor and the client are done
		st.Wire(&tc, &pc)
	}
	c, err := client.New(tc)
	if err != nil {
		return nil, fmt.Errorf("bench processor: client: %w", err)
	}
	defer c.Close()
	if j.Replay {
		return runReplay(ctx, pc, c)
	}
	p, err := processor.New(pc, c)
	if err != nil {
		return nil, fmt.Errorf("bench processor: %w", err)
	}
	err = p.Run(ctx)
	return p.Stats(), err
}

// runReplay replays all of pc.InputTopic, as the replay command does with
// no range, and then waits until ctx is canceled (the parent stops every
// child at the end of the scenario).
func runReplay(ctx context.Context, pc processor.Config, c *client.Client) (any, error) {
	pc.Group = processor.ReplayGroup(pc.InputTopic, pc.OutputTopic, processor.ReplayRange{})
	replay, err := processor.NewReplay(pc, processor.ReplayRange{})
	if err != nil {
		return nil, fmt.Errorf("bench replay: %w", err)
	}
	pipe, err := processor.NewPipeline(pc, c)
	if err != nil {
		return nil, fmt.Errorf("bench replay: %w", err)
	}
	defer pipe.Close()
	if _, err := replay.Plan(ctx); err != nil {
		return nil, fmt.Errorf("bench replay: plan: %w", err)
	}
	if err := pipe.Run(ctx, replay); err != nil {
		return pipe.Stats(), err
	}
	if ctx.Err() == nil && !replay.Progress().Complete {
		return pipe.Stats(), errors.New("bench replay: stopped before the end of its input")
	}
	<-ctx.Done()
	return pipe.Stats(), nil
}
