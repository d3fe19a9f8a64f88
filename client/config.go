package client

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Defaults applied by New to zero-valued Config fields.
const (
	DefaultRate = 200.0
	// MaxRate is the API's documented limit: calls per second per SDKAppID.
	MaxRate                 = 200.0
	DefaultRateSafety       = 0.98
	DefaultPageLimit        = 200
	MaxPageLimit            = 200
	DefaultTimeout          = 5 * time.Second
	DefaultUserSigTTL       = 7 * 24 * time.Hour
	MinUserSigTTL           = 24 * time.Hour
	DefaultMaxAttempts      = 5
	DefaultRetryDeadline    = 30 * time.Second
	DefaultBackoffBase      = 100 * time.Millisecond
	DefaultBackoffMax       = 5 * time.Second
	DefaultMaxPages         = 100
	DefaultBreakerFailures  = 10
	DefaultBreakerOpenFor   = 2 * time.Second
	DefaultBreakerProbes    = 1
	DefaultBreakerInterval  = 30 * time.Second
	DefaultRateDecrease     = 0.5
	DefaultRateRecoverAfter = 10 * time.Second
	DefaultMinRate          = 1.0
)

// Config configures a Client. The zero value of every field but SDKAppID,
// Admin, SecretKey and Region/BaseURL selects the documented default.
// A Config is copied by New; changing it afterwards has no effect.
type Config struct {
	// SDKAppID, Admin (an app admin account) and SecretKey identify the app.
	// SecretKey is a credential: String, GoString and LogValue redact it.
	SDKAppID  int
	Admin     string
	SecretKey string

	// Region selects the regional domain (https). BaseURL, when set,
	// overrides Region: "host[:port]" (https assumed) or a full
	// "scheme://host[:port][/prefix]" URL, e.g. a simulator or a proxy.
	Region  Region
	BaseURL string

	// Rate is the app's call budget in calls per second (default 200, the
	// API's limit; any positive value, fractions included). Every attempt
	// and every page counts. The client admits a call only while the calls
	// sent in the last second plus those admitted but not yet written stay
	// below floor(RateSafety*Rate) (at least 1), and a token bucket (burst
	// 1, rate RateSafety*Rate-1) spaces calls evenly. Below about 2 calls/s
	// at most one call is in any trailing second and calls are spaced
	// 1/(RateSafety*min(Rate,1)) seconds apart: Rate 0.5 sends one call
	// about every 2.06s. After a frequency-limit answer both the bucket
	// rate and the cap follow the lowered rate at once.
	// Without Budget the budget is per Client: processes sharing one app
	// must split it. With Budget, Rate is the app's budget for all
	// processes together (the Budget must be built with the same Rate,
	// RateSafety, MinRate, RateDecrease and RateRecoverAfter).
	Rate float64
	// RateSafety is the share of Rate the client uses (default 0.98, in
	// (0,1]): at Rate 200 it paces 195 calls/s under a hard cap of 196 per
	// second. The server counts arrival times, which trail write times by a
	// varying network delay; the headroom (4 calls/s at the default rate,
	// about 20 ms of differential delay) keeps bunched arrivals within the
	// server's limit. Lower it on links with more jitter: a throttled
	// answer halves the rate, which costs far more than the headroom.
	RateSafety float64
	// MinRate is the floor of the adaptive rate after throttling answers (default 1/s).
	MinRate float64
	// RateDecrease multiplies the effective rate on a frequency-limit answer
	// (default 0.5, in (0,1)); the rate then grows back linearly to its
	// maximum within RateRecoverAfter (default 10s).
	RateDecrease     float64
	RateRecoverAfter time.Duration

	// PageLimit is the Limit sent per page, 1..200 (default 200).
	PageLimit int
	// Filter selects the fields the server returns; nil = all fields.
	Filter *ResponseFilter

	// Timeout bounds one HTTP attempt (default 5s; the server gives up
	// after about 3s, so it must exceed that).
	Timeout time.Duration
	// UserSigTTL is the validity requested for each UserSig (default 7 days,
	// minimum 24h). A cached UserSig is renewed once half of it has passed.
	UserSigTTL time.Duration

	// MaxAttempts bounds the attempts per page, first included (default 5).
	MaxAttempts int
	// RetryDeadline bounds the time spent on one page, retries included
	// (default 30s). Backoffs that would end past it are not started.
	RetryDeadline time.Duration
	// BackoffBase and BackoffMax shape the exponential backoff with jitter
	// (defaults 100ms and 5s).
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// MaxPages bounds the pages GetAll follows for one user (default 100,
	// i.e. 20000 accounts at the default PageLimit).
	MaxPages int

	// Budget, when set, is the call budget shared with the other processes
	// of the app (*budget.Budget of client/budget, in Redis). Every attempt
	// and every page then takes a token from it instead of the client's own
	// token bucket, frequency-limit answers lower its shared rate
	// (Budget.Throttled) and EffectiveRate reports its Rate. The client
	// keeps its hard cap of floor(RateSafety*Rate) calls per trailing
	// second as a guard behind it (no pacing, no throttling of its own).
	// Nil (default): the client's own limiter, for this process alone.
	// The client does not close it.
	Budget Budget

	// Breaker configures the circuit breaker.
	Breaker BreakerConfig

	// HTTPClient sends the requests; nil = a pooled keep-alive client. The
	// client's CheckRedirect is replaced: redirects are never followed,
	// since they would resend the UserSig elsewhere.
	HTTPClient *http.Client
	// Logger receives state changes (breaker, rate, UserSig renewals); nil = slog.Default().
	Logger *slog.Logger
	// TracerProvider and MeterProvider; nil = the otel globals.
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	// Now is the clock used for UserSig renewal and rate recovery; nil = time.Now.
	Now func() time.Time
}

