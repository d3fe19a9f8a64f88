package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"
	"github.com/urfave/cli/v3"

	"github.com/tencentchat-enricher/enricher/internal/deadletter"
	"github.com/tencentchat-enricher/enricher/processor"
)

const (
	catDLQ              = "Dead letters"
	defaultRedriveGroup = "enricher-redrive"
)

// dlqClasses are the error classes the processor dead-letters with.
var dlqClasses = []processor.ErrorClass{
	processor.ClassNotJSON, processor.ClassNotObject, processor.ClassMissingUserID, processor.ClassInvalidUserID,
	processor.ClassTooLarge, processor.ClassEnrichment, processor.ClassEnrichmentUnavailable, processor.ClassOutputTooLarge,
}

// dlqCommand groups list, show and redrive of the dead-letter topic.
func dlqCommand() *cli.Command {
	return &cli.Command{
		Name:  "dlq",
		Usage: "inspect the dead-letter topic and re-drive dead letters to the input topic",
		Description: "Dead letters are selected by --class, --from/--to (when they were dead-lettered)\n" +
			"and --offsets (PARTITION=START[:END] of the dead-letter topic); without any, all of them.",
		Commands: []*cli.Command{dlqListCommand(), dlqShowCommand(), dlqRedriveCommand()},
	}
}

// dlqFlags are the connection and selection flags of every dlq subcommand.
func dlqFlags(extra ...cli.Flag) []cli.Flag {
	var flags []cli.Flag
	flags = append(flags, kafkaFlags()...)
	flags = append(flags,
		&cli.StringFlag{Name: "dlq-topic", Category: catPipeline, Value: defaultDLQTopic, Sources: env("ENRICHER_DLQ_TOPIC"),
			Usage: "dead-letter `TOPIC` to read"},
		&cli.StringSliceFlag{Name: "class", Category: catDLQ, Sources: env("ENRICHER_DLQ_CLASS"),
			Usage: "select dead letters of these error `CLASS`es (" + strings.Join(classNames(), ", ") + ")"},
		&cli.StringFlag{Name: "from", Category: catDLQ, Sources: env("ENRICHER_DLQ_FROM"),
			Usage: "select dead letters written at or after this RFC 3339 `TIME`"},
		&cli.StringFlag{Name: "to", Category: catDLQ, Sources: env("ENRICHER_DLQ_TO"),
			Usage: "select dead letters written before this RFC 3339 `TIME`"},
		&cli.StringFlag{Name: "offsets", Category: catDLQ, Sources: env("ENRICHER_DLQ_OFFSETS"),
			Usage: "select these partitions and offsets of the dead-letter topic: `P=START[:END],...` (END exclusive)"},
	)
	flags = append(flags, extra...)
	return append(flags, logFlags()...)
}

func classNames() []string {
	out := make([]string, len(dlqClasses))
	for i, c := range dlqClasses {
		out[i] = string(c)
	}
	return out
}

// dlqSettings is the configuration shared by the dlq subcommands.
type dlqSettings struct {
	Kafka kafkaSettings
	DLQ   deadletter.Config
	Sel   deadletter.Selection
	Log   *slog.Logger
}

func parseDLQ(cmd *cli.Command) (dlqSettings, error) {
	var s dlqSettings
	logs, err := parseLogging(cmd)
	if err != nil {
		return s, err
	}
	if s.Kafka, err = parseKafka(cmd); err != nil {
		return s, err
	}
	topic := strings.TrimSpace(cmd.String("dlq-topic"))
	if topic == "" {
		return s, flagError(cmd, "dlq-topic", "must not be empty")
	}
	for _, c := range cmd.StringSlice("class") {
		if c = strings.TrimSpace(c); c == "" {
			continue
		}
		if !slices.Contains(classNames(), c) {
			return s, flagError(cmd, "class", "must be among %s, got %q", strings.Join(classNames(), ", "), c)
		}
		s.Sel.Classes = append(s.Sel.Classes, c)
	}
	r, err := parseRange(cmd.String("from"), cmd.String("to"), cmd.String("offsets"), func(n string) string { return flagRef(cmd, n) })
	if err != nil {
		return s, err
	}
	s.Sel.From, s.Sel.To = r.From, r.To
	if r.Offsets != nil {
		s.Sel.Offsets = map[int]deadletter.OffsetRange{}
		for p, o := range r.Offsets {
			s.Sel.Offsets[p] = deadletter.OffsetRange{Start: o.Start, End: o.End}
		}
	}
	s.DLQ = deadletter.Config{Brokers: s.Kafka.Brokers, Topic: topic,
		Dialer:    &kafka.Dialer{Timeout: 10 * time.Second, DualStack: true, TLS: s.Kafka.TLS, SASLMechanism: s.Kafka.SASL},
		Transport: &kafka.Transport{TLS: s.Kafka.TLS, SASL: s.Kafka.SASL}}
	s.Log = newLogger(logs, cmd.Root().ErrWriter)
	return s, nil
}

