// Package sharedstate builds the state one process keeps in the shared
// Redis (--redis-url): the app's API budget (client/budget) and the
// subscription cache (processor/sharedcache), under the key names every
// process of one SDKAppID agrees on. The enricher's run, replay and dev
// commands and the benchmark's children build it the same way.
package sharedstate

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/tencentchat-enricher/enricher/client"
	"github.com/tencentchat-enricher/enricher/client/budget"
	"github.com/tencentchat-enricher/enricher/processor"
	"github.com/tencentchat-enricher/enricher/processor/sharedcache"
)

// BudgetKey is the key of the shared budget of an app.
func BudgetKey(appID int) string { return "enricher:budget:" + strconv.Itoa(appID) }

// CachePrefix is the key prefix of the shared subscription cache of an app.
func CachePrefix(appID int) string { return "enricher:subs:" + strconv.Itoa(appID) + ":" }

// FailFast sets o for the shared state: the budget and the cache bound
// each call themselves (250ms) and fall back when Redis does not answer,
// so a call fails at once rather than being retried, and a dial gives up
// after a second.
func FailFast(o *redis.Options) {
	o.MaxRetries = -1
	o.DialTimeout = time.Second
}

// Config says how to build a process's shared state.
type Config struct {
	// Redis is how to reach the shared Redis (required). New uses a copy:
	// the State's client has a connection pool of its own.
	Redis *redis.Options
	// Client is the client's configuration: its SDKAppID names the keys,
	// its Rate, MinRate and RateRecoverAfter are the budget's (the app's
	// rate, for every process together).
	Client client.Config
	// Role is the priority of this process's calls; Cap bounds a replay's
	// share (0 for live: none).
	Role budget.Role
	Cap  float64
	// ID names this process among the budget's members (default: the
	// budget's).
	ID string
	// Logger, MeterProvider and TracerProvider are passed on; nil: the
	// budget's and the cache's defaults.
	Logger         *slog.Logger
	MeterProvider  metric.MeterProvider
	TracerProvider trace.TracerProvider
}

// State is one process's shared state: a Redis client, the app's budget
// for the process's role and the shared subscription cache.
type State struct {
	Redis  *redis.Client
	Budget *budget.Budget
	Cache  *sharedcache.Store
}

// New connects to Redis (without waiting for it) and builds the app's
// budget for cfg.Role from the client's rate, with the budget's own
// headroom and slowdown (they differ from one process's, see
// budget.DefaultSafety), and the shared subscription cache. The caller
// closes it after the processor has stopped.
func New(cfg Config) (*State, error) {
	if cfg.Redis == nil {
		return nil, errors.New("sharedstate: Redis is required")
	}
	o := *cfg.Redis
	s := &State{Redis: redis.NewClient(&o)}
	tc := cfg.Client
	var err error
	s.Budget, err = budget.New(budget.Config{
		Redis: s.Redis, Key: BudgetKey(tc.SDKAppID), Role: cfg.Role, Cap: cfg.Cap, ID: cfg.ID,
		Rate: tc.Rate, MinRate: tc.MinRate, RateRecoverAfter: tc.RateRecoverAfter,
		Logger: cfg.Logger, MeterProvider: cfg.MeterProvider, TracerProvider: cfg.TracerProvider,
	})
	if err != nil {
		_ = s.Redis.Close()
		return nil, fmt.Errorf("shared budget: %w", err)
	}
	s.Cache, err = sharedcache.New(sharedcache.Config{
		Redis: s.Redis, Prefix: CachePrefix(tc.SDKAppID),
		Logger: cfg.Logger, MeterProvider: cfg.MeterProvider, TracerProvider: cfg.TracerProvider,
	})
	if err != nil {
		_ = s.Budget.Close()
		_ = s.Redis.Close()
		return nil, fmt.Errorf("shared cache: %w", err)
	}
	return s, nil
}

// Wire plugs the shared state into the client's and the processor's
// configs; a nil State leaves them as they are (this process alone).
func (s *State) Wire(tc *client.Config, pc *processor.Config) {
	if s == nil {
		return
	}
	tc.Budget = s.Budget
	pc.SharedCache = s.Cache
}

// Close releases the cache, the budget and the connection, in that order.
// Safe on nil.
func (s *State) Close() {
	if s == nil {
		return
	}
	_ = s.Cache.Close()
	_ = s.Budget.Close()
	_ = s.Redis.Close()
}
