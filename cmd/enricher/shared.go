package main

// Shared state in Redis (--redis-url): the app's API budget and the
// subscription cache, shared by every process of one SDKAppID.

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net/url"
	"os"
	"strings"

	"github.com/redis/go-redis/v9"
	"github.com/urfave/cli/v3"

	"github.com/tencentchat-enricher/enricher/client"
	"github.com/tencentchat-enricher/enricher/client/budget"
	"github.com/tencentchat-enricher/enricher/internal/opshttp"
	"github.com/tencentchat-enricher/enricher/internal/sharedstate"
	"github.com/tencentchat-enricher/enricher/internal/telemetry"
	"github.com/tencentchat-enricher/enricher/processor"
)

// envRedisPassword holds the Redis password (a secret: never a flag).
const envRedisPassword = "ENRICHER_REDIS_PASSWORD"

const catShared = "Shared state (Redis)"

// redisFlags are the settings of the shared Redis, for run, replay and dev.
func redisFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "redis-url", Category: catShared, Sources: env("ENRICHER_REDIS_URL"),
			Usage: "`URL` of the Redis holding the API budget and the subscription cache shared by every process of the SDKAppID: " +
				"redis://[USER@]HOST[:PORT][/DB] or rediss://... (TLS); the password comes from " + envRedisPassword +
				" or --redis-password-file, never the URL (default: none, this process alone)"},
		&cli.StringFlag{Name: "redis-password-file", Category: catShared, Sources: env("ENRICHER_REDIS_PASSWORD_FILE"),
			Usage: "`FILE` holding the Redis password (or set " + envRedisPassword + ")"},
	}
}

// redisSettings is how to reach the shared Redis; nil Options: no Redis.
type redisSettings struct {
	Options *redis.Options
	Shown   string // the URL as logged: no password ever
}

// parseRedis reads --redis-url and the password.
func parseRedis(cmd *cli.Command) (redisSettings, error) {
	var s redisSettings
	raw := strings.TrimSpace(cmd.String("redis-url"))
	if raw == "" {
		if cmd.String("redis-password-file") != "" {
			return s, flagError(cmd, "redis-password-file", "needs %s", flagRef(cmd, "redis-url"))
		}
		return s, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		// The *url.Error repeats the URL, which may hold a password.
		return s, flagError(cmd, "redis-url", "is not a URL")
	}
	if _, has := u.User.Password(); has {
		return s, flagError(cmd, "redis-url", "must not carry a password: set %s or %s instead",
			envRedisPassword, flagRef(cmd, "redis-password-file"))
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return s, flagError(cmd, "redis-url", "must start with redis:// or rediss:// (TLS), got %q", u.Redacted())
	}
	if u.Host == "" {
		return s, flagError(cmd, "redis-url", "has no host, got %q", u.Redacted())
	}
	o, err := redis.ParseURL(raw)
	if err != nil {
		return s, flagError(cmd, "redis-url", "is not a Redis URL (%s), got %q", strings.TrimPrefix(err.Error(), "redis: "), u.Redacted())
	}
	if o.TLSConfig != nil {
		o.TLSConfig.MinVersion = tls.VersionTLS12
	}
	_, inEnv := os.LookupEnv(envRedisPassword)
	if inEnv || cmd.String("redis-password-file") != "" {
		pass, err := secret(envRedisPassword, flagRef(cmd, "redis-password-file"), cmd.String("redis-password-file"))
		if err != nil {
			return s, err
		}
		o.Password = pass
	}
	sharedstate.FailFast(o)
	s.Options, s.Shown = o, u.Redacted()
	return s, nil
}

// shared is the state of one process in the shared Redis.
type shared struct {
	budget *budget.Budget
	state  *sharedstate.State
}

// newShared connects to Redis (without waiting for it) and builds the
// app's budget for role (cap: the replay's share, 0 for live) from the
// client's rate, and the shared subscription cache (see sharedstate.New).
// The caller closes it after the processor has stopped.
func newShared(rs redisSettings, tc client.Config, role budget.Role, capRate float64, id string, log *slog.Logger, prov *telemetry.Providers) (*shared, error) {
	st, err := sharedstate.New(sharedstate.Config{
		Redis: rs.Options, Client: tc, Role: role, Cap: capRate, ID: id,
		Logger: log, MeterProvider: prov.MeterProvider, TracerProvider: prov.TracerProvider,
	})
	if err != nil {
		return nil, err
	}
	return &shared{budget: st.Budget, state: st}, nil
}

// wire plugs the shared state into the client's and the processor's
// configs; a nil shared leaves them as they are (this process alone).
func (s *shared) wire(tc *client.Config, pc *processor.Config) {
	if s == nil {
		return
	}
	s.state.Wire(tc, pc)
}

// Close releases the cache, the budget and the connection, in that order.
// Safe on nil.
func (s *shared) Close() {
	if s == nil {
		return
	}
	s.state.Close()
}

// check is the /readyz check of the shared budget. A process whose Redis
// is unreachable stays ready: it keeps processing on its local fallback
// share (never above it), and marking every process unready when Redis is
// down for all of them would only stop deploys; the body says
// "degraded shared-budget: REASON" and the budget's metric and warn line
// say so too.
func (s *shared) check() opshttp.Check {
	return opshttp.CheckFunc(func(context.Context) error {
		if degraded, reason := s.budget.Degraded(); degraded {
			return opshttp.Degraded(errors.New(reason))
		}
		return nil
	})
}

// addChecks adds the shared-budget check to checks (none without Redis).
func (s *shared) addChecks(checks map[string]opshttp.Check) map[string]opshttp.Check {
	if s != nil {
		checks["shared-budget"] = s.check()
	}
	return checks
}