// BreakerConfig configures the circuit breaker. Only transient failures
// (network errors, HTTP 5xx, 10004, 20005, 60008, 60014, timeouts) count.
type BreakerConfig struct {
	// Failures is the number of consecutive transient failures that open
	// the breaker (default 10).
	Failures uint32
	// OpenFor is the longest the breaker stays open before letting a
	// probe through (default 2s): the first open period is 500ms (or
	// OpenFor when shorter), doubling after every failed probe up to
	// OpenFor, so that calls resume within OpenFor of the API coming back,
	// at the cost of one probe per OpenFor while it is down.
	OpenFor time.Duration
	// Probes is the number of calls let through while half-open; that many
	// successes close the breaker (default 1).
	Probes uint32
	// Interval clears the failure counts while closed (default 30s).
	Interval time.Duration
}

// String redacts the secret key.
func (c Config) String() string {
	return fmt.Sprintf("client.Config{SDKAppID:%d Admin:%q SecretKey:%s Region:%q BaseURL:%q Rate:%g PageLimit:%d Timeout:%s}",
		c.SDKAppID, c.Admin, redactedKey(c.SecretKey), c.Region, redact(c.BaseURL), c.Rate, c.PageLimit, c.Timeout)
}

// GoString redacts the secret key in %#v.
func (c Config) GoString() string { return c.String() }

// LogValue redacts the secret key in slog output.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Int("sdkappid", c.SDKAppID),
		slog.String("admin", c.Admin),
		slog.String("secret_key", redactedKey(c.SecretKey)),
		slog.String("region", string(c.Region)),
		slog.String("base_url", redact(c.BaseURL)),
		slog.Float64("rate", c.Rate),
	)
}

func redactedKey(k string) string {
	if k == "" {
		return "<empty>"
	}
	return "REDACTED"
}

