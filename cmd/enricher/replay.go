package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v3"
	"golang.org/x/term"

	"github.com/tencentchat-enricher/enricher/client"
	"github.com/tencentchat-enricher/enricher/client/budget"
	"github.com/tencentchat-enricher/enricher/processor"
)

// Replay defaults: a topic pair of its own, and at most a quarter of the
// API budget (with --redis-url a cap within what live leaves; without it a
// budget of its own, so that a live processor keeps the rest).
const (
	defaultReplayOutputTopic = "user-events-replay"
	defaultReplayDLQTopic    = "user-events-replay-dlq"
	defaultReplayAPIRate     = 50.0
	autoGroup                = "auto"
	catReplay                = "Replay"
)

// replaySettings is the whole configuration of `replay`.
type replaySettings struct {
	Kafka    kafkaSettings
	Pipeline processor.Config
	Tencent  client.Config
	Redis    redisSettings
	Cap      float64 // with Redis: the replay's --api-rate, a cap within the shared budget
	Ops      opsSettings
	Range    processor.ReplayRange
	Progress string // "auto", "bar" or "log"
	Every    time.Duration
}

func replayCommand() *cli.Command {
	var flags []cli.Flag
	flags = append(flags, kafkaFlags()...)
	// --start-offset does not apply: the range fixes where a replay starts.
	flags = append(flags, withFlags(withoutFlags(pipelineFlags(), "start-offset"),
		&cli.StringFlag{Name: "output-topic", Category: catPipeline, Value: defaultReplayOutputTopic, Sources: env("ENRICHER_REPLAY_OUTPUT_TOPIC"),
			Usage: "`TOPIC` receiving the replay's enriched records (same schema as live output)"},
		&cli.StringFlag{Name: "dlq-topic", Category: catPipeline, Value: defaultReplayDLQTopic, Sources: env("ENRICHER_REPLAY_DLQ_TOPIC"),
			Usage: "`TOPIC` receiving the replay's dead letters"},
		&cli.StringFlag{Name: "group", Category: catPipeline, Value: autoGroup, Sources: env("ENRICHER_REPLAY_GROUP"),
			Usage: "checkpoint consumer `GROUP` of the replay; \"auto\" derives it from the input topic, output topic and range, so the same command resumes"},
	)...)
	flags = append(flags, withFlags(tencentFlags(),
		&cli.FloatFlag{Name: "api-rate", Category: catTencent, Value: defaultReplayAPIRate, Sources: env("ENRICHER_REPLAY_API_RATE"),
			Usage: "API calls per second of the replay: with --redis-url a cap, not a reservation (the replay uses only what live leaves of --app-api-rate, at most this); without it, its own budget (a live processor keeps the rest of the app's 200/s)"},
	)...)
	flags = append(flags, &cli.FloatFlag{Name: "app-api-rate", Category: catTencent, Value: client.DefaultRate, Sources: env("ENRICHER_API_RATE"),
		Usage: "with --redis-url: the SDKAppID's API calls per second shared with the live instances (the same value as their --api-rate)"})
	flags = append(flags, redisFlags()...)
	flags = append(flags,
		&cli.StringFlag{Name: "from", Category: catReplay, Sources: env("ENRICHER_REPLAY_FROM"),
			Usage: "replay records with a timestamp at or after `TIME` (RFC 3339)"},
		&cli.StringFlag{Name: "to", Category: catReplay, Sources: env("ENRICHER_REPLAY_TO"),
			Usage: "replay records with a timestamp before `TIME` (RFC 3339)"},
		&cli.StringFlag{Name: "offsets", Category: catReplay, Sources: env("ENRICHER_REPLAY_OFFSETS"),
			Usage: "replay only these partitions from these offsets: `P=START[:END],...` (END exclusive; default --to or the end at start)"},
		&cli.StringFlag{Name: "progress", Category: catReplay, Value: "auto", Sources: env("ENRICHER_REPLAY_PROGRESS"),
			Usage: "`MODE`: bar (progress bar), log (periodic log lines) or auto (bar on a terminal)"},
		&cli.DurationFlag{Name: "progress-interval", Category: catReplay, Value: 10 * time.Second, Sources: env("ENRICHER_REPLAY_PROGRESS_INTERVAL"),
			Usage: "`INTERVAL` between progress log lines"},
	)
	flags = append(flags, logFlags()...)
	return &cli.Command{
		Name:  "replay",
		Usage: "enrich a bounded slice of the input topic's history into a topic of its own, resumably",
		Description: "Reads --input-topic between --from and --to (record timestamps) and/or the\n" +
			"offsets given by --offsets, ending where the topic ended when the replay first\n" +
			"started, and writes enriched records to --output-topic (DLQ --dlq-topic) with\n" +
			"their source topic, partition and offset. Progress is checkpointed in the\n" +
			"consumer group --group: interrupted and started again with the same arguments,\n" +
			"it continues where it stopped. Exits 0 with a summary when the range is done.",
		Flags: flags,
		Action: func(ctx context.Context, cmd *cli.Command) error {
			s, err := parseReplay(cmd)
			if err != nil {
				return err
			}
			return runReplay(ctx, cmd, s)
		},
	}
}

