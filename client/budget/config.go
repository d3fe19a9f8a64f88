package budget

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Defaults applied by New to zero-valued Config fields. Rate, MinRate and
// RateRecoverAfter equal the client package's defaults of the same names.
// Safety and RateDecrease differ from the client's (0.98, 0.5), which are
// made for one process: the calls granted here reach the API from several
// processes, each adding its own wake-up and network delay between grant
// and arrival, so the shared schedule keeps 4% of the budget as headroom
// (paced at 191 calls/s of 200, a trailing second holds at most 192
// grants); and a frequency-limit answer slows every process at once, so
// the shared rate is cut by a tenth rather than halved (one late call
// costs about 20 calls/s for the recovery, not 100).
const (
	DefaultRate               = 200.0
	DefaultSafety             = 0.96
	DefaultMinRate            = 1.0
	DefaultRateDecrease       = 0.9
	DefaultRateRecoverAfter   = 10 * time.Second
	DefaultRedisTimeout       = 250 * time.Millisecond
	DefaultHeartbeatInterval  = time.Second
	DefaultFallbackMinMembers = 2
)

// liveHold is how long after the slot a waiting live take asked for replay
// takes stay refused.
const liveHold = 250 * time.Millisecond

// Role is the priority of a Budget's takes.
type Role int

const (
	// Live takes come first: they reserve the next slot up to one interval
	// ahead, and while one of them waits, replay takes are refused.
	Live Role = iota
	// Replay takes get only the slots live leaves, within their Cap.
	Replay
)

// String returns "live" or "replay".
func (r Role) String() string {
	switch r {
	case Live:
		return "live"
	case Replay:
		return "replay"
	}
	return fmt.Sprintf("Role(%d)", int(r))
}

// Config configures a Budget. The zero value of every field but Redis and
// Key selects the documented default. Every process sharing one Key must use
// the same Rate, Safety, MinRate, RateDecrease and RateRecoverAfter. A
// Config is copied by New.
type Config struct {
	// Redis holds the shared state (required). Any go-redis client works:
	// a single node, a failover or a cluster client.
	Redis redis.UniversalClient
	// Key names the shared state of one app (required), by convention
	// "enricher:budget:<sdkappid>". The schedule and the shared rate live in
	// the hash Key; the processes' heartbeats in the sorted set
	// Key+":members".
	Key string

	// Rate is the app's limit in calls/s, for all processes together
	// (default 200, the API's limit).
	Rate float64
	// Safety is the share of Rate used (default 0.96, in (0,1]). With
	// B = Safety*Rate >= 2 grants are paced at B-1 calls/s with burst 1, so
	// no trailing second ever holds more than B grants (B < 2: see
	// PacedRate).
	Safety float64
	// Role is the priority of this Budget's takes (default Live).
	Role Role
	// Cap bounds the grants of all Replay budgets on Key together, in
	// calls/s (0 = no cap but the budget). It is a cap, not a reservation:
	// a replay gets only what live leaves. Only for Role Replay.
	Cap float64

	// MinRate is the floor of the shared rate after frequency-limit answers
	// (default 1/s). RateDecrease multiplies the shared rate on such an
	// answer (default 0.9, in (0,1)), at most once per second for all
	// processes together; the rate then grows back linearly to the paced
	// rate over RateRecoverAfter (default 10s).
	MinRate          float64
	RateDecrease     float64
	RateRecoverAfter time.Duration

	// RedisTimeout bounds each Redis call (default 250ms). A call that fails
	// or times out switches the Budget to its local fallback.
	RedisTimeout time.Duration
	// HeartbeatInterval is the period of the heartbeat that registers this
	// process in Key+":members" and, while degraded, probes Redis (default
	// 1s). A member not seen for 3 intervals no longer counts.
	HeartbeatInterval time.Duration
	// FallbackMinMembers is the least number of processes assumed to share
	// the budget while Redis is unreachable (default 2): the local fallback
	// uses a share 1/max(N, FallbackMinMembers) of the budget, N being the
	// member count of the last successful heartbeat. A deployment that
	// never runs more than one process may set 1.
	FallbackMinMembers int
	// FallbackShare, when set, replaces the membership count: it returns the
	// share of the budget, in (0,1], this process may use while Redis is
	// unreachable (e.g. 1 / the consumer group's member count). It is called
	// when the Budget enters degraded mode. Values outside (0,1] are clamped.
	FallbackShare func() float64
	// ID names this process in the member set (default: hostname, pid and a
	// random suffix). It must be unique among the processes of one Key.
	ID string

	// Now is the clock of the local rate recovery and of the degraded-since
	// time (default time.Now). The shared schedule uses the Redis server's
	// clock, so that processes with skewed clocks agree.
	Now func() time.Time
	// Logger receives the degraded/resumed lines (default slog.Default()).
	Logger *slog.Logger
	// MeterProvider and TracerProvider; nil = no-op. With a TracerProvider
	// every Redis call gets a span, parented by the caller's context.
	MeterProvider  metric.MeterProvider
	TracerProvider trace.TracerProvider
}