// withDefaults returns c with zero fields replaced by their defaults.
func (c Config) withDefaults() Config {
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.RateSafety == 0 {
		c.RateSafety = DefaultRateSafety
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
	if c.PageLimit == 0 {
		c.PageLimit = DefaultPageLimit
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.UserSigTTL == 0 {
		c.UserSigTTL = DefaultUserSigTTL
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.RetryDeadline == 0 {
		c.RetryDeadline = DefaultRetryDeadline
	}
	if c.BackoffBase == 0 {
		c.BackoffBase = DefaultBackoffBase
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = DefaultBackoffMax
	}
	if c.MaxPages == 0 {
		c.MaxPages = DefaultMaxPages
	}
	if c.Breaker.Failures == 0 {
		c.Breaker.Failures = DefaultBreakerFailures
	}
	if c.Breaker.OpenFor == 0 {
		c.Breaker.OpenFor = DefaultBreakerOpenFor
	}
	if c.Breaker.Probes == 0 {
		c.Breaker.Probes = DefaultBreakerProbes
	}
	if c.Breaker.Interval == 0 {
		c.Breaker.Interval = DefaultBreakerInterval
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports every problem of the configuration after defaults are
// applied, as errors.Join of *ConfigError values in the order of the
// Config fields: errors.As(err, &ce) gives the first. Each matches
// ErrConfig. The messages never contain the secret key.
func (c Config) Validate() error {
	d := c.withDefaults()
	var errs []error
	bad := func(field string, value any, reason string, a ...any) {
		errs = append(errs, &ConfigError{Field: field, Value: value, Reason: fmt.Sprintf(reason, a...)})
	}

	if d.SDKAppID <= 0 {
		bad("SDKAppID", d.SDKAppID, "must be positive")
	}
	if strings.TrimSpace(d.Admin) == "" {
		bad("Admin", d.Admin, "the app admin identifier is required")
	}
	if d.SecretKey == "" {
		bad("SecretKey", nil, "is required")
	}
	if _, err := d.baseURL(); err != nil {
		errs = append(errs, err)
	}
	if !(d.Rate > 0 && d.Rate <= MaxRate) {
		bad("Rate", d.Rate, "must be above 0 and at most %g calls/s (the API's limit per app)", float64(MaxRate))
	}
	if !(d.RateSafety > 0 && d.RateSafety <= 1) {
		bad("RateSafety", d.RateSafety, "must be in (0,1]")
	}
	if !(d.MinRate > 0) || math.IsInf(d.MinRate, 0) {
		bad("MinRate", d.MinRate, "must be positive")
	}
	if d.RateDecrease <= 0 || d.RateDecrease >= 1 {
		bad("RateDecrease", d.RateDecrease, "must be in (0,1)")
	}
	if d.RateRecoverAfter < 0 {
		bad("RateRecoverAfter", d.RateRecoverAfter, "must not be negative")
	}
	if d.PageLimit < 1 || d.PageLimit > MaxPageLimit {
		bad("PageLimit", d.PageLimit, "must be in 1..%d", MaxPageLimit)
	}
	if list, name, known := d.Filter.unknownField(); name != "" {
		bad("Filter."+list, name, "unknown field, want one of %v", known)
	}
	if d.Timeout <= 3*time.Second {
		bad("Timeout", d.Timeout, "must exceed the server's 3s timeout")
	}
	if d.UserSigTTL < MinUserSigTTL {
		bad("UserSigTTL", d.UserSigTTL, "must be at least %s", MinUserSigTTL)
	}
	if d.MaxAttempts < 1 {
		bad("MaxAttempts", d.MaxAttempts, "must be at least 1")
	}
	if d.RetryDeadline <= 0 {
		bad("RetryDeadline", d.RetryDeadline, "must be positive")
	}
	if d.BackoffBase <= 0 {
		bad("BackoffBase", d.BackoffBase, "must be positive")
	}
	if d.BackoffMax < d.BackoffBase {
		bad("BackoffMax", d.BackoffMax, "must be at least BackoffBase (%s)", d.BackoffBase)
	}
	if d.MaxPages < 1 {
		bad("MaxPages", d.MaxPages, "must be at least 1")
	}
	if d.Breaker.OpenFor < 0 {
		bad("Breaker.OpenFor", d.Breaker.OpenFor, "must not be negative")
	}
	if d.Breaker.Interval < 0 {
		bad("Breaker.Interval", d.Breaker.Interval, "must not be negative")
	}
	return errors.Join(errs...)
}

// baseURL resolves BaseURL or Region to a URL without trailing slash. Its
// error is a *ConfigError for BaseURL, or for Region when BaseURL is empty.
func (c Config) baseURL() (*url.URL, error) {
	raw := strings.TrimSpace(c.BaseURL)
	if raw == "" {
		if c.Region == "" {
			return nil, &ConfigError{Field: "Region", Reason: "one of Region or BaseURL is required"}
		}
		raw = c.Region.BaseURL()
		if raw == "" {
			return nil, &ConfigError{Field: "Region", Value: string(c.Region),
				Reason: fmt.Sprintf("unknown region, want one of %v", Regions())}
		}
	}
	bad := func(value any, reason string, err error) error {
		return &ConfigError{Field: "BaseURL", Value: value, Reason: reason, Err: err}
	}
	if !strings.Contains(raw, "://") {
		raw = "https://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		// The value, and the *url.Error holding it, may carry user info.
		return nil, bad(nil, "is not a URL", stripURLError(err))
	}
	shown := redact(u.Redacted())
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, bad(shown, fmt.Sprintf("scheme must be http or https, got %q", u.Scheme), nil)
	case u.Host == "":
		return nil, bad(shown, "has no host", nil)
	case u.RawQuery != "" || u.User != nil:
		return nil, bad(shown, "must not carry a query or user info", nil)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	u.Fragment = ""
	return u, nil
}