// dlqError reports a missing topic or partition as the flag naming it.
func dlqError(cmd *cli.Command, err error) error {
	var pe *deadletter.PartitionError
	switch {
	case errors.As(err, &pe):
		return flagError(cmd, "offsets", "names partition %d, which %q does not have (it has partitions 0 to %d)", pe.Partition, pe.Topic, pe.Have-1)
	case errors.Is(err, deadletter.ErrNoTopic):
		return flagError(cmd, "dlq-topic", "names topic %q, which does not exist", cmd.String("dlq-topic"))
	case errors.Is(err, deadletter.ErrNotLedger):
		return flagError(cmd, "group", "%v", err)
	}
	return err
}

func dlqListCommand() *cli.Command {
	return &cli.Command{
		Name:  "list",
		Usage: "count dead letters by error class and by time",
		Flags: dlqFlags(
			&cli.DurationFlag{Name: "bucket", Category: catDLQ, Value: time.Hour, Sources: env("ENRICHER_DLQ_BUCKET"),
				Usage: "width of the time buckets of the counts"},
		),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			s, err := parseDLQ(cmd)
			if err != nil {
				return err
			}
			bucket := cmd.Duration("bucket")
			if bucket <= 0 {
				return flagError(cmd, "bucket", "must be positive, got %s", bucket)
			}
			var st dlqCounts
			st.bucket = bucket
			if err := deadletter.Scan(ctx, s.DLQ, s.Sel, st.add); err != nil {
				return dlqError(cmd, err)
			}
			st.print(cmd.Root().Writer, s.DLQ.Topic, s.Sel)
			return nil
		},
	}
}

// dlqCounts are the counts of `dlq list`.
type dlqCounts struct {
	bucket      time.Duration
	total       int
	redriven    int // letters of records that had been re-driven
	first, last time.Time
	byClass     map[string]int
	byBucket    map[time.Time]map[string]int
}

