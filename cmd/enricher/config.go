package main

// Configuration: every setting is a flag with an environment fallback.
// Precedence is flag > environment > default. Secrets (the Tencent secret
// key, the Kafka SASL password) are never flags: they come from an
// environment variable or from a file named by a flag, and are never
// printed, not even in --help or in error messages.

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
	"github.com/urfave/cli/v3"

	"github.com/tencentchat-enricher/enricher/client"
	"github.com/tencentchat-enricher/enricher/processor"
	"github.com/tencentchat-enricher/enricher/schemas"
)

// Environment variables read directly (not through a flag) because they hold secrets.
const (
	envSecretKey    = "ENRICHER_IM_SECRET_KEY"
	envSASLPassword = "ENRICHER_KAFKA_SASL_PASSWORD"
)

// Defaults shared by the flag definitions and the documentation.
const (
	defaultBrokers     = "127.0.0.1:9092"
	defaultInputTopic  = "user-events"
	defaultOutputTopic = "user-events-enriched"
	defaultDLQTopic    = "user-events-dlq"
	defaultGroup       = "enricher"
	defaultHTTPAddr    = ":9464"
)

// Values of --start-offset and --order-by.
const (
	startEarliest   = string(processor.StartEarliest)
	startLatest     = string(processor.StartLatest)
	orderByKafkaKey = "kafka-key"
	orderByUser     = "user"
)

// Flag categories shown in --help.
const (
	catKafka     = "Kafka"
	catPipeline  = "Pipeline"
	catTencent   = "Tencent Cloud Chat"
	catOps       = "Operations"
	catGenerator = "Sample events"
)

func env(name string) cli.ValueSourceChain { return cli.EnvVars(name) }

// kafkaFlags are the connection settings of a real Kafka cluster.
func kafkaFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "brokers", Category: catKafka, Value: []string{defaultBrokers}, Sources: env("ENRICHER_BROKERS"),
			Usage: "Kafka bootstrap brokers, `HOST:PORT[,HOST:PORT...]`"},
		&cli.BoolFlag{Name: "kafka-tls", Category: catKafka, Sources: env("ENRICHER_KAFKA_TLS"),
			Usage: "connect to Kafka with TLS (implied by the other --kafka-tls-* options)"},
		&cli.StringFlag{Name: "kafka-tls-ca-file", Category: catKafka, Sources: env("ENRICHER_KAFKA_TLS_CA_FILE"),
			Usage: "PEM `FILE` of CA certificates to verify the brokers (default: system roots)"},
		&cli.StringFlag{Name: "kafka-tls-cert-file", Category: catKafka, Sources: env("ENRICHER_KAFKA_TLS_CERT_FILE"),
			Usage: "PEM client certificate `FILE` for mutual TLS (with --kafka-tls-key-file)"},
		&cli.StringFlag{Name: "kafka-tls-key-file", Category: catKafka, Sources: env("ENRICHER_KAFKA_TLS_KEY_FILE"),
			Usage: "PEM client key `FILE` for mutual TLS (with --kafka-tls-cert-file)"},
		&cli.BoolFlag{Name: "kafka-tls-insecure-skip-verify", Category: catKafka, Sources: env("ENRICHER_KAFKA_TLS_INSECURE_SKIP_VERIFY"),
			Usage: "do not verify the brokers' certificates (testing only)"},
		&cli.StringFlag{Name: "kafka-sasl-mechanism", Category: catKafka, Sources: env("ENRICHER_KAFKA_SASL_MECHANISM"),
			Usage: "SASL `MECHANISM`: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (default: no SASL)"},
		&cli.StringFlag{Name: "kafka-sasl-username", Category: catKafka, Sources: env("ENRICHER_KAFKA_SASL_USERNAME"),
			Usage: "SASL user name"},
		&cli.StringFlag{Name: "kafka-sasl-password-file", Category: catKafka, Sources: env("ENRICHER_KAFKA_SASL_PASSWORD_FILE"),
			Usage: "`FILE` holding the SASL password (or set " + envSASLPassword + ")"},
	}
}

