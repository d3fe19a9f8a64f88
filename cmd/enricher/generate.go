package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/urfave/cli/v3"

	"github.com/tencentchat-enricher/enricher/internal/eventgen"
)

// generatorFlags configure the sample event generator of `dev` and `generate`.
func generatorFlags() []cli.Flag {
	return []cli.Flag{
		&cli.FloatFlag{Name: "rate", Category: catGenerator, Value: 20, Sources: env("ENRICHER_GEN_RATE"),
			Usage: "sample events per second"},
		&cli.IntFlag{Name: "users", Category: catGenerator, Value: 1000, Sources: env("ENRICHER_GEN_USERS"),
			Usage: "distinct users (user-0 ... user-N-1)"},
		&cli.FloatFlag{Name: "skew", Category: catGenerator, Value: 1.1, Sources: env("ENRICHER_GEN_SKEW"),
			Usage: "Zipf exponent (> 1) of the user distribution; higher means hotter hot users"},
		&cli.BoolFlag{Name: "distinct-users", Category: catGenerator, Sources: env("ENRICHER_GEN_DISTINCT_USERS"),
			Usage: "name every user once, in a random order, before any repeats (instead of the Zipf draw): --users new users in a row"},
		&cli.FloatFlag{Name: "malformed-share", Category: catGenerator, Value: 0.02, Sources: env("ENRICHER_GEN_MALFORMED_SHARE"),
			Usage: "share of malformed events (not JSON, no user_id, numeric user_id), 0 to 1"},
		&cli.Uint64Flag{Name: "seed", Category: catGenerator, Value: 1, Sources: env("ENRICHER_GEN_SEED"),
			Usage: "random seed; the same seed gives the same users and events"},
	}
}

func parseGenerator(cmd *cli.Command) (eventgen.Config, error) {
	cfg := eventgen.Config{
		Seed:           cmd.Uint64("seed"),
		Users:          cmd.Int("users"),
		Skew:           cmd.Float("skew"),
		Distinct:       cmd.Bool("distinct-users"),
		MalformedShare: cmd.Float("malformed-share"),
		Rate:           cmd.Float("rate"),
	}
	switch {
	case !(cfg.Rate > 0):
		return cfg, flagError(cmd, "rate", "must be above 0, got %g", cfg.Rate)
	case cfg.Users < 1:
		return cfg, flagError(cmd, "users", "must be at least 1, got %d", cfg.Users)
	case !(cfg.Skew > 1):
		return cfg, flagError(cmd, "skew", "must be greater than 1, got %g", cfg.Skew)
	case !(cfg.MalformedShare >= 0 && cfg.MalformedShare <= 1):
		return cfg, flagError(cmd, "malformed-share", "must be between 0 and 1, got %g", cfg.MalformedShare)
	}
	if err := cfg.Validate(); err != nil {
		return cfg, badConfig("%w", err)
	}
	return cfg, nil
}

// newEventWriter is the Kafka writer the generator sends events with.
func newEventWriter(k kafkaSettings, topic string) *kafka.Writer {
	return &kafka.Writer{
		Addr:                   kafka.TCP(k.Brokers...),
		Topic:                  topic,
		Balancer:               &kafka.Hash{}, // same user, same partition
		BatchTimeout:           10 * time.Millisecond,
		RequiredAcks:           kafka.RequireAll,
		AllowAutoTopicCreation: true,
		Transport:              &kafka.Transport{TLS: k.TLS, SASL: k.SASL},
	}
}

// generateCommand writes sample user events to a Kafka topic, for demos
// against docker-compose or a real cluster.
func generateCommand() *cli.Command {
	var flags []cli.Flag
	flags = append(flags, kafkaFlags()...)
	flags = append(flags,
		&cli.StringFlag{Name: "input-topic", Category: catPipeline, Value: defaultInputTopic, Sources: env("ENRICHER_INPUT_TOPIC"),
			Usage: "topic the sample events are written to"},
		&cli.IntFlag{Name: "count", Category: catGenerator, Sources: env("ENRICHER_GEN_COUNT"),
			Usage: "stop after this many events (default: until interrupted)"},
		&cli.DurationFlag{Name: "wait", Category: catKafka, Value: 30 * time.Second, Sources: env("ENRICHER_GEN_WAIT"),
			Usage: "how long to wait at start for a broker to answer (0: do not wait)"},
	)
	flags = append(flags, generatorFlags()...)
	flags = append(flags, logFlags()...)
	return &cli.Command{
		Name:  "generate",
		Usage: "write sample user events (skewed users, a few malformed) to the input topic",
		Flags: flags,
		Action: func(ctx context.Context, cmd *cli.Command) error {
			logs, err := parseLogging(cmd)
			if err != nil {
				return err
			}
			k, err := parseKafka(cmd)
			if err != nil {
				return err
			}
			gcfg, err := parseGenerator(cmd)
			if err != nil {
				return err
			}
			if gcfg.Count = cmd.Int("count"); gcfg.Count < 0 {
				return flagError(cmd, "count", "must not be negative, got %d", gcfg.Count)
			}
			topic := cmd.String("input-topic")
			if topic == "" {
				return flagError(cmd, "input-topic", "must not be empty")
			}
			log := newLogger(logs, cmd.Root().ErrWriter)
			g, err := eventgen.New(gcfg)
			if err != nil {
				return badConfig("%w", err)
			}
			if d := cmd.Duration("wait"); d < 0 {
				return flagError(cmd, "wait", "must not be negative, got %s", d)
			} else if d > 0 {
				if err := waitReady(ctx, &k, nil, d); err != nil {
					return fmt.Errorf("generate: %w (%s)", err, flagRef(cmd, "wait"))
				}
			}
			w := newEventWriter(k, topic)
			defer w.Close()
			log.Info("generating events", slog.String("topic", topic), slog.Any("brokers", k.Brokers),
				slog.Float64("rate", gcfg.Rate), slog.Int("users", gcfg.Users))
			err = g.Run(ctx, w)
			st := g.Stats()
			log.Info("generator stopped", slog.Int64("sent", st.Sent), slog.Int64("malformed", st.Malformed))
			if err != nil {
				return fmt.Errorf("generate: %w", err)
			}
			return nil
		},
	}
}
