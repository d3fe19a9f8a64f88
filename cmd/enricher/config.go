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
	"strings"
	"time"

	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
	"github.com/urfave/cli/v3"
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
	defaultMaxInFlight   = 1024
	defaultCacheTTL      = 10 * time.Minute
	defaultCacheSize     = 100_000
	defaultHTTPAddr      = ":9464"
	maxAPIRate           = 200.0 // the API's documented per-SDKAppID limit
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

func parseKafka(cmd *cli.Command) (kafkaSettings, error) {
	var s kafkaSettings
	for _, b := range cmd.StringSlice("brokers") {
		b = strings.TrimSpace(b)
		if b == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(b); err != nil {
			return s, badConfig("--brokers: %q is not HOST:PORT", b)
		}
		s.Brokers = append(s.Brokers, b)
	}
	if len(s.Brokers) == 0 {
		return s, badConfig("--brokers: at least one broker is required")
	}

	ca, cert, key := cmd.String("kafka-tls-ca-file"), cmd.String("kafka-tls-cert-file"), cmd.String("kafka-tls-key-file")
	skip := cmd.Bool("kafka-tls-insecure-skip-verify")
	if cmd.Bool("kafka-tls") || ca != "" || cert != "" || key != "" || skip {
		t := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: skip} //nolint:gosec // opt-in, documented as testing only
		if ca != "" {
			pem, err := os.ReadFile(ca)
			if err != nil {
				return s, badConfig("--kafka-tls-ca-file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return s, badConfig("--kafka-tls-ca-file: %s holds no PEM certificate", ca)
			}
			t.RootCAs = pool
		}
		if (cert == "") != (key == "") {
			return s, badConfig("--kafka-tls-cert-file and --kafka-tls-key-file must be set together")
		}
		if cert != "" {
			pair, err := tls.LoadX509KeyPair(cert, key)
			if err != nil {
				return s, badConfig("--kafka-tls-cert-file/--kafka-tls-key-file: %w", err)
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
		return s, badConfig("--kafka-sasl-mechanism: %q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", mech)
	}
	user := cmd.String("kafka-sasl-username")
	if user == "" {
		return s, badConfig("--kafka-sasl-username is required with --kafka-sasl-mechanism %s", mech)
	}
	pass, err := secret(envSASLPassword, "--kafka-sasl-password-file", cmd.String("kafka-sasl-password-file"))
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
			return s, badConfig("--kafka-sasl-username/%s: not valid for %s", envSASLPassword, mech)
		}
		s.SASL = m
	}
	return s, nil
}

func parsePipeline(cmd *cli.Command) (pipelineSettings, error) {
	s := pipelineSettings{
		InputTopic:       strings.TrimSpace(cmd.String("input-topic")),
		OutputTopic:      strings.TrimSpace(cmd.String("output-topic")),
		DLQTopic:         strings.TrimSpace(cmd.String("dlq-topic")),
		Group:            strings.TrimSpace(cmd.String("group")),
		UserIDPointer:    cmd.String("user-id-pointer"),
		MaxInFlight:      cmd.Int("max-in-flight"),
		CacheTTL:         cmd.Duration("cache-ttl"),
		CacheSize:        cmd.Int("cache-size"),
		AutoCreateTopics: cmd.Bool("auto-create-topics"),
		UnavailableAfter: cmd.Duration("unavailable-after"),
	}
	for _, t := range []struct{ flag, v string }{
		{"--input-topic", s.InputTopic}, {"--output-topic", s.OutputTopic},
		{"--dlq-topic", s.DLQTopic}, {"--group", s.Group},
	} {
		if t.v == "" {
			return s, badConfig("%s must not be empty", t.flag)
		}
	}
	if s.InputTopic == s.OutputTopic || s.InputTopic == s.DLQTopic || s.OutputTopic == s.DLQTopic {
		return s, badConfig("--input-topic, --output-topic and --dlq-topic must be three different topics")
	}
	if s.UserIDPointer != "" && !strings.HasPrefix(s.UserIDPointer, "/") {
		return s, badConfig("--user-id-pointer: %q is not a JSON pointer (it starts with \"/\")", s.UserIDPointer)
	}
	if s.UserIDPointer == "" {
		return s, badConfig("--user-id-pointer must not be empty")
	}
	if s.MaxInFlight < 1 {
		return s, badConfig("--max-in-flight must be at least 1, got %d", s.MaxInFlight)
	}
	if s.CacheTTL <= 0 {
		return s, badConfig("--cache-ttl must be positive, got %s", s.CacheTTL)
	}
	if s.UnavailableAfter < 0 {
		return s, badConfig("--unavailable-after must not be negative, got %s", s.UnavailableAfter)
	}
	if s.CacheSize < 1 {
		return s, badConfig("--cache-size must be at least 1, got %d", s.CacheSize)
	}
	return s, nil
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
		return s, badConfig("--im-region (ENRICHER_IM_REGION) or --im-base-url (ENRICHER_IM_BASE_URL) is required")
	}
	if s.SDKAppID <= 0 {
		return s, badConfig("--im-sdkappid (ENRICHER_IM_SDKAPPID) is required and must be positive")
	}
	if s.Admin == "" {
		return s, badConfig("--im-admin (ENRICHER_IM_ADMIN) is required")
	}
	if !(s.Rate > 0 && s.Rate <= maxAPIRate) {
		return s, badConfig("--api-rate must be in (0, %g], got %g", maxAPIRate, s.Rate)
	}
	key, err := secret(envSecretKey, "--im-secret-key-file", cmd.String("im-secret-key-file"))
	if err != nil {
		return s, err
	}
	s.SecretKey = key
	return s, nil
}

func parseOps(cmd *cli.Command) (opsSettings, error) {
	s, err := parseLogging(cmd)
	if err != nil {
		return s, err
	}
	s.HTTPAddr = strings.TrimSpace(cmd.String("http-addr"))
	if s.HTTPAddr != "" {
		if _, _, err := net.SplitHostPort(s.HTTPAddr); err != nil {
			return s, badConfig("--http-addr: %q is not [HOST]:PORT", s.HTTPAddr)
		}
	}
	return s, nil
}

func parseLogging(cmd *cli.Command) (opsSettings, error) {
	s := opsSettings{LogFormat: strings.ToLower(cmd.String("log-format"))}
	if err := s.LogLevel.UnmarshalText([]byte(cmd.String("log-level"))); err != nil {
		return s, badConfig("--log-level: %q is not debug, info, warn or error", cmd.String("log-level"))
	}
	if s.LogFormat != "text" && s.LogFormat != "json" {
		return s, badConfig("--log-format: %q is not text or json", s.LogFormat)
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
