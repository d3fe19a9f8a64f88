package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/urfave/cli/v3"
	"golang.org/x/sync/errgroup"

	"github.com/tencentchat-enricher/enricher/client"
	"github.com/tencentchat-enricher/enricher/client/simulator"
	"github.com/tencentchat-enricher/enricher/internal/devkafka"
	"github.com/tencentchat-enricher/enricher/internal/eventgen"
	"github.com/tencentchat-enricher/enricher/internal/opshttp"
	"github.com/tencentchat-enricher/enricher/processor"
)

const catDev = "Dev stack"

func devCommand() *cli.Command {
	var flags []cli.Flag
	flags = append(flags,
		&cli.StringFlag{Name: "data-dir", Category: catDev, Value: ".enricher-dev", Sources: env("ENRICHER_DEV_DATA_DIR"),
			Usage: "`DIR` where the embedded broker persists topics and offsets; reused by the next run"},
		&cli.BoolFlag{Name: "reset", Category: catDev, Sources: env("ENRICHER_DEV_RESET"),
			Usage: "delete --data-dir before starting"},
		&cli.StringFlag{Name: "kafka-addr", Category: catDev, Value: "127.0.0.1:9092", Sources: env("ENRICHER_DEV_KAFKA_ADDR"),
			Usage: "listen `ADDR` of the embedded Kafka broker (reachable with any Kafka client)"},
		&cli.IntFlag{Name: "partitions", Category: catDev, Value: 8, Sources: env("ENRICHER_DEV_PARTITIONS"),
			Usage: "partitions of the topics"},
		&cli.FloatFlag{Name: "api-rate", Category: catDev, Value: client.DefaultRate, Sources: env("ENRICHER_API_RATE"),
			Usage: "API calls per second the processor may make (the simulator enforces 200)"},
		&cli.DurationFlag{Name: "sim-latency", Category: catDev, Value: 20 * time.Millisecond, Sources: env("ENRICHER_DEV_SIM_LATENCY"),
			Usage: "simulated API latency, plus up to --sim-jitter"},
		&cli.DurationFlag{Name: "sim-jitter", Category: catDev, Value: 40 * time.Millisecond, Sources: env("ENRICHER_DEV_SIM_JITTER"),
			Usage: "random extra simulated API latency"},
		&cli.DurationFlag{Name: "summary-interval", Category: catDev, Value: 2 * time.Second, Sources: env("ENRICHER_DEV_SUMMARY_INTERVAL"),
			Usage: "period of the summary line"},
		&cli.IntFlag{Name: "samples", Category: catDev, Value: 1, Sources: env("ENRICHER_DEV_SAMPLES"),
			Usage: "enriched records printed with each summary line"},
		&cli.FloatFlag{Name: "churn", Category: catDev, Value: 0.01, Sources: env("ENRICHER_DEV_CHURN"),
			Usage: "`FRACTION` of the users whose subscriptions the simulator changes every minute, each change sent to the processor's webhook receiver (0: none)"},
		&cli.IntFlag{Name: "instances", Category: catDev, Value: 1, Sources: env("ENRICHER_DEV_INSTANCES"),
			Usage: "processors in one consumer group, each with its own API client; above 1 they share one API budget and subscription cache in an embedded Redis-compatible server (or --redis-url)"},
	)
	flags = append(flags, redisFlags()...)
	flags = append(flags, webhookFlags()...)
	flags = append(flags, generatorFlags()...)
	flags = append(flags, pipelineFlags()...)
	flags = append(flags, opsFlags("127.0.0.1:9464")...)
	return &cli.Command{
		Name:  "dev",
		Usage: "run everything on loopback: a Kafka broker, the API simulator, sample events and the processor",
		Description: "Starts an embedded Kafka broker on --kafka-addr (data under --data-dir), the\n" +
			"Tencent Chat API simulator, a generator of sample user events and the processor,\n" +
			"then prints a summary line and sample enriched records every --summary-interval.\n" +
			"Read the topics with any Kafka client while it runs, e.g.\n" +
			"  kcat -C -b 127.0.0.1:9092 -t user-events-enriched -e\n" +
			"Ctrl-C stops everything; the next run reuses the data.",
		Flags:  flags,
		Action: runDev,
	}
}

