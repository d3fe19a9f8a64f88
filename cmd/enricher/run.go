package main

import (
	"cmp"
	"context"
	"errors"
	"log/slog"

	"github.com/urfave/cli/v3"
	"golang.org/x/sync/errgroup"

	"github.com/tencentchat-enricher/enricher/client"
	"github.com/tencentchat-enricher/enricher/client/budget"
	"github.com/tencentchat-enricher/enricher/processor"
)

// runSettings is the whole configuration of `run`.
type runSettings struct {
	Kafka    kafkaSettings
	Pipeline processor.Config
	Tencent  client.Config
	Redis    redisSettings
	Ops      opsSettings
	Webhook  webhookSettings
	// PprofAddr serves net/http/pprof (--pprof); empty: off.
	PprofAddr string
}

func runCommand() *cli.Command {
	var flags []cli.Flag
	flags = append(flags, kafkaFlags()...)
	flags = append(flags, pipelineFlags()...)
	flags = append(flags, tencentFlags()...)
	flags = append(flags, redisFlags()...)
	flags = append(flags, webhookFlags()...)
	flags = append(flags, opsFlags(defaultHTTPAddr)...)
	flags = append(flags, pprofFlag())
	return &cli.Command{
		Name:  "run",
		Usage: "run the processor against the configured Kafka cluster and Tencent Cloud Chat endpoint",
		Description: "Consumes --input-topic in consumer group --group, enriches each event with the\n" +
			"official accounts its user subscribes to, and writes one record per event to\n" +
			"--output-topic (or --dlq-topic). Stops cleanly on SIGINT/SIGTERM.\n" +
			"Traces are exported as configured by the standard OTEL_* environment variables.",
		Flags: flags,
		Action: func(ctx context.Context, cmd *cli.Command) error {
			s, err := parseRun(cmd)
			if err != nil {
				return err
			}
			return runProcessor(ctx, cmd, s)
		},
	}
}

func parseRun(cmd *cli.Command) (runSettings, error) {
	var s runSettings
	var err error
	if s.Ops, err = parseOps(cmd); err != nil {
		return s, err
	}
	if s.Kafka, err = parseKafka(cmd); err != nil {
		return s, err
	}
	if s.Pipeline, err = parsePipeline(cmd); err != nil {
		return s, err
	}
	if s.Tencent, err = parseTencent(cmd); err != nil {
		return s, err
	}
	if s.Redis, err = parseRedis(cmd); err != nil {
		return s, err
	}
	if s.Webhook, err = parseWebhook(cmd); err != nil {
		return s, err
	}
	s.Tencent.Filter = responseFilter(s.Pipeline.Fields)
	if s.PprofAddr, err = parsePprof(cmd); err != nil {
		return s, err
	}
	return s, nil
}

// responseFilter asks the API for no more than the account fields the
// output carries (--fields); nil for all fields.
func responseFilter(fields []string) *client.ResponseFilter {
	base, self := processor.FieldsFilter(fields)
	if base == nil && self == nil {
		return nil
	}
	return &client.ResponseFilter{OfficialAccountBaseInfoFilter: base, SelfInfoFilter: self}
}

func runProcessor(ctx context.Context, cmd *cli.Command, s runSettings) error {
	log := newLogger(s.Ops, cmd.Root().ErrWriter)
	prov, err := newTelemetry(ctx)
	if err != nil {
		return err
	}
	defer shutdownTelemetry(prov, log)

	var sh *shared
	if s.Redis.Options != nil {
		if sh, err = newShared(s.Redis, s.Tencent, budget.Live, 0, "", log, prov); err != nil {
			return err
		}
		defer sh.Close() // after the processor and the client are done
	}
	sh.wire(&s.Tencent, &s.Pipeline)

	api, err := newClient(cmd, s.Tencent, log, prov)
	if err != nil {
		return err
	}
	defer api.Close()

	proc, err := processor.New(withKafka(s.Pipeline, s.Kafka, log, prov), api)
	if err != nil {
		return configError(cmd, err)
	}
	hooks, err := startWebhook(s.Webhook, s.Tencent.SDKAppID, proc, s.Kafka, log, prov)
	if err != nil {
		_ = proc.Close()
		return err
	}
	checks := readiness(s.Kafka, proc, api)
	ops, err := startOps(s.Ops, prov, sh.addChecks(checks), log)
	if err != nil {
		return err
	}

	log.Info("enricher starting", slog.String("version", readBuildInfo().String()),
		slog.Any("brokers", s.Kafka.Brokers), slog.String("input", s.Pipeline.InputTopic),
		slog.String("output", s.Pipeline.OutputTopic), slog.String("dlq", s.Pipeline.DLQTopic),
		slog.String("group", s.Pipeline.Group), slog.Any("tencent", s.Tencent),
		slog.String("http_addr", s.Ops.HTTPAddr), slog.String("traces", prov.TracesExporter),
		slog.String("redis", cmp.Or(s.Redis.Shown, "none")))

	g, gctx := errgroup.WithContext(ctx)
	if ops != nil {
		g.Go(func() error { return ops.Run(gctx) })
	}
	if hooks != nil {
		log.Info("webhook receiver listening", slog.String("url", hooks.URL()), slog.Bool("token", s.Webhook.Token != ""),
			slog.String("changes_topic", s.Webhook.ChangesTopic))
		g.Go(func() error { return hooks.Run(gctx) })
	}
	if s.PprofAddr != "" {
		stop, err := servePprof(gctx, s.PprofAddr, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	g.Go(func() error {
		watchBrokers(gctx, cmd, proc.Joined, checks["kafka"], s.Kafka.Brokers, log)
		return nil
	})
	g.Go(func() error {
		err := proc.Run(gctx)
		if err == nil && ctx.Err() == nil {
			err = errors.New("processor stopped unexpectedly")
		}
		return namingFlags(cmd, err)
	})
	err = g.Wait()
	if ctx.Err() != nil && err == nil {
		log.Info("enricher stopped")
	}
	return err
}
