package main

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/tencentchat-enricher/enricher/client"
	"github.com/tencentchat-enricher/enricher/internal/devkafka"
	"github.com/tencentchat-enricher/enricher/internal/telemetry"
	"github.com/tencentchat-enricher/enricher/processor"
)

// goFieldNames are client/processor Config field names and package
// prefixes that must never reach an operator in place of a flag.
var goFieldNames = []string{"client:", "processor:", "invalid config", "Rate ", "BaseURL", "UserIDPointer", "StartOffset",
	"OrderBy", "MaxInFlight", "MaxEventBytes", "NegativeCacheTTL", "CommitInterval", "DrainTimeout", "ShutdownTimeout", "SDKAppID"}

func TestConfigErrorsNameFlagAndEnv(t *testing.T) {
	tests := []struct {
		name   string
		env    map[string]string // applied over validRunEnv
		args   []string
		want   string // the line must contain it
		broker bool   // ENRICHER_BROKERS names an in-process broker (rules checked against the topic)
	}{
		{name: "api rate 0", args: []string{"run", "--api-rate", "0"}, want: "--api-rate (ENRICHER_API_RATE) must be above 0"},
		{name: "api rate above the limit (flag)", args: []string{"run", "--api-rate", "200.5"}, want: "--api-rate (ENRICHER_API_RATE) must be above 0 and at most 200"},
		{name: "api rate above the limit", env: map[string]string{"ENRICHER_API_RATE": "201"}, args: []string{"run"}, want: "--api-rate (ENRICHER_API_RATE)"},
		{name: "base url scheme", args: []string{"run", "--im-base-url", "ftp://example.com"}, want: "--im-base-url (ENRICHER_IM_BASE_URL)"},
		{name: "base url without host", args: []string{"run", "--im-base-url", "http://"}, want: "--im-base-url (ENRICHER_IM_BASE_URL)"},
		{name: "base url with query", env: map[string]string{"ENRICHER_IM_BASE_URL": "https://example.com/?a=b"}, args: []string{"run"}, want: "--im-base-url (ENRICHER_IM_BASE_URL)"},
		{name: "unknown region", args: []string{"run", "--im-region", "mars"}, want: "--im-region (ENRICHER_IM_REGION)"},
		{name: "negative sdkappid", args: []string{"run", "--im-sdkappid", "-5"}, want: "--im-sdkappid (ENRICHER_IM_SDKAPPID)"},
		{name: "pointer the processor rejects", args: []string{"run", "--user-id-pointer", "/a~2"}, want: "--user-id-pointer (ENRICHER_USER_ID_POINTER)"},
		{name: "pointer without slash", args: []string{"run", "--user-id-pointer", "user_id"}, want: "--user-id-pointer (ENRICHER_USER_ID_POINTER)"},
		{name: "start offset", args: []string{"run", "--start-offset", "middle"}, want: "--start-offset (ENRICHER_START_OFFSET) must be earliest or latest"},
		{name: "start offset from env", env: map[string]string{"ENRICHER_START_OFFSET": "newest"}, args: []string{"run"}, want: "--start-offset (ENRICHER_START_OFFSET)"},
		{name: "isolation level", args: []string{"run", "--isolation-level", "serializable"}, want: "--isolation-level (ENRICHER_ISOLATION_LEVEL) must be read_committed or read_uncommitted"},
		{name: "replay isolation level from env", env: map[string]string{"ENRICHER_ISOLATION_LEVEL": "dirty"}, args: []string{"replay"}, want: "--isolation-level (ENRICHER_ISOLATION_LEVEL)"},
		{name: "order by", args: []string{"run", "--order-by", "partition"}, want: "--order-by (ENRICHER_ORDER_BY) must be kafka-key or user"},
		{name: "per-partition zero", args: []string{"run", "--max-in-flight-per-partition", "0"}, want: "--max-in-flight-per-partition (ENRICHER_MAX_IN_FLIGHT_PER_PARTITION)"},
		{name: "per-partition above the commit metadata", args: []string{"run", "--max-in-flight-per-partition", "20001"}, want: "--max-in-flight-per-partition (ENRICHER_MAX_IN_FLIGHT_PER_PARTITION) must be at most 20000"},
		{name: "max in flight", args: []string{"run", "--max-in-flight", "-1"}, want: "--max-in-flight (ENRICHER_MAX_IN_FLIGHT)"},
		{name: "max event bytes", args: []string{"run", "--max-event-bytes", "0"}, want: "--max-event-bytes (ENRICHER_MAX_EVENT_BYTES)"},
		{name: "negative cache ttl", args: []string{"run", "--negative-cache-ttl", "0s"}, want: "--negative-cache-ttl (ENRICHER_NEGATIVE_CACHE_TTL)"},
		{name: "max record bytes", args: []string{"run", "--max-record-bytes", "1000"}, want: "--max-record-bytes (ENRICHER_MAX_RECORD_BYTES) must be at least 16384"},
		{name: "record retry deadline", env: map[string]string{"ENRICHER_RECORD_RETRY_DEADLINE": "-1s"}, args: []string{"run"}, want: "--record-retry-deadline (ENRICHER_RECORD_RETRY_DEADLINE) must be positive"},
		{name: "cache ttl", args: []string{"run", "--cache-ttl", "-1m"}, want: "--cache-ttl (ENRICHER_CACHE_TTL)"},
		{name: "refresh after the ttl", args: []string{"run", "--cache-ttl", "1h", "--cache-refresh-after", "2h"}, want: "--cache-refresh-after (ENRICHER_CACHE_REFRESH_AFTER) must be shorter than --cache-ttl (ENRICHER_CACHE_TTL) (1h0m0s), got 2h0m0s"},
		{name: "changes topic without webhooks", args: []string{"run", "--changes-topic", "changes"}, want: "--changes-topic (ENRICHER_CHANGES_TOPIC) needs --webhook-addr (ENRICHER_WEBHOOK_ADDR)"},
		{name: "webhook addr", args: []string{"run", "--webhook-addr", "8443"}, want: "--webhook-addr (ENRICHER_WEBHOOK_ADDR) must be [HOST]:PORT"},
		{name: "webhook cert without key", args: []string{"run", "--webhook-addr", ":0", "--webhook-tls-cert", "c.pem"}, want: "--webhook-tls-cert (ENRICHER_WEBHOOK_TLS_CERT) and --webhook-tls-key (ENRICHER_WEBHOOK_TLS_KEY) must be set together"},
		{name: "webhook token file missing", args: []string{"run", "--webhook-addr", ":0", "--webhook-token-file", "/nonexistent/token"}, want: "--webhook-token-file (ENRICHER_WEBHOOK_TOKEN_FILE): cannot read"},
		{name: "commit interval", env: map[string]string{"ENRICHER_COMMIT_INTERVAL": "0s"}, args: []string{"run"}, want: "--commit-interval (ENRICHER_COMMIT_INTERVAL)"},
		{name: "drain timeout", args: []string{"run", "--drain-timeout", "-1s"}, want: "--drain-timeout (ENRICHER_DRAIN_TIMEOUT)"},
		{name: "shutdown timeout", args: []string{"run", "--shutdown-timeout", "0s"}, want: "--shutdown-timeout (ENRICHER_SHUTDOWN_TIMEOUT)"},
		{name: "unavailable after", args: []string{"run", "--unavailable-after", "-1s"}, want: "--unavailable-after (ENRICHER_UNAVAILABLE_AFTER)"},
		{name: "same topics", args: []string{"run", "--dlq-topic", "user-events"}, want: "--dlq-topic (ENRICHER_DLQ_TOPIC)"},
		{name: "brokers", args: []string{"run", "--brokers", "nohost"}, want: "--brokers (ENRICHER_BROKERS)"},
		{name: "http addr", args: []string{"run", "--http-addr", "9464"}, want: "--http-addr (ENRICHER_HTTP_ADDR)"},
		{name: "log level", args: []string{"run", "--log-level", "loud"}, want: "--log-level (ENRICHER_LOG_LEVEL)"},
		{name: "fields", args: []string{"run", "--fields", "official_account,colour"}, want: `--fields (ENRICHER_FIELDS) unknown account field "colour"`},
		{name: "output compression", env: map[string]string{"ENRICHER_OUTPUT_COMPRESSION": "brotli"}, args: []string{"run"}, want: "--output-compression (ENRICHER_OUTPUT_COMPRESSION) must be none, gzip, snappy, lz4 or zstd"},
		{name: "pprof addr", args: []string{"run", "--pprof", "6060"}, want: "--pprof (ENRICHER_PPROF) must be [HOST]:PORT"},
		{name: "sasl mechanism", args: []string{"run", "--kafka-sasl-mechanism", "GSSAPI"}, want: "--kafka-sasl-mechanism (ENRICHER_KAFKA_SASL_MECHANISM)"},

		{name: "replay api rate 1", env: map[string]string{"ENRICHER_REPLAY_API_RATE": "0"}, args: []string{"replay"}, want: "--api-rate (ENRICHER_REPLAY_API_RATE) must be above 0"},
		{name: "replay base url", args: []string{"replay", "--im-base-url", "ftp://example.com"}, want: "--im-base-url (ENRICHER_IM_BASE_URL)"},
		{name: "replay pointer", args: []string{"replay", "--user-id-pointer", "/a~2"}, want: "--user-id-pointer (ENRICHER_USER_ID_POINTER)"},
		{name: "replay order by", args: []string{"replay", "--order-by", "x"}, want: "--order-by (ENRICHER_ORDER_BY)"},
		{name: "replay drain timeout", args: []string{"replay", "--drain-timeout", "0s"}, want: "--drain-timeout (ENRICHER_DRAIN_TIMEOUT)"},
		{name: "replay output topic", args: []string{"replay", "--output-topic", " "}, want: "--output-topic (ENRICHER_REPLAY_OUTPUT_TOPIC)"},
		{name: "replay from", args: []string{"replay", "--from", "yesterday"}, want: "--from (ENRICHER_REPLAY_FROM)"},
		{name: "replay offsets", args: []string{"replay", "--offsets", "0=5:1"}, want: "--offsets (ENRICHER_REPLAY_OFFSETS)"},
		{name: "replay progress", args: []string{"replay", "--progress", "loud"}, want: "--progress (ENRICHER_REPLAY_PROGRESS)"},
		{name: "replay has no start offset", args: []string{"replay", "--start-offset", "latest"}, want: "start-offset"},

		{name: "dev api rate 1", args: []string{"dev", "--api-rate", "-1"}, want: "--api-rate"},

		// The client's limiter needs a budget of 2 calls/s of which it uses
		// DefaultRateSafety: 2.05 is the lowest rate it paces as asked.
		{name: "api rate 0.5", args: []string{"run", "--api-rate", "0.5"}, want: "--api-rate (ENRICHER_API_RATE) must be at least 2.05 calls/s"},
		{name: "api rate 1", env: map[string]string{"ENRICHER_API_RATE": "1"}, args: []string{"run"}, want: "--api-rate (ENRICHER_API_RATE) must be at least 2.05 calls/s"},
		{name: "api rate 2", args: []string{"run", "--api-rate", "2"}, want: "--api-rate (ENRICHER_API_RATE) must be at least 2.05 calls/s (the client paces 98% of it and needs 2 calls/s), got 2"},
		{name: "replay api rate 2", args: []string{"replay", "--api-rate", "2"}, want: "--api-rate (ENRICHER_REPLAY_API_RATE) must be at least 2.05"},
		{name: "dev api rate 2", args: []string{"dev", "--api-rate", "2.04"}, want: "--api-rate (ENRICHER_API_RATE) must be at least 2.05"},
		{name: "drain timeout above the rebalance timeout", args: []string{"run", "--drain-timeout", "31s"},
			want: "--drain-timeout (ENRICHER_DRAIN_TIMEOUT) must be shorter than --rebalance-timeout (ENRICHER_REBALANCE_TIMEOUT) (20s), got 31s: a member that drains longer"},
		{name: "drain timeout equal to a set rebalance timeout", env: map[string]string{"ENRICHER_REBALANCE_TIMEOUT": "8s"}, args: []string{"run", "--drain-timeout", "8s"},
			want: "--drain-timeout (ENRICHER_DRAIN_TIMEOUT) must be shorter than --rebalance-timeout (ENRICHER_REBALANCE_TIMEOUT) (8s), got 8s"},
		{name: "replay offsets of a missing partition", broker: true, env: map[string]string{"ENRICHER_LOG_LEVEL": "warn"}, args: []string{"replay", "--offsets", "99=0", "--auto-create-topics"},
			want: `--offsets (ENRICHER_REPLAY_OFFSETS) names a partition that topic "user-events" does not have (it has partitions 0 to 7), got 99`},
		{name: "generate rate", args: []string{"generate", "--rate", "0"}, want: "--rate (ENRICHER_GEN_RATE) must be above 0"},
		{name: "generate count", args: []string{"generate", "--count", "-1"}, want: "--count (ENRICHER_GEN_COUNT) must not be negative"},
		{name: "generate skew", env: map[string]string{"ENRICHER_GEN_SKEW": "1"}, args: []string{"generate"}, want: "--skew (ENRICHER_GEN_SKEW) must be greater than 1"},
		{name: "broker partitions", args: []string{"broker", "--partitions", "0"}, want: "--partitions (ENRICHER_BROKER_PARTITIONS) must be at least 1"},
		{name: "broker addr", args: []string{"broker", "--addr", "9092"}, want: "--addr (ENRICHER_BROKER_ADDR) must be HOST:PORT"},
	}
	var brokers string
	for _, tt := range tests {
		if tt.broker && brokers == "" {
			b, err := devkafka.Start(devkafka.Config{Topics: []string{"user-events"}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			brokers = b.Addr()
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			validRunEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			if tt.broker {
				t.Setenv("ENRICHER_BROKERS", brokers)
			}
			code, stdout, stderr := runApp(t, context.Background(), tt.args...)
			if code != exitCodeUsage {
				t.Fatalf("exit code %d, want %d; stderr: %s", code, exitCodeUsage, stderr)
			}
			lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], tt.want) {
				t.Fatalf("stderr must be one line containing %q, got %q", tt.want, stderr)
			}
			for _, f := range goFieldNames {
				if strings.Contains(lines[0], f) {
					t.Errorf("%q names a Go field or package (%q) instead of a flag", lines[0], f)
				}
			}
			if strings.Contains(stdout+stderr, testSecret) {
				t.Error("output contains the secret")
			}
		})
	}
}