// devSettings is the whole configuration of `dev`.
type devSettings struct {
	DataDir         string
	Reset           bool
	KafkaAddr       string
	Partitions      int
	APIRate         float64
	SimLatency      time.Duration
	SimJitter       time.Duration
	SummaryInterval time.Duration
	Samples         int
	Instances       int
	Churn           float64
	Webhook         webhookSettings // Addr defaults to 127.0.0.1:0: the simulator calls it
	Redis           redisSettings   // --redis-url; none with Instances > 1: an embedded server
	Gen             eventgen.Config
	Pipeline        processor.Config
	Ops             opsSettings
}

func parseDev(cmd *cli.Command) (devSettings, error) {
	s := devSettings{
		DataDir:         cmd.String("data-dir"),
		Reset:           cmd.Bool("reset"),
		KafkaAddr:       strings.TrimSpace(cmd.String("kafka-addr")),
		Partitions:      cmd.Int("partitions"),
		APIRate:         cmd.Float("api-rate"),
		SimLatency:      cmd.Duration("sim-latency"),
		SimJitter:       cmd.Duration("sim-jitter"),
		SummaryInterval: cmd.Duration("summary-interval"),
		Samples:         cmd.Int("samples"),
		Instances:       cmd.Int("instances"),
		Churn:           cmd.Float("churn"),
	}
	var err error
	if s.Ops, err = parseOps(cmd); err != nil {
		return s, err
	}
	if s.Pipeline, err = parsePipeline(cmd); err != nil {
		return s, err
	}
	if s.Gen, err = parseGenerator(cmd); err != nil {
		return s, err
	}
	if err := checkAPIRate(cmd); err != nil {
		return s, err
	}
	if err := devClientConfig("http://127.0.0.1", s.APIRate).Validate(); err != nil {
		return s, configError(cmd, err)
	}
	switch {
	case s.DataDir == "":
		return s, flagError(cmd, "data-dir", "must not be empty")
	case s.Partitions < 1:
		return s, flagError(cmd, "partitions", "must be at least 1, got %d", s.Partitions)
	case s.SimLatency < 0:
		return s, flagError(cmd, "sim-latency", "must not be negative, got %s", s.SimLatency)
	case s.SimJitter < 0:
		return s, flagError(cmd, "sim-jitter", "must not be negative, got %s", s.SimJitter)
	case s.SummaryInterval <= 0:
		return s, flagError(cmd, "summary-interval", "must be positive, got %s", s.SummaryInterval)
	case s.Samples < 0:
		return s, flagError(cmd, "samples", "must not be negative, got %d", s.Samples)
	case s.Instances < 1:
		return s, flagError(cmd, "instances", "must be at least 1, got %d", s.Instances)
	case s.Churn < 0 || s.Churn > 1:
		return s, flagError(cmd, "churn", "must be a fraction from 0 to 1, got %g", s.Churn)
	}
	if !cmd.IsSet("webhook-addr") {
		_ = cmd.Set("webhook-addr", "127.0.0.1:0")
	}
	if s.Webhook, err = parseWebhook(cmd); err != nil {
		return s, err
	}
	if s.Webhook.Addr == "" {
		s.Webhook.Addr = "127.0.0.1:0"
	}
	if s.Redis, err = parseRedis(cmd); err != nil {
		return s, err
	}
	if _, _, err := net.SplitHostPort(s.KafkaAddr); err != nil {
		return s, flagError(cmd, "kafka-addr", "must be HOST:PORT, got %q", s.KafkaAddr)
	}
	return s, nil
}