// pipelineFlags are the processor's topic and tuning settings, shared by run and dev.
func pipelineFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "input-topic", Category: catPipeline, Value: defaultInputTopic, Sources: env("ENRICHER_INPUT_TOPIC"),
			Usage: "topic of user events to enrich"},
		&cli.StringFlag{Name: "output-topic", Category: catPipeline, Value: defaultOutputTopic, Sources: env("ENRICHER_OUTPUT_TOPIC"),
			Usage: "topic the enriched records are written to"},
		&cli.StringFlag{Name: "dlq-topic", Category: catPipeline, Value: defaultDLQTopic, Sources: env("ENRICHER_DLQ_TOPIC"),
			Usage: "dead-letter topic for events that cannot be enriched"},
		&cli.StringFlag{Name: "group", Category: catPipeline, Value: defaultGroup, Sources: env("ENRICHER_GROUP"),
			Usage: "Kafka consumer group; instances in one group share the partitions"},
		&cli.StringFlag{Name: "user-id-pointer", Category: catPipeline, Value: schemas.DefaultUserIDPointer, Sources: env("ENRICHER_USER_ID_POINTER"),
			Usage: "JSON `POINTER` (RFC 6901) to the user id inside each event"},
		&cli.DurationFlag{Name: "unavailable-after", Category: catPipeline, Sources: env("ENRICHER_UNAVAILABLE_AFTER"),
			Usage: "publish a record with status unavailable once the API has been unreachable this long for it (default 0: wait for the API, with consumption paused)"},
		&cli.BoolFlag{Name: "auto-create-topics", Category: catPipeline, Sources: env("ENRICHER_AUTO_CREATE_TOPICS"),
			Usage: "let the processor create missing output and DLQ topics (when the cluster allows it)"},
		&cli.IntFlag{Name: "max-in-flight", Category: catPipeline, Value: processor.DefaultMaxInFlight, Sources: env("ENRICHER_MAX_IN_FLIGHT"),
			Usage: "events being enriched and published at once, across partitions (events waiting for an API lookup do not count)"},
		&cli.DurationFlag{Name: "cache-ttl", Category: catPipeline, Value: processor.DefaultCacheTTL, Sources: env("ENRICHER_CACHE_TTL"),
			Usage: "how long a user's subscriptions are reused before asking the API again"},
		&cli.DurationFlag{Name: "cache-stale-ttl", Category: catPipeline, Sources: env("ENRICHER_CACHE_STALE_TTL"),
			Usage: "stale-while-revalidate: an entry past --cache-ttl is published at once (cache \"stale\", with its fetched_at) for this long more while it is refreshed in the background (default 0: off)"},
		&cli.DurationFlag{Name: "cache-refresh-after", Category: catPipeline, Sources: env("ENRICHER_CACHE_REFRESH_AFTER"),
			Usage: "refresh an entry in the background once it is this old, while still within --cache-ttl (the safety net of long TTLs kept current by webhooks; default 0: off)"},
		&cli.IntFlag{Name: "cache-size", Category: catPipeline, Value: processor.DefaultCacheSize, Sources: env("ENRICHER_CACHE_SIZE"),
			Usage: "maximum users held in the cache"},
		&cli.StringFlag{Name: "start-offset", Category: catPipeline, Value: startEarliest, Sources: env("ENRICHER_START_OFFSET"),
			Usage: "`POSITION` where a consumer group with no committed offset starts: " + startEarliest + " (oldest retained event) or " + startLatest +
				" (only new events); ignored for partitions the group has already committed"},
		&cli.StringFlag{Name: "isolation-level", Category: catPipeline, Value: string(processor.ReadCommitted), Sources: env("ENRICHER_ISOLATION_LEVEL"),
			Usage: "`LEVEL` of the input's transactional records: " + string(processor.ReadCommitted) + " (only committed transactions, up to the last stable offset) or " +
				string(processor.ReadUncommitted) + " (also the records of aborted and open transactions); transaction markers are never read"},
		&cli.IntFlag{Name: "max-in-flight-per-partition", Category: catPipeline, Value: processor.DefaultMaxInFlightPerPartition, Sources: env("ENRICHER_MAX_IN_FLIGHT_PER_PARTITION"),
			Usage: fmt.Sprintf("a partition's events fetched and not yet published (waiting for the API, queued behind their key, or being published); cached events pass uncached ones, as far as a commit's completed set carries the ones published ahead; at most %d", processor.MaxPartitionWindow)},
		&cli.IntFlag{Name: "max-event-bytes", Category: catPipeline, Value: processor.DefaultMaxEventBytes, Sources: env("ENRICHER_MAX_EVENT_BYTES"),
			Usage: "largest input event in `BYTES`; larger events go to the DLQ"},
		&cli.IntFlag{Name: "max-record-bytes", Category: catPipeline, Value: processor.DefaultMaxRecordBytes, Sources: env("ENRICHER_MAX_RECORD_BYTES"),
			Usage: "largest output record in `BYTES` (at most the broker's and topics' max.message.bytes); an enriched record above it goes to the DLQ as output_too_large"},
		&cli.DurationFlag{Name: "record-retry-deadline", Category: catPipeline, Value: processor.DefaultRecordRetryDeadline, Sources: env("ENRICHER_RECORD_RETRY_DEADLINE"),
			Usage: "how long one event's lookup may keep failing while the API as a whole works before the event goes to the DLQ as enrichment_unavailable (outages do not count)"},
		&cli.DurationFlag{Name: "negative-cache-ttl", Category: catPipeline, Value: processor.DefaultNegativeCacheTTL, Sources: env("ENRICHER_NEGATIVE_CACHE_TTL"),
			Usage: "how long user_not_found and invalid_user answers are reused"},
		&cli.StringFlag{Name: "order-by", Category: catPipeline, Value: orderByKafkaKey, Sources: env("ENRICHER_ORDER_BY"),
			Usage: "`KEY` whose events are published in offset order: " + orderByKafkaKey + " (the record key, or the user id when the record has none) or " + orderByUser},
		&cli.DurationFlag{Name: "commit-interval", Category: catPipeline, Value: processor.DefaultCommitInterval, Sources: env("ENRICHER_COMMIT_INTERVAL"),
			Usage: "period of offset commits (offsets are also committed on rebalance and shutdown)"},
		&cli.DurationFlag{Name: "drain-timeout", Category: catPipeline, Value: processor.DefaultDrainTimeout, Sources: env("ENRICHER_DRAIN_TIMEOUT"),
			Usage: "how long in-flight events of revoked partitions may finish on a rebalance before they are dropped (uncommitted, so redelivered)"},
		&cli.DurationFlag{Name: "session-timeout", Category: catPipeline, Value: processor.DefaultSessionTimeout, Sources: env("ENRICHER_SESSION_TIMEOUT"),
			Usage: "consumer-group session timeout: a member silent this long (killed, partitioned) is removed and its partitions move; at least the brokers' group.min.session.timeout.ms (6s by default)"},
		&cli.DurationFlag{Name: "heartbeat-interval", Category: catPipeline, Value: processor.DefaultHeartbeatInterval, Sources: env("ENRICHER_HEARTBEAT_INTERVAL"),
			Usage: "period of consumer-group heartbeats; well under --session-timeout (a third or less)"},
		&cli.DurationFlag{Name: "rebalance-timeout", Category: catPipeline, Value: processor.DefaultRebalanceTimeout, Sources: env("ENRICHER_REBALANCE_TIMEOUT"),
			Usage: "how long the group waits for members to rejoin in a rebalance; longer than --drain-timeout"},
		&cli.StringSliceFlag{Name: "fields", Category: catPipeline, Sources: env("ENRICHER_FIELDS"),
			Usage: "account `FIELD`s the output carries, comma-separated (e.g. official_account,subscribe_time), also asked of the API; default all"},
		&cli.StringFlag{Name: "output-compression", Category: catPipeline, Value: processor.DefaultOutputCompression, Sources: env("ENRICHER_OUTPUT_COMPRESSION"),
			Usage: "`CODEC` of the output and DLQ records: none, gzip, snappy, lz4 or zstd"},
		&cli.DurationFlag{Name: "shutdown-timeout", Category: catPipeline, Value: processor.DefaultShutdownTimeout, Sources: env("ENRICHER_SHUTDOWN_TIMEOUT"),
			Usage: "how long in-flight events may finish on SIGINT/SIGTERM before the process stops (unfinished ones are redelivered)"},
	}
}