// checkNamesFlag checks that verr, a package's verdict on a broken
// setting, is reported by configError as flag, with no Go field name.
func checkNamesFlag(t *testing.T, cmd *cli.Command, flag string, verr error) {
	t.Helper()
	if verr == nil {
		t.Errorf("%s: the package accepts the broken value; the case tests nothing", flag)
		return
	}
	err := configError(cmd, verr)
	if !strings.HasPrefix(err.Error(), flagRef(cmd, flag)+" ") {
		t.Errorf("%s: configError = %v, want an error naming %s first", flag, err, flagRef(cmd, flag))
	}
	for _, f := range goFieldNames {
		if strings.Contains(err.Error(), f) {
			t.Errorf("%s: %q names %q", flag, err, f)
		}
	}
}

// TestClientConfigErrorsNameFlags: every client field a flag sets, when
// the client rejects it, is reported as that flag.
func TestClientConfigErrorsNameFlags(t *testing.T) {
	run := runCommand()
	good := client.Config{BaseURL: "https://example.com", SDKAppID: 1, Admin: "a", SecretKey: "k", Rate: 100}
	if err := good.Validate(); err != nil {
		t.Fatalf("valid settings rejected: %v", err)
	}
	cases := []struct {
		flag   string
		break_ func(*client.Config)
	}{
		{"im-base-url", func(c *client.Config) { c.BaseURL = "ftp://example.com" }},
		{"im-region", func(c *client.Config) { c.BaseURL, c.Region = "", "mars" }},
		{"im-sdkappid", func(c *client.Config) { c.SDKAppID = -1 }},
		{"im-admin", func(c *client.Config) { c.Admin = " " }},
		{"api-rate", func(c *client.Config) { c.Rate = 201 }},
	}
	for _, tt := range cases {
		c := good
		tt.break_(&c)
		checkNamesFlag(t, run, tt.flag, c.Validate())
	}
}

