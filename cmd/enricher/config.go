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
)

// Environment variables read directly (not through a flag) because they hold secrets.
const (
	envSecretKey    = "ENRICHER_IM_SECRET_KEY"
	envSASLPassword = "ENRICHER_KAFKA_SASL_PASSWORD"
)

// Defaults shared by the flag definitions and the documentation.
const (
	defaultBrokers       = "127.0.0.1:9092"
	defaultInputTopic    = "user-events"
	defaultOutputTopic   = "user-events-enriched"
	defaultDLQTopic      = "user-events-dlq"
	defaultGroup         = "enricher"
	defaultUserIDPointer = "/user_id"
	defaultAPIRate       = 200.0
	defaultMaxInFlight   = processor.DefaultMaxInFlight
	defaultCacheTTL      = processor.DefaultCacheTTL
	defaultCacheSize     = processor.DefaultCacheSize
	defaultHTTPAddr      = ":9464"
	maxAPIRate           = 200.0    // the API's documented per-SDKAppID limit
	minRecordBytes       = 16 << 10 // processor.Config.MaxRecordBytes' lower bound
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
		&cli.StringFlag{Name: "user-id-pointer", Category: catPipeline, Value: defaultUserIDPointer, Sources: env("ENRICHER_USER_ID_POINTER"),
			Usage: "JSON `POINTER` (RFC 6901) to the user id inside each event"},
		&cli.DurationFlag{Name: "unavailable-after", Category: catPipeline, Sources: env("ENRICHER_UNAVAILABLE_AFTER"),
			Usage: "publish a record with status unavailable once the API has been unreachable this long for it (default 0: wait for the API, with consumption paused)"},
		&cli.BoolFlag{Name: "auto-create-topics", Category: catPipeline, Sources: env("ENRICHER_AUTO_CREATE_TOPICS"),
			Usage: "let the processor create missing output and DLQ topics (when the cluster allows it)"},
		&cli.IntFlag{Name: "max-in-flight", Category: catPipeline, Value: defaultMaxInFlight, Sources: env("ENRICHER_MAX_IN_FLIGHT"),
			Usage: "events being enriched at once, across partitions"},
		&cli.DurationFlag{Name: "cache-ttl", Category: catPipeline, Value: defaultCacheTTL, Sources: env("ENRICHER_CACHE_TTL"),
			Usage: "how long a user's subscriptions are reused before asking the API again"},
		&cli.IntFlag{Name: "cache-size", Category: catPipeline, Value: defaultCacheSize, Sources: env("ENRICHER_CACHE_SIZE"),
			Usage: "maximum users held in the cache"},
		&cli.StringFlag{Name: "start-offset", Category: catPipeline, Value: startEarliest, Sources: env("ENRICHER_START_OFFSET"),
			Usage: "`POSITION` where a consumer group with no committed offset starts: " + startEarliest + " (oldest retained event) or " + startLatest +
				" (only new events); ignored for partitions the group has already committed"},
		&cli.IntFlag{Name: "max-in-flight-per-partition", Category: catPipeline, Value: processor.DefaultMaxInFlightPerPartition, Sources: env("ENRICHER_MAX_IN_FLIGHT_PER_PARTITION"),
			Usage: "events being enriched at once within one partition; at most --max-in-flight (when not set, the smaller of the two defaults)"},
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
		&cli.FloatFlag{Name: "api-rate", Category: catTencent, Value: defaultAPIRate, Sources: env("ENRICHER_API_RATE"),
			Usage: "API calls per second this instance may make; the instances sharing an SDKAppID must sum to at most 200"},
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

// pipelineSettings are the processor's topics and tuning.
type pipelineSettings struct {
	InputTopic, OutputTopic, DLQTopic, Group string
	UserIDPointer                            string
	MaxInFlight                              int
	CacheTTL                                 time.Duration
	CacheSize                                int
	AutoCreateTopics                         bool
	UnavailableAfter                         time.Duration
	StartOffset                              processor.StartOffset
	MaxInFlightPerPartition                  int
	MaxEventBytes                            int
	MaxRecordBytes                           int
	RecordRetryDeadline                      time.Duration
	NegativeCacheTTL                         time.Duration
	OrderBy                                  processor.OrderBy
	CommitInterval                           time.Duration
	DrainTimeout                             time.Duration
	ShutdownTimeout                          time.Duration
}

// tencentSettings are the REST API credentials and budget.
type tencentSettings struct {
	Region    string
	BaseURL   string
	SDKAppID  int
	Admin     string
	SecretKey string // never printed
	Rate      float64
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

func parsePipeline(cmd *cli.Command) (pipelineSettings, error) {
	s := pipelineSettings{
		InputTopic:          strings.TrimSpace(cmd.String("input-topic")),
		OutputTopic:         strings.TrimSpace(cmd.String("output-topic")),
		DLQTopic:            strings.TrimSpace(cmd.String("dlq-topic")),
		Group:               strings.TrimSpace(cmd.String("group")),
		UserIDPointer:       cmd.String("user-id-pointer"),
		MaxInFlight:         cmd.Int("max-in-flight"),
		CacheTTL:            cmd.Duration("cache-ttl"),
		CacheSize:           cmd.Int("cache-size"),
		AutoCreateTopics:    cmd.Bool("auto-create-topics"),
		UnavailableAfter:    cmd.Duration("unavailable-after"),
		MaxEventBytes:       cmd.Int("max-event-bytes"),
		MaxRecordBytes:      cmd.Int("max-record-bytes"),
		RecordRetryDeadline: cmd.Duration("record-retry-deadline"),
		NegativeCacheTTL:    cmd.Duration("negative-cache-ttl"),
		CommitInterval:      cmd.Duration("commit-interval"),
		DrainTimeout:        cmd.Duration("drain-timeout"),
		ShutdownTimeout:     cmd.Duration("shutdown-timeout"),
	}
	for _, name := range []string{"input-topic", "output-topic", "dlq-topic", "group"} {
		if strings.TrimSpace(cmd.String(name)) == "" {
			return s, flagError(cmd, name, "must not be empty")
		}
	}
	if s.InputTopic == s.OutputTopic || s.InputTopic == s.DLQTopic || s.OutputTopic == s.DLQTopic {
		return s, usageError{fmt.Errorf("%s, %s and %s must be three different topics",
			flagRef(cmd, "input-topic"), flagRef(cmd, "output-topic"), flagRef(cmd, "dlq-topic"))}
	}
	if s.UserIDPointer == "" {
		return s, flagError(cmd, "user-id-pointer", "must not be empty")
	}
	if !strings.HasPrefix(s.UserIDPointer, "/") {
		return s, flagError(cmd, "user-id-pointer", "must be a JSON pointer starting with \"/\", got %q", s.UserIDPointer)
	}
	if s.MaxInFlight < 1 {
		return s, flagError(cmd, "max-in-flight", "must be at least 1, got %d", s.MaxInFlight)
	}
	// The per-partition default may exceed a small --max-in-flight; only an
	// explicit setting above it is an error.
	s.MaxInFlightPerPartition = min(cmd.Int("max-in-flight-per-partition"), s.MaxInFlight)
	if cmd.IsSet("max-in-flight-per-partition") {
		s.MaxInFlightPerPartition = cmd.Int("max-in-flight-per-partition")
		if s.MaxInFlightPerPartition < 1 || s.MaxInFlightPerPartition > s.MaxInFlight {
			return s, flagError(cmd, "max-in-flight-per-partition", "must be between 1 and --max-in-flight (%d), got %d", s.MaxInFlight, s.MaxInFlightPerPartition)
		}
	}
	if s.MaxEventBytes < 1 {
		return s, flagError(cmd, "max-event-bytes", "must be at least 1, got %d", s.MaxEventBytes)
	}
	if s.MaxRecordBytes < minRecordBytes {
		return s, flagError(cmd, "max-record-bytes", "must be at least %d, got %d", minRecordBytes, s.MaxRecordBytes)
	}
	if s.CacheSize < 1 {
		return s, flagError(cmd, "cache-size", "must be at least 1, got %d", s.CacheSize)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"cache-ttl", s.CacheTTL}, {"negative-cache-ttl", s.NegativeCacheTTL}, {"commit-interval", s.CommitInterval},
		{"drain-timeout", s.DrainTimeout}, {"shutdown-timeout", s.ShutdownTimeout}, {"record-retry-deadline", s.RecordRetryDeadline},
	} {
		if d.v <= 0 {
			return s, flagError(cmd, d.name, "must be positive, got %s", d.v)
		}
	}
	if s.UnavailableAfter < 0 {
		return s, flagError(cmd, "unavailable-after", "must not be negative, got %s", s.UnavailableAfter)
	}
	switch v := strings.ToLower(strings.TrimSpace(cmd.String("order-by"))); v {
	case orderByKafkaKey:
		s.OrderBy = processor.OrderByKafkaKey
	case orderByUser:
		s.OrderBy = processor.OrderByUser
	default:
		return s, flagError(cmd, "order-by", "must be %s or %s, got %q", orderByKafkaKey, orderByUser, v)
	}
	// replay has no --start-offset: its range fixes where it starts.
	if hasFlag(cmd, "start-offset") {
		switch v := strings.ToLower(strings.TrimSpace(cmd.String("start-offset"))); v {
		case startEarliest, startLatest:
			s.StartOffset = processor.StartOffset(v)
		default:
			return s, flagError(cmd, "start-offset", "must be %s or %s, got %q", startEarliest, startLatest, v)
		}
	}
	// The processor's own rules are the last word (e.g. the JSON pointer syntax).
	return s, checkPipeline(cmd, s)
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

func parseTencent(cmd *cli.Command) (tencentSettings, error) {
	s := tencentSettings{
		Region:   strings.ToLower(strings.TrimSpace(cmd.String("im-region"))),
		BaseURL:  strings.TrimSpace(cmd.String("im-base-url")),
		SDKAppID: cmd.Int("im-sdkappid"),
		Admin:    strings.TrimSpace(cmd.String("im-admin")),
		Rate:     cmd.Float("api-rate"),
	}
	if s.Region == "" && s.BaseURL == "" {
		return s, usageError{fmt.Errorf("%s or %s is required", flagRef(cmd, "im-region"), flagRef(cmd, "im-base-url"))}
	}
	if s.Region != "" {
		if _, err := client.ParseRegion(s.Region); err != nil {
			return s, flagError(cmd, "im-region", "must be one of %v, got %q", client.Regions(), s.Region)
		}
	}
	if s.SDKAppID <= 0 {
		return s, flagError(cmd, "im-sdkappid", "is required and must be positive")
	}
	if s.Admin == "" {
		return s, flagError(cmd, "im-admin", "is required")
	}
	if err := checkAPIRate(cmd, s.Rate); err != nil {
		return s, err
	}
	key, err := secret(envSecretKey, flagRef(cmd, "im-secret-key-file"), cmd.String("im-secret-key-file"))
	if err != nil {
		return s, err
	}
	s.SecretKey = key
	// The client's own rules are the last word (e.g. the base URL's form).
	return s, checkTencent(cmd, s)
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

// LogValue renders the settings for a log line without the secret key.
func (s tencentSettings) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("region", s.Region), slog.String("base_url", s.BaseURL),
		slog.Int("sdkappid", s.SDKAppID), slog.String("admin", s.Admin),
		slog.Float64("api_rate", s.Rate), slog.Bool("secret_key_set", s.SecretKey != ""),
	)
}

// String never includes the secret key.
func (s tencentSettings) String() string {
	return fmt.Sprintf("region=%s base_url=%s sdkappid=%d admin=%s api_rate=%g secret_key=[redacted]",
		s.Region, s.BaseURL, s.SDKAppID, s.Admin, s.Rate)
}

// The client and processor packages validate their Config with plain
// errors naming Go fields. The tables below map each field the command
// sets to the flag that feeds it. A field is checked by validating a
// Config that is valid except for that one field, set from the operator's
// settings: a failure is that flag's fault, whatever the package's message
// says, so no error text is ever matched.

// clientField is one client.Config field fed by a flag.
type clientField struct {
	flag string
	set  func(*client.Config, tencentSettings)
	what string // continues "--flag (ENV) ..." when the client rejects the value
}

var clientFields = []clientField{
	{"im-base-url", func(c *client.Config, s tencentSettings) { c.BaseURL = s.BaseURL },
		"must be an http or https URL with a host and without query or user info"},
	{"im-region", func(c *client.Config, s tencentSettings) {
		c.BaseURL = ""
		c.Region = client.Region(s.Region)
		if r, err := client.ParseRegion(s.Region); err == nil {
			c.Region = r
		}
	}, "must be one of " + fmt.Sprint(client.Regions())},
	{"im-sdkappid", func(c *client.Config, s tencentSettings) { c.SDKAppID = s.SDKAppID }, "must be positive"},
	{"im-admin", func(c *client.Config, s tencentSettings) { c.Admin = s.Admin }, "must name the app administrator"},
	{"api-rate", func(c *client.Config, s tencentSettings) { c.Rate = s.Rate }, ""}, // message: see apiRateError
}

// validClientConfig is a client.Config that passes Validate; the probes
// change one field of it.
func validClientConfig() client.Config {
	return client.Config{SDKAppID: 1, Admin: "administrator", SecretKey: "probe", BaseURL: "https://127.0.0.1"}
}

// clientAccepts reports whether the client accepts the field set from s.
func clientAccepts(f clientField, s tencentSettings) bool {
	c := validClientConfig()
	f.set(&c, s)
	return c.Validate() == nil
}

// checkAPIRate validates --api-rate: above 0 (the client paces any
// positive rate) and at most the API's per-SDKAppID limit.
func checkAPIRate(cmd *cli.Command, rate float64) error {
	if !(rate > 0 && rate <= maxAPIRate) {
		return flagError(cmd, "api-rate", "must be above 0 and at most %g, got %g", maxAPIRate, rate)
	}
	return nil
}

// checkTencent validates every flag-fed client field with the client's rules.
func checkTencent(cmd *cli.Command, s tencentSettings) error {
	for _, f := range clientFields {
		if f.flag == "im-region" && s.BaseURL != "" || f.flag == "im-base-url" && s.BaseURL == "" {
			continue // --im-base-url overrides --im-region
		}
		if clientAccepts(f, s) {
			continue
		}
		if f.flag == "api-rate" {
			return checkAPIRate(cmd, s.Rate)
		}
		return flagError(cmd, f.flag, "%s, got %q", f.what, flagValue(cmd, f.flag))
	}
	return nil
}

// clientConfigError maps an error of client.Config.Validate or client.New
// to the flag at fault; an error no flag explains is returned as is.
func clientConfigError(cmd *cli.Command, s tencentSettings, err error) error {
	if cerr := checkTencent(cmd, s); cerr != nil {
		return cerr
	}
	return err
}

// processorField is one processor.Config field fed by a flag.
type processorField struct {
	flag string
	set  func(*processor.Config, pipelineSettings)
	what string // continues "--flag (ENV) ..." when the processor rejects the value
}

var processorFields = []processorField{
	{"input-topic", func(c *processor.Config, p pipelineSettings) { c.InputTopic = p.InputTopic }, "must name a topic"},
	{"output-topic", func(c *processor.Config, p pipelineSettings) { c.OutputTopic = p.OutputTopic }, "must name a topic"},
	{"dlq-topic", func(c *processor.Config, p pipelineSettings) { c.DLQTopic = p.DLQTopic }, "must name a topic"},
	{"group", func(c *processor.Config, p pipelineSettings) { c.Group = p.Group }, "must name a consumer group"},
	{"user-id-pointer", func(c *processor.Config, p pipelineSettings) { c.UserIDPointer = p.UserIDPointer },
		"must be a JSON pointer (RFC 6901) such as /user_id"},
	{"start-offset", func(c *processor.Config, p pipelineSettings) { c.StartOffset = p.StartOffset },
		"must be " + startEarliest + " or " + startLatest},
	{"order-by", func(c *processor.Config, p pipelineSettings) { c.OrderBy = p.OrderBy },
		"must be " + orderByKafkaKey + " or " + orderByUser},
	{"max-in-flight", func(c *processor.Config, p pipelineSettings) {
		c.MaxInFlight, c.MaxInFlightPerPartition = p.MaxInFlight, min(p.MaxInFlight, 1)
	}, "must be at least 1"},
	{"max-in-flight-per-partition", func(c *processor.Config, p pipelineSettings) {
		c.MaxInFlight, c.MaxInFlightPerPartition = p.MaxInFlight, p.MaxInFlightPerPartition
	}, "must be between 1 and --max-in-flight"},
	{"max-event-bytes", func(c *processor.Config, p pipelineSettings) { c.MaxEventBytes = p.MaxEventBytes }, "must be at least 1"},
	{"max-record-bytes", func(c *processor.Config, p pipelineSettings) { c.MaxRecordBytes = p.MaxRecordBytes }, "must be at least 16 KiB (16384)"},
	{"record-retry-deadline", func(c *processor.Config, p pipelineSettings) { c.RecordRetryDeadline = p.RecordRetryDeadline }, "must be positive"},
	{"cache-size", func(c *processor.Config, p pipelineSettings) { c.CacheSize = p.CacheSize }, "must be at least 1"},
	{"cache-ttl", func(c *processor.Config, p pipelineSettings) { c.CacheTTL = p.CacheTTL }, "must be positive"},
	{"negative-cache-ttl", func(c *processor.Config, p pipelineSettings) { c.NegativeCacheTTL = p.NegativeCacheTTL }, "must be positive"},
	{"commit-interval", func(c *processor.Config, p pipelineSettings) { c.CommitInterval = p.CommitInterval }, "must be positive"},
	{"drain-timeout", func(c *processor.Config, p pipelineSettings) { c.DrainTimeout = p.DrainTimeout }, "must be positive"},
	{"shutdown-timeout", func(c *processor.Config, p pipelineSettings) { c.ShutdownTimeout = p.ShutdownTimeout }, "must be positive"},
	{"unavailable-after", func(c *processor.Config, p pipelineSettings) { c.UnavailableAfter = p.UnavailableAfter }, "must not be negative"},
}

// validProcessorConfig is a processor.Config that passes Validate; the
// probes change one field of it.
func validProcessorConfig() processor.Config {
	return processor.Config{Brokers: []string{"127.0.0.1:9092"}, InputTopic: "in", OutputTopic: "out", DLQTopic: "dlq", Group: "g"}
}

// checkPipeline validates every flag-fed processor field with the
// processor's rules.
func checkPipeline(cmd *cli.Command, p pipelineSettings) error {
	for _, f := range processorFields {
		c := validProcessorConfig()
		f.set(&c, p)
		if c.Validate() != nil {
			return flagError(cmd, f.flag, "%s, got %q", f.what, flagValue(cmd, f.flag))
		}
	}
	return nil
}

// processorConfigError maps an error of processor.New or NewReplay to the
// flag at fault; an error no flag explains is returned as is.
func processorConfigError(cmd *cli.Command, p pipelineSettings, err error) error {
	if !errors.Is(err, processor.ErrConfig) {
		return err
	}
	if perr := checkPipeline(cmd, p); perr != nil {
		return perr
	}
	return badConfig("%w", err)
}

// flagValue is the flag's value as the operator gave it.
func flagValue(cmd *cli.Command, name string) string {
	if !hasFlag(cmd, name) {
		return ""
	}
	return fmt.Sprint(cmd.Value(name))
}
