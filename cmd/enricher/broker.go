package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"

	"github.com/urfave/cli/v3"

	"github.com/tencentchat-enricher/enricher/internal/devkafka"
)

// brokerCommand runs the in-process development Kafka broker on its own, so
// the simulator, the event generator and several processors can run as
// separate processes against it. It is not a production broker.
func brokerCommand() *cli.Command {
	return &cli.Command{
		Name:  "broker",
		Usage: "run a single-node development Kafka broker (not for production)",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "addr", Value: "127.0.0.1:9092", Sources: env("ENRICHER_BROKER_ADDR"),
				Usage: "listen `ADDR`; clients must reach the broker at this address"},
			&cli.StringFlag{Name: "data-dir", Sources: env("ENRICHER_BROKER_DATA_DIR"),
				Usage: "`DIR` persisting topics and offsets across restarts (default: in memory)"},
			&cli.IntFlag{Name: "partitions", Value: 8, Sources: env("ENRICHER_BROKER_PARTITIONS"),
				Usage: "partitions of each topic created at start or on first use"},
			&cli.StringSliceFlag{Name: "topics", Sources: env("ENRICHER_BROKER_TOPICS"),
				Value: []string{defaultInputTopic, defaultOutputTopic, defaultDLQTopic},
				Usage: "topics created at start"},
		}, logFlags()...),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			cfg, err := parseBroker(cmd)
			if err != nil {
				return err
			}
			ops, err := parseLogging(cmd)
			if err != nil {
				return err
			}
			log := newLogger(ops, cmd.Root().ErrWriter)
			b, err := devkafka.Start(cfg)
			if err != nil {
				return fmt.Errorf("broker: %w", err)
			}
			defer b.Close()
			log.Info("broker listening", slog.String("addr", b.Addr()),
				slog.String("data_dir", cfg.DataDir), slog.Any("topics", cfg.Topics))
			<-ctx.Done()
			log.Info("broker stopping")
			return nil
		},
	}
}

func parseBroker(cmd *cli.Command) (devkafka.Config, error) {
	cfg := devkafka.Config{
		Addr:       strings.TrimSpace(cmd.String("addr")),
		DataDir:    cmd.String("data-dir"),
		Partitions: cmd.Int("partitions"),
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return cfg, flagError(cmd, "addr", "must be HOST:PORT, got %q", cfg.Addr)
	}
	if cfg.Partitions < 1 {
		return cfg, flagError(cmd, "partitions", "must be at least 1, got %d", cfg.Partitions)
	}
	for _, t := range cmd.StringSlice("topics") {
		if t = strings.TrimSpace(t); t != "" {
			cfg.Topics = append(cfg.Topics, t)
		}
	}
	return cfg, nil
}