// tencentFlags are the Tencent Cloud Chat REST API settings of `run`.
func tencentFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "im-region", Category: catTencent, Sources: env("ENRICHER_IM_REGION"),
			Usage: "`REGION` of the SDKAppID: china, singapore, seoul, frankfurt, siliconvalley, jakarta or tokyo"},
		&cli.StringFlag{Name: "im-base-url", Category: catTencent, Sources: env("ENRICHER_IM_BASE_URL"),
			Usage: "API base `URL`; overrides --im-region (for a proxy or the simulator)"},
		&cli.IntFlag{Name: "im-sdkappid", Category: catTencent, Sources: env("ENRICHER_IM_SDKAPPID"),
			Usage: "the application's SDKAppID (required)"},
		&cli.StringFlag{Name: "im-admin", Category: catTencent, Sources: env("ENRICHER_IM_ADMIN"),
			Usage: "the app administrator account the calls are signed as (required)"},
		&cli.StringFlag{Name: "im-secret-key-file", Category: catTencent, Sources: env("ENRICHER_IM_SECRET_KEY_FILE"),
			Usage: "`FILE` holding the application's secret key (or set " + envSecretKey + "; one of them is required)"},
		&cli.FloatFlag{Name: "api-rate", Category: catTencent, Value: client.DefaultRate, Sources: env("ENRICHER_API_RATE"),
			Usage: "API calls per second of the SDKAppID: with --redis-url, for all instances together (give each the same value); without it, for this instance alone (instances sharing an SDKAppID must then sum to at most 200)"},
	}
}