func (c Config) withDefaults() Config {
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.Safety == 0 {
		c.Safety = DefaultSafety
	}
	if c.MinRate == 0 {
		c.MinRate = DefaultMinRate
	}
	if c.RateDecrease == 0 {
		c.RateDecrease = DefaultRateDecrease
	}
	if c.RateRecoverAfter == 0 {
		c.RateRecoverAfter = DefaultRateRecoverAfter
	}
	if c.RedisTimeout == 0 {
		c.RedisTimeout = DefaultRedisTimeout
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.FallbackMinMembers == 0 {
		c.FallbackMinMembers = DefaultFallbackMinMembers
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports every problem of the configuration after defaults are
// applied.
func (c Config) Validate() error {
	d := c.withDefaults()
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf("budget: "+format, a...)) }
	if d.Redis == nil {
		add("Redis is required")
	}
	if d.Key == "" {
		add("Key is required (e.g. \"enricher:budget:<sdkappid>\")")
	}
	if !(d.Rate > 0) || math.IsInf(d.Rate, 0) {
		add("Rate must be a positive number of calls/s, got %g", d.Rate)
	}
	if !(d.Safety > 0 && d.Safety <= 1) {
		add("Safety must be in (0,1], got %g", d.Safety)
	}
	if d.Role != Live && d.Role != Replay {
		add("Role must be Live or Replay, got %d", int(d.Role))
	}
	if d.Cap < 0 || math.IsNaN(d.Cap) || math.IsInf(d.Cap, 0) {
		add("Cap must be a non-negative number of calls/s, got %g", d.Cap)
	}
	if d.Cap > 0 && d.Role != Replay {
		add("Cap applies to Role Replay only")
	}
	if !(d.MinRate > 0) || math.IsInf(d.MinRate, 0) {
		add("MinRate must be positive, got %g", d.MinRate)
	}
	if !(d.RateDecrease > 0 && d.RateDecrease < 1) {
		add("RateDecrease must be in (0,1), got %g", d.RateDecrease)
	}
	if d.RateRecoverAfter < 0 {
		add("RateRecoverAfter must not be negative")
	}
	if d.RedisTimeout < 0 {
		add("RedisTimeout must not be negative")
	}
	if d.HeartbeatInterval < 0 {
		add("HeartbeatInterval must not be negative")
	}
	if d.FallbackMinMembers < 1 {
		add("FallbackMinMembers must be at least 1, got %d", d.FallbackMinMembers)
	}
	return errors.Join(errs...)
}

// PacedRate is the rate, in calls/s, at which a budget of rate calls/s of
// which the share safety is used (b = safety*rate) is paced with burst 1:
//
//   - b >= 2: b-1, since the burst of 1 adds one grant to any window, so a
//     trailing second holds at most b grants;
//   - b < 2: b/2, so grants are at least 2/b > 1s apart: a trailing second
//     holds at most one.
func PacedRate(rate, safety float64) float64 {
	if b := safety * rate; b >= 2 {
		return b - 1
	}
	return safety * rate / 2
}