func (c *dlqCounts) add(l deadletter.Letter) error {
	if c.byClass == nil {
		c.byClass, c.byBucket = map[string]int{}, map[time.Time]map[string]int{}
	}
	c.total++
	if l.RedriveOf != "" {
		c.redriven++
	}
	if c.first.IsZero() || l.Time.Before(c.first) {
		c.first = l.Time
	}
	if l.Time.After(c.last) {
		c.last = l.Time
	}
	class := cmpOr(l.Class, "(none)")
	c.byClass[class]++
	b := l.Time.UTC().Truncate(c.bucket)
	if c.byBucket[b] == nil {
		c.byBucket[b] = map[string]int{}
	}
	c.byBucket[b][class]++
	return nil
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (c *dlqCounts) print(w io.Writer, topic string, sel deadletter.Selection) {
	fmt.Fprintf(w, "%s: %d dead letters (selection: %s)\n", topic, c.total, sel)
	if c.total == 0 {
		return
	}
	fmt.Fprintf(w, "  written     %s to %s\n", c.first.UTC().Format(time.RFC3339), c.last.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "  by class    %s\n", classCounts(c.byClass))
	if c.redriven > 0 {
		fmt.Fprintf(w, "  %d of them failed again after a redrive (header %s)\n", c.redriven, deadletter.HeaderRedriveOf)
	}
	fmt.Fprintf(w, "  by %s:\n", c.bucket)
	for _, b := range slices.SortedFunc(maps.Keys(c.byBucket), time.Time.Compare) {
		fmt.Fprintf(w, "    %s  %s\n", b.Format(time.RFC3339), classCounts(c.byBucket[b]))
	}
}

func classCounts(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func dlqShowCommand() *cli.Command {
	return &cli.Command{
		Name:  "show",
		Usage: "print dead letters: position, time, class, message, source, key and value",
		Flags: dlqFlags(
			&cli.IntFlag{Name: "limit", Category: catDLQ, Value: 10, Sources: env("ENRICHER_DLQ_LIMIT"),
				Usage: "print at most this many dead letters (0: all)"},
			&cli.IntFlag{Name: "value-bytes", Category: catDLQ, Value: 300, Sources: env("ENRICHER_DLQ_VALUE_BYTES"),
				Usage: "print at most this many `BYTES` of each value (0: all)"},
		),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			s, err := parseDLQ(cmd)
			if err != nil {
				return err
			}
			limit, maxValue := cmd.Int("limit"), cmd.Int("value-bytes")
			if limit < 0 {
				return flagError(cmd, "limit", "must not be negative, got %d", limit)
			}
			if maxValue < 0 {
				return flagError(cmd, "value-bytes", "must not be negative, got %d", maxValue)
			}
			w := cmd.Root().Writer
			n := 0
			errEnough := errors.New("enough")
			err = deadletter.Scan(ctx, s.DLQ, s.Sel, func(l deadletter.Letter) error {
				if limit > 0 && n == limit {
					return errEnough
				}
				n++
				printLetter(w, s.DLQ.Topic, l, maxValue)
				return nil
			})
			if err != nil && !errors.Is(err, errEnough) {
				return dlqError(cmd, err)
			}
			if errors.Is(err, errEnough) {
				fmt.Fprintf(w, "(first %d shown; --limit 0 shows all)\n", limit)
			}
			return nil
		},
	}
}

func printLetter(w io.Writer, topic string, l deadletter.Letter, maxValue int) {
	fmt.Fprintf(w, "%s  %s  %s  attempts %d  source %s/%d/%d\n", l.Position(topic), l.Time.UTC().Format(time.RFC3339Nano),
		cmpOr(l.Class, "(no class)"), l.Attempts, l.SourceTopic, l.SourcePartition, l.SourceOffset)
	if l.Message != "" {
		fmt.Fprintf(w, "  message  %s\n", l.Message)
	}
	if l.RedriveOf != "" {
		fmt.Fprintf(w, "  redriven from %s and failed again\n", l.RedriveOf)
	}
	fmt.Fprintf(w, "  key      %q\n", l.Key)
	switch {
	case l.OriginalBytes > 0 && len(l.Value) == 0:
		fmt.Fprintf(w, "  value    (not kept: %d bytes; read it from the source position)\n", l.OriginalBytes)
	default:
		v := l.Value
		more := ""
		if maxValue > 0 && len(v) > maxValue {
			v, more = v[:maxValue], fmt.Sprintf("… (%d bytes)", len(l.Value))
		}
		if utf8.Valid(v) {
			fmt.Fprintf(w, "  value    %s%s\n", v, more)
		} else {
			fmt.Fprintf(w, "  value    %q%s\n", v, more)
		}
	}
}

func dlqRedriveCommand() *cli.Command {
	return &cli.Command{
		Name:  "redrive",
		Usage: "re-publish selected dead letters to the input topic, once, resumably",
		Description: "Each dead letter's key, value and headers (without the enricher-* ones) go to the\n" +
			"input topic, to the partition it came from, with " + deadletter.HeaderRedriveOf + " (dlq topic/partition/offset)\n" +
			"and " + deadletter.HeaderRedriveClass + ". Progress is checkpointed in --group after every batch\n" +
			"the brokers acknowledge: run the same command again to resume. A dead letter re-driven\n" +
			"by any earlier run with that group is not re-driven again.",
		Flags: dlqFlags(
			&cli.StringFlag{Name: "input-topic", Category: catPipeline, Value: defaultInputTopic, Sources: env("ENRICHER_INPUT_TOPIC"),
				Usage: "`TOPIC` the dead letters are re-published to"},
			&cli.StringFlag{Name: "group", Category: catDLQ, Value: defaultRedriveGroup, Sources: env("ENRICHER_DLQ_REDRIVE_GROUP"),
				Usage: "checkpoint consumer `GROUP` on the dead-letter topic (what was re-driven, and how far a run got)"},
			&cli.BoolFlag{Name: "all", Category: catDLQ, Sources: env("ENRICHER_DLQ_ALL"),
				Usage: "re-drive every dead letter (without --class, --from, --to or --offsets this is required)"},
		),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			s, err := parseDLQ(cmd)
			if err != nil {
				return err
			}
			input, group := strings.TrimSpace(cmd.String("input-topic")), strings.TrimSpace(cmd.String("group"))
			switch {
			case input == "":
				return flagError(cmd, "input-topic", "must not be empty")
			case input == s.DLQ.Topic:
				return flagError(cmd, "input-topic", "must differ from %s, got %q", flagRef(cmd, "dlq-topic"), input)
			case group == "":
				return flagError(cmd, "group", "must not be empty")
			case s.Sel.String() == "all" && !cmd.Bool("all"):
				return usageError{fmt.Errorf("select what to re-drive with %s, %s/%s or %s, or pass %s",
					flagRef(cmd, "class"), flagRef(cmd, "from"), flagRef(cmd, "to"), flagRef(cmd, "offsets"), flagRef(cmd, "all"))}
			}
			start := time.Now()
			res, err := deadletter.Redrive(ctx, deadletter.RedriveConfig{Config: s.DLQ, InputTopic: input, Group: group, Logger: s.Log}, s.Sel)
			w := cmd.Root().Writer
			status := "complete"
			if err != nil {
				status = "stopped"
			}
			fmt.Fprintf(w, "redrive %s: %s -> %s, group %s, selection %s\n", status, s.DLQ.Topic, input, group, s.Sel)
			fmt.Fprintf(w, "  %s\n", res)
			fmt.Fprintf(w, "  partitions  %d (%d resumed)  duration %s\n", res.Partitions, res.Resumed, time.Since(start).Round(time.Millisecond))
			switch {
			case err == nil:
				return nil
			case ctx.Err() != nil:
				return fmt.Errorf("redrive interrupted after %d records (checkpointed in group %s); run the same command again to resume", res.Redriven, group)
			default:
				return dlqError(cmd, err)
			}
		},
	}
}