// opsFlags are the logging and HTTP endpoint settings.
func opsFlags(defaultAddr string) []cli.Flag {
	return append([]cli.Flag{
		&cli.StringFlag{Name: "http-addr", Category: catOps, Value: defaultAddr, Sources: env("ENRICHER_HTTP_ADDR"),
			Usage: "`ADDR` serving /metrics, /healthz and /readyz (empty disables)"},
	}, logFlags()...)
}

// logFlags are the logging settings of every long-running command.
func logFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "log-level", Category: catOps, Value: "info", Sources: env("ENRICHER_LOG_LEVEL"),
			Usage: "log `LEVEL`: debug, info, warn or error"},
		&cli.StringFlag{Name: "log-format", Category: catOps, Value: "text", Sources: env("ENRICHER_LOG_FORMAT"),
			Usage: "log `FORMAT`: text or json"},
	}
}

// kafkaSettings is how to reach a Kafka cluster.
type kafkaSettings struct {
	Brokers []string
	TLS     *tls.Config    // nil: plaintext
	SASL    sasl.Mechanism // nil: no SASL
}

// opsSettings are logging and the operational HTTP endpoint.
type opsSettings struct {
	HTTPAddr  string
	LogLevel  slog.Level
	LogFormat string
}

// flagRef names a flag of cmd as an operator sees it: "--name (ENV_VAR)".
// The environment variable is taken from the flag definition, so commands
// that rename it (replay) are named correctly.
func flagRef(cmd *cli.Command, name string) string {
	for _, f := range cmd.Flags {
		if !slices.Contains(f.Names(), name) {
			continue
		}
		if ef, ok := f.(interface{ GetEnvVars() []string }); ok {
			if envs := ef.GetEnvVars(); len(envs) > 0 {
				return "--" + name + " (" + strings.Join(envs, ", ") + ")"
			}
		}
	}
	return "--" + name
}

// flagError is a usage error naming the flag and its environment variable;
// format continues the sentence after the flag's name.
func flagError(cmd *cli.Command, name, format string, args ...any) error {
	return usageError{fmt.Errorf("%s "+format, append([]any{flagRef(cmd, name)}, args...)...)}
}