func runDev(ctx context.Context, cmd *cli.Command) error {
	s, err := parseDev(cmd)
	if err != nil {
		return err
	}
	out := cmd.Root().Writer
	log := newLogger(s.Ops, cmd.Root().ErrWriter)

	if s.Reset {
		if err := os.RemoveAll(s.DataDir); err != nil {
			return badConfig("--reset: cannot delete --data-dir: %w", err)
		}
	}
	kafkaDir := filepath.Join(s.DataDir, "kafka")
	if err := os.MkdirAll(kafkaDir, 0o750); err != nil {
		return badConfig("--data-dir: %w", err)
	}

	// Console spans go to a file, not between the summary lines.
	var spansPath string
	var spans io.Writer
	if os.Getenv("OTEL_TRACES_EXPORTER") == "console" {
		spansPath = filepath.Join(s.DataDir, devSpansFile)
		f, err := os.OpenFile(spansPath, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
		if err != nil {
			return badConfig("--data-dir: spans file: %w", err)
		}
		defer f.Close() // after the providers' shutdown has flushed
		spans = f
	}
	prov, err := newTelemetryTo(ctx, spans)
	if err != nil {
		return err
	}
	defer shutdownTelemetry(prov, log)

	broker, err := devkafka.Start(devkafka.Config{
		Addr: s.KafkaAddr, DataDir: kafkaDir, Partitions: s.Partitions,
		Topics: []string{s.Pipeline.InputTopic, s.Pipeline.OutputTopic, s.Pipeline.DLQTopic},
	})
	if err != nil {
		return fmt.Errorf("dev: kafka on --kafka-addr %s: %w", s.KafkaAddr, err)
	}
	defer broker.Close()

	// The simulator knows the generator's users (same naming and count).
	sim, err := simulator.NewServer(simulator.Config{
		SDKAppID: devSDKAppID, Admin: devAdmin, SecretKey: devSecretKey,
		Dataset: simulator.Generate(simulator.GenConfig{Seed: int64(s.Gen.Seed), Users: s.Gen.Users}),
		Faults:  simulator.Faults{Latency: s.SimLatency, Jitter: s.SimJitter},
		Seed:    s.Gen.Seed,
	})
	if err != nil {
		return fmt.Errorf("dev: simulator: %w", err)
	}
	defer sim.Close()

	k := kafkaSettings{Brokers: []string{broker.Addr()}}
	rs, redisShown, stopRedis, err := devRedis(s)
	if err != nil {
		return err
	}
	defer stopRedis()
	insts := make([]*devInstance, s.Instances)
	for i := range insts {
		inst, err := newDevInstance(cmd, s, i, k, rs, sim.URL(), log, prov)
		if err != nil {
			return err
		}
		defer inst.close()
		insts[i] = inst
	}
	// The webhooks go to the first processor; with several, the shared
	// cache carries each change to the others.
	hooks, err := startWebhook(s.Webhook, devSDKAppID, insts[0].proc, k, log, prov)
	if err != nil {
		return err
	}
	sim.SetWebhook(simulator.Webhook{URL: hooks.URL(), Token: s.Webhook.Token})
	checks := devReadiness(k, insts)
	ops, err := startOps(s.Ops, prov, checks, log)
	if err != nil {
		return err
	}

	s.Gen.UserID = simulator.UserID
	if !cmd.IsSet("seed") {
		// Same users and dataset every run, but fresh event ids: a rerun
		// must not produce events that duplicate the previous run's.
		s.Gen.Seed = uint64(time.Now().UnixNano())
	}
	gen, err := eventgen.New(s.Gen)
	if err != nil {
		return badConfig("%w", err)
	}
	events := newEventWriter(k, s.Pipeline.InputTopic)
	defer events.Close()

	fmt.Fprintf(out, "enricher dev: kafka %s (data %s, %d events already in %s), simulator %s, %g events/s over %d users\n",
		broker.Addr(), s.DataDir, topicRecords(ctx, broker.Addr(), s.Pipeline.InputTopic), s.Pipeline.InputTopic,
		sim.URL(), s.Gen.Rate, s.Gen.Users)
	if len(insts) > 1 || redisShown != "" {
		fmt.Fprintf(out, "  %d processors in group %s sharing one API budget and cache in %s\n", len(insts), s.Pipeline.Group, redisShown)
	}
	fmt.Fprintf(out, "  webhooks: %s; the simulator changes %g%% of the users' subscriptions a minute (POST %s/subscriptions for one)\n",
		hooks.URL(), 100*s.Churn, sim.URL())
	fmt.Fprintf(out, "  read the output: kcat -C -b %s -t %s -e\n", broker.Addr(), s.Pipeline.OutputTopic)
	if ops != nil {
		fmt.Fprintf(out, "  metrics: http://%s/metrics  readiness: http://%s/readyz\n", ops.Addr(), ops.Addr())
	}
	if spansPath != "" {
		fmt.Fprintf(out, "  spans (OTEL_TRACES_EXPORTER=console): %s, one JSON object per span\n", spansPath)
	}
	fmt.Fprintln(out, "  Ctrl-C stops")

	// The processor runs under its own context so that, on Ctrl-C, the
	// generator stops first and the processor drains what was produced.
	procCtx, stopProc := context.WithCancel(context.WithoutCancel(ctx))
	defer stopProc()
	g, gctx := errgroup.WithContext(ctx)
	for i, inst := range insts {
		g.Go(func() error {
			defer stopProc()
			err := inst.proc.Run(procCtx)
			if err == nil && ctx.Err() == nil {
				err = fmt.Errorf("processor %d stopped unexpectedly", i)
			}
			return err
		})
	}
	g.Go(func() error { return hooks.Run(procCtx) })
	if s.Churn > 0 {
		g.Go(func() error { return sim.RunChurn(gctx, s.Churn, s.Gen.Users) })
	}
	g.Go(func() error {
		if err := gen.Run(gctx, events); err != nil {
			return fmt.Errorf("dev: generator: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done() // Ctrl-C or a failed component
		stopProc()
		return nil
	})
	if ops != nil {
		g.Go(func() error { return ops.Run(procCtx) })
	}
	samples := make(chan kafka.Message, max(1, s.Samples))
	if s.Samples > 0 {
		g.Go(func() error { return tailSamples(procCtx, k, s.Pipeline.OutputTopic, samples, log) })
	}
	g.Go(func() error {
		summarize(procCtx, out, s, insts, checks, gen, sim, samples)
		return nil
	})
	err = g.Wait()
	st, per := devStats(insts)
	fmt.Fprintf(out, "enricher dev: stopped; in %d, out %d, dlq %d%s; api calls %d; %s; data kept in %s\n",
		st.In, st.Out, st.DLQ, per, sim.Stats().Total, churnLine(sim, st), s.DataDir)
	return err
}

// tailSamples reads the output topic from its end, one reader per
// partition, and offers records to the summary; records are dropped while
// the summary is not asking.
func tailSamples(ctx context.Context, k kafkaSettings, topic string, samples chan<- kafka.Message, log *slog.Logger) error {
	parts, err := (&kafka.Dialer{Timeout: 5 * time.Second}).LookupPartitions(ctx, "tcp", k.Brokers[0], topic)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("dev: no sample records", slog.Any("error", err))
		}
		return nil // samples are a convenience; never stop the stack for them
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, p := range parts {
		g.Go(func() error {
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: k.Brokers, Topic: topic, Partition: p.ID, MaxWait: 200 * time.Millisecond})
			defer r.Close()
			if err := r.SetOffset(kafka.LastOffset); err != nil {
				return nil
			}
			for {
				m, err := r.ReadMessage(gctx)
				if err != nil {
					return nil
				}
				select {
				case samples <- m:
				default:
				}
			}
		})
	}
	return g.Wait()
}