// TestProcessorConfigErrorsNameFlags: every field the processor rejects
// is reported as the flag that sets it, and every row of configFlags names
// a real flag of run or replay.
func TestProcessorConfigErrorsNameFlags(t *testing.T) {
	run, replay := runCommand(), replayCommand()
	for key, flag := range configFlags {
		if !hasFlag(run, flag) && !hasFlag(replay, flag) {
			t.Errorf("configFlags[%q]: neither run nor replay has --%s", key, flag)
		}
	}
	good := processor.Config{Brokers: []string{"127.0.0.1:9092"}, InputTopic: "in", OutputTopic: "out", DLQTopic: "dlq", Group: "g"}
	cases := []struct {
		flag   string
		break_ func(*processor.Config)
	}{
		{"input-topic", func(c *processor.Config) { c.InputTopic = "" }},
		{"output-topic", func(c *processor.Config) { c.OutputTopic = "in" }},
		{"dlq-topic", func(c *processor.Config) { c.DLQTopic = "out" }},
		{"group", func(c *processor.Config) { c.Group = "" }},
		{"brokers", func(c *processor.Config) { c.Brokers = []string{""} }},
		{"user-id-pointer", func(c *processor.Config) { c.UserIDPointer = "/a~9" }},
		{"start-offset", func(c *processor.Config) { c.StartOffset = "middle" }},
		{"isolation-level", func(c *processor.Config) { c.IsolationLevel = "dirty" }},
		{"max-in-flight", func(c *processor.Config) { c.MaxInFlight = -1 }},
		{"max-in-flight-per-partition", func(c *processor.Config) { c.MaxInFlightPerPartition = processor.MaxPartitionWindow + 1 }},
		{"max-event-bytes", func(c *processor.Config) { c.MaxEventBytes = -1 }},
		{"max-record-bytes", func(c *processor.Config) { c.MaxRecordBytes = 100 }},
		{"record-retry-deadline", func(c *processor.Config) { c.RecordRetryDeadline = -time.Second }},
		{"cache-size", func(c *processor.Config) { c.CacheSize = -1 }},
		{"cache-ttl", func(c *processor.Config) { c.CacheTTL = -time.Second }},
		{"negative-cache-ttl", func(c *processor.Config) { c.NegativeCacheTTL = -time.Second }},
		{"commit-interval", func(c *processor.Config) { c.CommitInterval = -time.Second }},
		{"drain-timeout", func(c *processor.Config) { c.DrainTimeout = 40 * time.Second }},
		{"shutdown-timeout", func(c *processor.Config) { c.ShutdownTimeout = -time.Second }},
		{"unavailable-after", func(c *processor.Config) { c.UnavailableAfter = -time.Second }},
		{"heartbeat-interval", func(c *processor.Config) { c.HeartbeatInterval = 10 * time.Second }},
	}
	for _, tt := range cases {
		c := good
		tt.break_(&c)
		checkNamesFlag(t, run, tt.flag, c.Validate())
	}
}

