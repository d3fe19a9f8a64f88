package main

import (
	"context"
	"errors"

	"github.com/urfave/cli/v3"
)

// runSettings is the whole configuration of `run`.
type runSettings struct {
	Kafka    kafkaSettings
	Pipeline pipelineSettings
	Tencent  tencentSettings
	Ops      opsSettings
}

func runCommand() *cli.Command {
	var flags []cli.Flag
	flags = append(flags, kafkaFlags()...)
	flags = append(flags, pipelineFlags()...)
	flags = append(flags, tencentFlags()...)
	flags = append(flags, opsFlags(defaultHTTPAddr)...)
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
	return s, nil
}

func runProcessor(ctx context.Context, cmd *cli.Command, s runSettings) error {
	_, _, _ = ctx, cmd, s
	return errors.New("run: not wired yet")
}