// summarize prints one line per interval and up to s.Samples enriched
// records. The line ends with what /readyz would say (checks) and the
// state of each instance's API circuit breaker.
func summarize(ctx context.Context, out io.Writer, s devSettings, insts []*devInstance, checks map[string]opshttp.Check,
	gen *eventgen.Generator, sim *simulator.Server, samples <-chan kafka.Message) {
	t := time.NewTicker(s.SummaryInterval)
	defer t.Stop()
	start := time.Now()
	lastCalls, lastAt := sim.Stats().Total, start
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			st, per := devStats(insts)
			calls := sim.Stats().Total
			rate := float64(calls-lastCalls) / now.Sub(lastAt).Seconds()
			lastCalls, lastAt = calls, now
			lag, known := int64(0), false
			for _, p := range st.Partitions {
				if p.Lag >= 0 && p.Topic == s.Pipeline.InputTopic {
					lag += p.Lag
					known = true
				}
			}
			lagText := "?"
			if known {
				lagText = fmt.Sprint(lag)
			}
			fmt.Fprintf(out, "[%5s] sent %d | in %d | out %d | dlq %d | api %.1f calls/s | cache hit %.0f%% | lag %s | in-flight %d | %s | %s | breaker %s%s\n",
				now.Sub(start).Round(time.Second), gen.Stats().Sent, st.In, st.Out, st.DLQ, rate,
				100*st.CacheHitRatio, lagText, st.InFlight, churnLine(sim, st), readinessText(ctx, checks, s.SummaryInterval), breakerText(insts), per)
			for i := 0; i < s.Samples; i++ {
				select {
				case m := <-samples:
					fmt.Fprintf(out, "  sample: %s\n", sampleLine(m.Value, 1))
				default:
					i = s.Samples
				}
			}
		}
	}
}