// withoutFlags returns flags without the flags of the given names.
func withoutFlags(flags []cli.Flag, names ...string) []cli.Flag {
	return slices.DeleteFunc(slices.Clone(flags), func(f cli.Flag) bool { return slices.Contains(names, f.Names()[0]) })
}

// withFlags returns flags with the flags of the same names replaced.
func withFlags(flags []cli.Flag, replace ...cli.Flag) []cli.Flag {
	out := slices.Clone(flags)
	for _, r := range replace {
		for i, f := range out {
			if f.Names()[0] == r.Names()[0] {
				out[i] = r
			}
		}
	}
	return out
}

func parseReplay(cmd *cli.Command) (replaySettings, error) {
	var s replaySettings
	var err error
	if s.Ops, err = parseLogging(cmd); err != nil {
		return s, err
	}
	if s.Kafka, err = parseKafka(cmd); err != nil {
		return s, err
	}
	if s.Pipeline, err = parsePipeline(cmd); err != nil {
		return s, err
	}
	if s.Range, err = parseRange(cmd.String("from"), cmd.String("to"), cmd.String("offsets"), func(n string) string { return flagRef(cmd, n) }); err != nil {
		return s, err
	}
	s.Progress = strings.ToLower(strings.TrimSpace(cmd.String("progress")))
	if s.Progress != "auto" && s.Progress != "bar" && s.Progress != "log" {
		return s, flagError(cmd, "progress", "must be auto, bar or log, got %q", s.Progress)
	}
	if s.Every = cmd.Duration("progress-interval"); s.Every <= 0 {
		return s, flagError(cmd, "progress-interval", "must be positive, got %s", s.Every)
	}
	if s.Tencent, err = parseTencent(cmd); err != nil {
		return s, err
	}
	if s.Redis, err = parseRedis(cmd); err != nil {
		return s, err
	}
	if s.Redis.Options != nil {
		// The shared budget is the app's; --api-rate caps the replay's part.
		rate := cmd.Float("app-api-rate")
		if !(rate > 0 && rate <= client.MaxRate) {
			return s, flagError(cmd, "app-api-rate", "must be above 0 and at most %g calls/s (the API's limit per app), got %g", float64(client.MaxRate), rate)
		}
		s.Cap, s.Tencent.Rate = s.Tencent.Rate, rate
	}
	s.Tencent.Filter = responseFilter(s.Pipeline.Fields)
	if s.Pipeline.Group == autoGroup {
		s.Pipeline.Group = processor.ReplayGroup(s.Pipeline.InputTopic, s.Pipeline.OutputTopic, s.Range)
	}
	return s, nil
}