func parseKafka(cmd *cli.Command) (kafkaSettings, error) {
	var s kafkaSettings
	for _, b := range cmd.StringSlice("brokers") {
		b = strings.TrimSpace(b)
		if b == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(b); err != nil {
			return s, flagError(cmd, "brokers", "must be HOST:PORT, got %q", b)
		}
		s.Brokers = append(s.Brokers, b)
	}
	if len(s.Brokers) == 0 {
		return s, flagError(cmd, "brokers", "must name at least one broker")
	}

	ca, cert, key := cmd.String("kafka-tls-ca-file"), cmd.String("kafka-tls-cert-file"), cmd.String("kafka-tls-key-file")
	skip := cmd.Bool("kafka-tls-insecure-skip-verify")
	if cmd.Bool("kafka-tls") || ca != "" || cert != "" || key != "" || skip {
		t := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: skip} //nolint:gosec // opt-in, documented as testing only
		if ca != "" {
			pem, err := os.ReadFile(ca)
			if err != nil {
				return s, flagError(cmd, "kafka-tls-ca-file", "cannot be read: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return s, flagError(cmd, "kafka-tls-ca-file", "must hold PEM certificates; %s holds none", ca)
			}
			t.RootCAs = pool
		}
		if (cert == "") != (key == "") {
			return s, usageError{fmt.Errorf("%s and %s must be set together",
				flagRef(cmd, "kafka-tls-cert-file"), flagRef(cmd, "kafka-tls-key-file"))}
		}
		if cert != "" {
			pair, err := tls.LoadX509KeyPair(cert, key)
			if err != nil {
				return s, usageError{fmt.Errorf("%s / %s: not a usable certificate and key: %w",
					flagRef(cmd, "kafka-tls-cert-file"), flagRef(cmd, "kafka-tls-key-file"), err)}
			}
			t.Certificates = []tls.Certificate{pair}
		}
		s.TLS = t
	}

	mech := strings.ToUpper(strings.TrimSpace(cmd.String("kafka-sasl-mechanism")))
	if mech == "" || mech == "NONE" {
		return s, nil
	}
	if mech != "PLAIN" && mech != "SCRAM-SHA-256" && mech != "SCRAM-SHA-512" {
		return s, flagError(cmd, "kafka-sasl-mechanism", "must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, got %q", mech)
	}
	user := cmd.String("kafka-sasl-username")
	if user == "" {
		return s, flagError(cmd, "kafka-sasl-username", "is required with --kafka-sasl-mechanism %s", mech)
	}
	pass, err := secret(envSASLPassword, flagRef(cmd, "kafka-sasl-password-file"), cmd.String("kafka-sasl-password-file"))
	if err != nil {
		return s, err
	}
	if mech == "PLAIN" {
		s.SASL = plain.Mechanism{Username: user, Password: pass}
	} else {
		algo := scram.SHA256
		if mech == "SCRAM-SHA-512" {
			algo = scram.SHA512
		}
		m, err := scram.Mechanism(algo, user, pass)
		if err != nil {
			// The error text comes from the SASLprep of user and password; do not echo it.
			return s, usageError{fmt.Errorf("%s / %s: not valid for %s", flagRef(cmd, "kafka-sasl-username"), envSASLPassword, mech)}
		}
		s.SASL = m
	}
	return s, nil
}

