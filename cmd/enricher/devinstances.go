package main

// `dev --instances N`: N processors of one consumer group in one process,
// each with its own API client, sharing one API budget and subscription
// cache in Redis, as N `enricher run` processes would.

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/urfave/cli/v3"

	"github.com/tencentchat-enricher/enricher/client"
	"github.com/tencentchat-enricher/enricher/client/budget"
	"github.com/tencentchat-enricher/enricher/internal/opshttp"
	"github.com/tencentchat-enricher/enricher/internal/telemetry"
	"github.com/tencentchat-enricher/enricher/processor"
)

// devRedis returns the Redis the instances share: --redis-url when given,
// else an embedded Redis-compatible server on loopback when there is more
// than one instance, else none (nil options: one processor alone, as
// `enricher run` without --redis-url). stop closes what it started.
func devRedis(s devSettings) (opts *redis.Options, shown string, stop func(), err error) {
	if s.Redis.Options != nil {
		return s.Redis.Options, s.Redis.Shown, func() {}, nil
	}
	if s.Instances < 2 {
		return nil, "", func() {}, nil
	}
	mr := miniredis.NewMiniRedis()
	if err := mr.StartAddr("127.0.0.1:0"); err != nil {
		return nil, "", nil, fmt.Errorf("dev: embedded redis: %w", err)
	}
	return &redis.Options{Addr: mr.Addr(), MaxRetries: -1}, "embedded redis " + mr.Addr(), mr.Close, nil
}

// devInstance is one processor with its client and shared state.
type devInstance struct {
	proc   *processor.Processor
	api    *client.Client
	shared *shared // nil without Redis
}

func newDevInstance(cmd *cli.Command, s devSettings, i int, k kafkaSettings, rs *redis.Options, simURL string, log *slog.Logger, prov *telemetry.Providers) (*devInstance, error) {
	if s.Instances > 1 {
		log = log.With(slog.Int("instance", i))
	}
	tc := devClientConfig(simURL, s.APIRate)
	tc.Filter = responseFilter(s.Pipeline.Fields)
	pc := s.Pipeline
	inst := &devInstance{}
	if rs != nil {
		o := *rs // a connection pool of its own, as a separate process has
		sh, err := newShared(redisSettings{Options: &o}, tc, budget.Live, 0, "", log, prov)
		if err != nil {
			return nil, err
		}
		inst.shared = sh
	}
	inst.shared.wire(&tc, &pc)
	api, err := newClient(cmd, tc, log, prov)
	if err != nil {
		inst.close()
		return nil, err
	}
	inst.api = api
	proc, err := processor.New(withKafka(pc, k, log, prov), api)
	if err != nil {
		inst.close()
		return nil, configError(cmd, err)
	}
	inst.proc = proc
	return inst, nil
}

// close releases the client and the shared state (after the processor has
// stopped).
func (d *devInstance) close() {
	if d.api != nil {
		_ = d.api.Close()
	}
	d.shared.Close()
}

// devReadiness is /readyz of the dev stack: every instance's checks, named
// NAME-i when there are several instances.
func devReadiness(k kafkaSettings, insts []*devInstance) map[string]opshttp.Check {
	if len(insts) == 1 {
		return insts[0].shared.addChecks(readiness(k, insts[0].proc, insts[0].api))
	}
	all := map[string]opshttp.Check{}
	for i, inst := range insts {
		for name, c := range inst.shared.addChecks(readiness(k, inst.proc, inst.api)) {
			if name == "kafka" {
				all[name] = c // one broker for all
				continue
			}
			all[fmt.Sprintf("%s-%d", name, i)] = c
		}
	}
	return all
}

// devStats sums the instances' stats; per lists each instance's output
// (" | out per instance A/B/...") when there are several.
func devStats(insts []*devInstance) (processor.Stats, string) {
	var sum processor.Stats
	outs := make([]string, len(insts))
	for i, inst := range insts {
		st := inst.proc.Stats()
		sum.In += st.In
		sum.Out += st.Out
		sum.DLQ += st.DLQ
		sum.InFlight += st.InFlight
		sum.CacheHits += st.CacheHits
		sum.CacheMisses += st.CacheMisses
		sum.APICalls += st.APICalls
		for o, n := range st.CacheChanges {
			if sum.CacheChanges == nil {
				sum.CacheChanges = map[processor.ChangeOutcome]int64{}
			}
			sum.CacheChanges[o] += n
		}
		sum.Partitions = append(sum.Partitions, st.Partitions...)
		outs[i] = fmt.Sprint(st.Out)
	}
	if n := sum.CacheHits + sum.CacheMisses; n > 0 {
		sum.CacheHitRatio = float64(sum.CacheHits) / float64(n)
	}
	if len(insts) == 1 {
		return sum, ""
	}
	return sum, " | out per instance " + strings.Join(outs, "/")
}