// parseRange parses --from, --to and --offsets; ref names a flag in errors.
func parseRange(from, to, offsets string, ref func(flag string) string) (processor.ReplayRange, error) {
	var r processor.ReplayRange
	var err error
	if from = strings.TrimSpace(from); from != "" {
		if r.From, err = time.Parse(time.RFC3339Nano, from); err != nil {
			return r, badConfig("%s must be an RFC 3339 time such as 2026-10-01T00:00:00Z, got %q", ref("from"), from)
		}
	}
	if to = strings.TrimSpace(to); to != "" {
		if r.To, err = time.Parse(time.RFC3339Nano, to); err != nil {
			return r, badConfig("%s must be an RFC 3339 time such as 2026-10-02T00:00:00Z, got %q", ref("to"), to)
		}
	}
	if !r.From.IsZero() && !r.To.IsZero() && !r.From.Before(r.To) {
		return r, badConfig("%s must be before %s, got %s and %s", ref("from"), ref("to"), from, to)
	}
	if offsets = strings.TrimSpace(offsets); offsets == "" {
		return r, nil
	}
	r.Offsets = map[int]processor.OffsetRange{}
	for item := range strings.SplitSeq(offsets, ",") {
		item = strings.TrimSpace(item)
		ps, rest, ok := strings.Cut(item, "=")
		bad := badConfig("%s must be PARTITION=START or PARTITION=START:END items, got %q", ref("offsets"), item)
		if !ok {
			return r, bad
		}
		p, err := strconv.Atoi(strings.TrimSpace(ps))
		if err != nil || p < 0 {
			return r, bad
		}
		if _, dup := r.Offsets[p]; dup {
			return r, badConfig("%s names partition %d twice", ref("offsets"), p)
		}
		ss, es, hasEnd := strings.Cut(rest, ":")
		o := processor.OffsetRange{End: -1}
		if o.Start, err = strconv.ParseInt(strings.TrimSpace(ss), 10, 64); err != nil || o.Start < 0 {
			return r, bad
		}
		if hasEnd {
			if o.End, err = strconv.ParseInt(strings.TrimSpace(es), 10, 64); err != nil || o.End < o.Start {
				return r, badConfig("%s: END must be a number not below START, got %q", ref("offsets"), item)
			}
		}
		r.Offsets[p] = o
	}
	return r, nil
}

func runReplay(ctx context.Context, cmd *cli.Command, s replaySettings) error {
	stderr := cmd.Root().ErrWriter
	log := newLogger(s.Ops, stderr)
	prov, err := newTelemetry(ctx)
	if err != nil {
		return err
	}
	defer shutdownTelemetry(prov, log)

	var sh *shared
	if s.Redis.Options != nil {
		if sh, err = newShared(s.Redis, s.Tencent, budget.Replay, s.Cap, "", log, prov); err != nil {
			return err
		}
		defer sh.Close() // after the pipeline and the client are done
	}
	sh.wire(&s.Tencent, &s.Pipeline)

	api, err := newClient(cmd, s.Tencent, log, prov)
	if err != nil {
		return err
	}
	defer api.Close()

	cfg := withKafka(s.Pipeline, s.Kafka, log, prov)
	replay, err := processor.NewReplay(cfg, s.Range)
	if err != nil {
		return configError(cmd, err)
	}
	pipe, err := processor.NewPipeline(cfg, api)
	if err != nil {
		return configError(cmd, err)
	}
	defer pipe.Close()

	log.Info("replay starting", slog.String("version", readBuildInfo().String()),
		slog.Any("brokers", s.Kafka.Brokers), slog.String("input", s.Pipeline.InputTopic),
		slog.String("output", s.Pipeline.OutputTopic), slog.String("dlq", s.Pipeline.DLQTopic),
		slog.String("group", s.Pipeline.Group), slog.String("range", s.Range.String()), slog.Any("tencent", s.Tencent),
		slog.String("redis", cmp.Or(s.Redis.Shown, "none")))
	start := time.Now()
	plan, err := replay.Plan(ctx)
	if err != nil {
		var missing *processor.MissingTopicError
		switch {
		case errors.As(err, &missing) && missing.Input:
			return flagError(cmd, "input-topic", "names topic %q, which does not exist", missing.Topic)
		case errors.As(err, &missing):
			return usageError{fmt.Errorf("topic %q does not exist: create it, or pass %s", missing.Topic, flagRef(cmd, "auto-create-topics"))}
		case errors.Is(err, processor.ErrConfig):
			return configError(cmd, err)
		}
		return err
	}
	if plan.Resumed {
		log.Info("resuming from checkpoint", slog.Int64("done", plan.Done), slog.Int64("total", plan.Total), slog.Bool("previous_run_stopped_cleanly", !plan.Unclean))
	}

	stopProgress := startProgress(s, stderr, log, replay, plan)
	err = pipe.Run(ctx, replay)
	stopProgress()
	pr := replay.Progress()
	printSummary(cmd.Root().Writer, s, plan, pr, pipe.Stats(), time.Since(start))
	switch {
	case err != nil:
		return namingFlags(cmd, err)
	case pr.Complete:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("replay interrupted at %d of %d offsets (group %s); run the same command again to resume", pr.Done, pr.Total, s.Pipeline.Group)
	default:
		return fmt.Errorf("replay stopped at %d of %d offsets (group %s); run the same command again to resume", pr.Done, pr.Total, s.Pipeline.Group)
	}
}