// TestPipelineFlagsReachProcessor: the new settings go from flag or
// environment to processor.Config, with the processor's defaults.
func TestPipelineFlagsReachProcessor(t *testing.T) {
	defaults := processor.Config{
		StartOffset: processor.StartEarliest, OrderBy: processor.OrderByKafkaKey,
		MaxInFlight: processor.DefaultMaxInFlight, MaxInFlightPerPartition: processor.DefaultMaxInFlightPerPartition,
		MaxEventBytes: processor.DefaultMaxEventBytes, NegativeCacheTTL: processor.DefaultNegativeCacheTTL,
		CommitInterval: processor.DefaultCommitInterval, DrainTimeout: processor.DefaultDrainTimeout,
		ShutdownTimeout: processor.DefaultShutdownTimeout, MaxRecordBytes: processor.DefaultMaxRecordBytes,
		RecordRetryDeadline: processor.DefaultRecordRetryDeadline,
	}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want func(*processor.Config)
	}{
		{name: "defaults", want: func(*processor.Config) {}},
		{name: "env", env: map[string]string{
			"ENRICHER_START_OFFSET": "latest", "ENRICHER_ORDER_BY": "user", "ENRICHER_MAX_IN_FLIGHT_PER_PARTITION": "3",
			"ENRICHER_MAX_EVENT_BYTES": "2048", "ENRICHER_NEGATIVE_CACHE_TTL": "5s", "ENRICHER_COMMIT_INTERVAL": "250ms",
			"ENRICHER_DRAIN_TIMEOUT": "2s", "ENRICHER_SHUTDOWN_TIMEOUT": "3s",
			"ENRICHER_MAX_RECORD_BYTES": "65536", "ENRICHER_RECORD_RETRY_DEADLINE": "90s",
		}, want: func(c *processor.Config) {
			c.MaxRecordBytes, c.RecordRetryDeadline = 65536, 90*time.Second
			c.StartOffset, c.OrderBy, c.MaxInFlightPerPartition, c.MaxEventBytes = processor.StartLatest, processor.OrderByUser, 3, 2048
			c.NegativeCacheTTL, c.CommitInterval, c.DrainTimeout, c.ShutdownTimeout = 5*time.Second, 250*time.Millisecond, 2*time.Second, 3*time.Second
		}},
		{name: "flag over env", env: map[string]string{"ENRICHER_START_OFFSET": "latest", "ENRICHER_ORDER_BY": "user"},
			args: []string{"--start-offset", "EARLIEST", "--order-by", "kafka-key", "--shutdown-timeout", "1m"},
			want: func(c *processor.Config) { c.ShutdownTimeout = time.Minute }},
		{name: "the window does not follow a small total", args: []string{"--max-in-flight", "10"},
			want: func(c *processor.Config) { c.MaxInFlight = 10 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			p, err := parsed(t, pipelineFlags(), parsePipeline, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			got := withKafka(p, kafkaSettings{Brokers: []string{"127.0.0.1:9092"}}, nil, &telemetry.Providers{})
			want := defaults
			tt.want(&want)
			type knobs struct {
				S             processor.StartOffset
				O             processor.OrderBy
				M, MP, B, R   int
				N, C, D, X, Y time.Duration
			}
			g := knobs{got.StartOffset, got.OrderBy, got.MaxInFlight, got.MaxInFlightPerPartition, got.MaxEventBytes, got.MaxRecordBytes,
				got.NegativeCacheTTL, got.CommitInterval, got.DrainTimeout, got.ShutdownTimeout, got.RecordRetryDeadline}
			w := knobs{want.StartOffset, want.OrderBy, want.MaxInFlight, want.MaxInFlightPerPartition, want.MaxEventBytes, want.MaxRecordBytes,
				want.NegativeCacheTTL, want.CommitInterval, want.DrainTimeout, want.ShutdownTimeout, want.RecordRetryDeadline}
			if g != w {
				t.Errorf("processor config\n got %+v\nwant %+v", g, w)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("processor rejects the mapped config: %v", err)
			}
		})
	}
}

