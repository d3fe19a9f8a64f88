package processor

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/tencentchat-enricher/enricher/schemas"
)

// StartOffset is where a consumer group without a committed offset starts
// reading a partition.
type StartOffset string

// Start offsets.
const (
	StartEarliest StartOffset = "earliest" // the oldest retained record (default)
	StartLatest   StartOffset = "latest"   // only records produced after the group joined
)

// IsolationLevel selects which records of transactional producers are
// read.
type IsolationLevel string

// Isolation levels. Transaction markers (control records) are never
// handed out, at either level.
const (
	// ReadCommitted reads the records of committed transactions only, up
	// to the partition's last stable offset (default).
	ReadCommitted IsolationLevel = "read_committed"
	// ReadUncommitted reads every record, also those of aborted and open
	// transactions.
	ReadUncommitted IsolationLevel = "read_uncommitted"
)

// OrderBy selects the key whose records are enriched and published in offset
// order (within a partition). Records with different keys run concurrently.
type OrderBy string

// Ordering keys.
const (
	// OrderByKafkaKey orders by the input record's key, falling back to the
	// user id for records without a key (default).
	OrderByKafkaKey OrderBy = "key"
	// OrderByUser orders by the user id, whatever the record key.
	OrderByUser OrderBy = "user"
)

// MaxPartitionWindow is the largest MaxInFlightPerPartition.
const MaxPartitionWindow = 20000

// Defaults of Config fields left zero.
const (
	DefaultMaxInFlight             = 1024
	DefaultMaxInFlightPerPartition = 2048
	DefaultMaxEventBytes           = 1 << 20
	DefaultCacheTTL                = 10 * time.Minute
	DefaultNegativeCacheTTL        = time.Minute
	DefaultCacheSize               = 100_000
	DefaultCommitInterval          = 100 * time.Millisecond
	DefaultDrainTimeout            = 10 * time.Second
	DefaultShutdownTimeout         = 30 * time.Second
	DefaultPauseBackoff            = time.Second
	DefaultBatchTimeout            = 2 * time.Millisecond
	DefaultBatchSize               = 500
	DefaultFetchMaxWait            = 250 * time.Millisecond
	DefaultRecordRetryDeadline     = 10 * time.Minute
	DefaultMaxRecordBytes          = 1 << 20 // Kafka's default max.message.bytes
	// DefaultSessionTimeout, DefaultHeartbeatInterval and
	// DefaultRebalanceTimeout time the group membership: a member that stops
	// heartbeating (killed, partitioned) is removed after the session
	// timeout, the brokers' default minimum (group.min.session.timeout.ms),
	// so its partitions move within seconds rather than kafka-go's 30 s; a
	// shorter timeout would remove members that merely pause (GC, a busy
	// machine). The rebalance timeout bounds how long the group waits for
	// members to drain and rejoin, and must exceed DrainTimeout.
	DefaultSessionTimeout    = 6 * time.Second
	DefaultHeartbeatInterval = time.Second
	DefaultRebalanceTimeout  = 20 * time.Second
)