// parsePipeline reads the processor's topics and tuning into its Config
// (without the connection and telemetry settings, see withKafka). A setting
// the processor rejects is reported as its flag (configError).
func parsePipeline(cmd *cli.Command) (processor.Config, error) {
	c := processor.Config{
		InputTopic:              strings.TrimSpace(cmd.String("input-topic")),
		OutputTopic:             strings.TrimSpace(cmd.String("output-topic")),
		DLQTopic:                strings.TrimSpace(cmd.String("dlq-topic")),
		Group:                   strings.TrimSpace(cmd.String("group")),
		UserIDPointer:           cmd.String("user-id-pointer"),
		MaxInFlight:             cmd.Int("max-in-flight"),
		CacheTTL:                cmd.Duration("cache-ttl"),
		CacheSize:               cmd.Int("cache-size"),
		CacheStaleTTL:           cmd.Duration("cache-stale-ttl"),
		CacheRefreshAfter:       cmd.Duration("cache-refresh-after"),
		AutoCreateTopics:        cmd.Bool("auto-create-topics"),
		UnavailableAfter:        cmd.Duration("unavailable-after"),
		MaxEventBytes:           cmd.Int("max-event-bytes"),
		MaxRecordBytes:          cmd.Int("max-record-bytes"),
		RecordRetryDeadline:     cmd.Duration("record-retry-deadline"),
		NegativeCacheTTL:        cmd.Duration("negative-cache-ttl"),
		CommitInterval:          cmd.Duration("commit-interval"),
		DrainTimeout:            cmd.Duration("drain-timeout"),
		ShutdownTimeout:         cmd.Duration("shutdown-timeout"),
		SessionTimeout:          cmd.Duration("session-timeout"),
		HeartbeatInterval:       cmd.Duration("heartbeat-interval"),
		RebalanceTimeout:        cmd.Duration("rebalance-timeout"),
		Fields:                  cmd.StringSlice("fields"),
		OutputCompression:       strings.TrimSpace(cmd.String("output-compression")),
		MaxInFlightPerPartition: cmd.Int("max-in-flight-per-partition"),
	}
	if err := checkPositive(cmd, positiveFlags...); err != nil {
		return c, err
	}
	switch v := strings.ToLower(strings.TrimSpace(cmd.String("order-by"))); v {
	case orderByKafkaKey:
		c.OrderBy = processor.OrderByKafkaKey
	case orderByUser:
		c.OrderBy = processor.OrderByUser
	default:
		return c, flagError(cmd, "order-by", "must be %s or %s, got %q", orderByKafkaKey, orderByUser, v)
	}
	c.IsolationLevel = processor.IsolationLevel(strings.ToLower(strings.TrimSpace(cmd.String("isolation-level"))))
	// replay has no --start-offset: its range fixes where it starts.
	if hasFlag(cmd, "start-offset") {
		c.StartOffset = processor.StartOffset(strings.ToLower(strings.TrimSpace(cmd.String("start-offset"))))
	}
	check := c
	check.Brokers = []string{"127.0.0.1:9092"} // --brokers is parsed apart
	if err := check.Validate(); err != nil {
		return c, configError(cmd, err)
	}
	return c, nil
}

// checkPositive rejects numeric flags set to zero or less: the packages
// read zero as "the default", so a flag set to zero is an operator's
// mistake, not a request for the default.
func checkPositive(cmd *cli.Command, names ...string) error {
	for _, name := range names {
		if !hasFlag(cmd, name) {
			continue
		}
		switch v := cmd.Value(name).(type) {
		case int:
			if v < 1 {
				return flagError(cmd, name, "must be at least 1, got %d", v)
			}
		case float64:
			if !(v > 0) {
				return flagError(cmd, name, "must be above 0, got %g", v)
			}
		case time.Duration:
			if v <= 0 {
				return flagError(cmd, name, "must be positive, got %s", v)
			}
		}
	}
	return nil
}

// minAPIRate is the lowest --api-rate the client's limiter paces as
// configured: it uses client.DefaultRateSafety of the rate and needs a
// budget of at least 2 calls/s (below it, at most one call goes out in any
// second whatever the rate, and lookups queue past their retry deadline).
// Rounded up to the hundredth, so the printed minimum is itself accepted.
var minAPIRate = math.Ceil(2/client.DefaultRateSafety*100) / 100

// checkAPIRate rejects an --api-rate the client cannot work with: zero or
// less, or below minAPIRate. The upper bound is the client's own check.
func checkAPIRate(cmd *cli.Command) error {
	if err := checkPositive(cmd, "api-rate"); err != nil {
		return err
	}
	if v := cmd.Float("api-rate"); v < minAPIRate {
		return flagError(cmd, "api-rate", "must be at least %g calls/s (the client paces %g%% of it and needs 2 calls/s), got %g",
			minAPIRate, client.DefaultRateSafety*100, v)
	}
	return nil
}

// positiveFlags are the numeric pipeline flags that must be positive.
var positiveFlags = []string{
	"max-in-flight", "max-in-flight-per-partition", "max-event-bytes", "max-record-bytes", "cache-size",
	"cache-ttl", "negative-cache-ttl", "commit-interval", "drain-timeout", "shutdown-timeout", "record-retry-deadline",
	"session-timeout", "heartbeat-interval", "rebalance-timeout",
}