// devSpansFile is the file under --data-dir receiving the console spans.
const devSpansFile = "spans.jsonl"

// readinessText evaluates the readiness checks as /readyz does: "ready",
// "ready, degraded (NAME...)" or "not ready (NAME...)". A check taking
// longer than the summary interval (at most 2s) counts as failing.
func readinessText(ctx context.Context, checks map[string]opshttp.Check, interval time.Duration) string {
	ctx, cancel := context.WithTimeout(ctx, min(interval, 2*time.Second))
	defer cancel()
	var failing, degraded []string
	for _, name := range slices.Sorted(maps.Keys(checks)) {
		switch err := checks[name].Check(ctx); {
		case err == nil:
		case opshttp.IsDegraded(err):
			degraded = append(degraded, name)
		default:
			failing = append(failing, name)
		}
	}
	switch {
	case len(failing) > 0:
		return "not ready (" + strings.Join(failing, ", ") + ")"
	case len(degraded) > 0:
		return "ready, degraded (" + strings.Join(degraded, ", ") + ")"
	}
	return "ready"
}

// breakerText is the state of each instance's API circuit breaker:
// "closed", or "closed/open/..." with several instances.
func breakerText(insts []*devInstance) string {
	states := make([]string, len(insts))
	for i, inst := range insts {
		states[i] = inst.api.BreakerState().String()
	}
	return strings.Join(states, "/")
}

// churnLine shows the simulator's subscription changes, its webhook calls
// and what they did to the caches.
func churnLine(sim *simulator.Server, st processor.Stats) string {
	c, w := sim.ChurnStats(), sim.WebhookStats()
	return fmt.Sprintf("changes +%d/-%d, webhooks %d (%d failed), cache patched %d invalidated %d",
		c.Subscribed, c.Unsubscribed, w.Sent, w.Failed, st.CacheChanges[processor.ChangePatched], st.CacheChanges[processor.ChangeInvalidated])
}

// topicRecords returns the sum of the topic's partition end offsets (0 when unknown).
func topicRecords(ctx context.Context, addr, topic string) int64 {
	d := &kafka.Dialer{Timeout: 5 * time.Second}
	parts, err := d.LookupPartitions(ctx, "tcp", addr, topic)
	if err != nil {
		return 0
	}
	var n int64
	for _, p := range parts {
		conn, err := d.DialLeader(ctx, "tcp", addr, topic, p.ID)
		if err != nil {
			return 0
		}
		last, err := conn.ReadLastOffset()
		conn.Close()
		if err != nil {
			return 0
		}
		n += last
	}
	return n
}

// sampleLine shows an enriched record with its official_accounts list cut
// to the first n entries, so that one sample fits a few terminal lines.
func sampleLine(value []byte, n int) string {
	var rec map[string]json.RawMessage
	if json.Unmarshal(value, &rec) != nil {
		return string(value)
	}
	var enr map[string]json.RawMessage
	var accts []json.RawMessage
	if json.Unmarshal(rec["enrichment"], &enr) != nil || json.Unmarshal(enr["official_accounts"], &accts) != nil || len(accts) <= n {
		return string(value)
	}
	enr["official_accounts"], _ = json.Marshal(accts[:n])
	rec["enrichment"], _ = json.Marshal(enr)
	short, err := json.Marshal(rec)
	if err != nil {
		return string(value)
	}
	return fmt.Sprintf("%s (official_accounts: first %d of %d shown)", short, n, len(accts))
}

// devClientConfig is the client of the embedded simulator at url.
func devClientConfig(url string, rate float64) client.Config {
	return client.Config{BaseURL: url, SDKAppID: devSDKAppID, Admin: devAdmin, SecretKey: devSecretKey, Rate: rate}
}