// Config configures a Processor (and a Pipeline). The zero value of every
// optional field selects the documented default; Validate reports every
// missing or invalid setting.
type Config struct {
	// Brokers are the bootstrap addresses (host:port). Required.
	Brokers []string
	// InputTopic is the topic of user events. Required.
	InputTopic string
	// OutputTopic receives one enriched record per input record. Required.
	OutputTopic string
	// DLQTopic receives input records that cannot be enriched (malformed
	// input, per-record API failures, enriched records too large to
	// publish), original bytes and key, with error headers. Required.
	DLQTopic string
	// Group is the consumer group id. Required.
	Group string
	// StartOffset applies to partitions the group has no committed offset
	// for. Default StartEarliest.
	StartOffset StartOffset
	// IsolationLevel selects the input records read from transactional
	// producers. Default ReadCommitted.
	IsolationLevel IsolationLevel

	// UserIDPointer is the JSON pointer (RFC 6901) of the user id in an
	// input event. Default "/user_id".
	UserIDPointer string
	// OrderBy selects the ordering key. Default OrderByKafkaKey.
	OrderBy OrderBy
	// MaxEventBytes is the largest input value accepted; larger ones go to
	// the DLQ. Default 1 MiB.
	MaxEventBytes int

	// MaxInFlight bounds the records being built and published at once,
	// over all partitions; fetching waits while it is reached. Records
	// waiting for an API lookup do not count (the users they wait for are
	// at most what the budget serves in a few seconds, see userGate):
	// cached records pass them.
	// Default 1024.
	MaxInFlight int
	// MaxInFlightPerPartition bounds a partition's records fetched and not
	// yet published: waiting for an API lookup, queued behind an earlier
	// record of their key, or being built and published. Cached records
	// pass uncached ones; the ones published ahead of an unpublished record
	// do not count here but in the partition's span, which the completed
	// set of a commit bounds (Claim). At most MaxPartitionWindow.
	// Default 2048.
	MaxInFlightPerPartition int

	// CacheTTL is how long a user's subscriptions are reused. Default 10m.
	CacheTTL time.Duration
	// NegativeCacheTTL is how long user_not_found and invalid_user answers
	// are reused. Default 1m.
	NegativeCacheTTL time.Duration
	// CacheSize is the maximum number of cached users. Default 100000.
	CacheSize int
	// CacheStaleTTL, when positive, serves an entry past its TTL for this
	// long more (stale-while-revalidate): published at once with cache
	// "stale" and its fetched_at, and refreshed in the background, after
	// users never seen. Zero (default): an expired entry is fetched again
	// before the record is published.
	CacheStaleTTL time.Duration
	// CacheRefreshAfter, when positive, refreshes an entry in the
	// background once it is this old (from its fetch) while it is still
	// within CacheTTL: it is published at once as a hit, and fetched again
	// one user at a time. With subscription changes applied (ApplyChange,
	// Tencent's webhooks) CacheTTL may be hours; this bounds how long a
	// lost change can go unnoticed. Zero (default): off. Must be shorter
	// than CacheTTL.
	CacheRefreshAfter time.Duration
	// SharedCache, when set, is the cache every process of the SDKAppID
	// shares (Redis: *sharedcache.Store), behind the local cache: lookups
	// are stored there with their TTLs, and a user being fetched by one
	// process is not fetched by another at the same time (a lease). Nil
	// (default): the local cache alone.
	SharedCache SharedCache

	// CommitInterval is the period of offset commits (only partitions whose
	// position moved are committed). The records a crash publishes again
	// are at most those published since the last commit. Default 100ms.
	CommitInterval time.Duration
	// DrainTimeout bounds the wait for in-flight records of revoked
	// partitions; what is left is dropped (and re-read by the next owner).
	// It must be shorter than RebalanceTimeout: a member that takes longer
	// to rejoin is dropped from the group and its final commit rejected.
	// Default 10s, or half of RebalanceTimeout when that is shorter.
	DrainTimeout time.Duration
	// ShutdownTimeout bounds the wait for in-flight records when Run's
	// context is canceled. Default 30s.
	ShutdownTimeout time.Duration

	// UnavailableAfter, when positive, publishes a record with status
	// unavailable once the API has been unreachable (breaker open, retries
	// exhausted) for that long for that record. Zero (default): wait for the
	// API, with fetching paused, and never publish degraded records.
	UnavailableAfter time.Duration
	// PauseBackoff is how long fetching pauses, and a record waits before
	// retrying, when the API is unreachable and did not say for how long. It
	// is also the first backoff of a record whose own lookups fail while the
	// API is up (doubling on every failure, up to 32×PauseBackoff).
	// Default 1s.
	PauseBackoff time.Duration
	// RecordRetryDeadline bounds how long one record retries lookups that
	// fail while the API as a whole is up (the client's circuit breaker is
	// closed, other users' lookups succeed): for example a user the API
	// keeps answering 20005 or 502 for. Such a record does not pause
	// fetching; it backs off and retries alone (records of its key wait
	// behind it, other keys go on), and once it has failed for this long it
	// goes to the DLQ with class enrichment_unavailable — or, when
	// UnavailableAfter is set and elapsed first, it is published with status
	// unavailable. Time while the API as a whole is unavailable (breaker
	// open, no lookup succeeding) does not count: an outage never
	// dead-letters records. Default 10m.
	RecordRetryDeadline time.Duration

	// StallTimeout is how old the oldest unfinished record of a partition
	// (PartitionStats.OldestUnfinished) may grow before the partition is
	// reported stalled (Processor.Stalled, the /readyz check): its
	// watermark has not moved for that long while it holds input. Default
	// RecordRetryDeadline plus one minute, so that a record retrying a
	// failing user's lookups until its deadline is not a stall.
	StallTimeout time.Duration

	// BatchTimeout and BatchSize tune the output writer: a batch is sent when
	// it holds BatchSize records or is BatchTimeout old. Defaults 2ms, 500.
	BatchTimeout time.Duration
	BatchSize    int
	// OutputCompression is the codec of the output and DLQ writer: none,
	// gzip, snappy, lz4 or zstd (kafka-go's codecs). Default
	// DefaultOutputCompression.
	OutputCompression string
	// Fields names the account fields an enriched record carries
	// (schemas.FieldNames; official_account is always carried), for
	// example official_account and subscribe_time. Empty (default): every
	// field. The client should ask the API for no more than these: see
	// FieldsFilter.
	Fields []string
	// FetchMaxWait bounds how long a fetch waits for new records. Default 250ms.
	FetchMaxWait time.Duration
	// AutoCreateTopics lets the writer create missing output topics. Default false.
	AutoCreateTopics bool
	// MaxRecordBytes is the largest record the writer sends (the writer's
	// BatchBytes; key, value and headers). An enriched record larger than
	// this goes to the DLQ as its original input, with class
	// output_too_large. It must not exceed the broker's message.max.bytes or
	// the output and DLQ topics' max.message.bytes, or such records are
	// refused by the broker instead, which stops the processor. Default
	// 1 MiB (1048576), Kafka's default limit.
	MaxRecordBytes int

	// SessionTimeout, RebalanceTimeout and HeartbeatInterval tune the group
	// membership. Defaults 6s, 20s, 1s (see DefaultSessionTimeout).
	// RebalanceTimeout must exceed DrainTimeout, HeartbeatInterval must be
	// shorter than SessionTimeout.
	SessionTimeout, RebalanceTimeout, HeartbeatInterval time.Duration

	// Dialer connects the consumer (group coordinator and fetchers); set its
	// TLS and SASLMechanism for secured clusters. Default: plain TCP.
	Dialer *kafka.Dialer
	// Transport carries the writer's requests; set its TLS and SASL for
	// secured clusters. Default: kafka-go's default transport.
	Transport *kafka.Transport

	// Logger receives operational logs. Default slog.Default().
	Logger *slog.Logger
	// TracerProvider and MeterProvider default to the otel globals. Trace
	// context is read from and written to record headers with the global
	// propagator, or W3C Trace Context and Baggage when none is set.
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	// Now is the clock for fetched_at and processed_at, and for
	// UnavailableAfter and RecordRetryDeadline. Default time.Now.
	Now func() time.Time

	fields *schemas.Fields // Fields, parsed by withDefaults
}