// configFlags maps the Config fields of the client and processor packages
// ("package.Field") to the flags that set them, so that a *ConfigError is
// reported as the operator's flag.
var configFlags = map[string]string{
	"processor.Brokers": "brokers", "processor.InputTopic": "input-topic", "processor.OutputTopic": "output-topic",
	"processor.DLQTopic": "dlq-topic", "processor.Group": "group", "processor.StartOffset": "start-offset",
	"processor.UserIDPointer": "user-id-pointer", "processor.OrderBy": "order-by", "processor.MaxEventBytes": "max-event-bytes",
	"processor.MaxInFlight": "max-in-flight", "processor.MaxInFlightPerPartition": "max-in-flight-per-partition",
	"processor.CacheTTL": "cache-ttl", "processor.CacheStaleTTL": "cache-stale-ttl", "processor.CacheRefreshAfter": "cache-refresh-after", "processor.NegativeCacheTTL": "negative-cache-ttl", "processor.CacheSize": "cache-size",
	"processor.CommitInterval": "commit-interval", "processor.DrainTimeout": "drain-timeout",
	"processor.ShutdownTimeout": "shutdown-timeout", "processor.UnavailableAfter": "unavailable-after",
	"processor.RecordRetryDeadline": "record-retry-deadline", "processor.MaxRecordBytes": "max-record-bytes",
	"processor.SessionTimeout": "session-timeout", "processor.HeartbeatInterval": "heartbeat-interval",
	"processor.RebalanceTimeout": "rebalance-timeout",
	"processor.From":             "from", "processor.To": "to", "processor.Offsets": "offsets",
	"processor.Fields": "fields", "processor.OutputCompression": "output-compression",
	"processor.IsolationLevel": "isolation-level",

	"client.BaseURL": "im-base-url", "client.Region": "im-region", "client.SDKAppID": "im-sdkappid",
	"client.Admin": "im-admin", "client.Rate": "api-rate",
}

// configWhy explains the rules whose reason is not obvious from the bound.
var configWhy = map[string]string{
	"processor.DrainTimeout": "a member that drains longer is dropped from the group and its final commit rejected",
}

// configError reports a *ConfigError of the client or processor as the
// flag that sets its field; an error of another kind is returned as it is.
func configError(cmd *cli.Command, err error) error {
	var pe *processor.ConfigError
	if errors.As(err, &pe) {
		return fieldError(cmd, "processor", pe.Field, pe.Value, pe.Reason, pe.Other, pe.OtherValue)
	}
	var ce *client.ConfigError
	if errors.As(err, &ce) {
		if ce.Field == "SecretKey" {
			return badConfig("%s or %s %s", envSecretKey, flagRef(cmd, "im-secret-key-file"), ce.Reason)
		}
		return fieldError(cmd, "client", ce.Field, ce.Value, ce.Reason, "", nil)
	}
	if errors.Is(err, processor.ErrConfig) || errors.Is(err, client.ErrConfig) {
		return badConfig("%w", err)
	}
	return err
}

// fieldError is the usage error of field of package pkg: its flag, the
// reason, the other flag the rule compares with, and the value given.
func fieldError(cmd *cli.Command, pkg, field string, value any, reason, other string, otherValue any) error {
	name := func(field string) (string, bool) {
		flag, ok := configFlags[pkg+"."+field]
		if !ok || !hasFlag(cmd, flag) {
			return field, false
		}
		return flagRef(cmd, flag), true
	}
	ref, ok := name(field)
	if !ok {
		return badConfig("%s %s", ref, reason) // no flag sets it: a wiring error, named as the package does
	}
	msg := ref + " " + reason
	if other != "" {
		o, _ := name(other)
		msg += fmt.Sprintf(" %s (%v)", o, otherValue)
	}
	if value != nil && value != "" {
		msg += fmt.Sprintf(", got %v", value)
	} else if v := flagValue(cmd, configFlags[pkg+"."+field]); v != "" {
		msg += fmt.Sprintf(", got %q", v)
	}
	if why := configWhy[pkg+"."+field]; why != "" {
		msg += ": " + why
	}
	return usageError{errors.New(msg)}
}