// startProgress shows progress until the returned func is called: a bar
// on a terminal (or with --progress bar), log lines every
// --progress-interval otherwise.
func startProgress(s replaySettings, w io.Writer, log *slog.Logger, r *processor.Replay, plan processor.ReplayProgress) func() {
	bar := s.Progress == "bar"
	if s.Progress == "auto" {
		f, ok := w.(*os.File)
		bar = ok && term.IsTerminal(int(f.Fd()))
	}
	stop, done := make(chan struct{}), make(chan struct{})
	every := s.Every
	var pb *progressbar.ProgressBar
	if bar {
		every = 200 * time.Millisecond
		// This run's share: the rate and ETA are this run's.
		pb = progressbar.NewOptions64(plan.Total-plan.Done,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription("replaying"),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("records"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionShowElapsedTimeOnFinish(),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetWidth(30),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		)
	}
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		last, lastAt := plan.Done, time.Now()
		for {
			select {
			case <-stop:
				if pb != nil {
					pr := r.Progress()
					_ = pb.Set64(pr.Done - plan.Done)
					if !pr.Complete {
						fmt.Fprintln(w)
					}
				}
				return
			case now := <-t.C:
				pr := r.Progress()
				if pb != nil {
					_ = pb.Set64(pr.Done - plan.Done)
					continue
				}
				rate := float64(pr.Done-last) / now.Sub(lastAt).Seconds()
				attrs := []any{slog.Int64("done", pr.Done), slog.Int64("total", pr.Total),
					slog.String("percent", fmt.Sprintf("%.1f", 100*float64(pr.Done)/float64(max(pr.Total, 1)))),
					slog.String("rate", fmt.Sprintf("%.1f/s", rate))}
				if rate > 0 {
					attrs = append(attrs, slog.Duration("eta", time.Duration(float64(pr.Total-pr.Done)/rate*float64(time.Second)).Round(time.Second)))
				}
				log.Info("replay progress", attrs...)
				last, lastAt = pr.Done, now
			}
		}
	}()
	return func() {
		close(stop)
		<-done
	}
}

// printSummary writes what the replay did.
func printSummary(w io.Writer, s replaySettings, plan, pr processor.ReplayProgress, st processor.Stats, took time.Duration) {
	state := "complete"
	if !pr.Complete {
		state = "incomplete"
	}
	fmt.Fprintf(w, "replay %s: %s -> %s (dlq %s), group %s\n", state, s.Pipeline.InputTopic, s.Pipeline.OutputTopic, s.Pipeline.DLQTopic, s.Pipeline.Group)
	fmt.Fprintf(w, "  range       %s\n", s.Range)
	resumed := ""
	switch {
	case plan.Resumed && plan.Unclean:
		resumed = fmt.Sprintf(", resumed at %d after an unclean stop (records the previous run published after its last checkpoint are published again; deduplicate on source topic/partition/offset)", plan.Done)
	case plan.Resumed:
		resumed = fmt.Sprintf(", resumed at %d after a clean stop (nothing published twice)", plan.Done)
	}
	fmt.Fprintf(w, "  offsets     %d of %d in %d partitions%s\n", pr.Done, pr.Total, len(pr.Partitions), resumed)
	fmt.Fprintf(w, "  records     %d read, %d enriched, %d dead-lettered, %d skipped (timestamp outside the range)\n", st.In+pr.Skipped, st.Out, st.DLQ, pr.Skipped)
	fmt.Fprintf(w, "  statuses    %s\n", counts(st.ByStatus))
	fmt.Fprintf(w, "  dlq         %s\n", counts(st.DLQByClass))
	if s.Redis.Options != nil {
		fmt.Fprintf(w, "  api         %d users fetched (cache hits %d), at most %g calls/s of the shared %g\n", st.APICalls, st.CacheHits, s.Cap, s.Tencent.Rate)
	} else {
		fmt.Fprintf(w, "  api         %d users fetched (cache hits %d), at most %g calls/s\n", st.APICalls, st.CacheHits, s.Tencent.Rate)
	}
	rate := 0.0
	if took > 0 {
		rate = float64(st.In+pr.Skipped) / took.Seconds()
	}
	fmt.Fprintf(w, "  duration    %s (%.1f records/s)\n", took.Round(time.Millisecond), rate)
}

// counts renders a count map as "k=v k=v" in key order, or "none".
func counts[K ~string](m map[K]int64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := slices.SortedFunc(maps.Keys(m), func(a, b K) int { return cmp.Compare(a, b) })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}