// MinRecordBytes is the smallest MaxRecordBytes accepted: room for a
// dead-letter record's headers.
const MinRecordBytes = 16 << 10

// ErrConfig is matched (errors.Is) by every configuration error.
var ErrConfig = errors.New("processor: invalid config")

// Validate reports every missing or invalid setting as a *ConfigError,
// joined in field order (errors.As finds the first).
func (c Config) Validate() error {
	var errs []error
	bad := func(field string, value any, reason string) {
		errs = append(errs, &ConfigError{Field: field, Value: value, Reason: reason})
	}
	for _, f := range []struct{ name, v string }{
		{"InputTopic", c.InputTopic}, {"OutputTopic", c.OutputTopic}, {"DLQTopic", c.DLQTopic}, {"Group", c.Group},
	} {
		if f.v == "" {
			bad(f.name, f.v, "must not be empty")
		}
	}
	if len(c.Brokers) == 0 {
		bad("Brokers", c.Brokers, "must name at least one broker")
	} else if slices.Contains(c.Brokers, "") {
		bad("Brokers", c.Brokers, "has an empty address")
	}
	if c.OutputTopic != "" && c.OutputTopic == c.InputTopic {
		bad("OutputTopic", c.OutputTopic, "must differ from the input topic")
	}
	if c.DLQTopic != "" && (c.DLQTopic == c.InputTopic || c.DLQTopic == c.OutputTopic) {
		bad("DLQTopic", c.DLQTopic, "must differ from the input and output topics")
	}
	switch c.StartOffset {
	case "", StartEarliest, StartLatest:
	default:
		bad("StartOffset", c.StartOffset, fmt.Sprintf("must be %s or %s", StartEarliest, StartLatest))
	}
	switch c.IsolationLevel {
	case "", ReadCommitted, ReadUncommitted:
	default:
		bad("IsolationLevel", c.IsolationLevel, fmt.Sprintf("must be %s or %s", ReadCommitted, ReadUncommitted))
	}
	switch c.OrderBy {
	case "", OrderByKafkaKey, OrderByUser:
	default:
		bad("OrderBy", c.OrderBy, fmt.Sprintf("must be %s or %s", OrderByKafkaKey, OrderByUser))
	}
	if c.UserIDPointer != "" {
		if _, err := newDecoder(c.UserIDPointer, 1); err != nil {
			bad("UserIDPointer", c.UserIDPointer, "must be a JSON pointer (RFC 6901) to a member, such as /user_id")
		}
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"MaxInFlight", c.MaxInFlight}, {"MaxInFlightPerPartition", c.MaxInFlightPerPartition},
		{"MaxEventBytes", c.MaxEventBytes}, {"CacheSize", c.CacheSize}, {"BatchSize", c.BatchSize},
	} {
		if f.v < 0 {
			bad(f.name, f.v, "must be at least 1")
		}
	}
	if _, err := schemas.ParseFields(c.Fields); err != nil {
		bad("Fields", strings.Join(c.Fields, ","), err.Error())
	}
	if _, ok := compressionCodecs[strings.ToLower(c.OutputCompression)]; !ok && c.OutputCompression != "" {
		bad("OutputCompression", c.OutputCompression, "must be none, gzip, snappy, lz4 or zstd")
	}
	if c.MaxInFlightPerPartition > MaxPartitionWindow {
		bad("MaxInFlightPerPartition", c.MaxInFlightPerPartition, fmt.Sprintf("must be at most %d", MaxPartitionWindow))
	}
	if c.MaxRecordBytes < 0 || (c.MaxRecordBytes > 0 && c.MaxRecordBytes < MinRecordBytes) {
		bad("MaxRecordBytes", c.MaxRecordBytes, fmt.Sprintf("must be at least %d (16 KiB)", MinRecordBytes))
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{
		{"CacheTTL", c.CacheTTL}, {"NegativeCacheTTL", c.NegativeCacheTTL}, {"CacheStaleTTL", c.CacheStaleTTL}, {"CacheRefreshAfter", c.CacheRefreshAfter}, {"CommitInterval", c.CommitInterval},
		{"DrainTimeout", c.DrainTimeout}, {"ShutdownTimeout", c.ShutdownTimeout}, {"UnavailableAfter", c.UnavailableAfter},
		{"PauseBackoff", c.PauseBackoff}, {"RecordRetryDeadline", c.RecordRetryDeadline}, {"StallTimeout", c.StallTimeout},
		{"BatchTimeout", c.BatchTimeout}, {"FetchMaxWait", c.FetchMaxWait},
		{"SessionTimeout", c.SessionTimeout}, {"RebalanceTimeout", c.RebalanceTimeout}, {"HeartbeatInterval", c.HeartbeatInterval},
	} {
		if f.v < 0 {
			bad(f.name, f.v, "must not be negative")
		}
	}
	if c.DrainTimeout > 0 {
		if rt := cmp.Or(c.RebalanceTimeout, DefaultRebalanceTimeout); c.DrainTimeout >= rt {
			errs = append(errs, &ConfigError{Field: "DrainTimeout", Value: c.DrainTimeout,
				Reason: "must be shorter than", // a member that drains longer is dropped from the group and its final commit rejected
				Other:  "RebalanceTimeout", OtherValue: rt})
		}
	}
	if c.CacheRefreshAfter > 0 && c.CacheRefreshAfter >= cmp.Or(c.CacheTTL, DefaultCacheTTL) {
		errs = append(errs, &ConfigError{Field: "CacheRefreshAfter", Value: c.CacheRefreshAfter, Reason: "must be shorter than",
			Other: "CacheTTL", OtherValue: cmp.Or(c.CacheTTL, DefaultCacheTTL)})
	}
	if c.HeartbeatInterval > 0 && c.HeartbeatInterval >= cmp.Or(c.SessionTimeout, DefaultSessionTimeout) {
		errs = append(errs, &ConfigError{Field: "HeartbeatInterval", Value: c.HeartbeatInterval, Reason: "must be shorter than",
			Other: "SessionTimeout", OtherValue: cmp.Or(c.SessionTimeout, DefaultSessionTimeout)})
	}
	return errors.Join(errs...)
}