// hasFlag reports whether cmd defines the flag.
func hasFlag(cmd *cli.Command, name string) bool {
	for _, f := range cmd.Flags {
		if slices.Contains(f.Names(), name) {
			return true
		}
	}
	return false
}

// parseTencent reads the Tencent Cloud Chat settings into the client's
// Config (without logging and telemetry). A setting the client rejects is
// reported as its flag (configError).
func parseTencent(cmd *cli.Command) (client.Config, error) {
	c := client.Config{
		BaseURL:  strings.TrimSpace(cmd.String("im-base-url")),
		SDKAppID: cmd.Int("im-sdkappid"),
		Admin:    strings.TrimSpace(cmd.String("im-admin")),
		Rate:     cmd.Float("api-rate"),
	}
	if err := checkAPIRate(cmd); err != nil {
		return c, err
	}
	region := strings.ToLower(strings.TrimSpace(cmd.String("im-region")))
	if region == "" && c.BaseURL == "" {
		return c, usageError{fmt.Errorf("%s or %s is required", flagRef(cmd, "im-region"), flagRef(cmd, "im-base-url"))}
	}
	if region != "" {
		r, err := client.ParseRegion(region)
		if err != nil {
			return c, flagError(cmd, "im-region", "must be one of %v, got %q", client.Regions(), region)
		}
		c.Region = r
	}
	check := c
	check.SecretKey = "-" // read below, after the settings an operator sees first
	if err := check.Validate(); err != nil {
		return c, configError(cmd, err)
	}
	key, err := secret(envSecretKey, flagRef(cmd, "im-secret-key-file"), cmd.String("im-secret-key-file"))
	if err != nil {
		return c, err
	}
	c.SecretKey = key
	return c, nil
}

func parseOps(cmd *cli.Command) (opsSettings, error) {
	s, err := parseLogging(cmd)
	if err != nil {
		return s, err
	}
	s.HTTPAddr = strings.TrimSpace(cmd.String("http-addr"))
	if s.HTTPAddr != "" {
		if _, _, err := net.SplitHostPort(s.HTTPAddr); err != nil {
			return s, flagError(cmd, "http-addr", "must be [HOST]:PORT, got %q", s.HTTPAddr)
		}
	}
	return s, nil
}

func parseLogging(cmd *cli.Command) (opsSettings, error) {
	s := opsSettings{LogFormat: strings.ToLower(cmd.String("log-format"))}
	if err := s.LogLevel.UnmarshalText([]byte(cmd.String("log-level"))); err != nil {
		return s, flagError(cmd, "log-level", "must be debug, info, warn or error, got %q", cmd.String("log-level"))
	}
	if s.LogFormat != "text" && s.LogFormat != "json" {
		return s, flagError(cmd, "log-format", "must be text or json, got %q", s.LogFormat)
	}
	return s, nil
}

// secret reads a secret from the environment variable or, when fileFlag is
// set, from that file. Setting both is an error (ambiguous); setting neither
// is an error naming both. The value never appears in an error.
func secret(envName, flagName, path string) (string, error) {
	v, inEnv := os.LookupEnv(envName)
	switch {
	case path != "" && inEnv && v != "":
		return "", badConfig("set either %s or %s, not both", envName, flagName)
	case path != "":
		b, err := os.ReadFile(path)
		if err != nil {
			return "", badConfig("%s: cannot read %s: %w", flagName, path, unwrapPathError(err))
		}
		v = strings.TrimSpace(string(b))
		if v == "" {
			return "", badConfig("%s: %s is empty", flagName, path)
		}
		return v, nil
	case strings.TrimSpace(v) != "":
		return strings.TrimSpace(v), nil
	default:
		return "", badConfig("%s or %s is required", envName, flagName)
	}
}

// unwrapPathError drops the path from an *os.PathError (the caller names it).
func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// newLogger builds the process logger from the ops settings.
func newLogger(s opsSettings, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: s.LogLevel}
	if s.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// flagValue is the flag's value as the operator gave it.
func flagValue(cmd *cli.Command, name string) string {
	if !hasFlag(cmd, name) {
		return ""
	}
	return fmt.Sprint(cmd.Value(name))
}