// TestHelpShowsProcessorDefaults: --help shows the processor's defaults
// and says --start-offset only applies without a committed offset.
func TestHelpShowsProcessorDefaults(t *testing.T) {
	validRunEnv(t)
	code, stdout, stderr := runApp(t, context.Background(), "run", "--help")
	if code != 0 {
		t.Fatalf("run --help: exit %d, %s", code, stderr)
	}
	lines := strings.Split(stdout, "\n")
	for flag, def := range map[string]string{
		"max-in-flight-per-partition": strconv.Itoa(processor.DefaultMaxInFlightPerPartition),
		"max-event-bytes":             strconv.Itoa(processor.DefaultMaxEventBytes),
		"max-record-bytes":            strconv.Itoa(processor.DefaultMaxRecordBytes),
		"record-retry-deadline":       processor.DefaultRecordRetryDeadline.String(),
		"negative-cache-ttl":          processor.DefaultNegativeCacheTTL.String(),
		"commit-interval":             processor.DefaultCommitInterval.String(),
		"drain-timeout":               processor.DefaultDrainTimeout.String(),
		"shutdown-timeout":            processor.DefaultShutdownTimeout.String(),
		"start-offset":                `"` + string(processor.StartEarliest) + `"`,
		"order-by":                    `"kafka-key"`,
	} {
		i := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(strings.TrimSpace(l), "--"+flag+" ") })
		if i < 0 {
			t.Errorf("run --help has no --%s", flag)
			continue
		}
		if !strings.Contains(lines[i], "(default: "+def+")") || !strings.Contains(lines[i], "$ENRICHER_") {
			t.Errorf("--%s help line %q lacks default %s or its environment variable", flag, lines[i], def)
		}
		if flag == "start-offset" && !strings.Contains(lines[i], "no committed offset") {
			t.Errorf("--start-offset help does not say it only applies without a committed offset: %q", lines[i])
		}
	}
}