// withDefaults returns c with every zero optional field set to its default.
func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if c.StartOffset == "" {
		c.StartOffset = StartEarliest
	}
	if c.IsolationLevel == "" {
		c.IsolationLevel = ReadCommitted
	}
	if c.OrderBy == "" {
		c.OrderBy = OrderByKafkaKey
	}
	if c.UserIDPointer == "" {
		c.UserIDPointer = schemas.DefaultUserIDPointer
	}
	def(&c.MaxInFlight, DefaultMaxInFlight)
	def(&c.MaxInFlightPerPartition, DefaultMaxInFlightPerPartition)
	def(&c.MaxEventBytes, DefaultMaxEventBytes)
	def(&c.CacheSize, DefaultCacheSize)
	def(&c.BatchSize, DefaultBatchSize)
	defD(&c.CacheTTL, DefaultCacheTTL)
	defD(&c.NegativeCacheTTL, DefaultNegativeCacheTTL)
	defD(&c.CommitInterval, DefaultCommitInterval)
	defD(&c.DrainTimeout, min(DefaultDrainTimeout, cmp.Or(c.RebalanceTimeout, DefaultRebalanceTimeout)/2))
	defD(&c.RecordRetryDeadline, DefaultRecordRetryDeadline)
	defD(&c.StallTimeout, c.RecordRetryDeadline+time.Minute)
	def(&c.MaxRecordBytes, DefaultMaxRecordBytes)
	defD(&c.ShutdownTimeout, DefaultShutdownTimeout)
	defD(&c.PauseBackoff, DefaultPauseBackoff)
	defD(&c.BatchTimeout, DefaultBatchTimeout)
	defD(&c.FetchMaxWait, DefaultFetchMaxWait)
	defD(&c.SessionTimeout, DefaultSessionTimeout)
	defD(&c.HeartbeatInterval, DefaultHeartbeatInterval)
	defD(&c.RebalanceTimeout, DefaultRebalanceTimeout)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.OutputCompression = strings.ToLower(cmp.Or(c.OutputCompression, DefaultOutputCompression))
	c.fields, _ = schemas.ParseFields(c.Fields) // Validate reports an error
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// DefaultOutputCompression is the output codec by default (see the
// README's measurement of the codecs).
const DefaultOutputCompression = "none"

// compressionCodecs are the values of Config.OutputCompression.
var compressionCodecs = map[string]kafka.Compression{
	"none": 0, "gzip": kafka.Gzip, "snappy": kafka.Snappy, "lz4": kafka.Lz4, "zstd": kafka.Zstd,
}

// FieldsFilter returns the API's response filter lists (the client's
// ResponseFilter: OfficialAccountBaseInfoFilter, SelfInfoFilter) that
// fetch no more than Config.Fields names; nil, nil for every field, and
// for names ParseFields rejects (Validate reports them).
func FieldsFilter(fields []string) (baseInfo, selfInfo []string) {
	f, err := schemas.ParseFields(fields)
	if err != nil {
		return nil, nil
	}
	return f.APIFilter()
}

func (c Config) startOffset() int64 {
	if c.StartOffset == StartLatest {
		return kafka.LastOffset
	}
	return kafka.FirstOffset
}
