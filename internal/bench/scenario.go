// Package bench runs the end-to-end benchmark scenarios of the enricher: a
// raw-copy ceiling and the processor under warm, cold, skewed and
// one-partition workloads, each on a fresh in-process broker and, for the
// processor, against the Tencent Chat simulator.
//
// Every scenario's workload (the raw copy or the processor) runs in a child
// process of the calling binary, so CPU seconds and peak RSS belong to that
// workload alone; the broker and the simulator stay in the parent, which
// watches the output topics arrive. See Runner.
package bench

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Workload names what a scenario's child process runs.
type Workload string

const (
	// WorkloadCopy is the raw copy with kafka-go: consume the input topic
	// and produce every record unchanged to the output topic.
	WorkloadCopy Workload = "copy"
	// WorkloadProcessor is the enrichment processor calling the simulator.
	WorkloadProcessor Workload = "processor"
)

// Scenario is one measured run.
type Scenario struct {
	// Name identifies the scenario on the command line and in the report.
	Name string `json:"name"`
	// Workload is what runs against the preloaded input.
	Workload Workload `json:"workload"`
	// Events is the number of preloaded input events.
	Events int `json:"events"`
	// Users is the user population the events are drawn from. Zero means
	// every event has a user of its own.
	Users int `json:"users"`
	// ZipfS is the Zipf exponent of the user draw (ignored when Users is 0).
	ZipfS float64 `json:"zipf_s,omitempty"`
	// Partitions is the partition count of the input, output and DLQ topics.
	Partitions int `json:"partitions"`
	// Seed makes the event sequence reproducible.
	Seed uint64 `json:"seed"`
	// Disruption is what happens to a processor scenario mid-stream; the
	// empty one is an undisturbed run. Disrupted scenarios measure what is
	// published again (Result.Redelivery) rather than throughput.
	Disruption Disruption `json:"disruption,omitempty"`
	// Kills is how many times DisruptKill kills the processor.
	Kills int `json:"kills,omitempty"`
	// BrokerDown is how long DisruptBroker keeps the broker stopped.
	BrokerDown time.Duration `json:"broker_down,omitempty"`
	// Instances is how many processors DisruptScaleOut starts in the group
	// (and DisruptKill and DisruptRedis, when set; default one).
	Instances int `json:"instances,omitempty"`
	// SizedLike names the scenario whose output a copy scenario matches in
	// size: the Runner sets PadBytes from that scenario's result in the
	// same run, so that the copy writes as many bytes per record.
	SizedLike string `json:"sized_like,omitempty"`
	// PadBytes is how many bytes the copy appends to every record's value
	// (JSON whitespace, after the event).
	PadBytes int `json:"pad_bytes,omitempty"`
	// Shared gives every processor the URL of a redis-server started for
	// the scenario, so that they share one API budget and one subscription
	// cache, as run --redis-url does: each is given the whole budget, the
	// app's. Shared scenarios need redis-server on PATH.
	Shared bool `json:"shared,omitempty"`
	// RedisDown is how long DisruptRedis keeps Redis stopped.
	RedisDown time.Duration `json:"redis_down,omitempty"`
	// FirstUser is the index of the first user of a distinct or uniform
	// input (default 0).
	FirstUser int `json:"first_user,omitempty"`
	// ReplayEvents is the input of DisruptReplay's replay: events of
	// distinct users of their own (after the Events' users), on a topic of
	// their own.
	ReplayEvents int `json:"replay_events,omitempty"`
}

// Sized reports whether s is a copy padded to another scenario's size.
func (s Scenario) Sized() bool { return s.SizedLike != "" }

// Distinct reports whether every event has a distinct user.
func (s Scenario) Distinct() bool { return s.Users == 0 }

// Uniform reports whether every user has the same share of the events
// (Users > 0 and no Zipf exponent): each user appears Events/Users times,
// in random order.
func (s Scenario) Uniform() bool { return s.Users > 0 && s.ZipfS == 0 }

// Disruption names what a disrupted scenario does to a running processor.
type Disruption string

const (
	// DisruptKill kills the processor's child process (SIGKILL) Kills
	// times, at evenly spread points of the stream, and starts a new one
	// in the same group each time.
	DisruptKill Disruption = "kill"
	// DisruptBroker stops the broker halfway through the stream and starts
	// it again BrokerDown later on the same address and data directory.
	DisruptBroker Disruption = "broker"
	// DisruptScaleOut starts Instances processors at once in one group,
	// each with an equal share of the API budget.
	DisruptScaleOut Disruption = "scale-out"
	// DisruptRedis (shared scenarios) kills the redis-server when a fifth
	// of the input records have a copy and starts it again, empty, on the
	// same port RedisDown later.
	DisruptRedis Disruption = "redis"
	// DisruptReplay (shared scenarios) runs a replay of ReplayEvents
	// records beside an idle live processor; once a third of them have a
	// copy, the live input's Events arrive and live is busy too.
	DisruptReplay Disruption = "replay"
)

// Base scenario sizes, from the issue; Scenarios scales them.
const (
	warmEvents   = 1_000_000
	warmUsers    = 2_000
	coldEvents   = 6_000
	skewedEvents = 200_000
	skewedUsers  = 100_000
	zipfS        = 1.1

	// The redelivery scenarios: 6,000 events over 1,500 new users (each
	// four times), as in the issue.
	redeliveryEvents = 6_000
	redeliveryUsers  = 1_500
	kills            = 3
	brokerDown       = 5 * time.Second
	instances        = 3

	// The shared scenarios (issue 10): 6,000 new users for scale-out and
	// the Redis outage, 6,000 events over 1,500 users for kill-restart, a
	// replay of 4,000 users beside a live burst of 3,000 others.
	sharedEvents       = 6_000
	sharedReplayEvents = 4_000
	sharedLiveEvents   = 3_000
	redisDown          = 20 * time.Second
)

// Scenarios returns every scenario at the given scale (1 = the sizes of the
// issue: 1,000,000 warm events over 2,000 users, 6,000 cold events,
// 200,000 skewed events over 100,000 users, 6,000 events over 1,500 users
// for the redelivery scenarios) with the given partition count (8 in the
// issue). Scaling keeps the ratio of events to users, so a scaled warm run
// is as warm as the full one. The one-partition scenarios always use a
// single partition.
func Scenarios(scale float64, partitions int) []Scenario {
	n := func(base int) int { return max(1, int(math.Round(float64(base)*scale))) }
	warm := Scenario{Name: "warm", Workload: WorkloadProcessor, Events: n(warmEvents), Users: n(warmUsers), ZipfS: zipfS, Partitions: partitions, Seed: 1}
	cold := Scenario{Name: "cold", Workload: WorkloadProcessor, Events: n(coldEvents), Partitions: partitions, Seed: 2}
	ceiling := warm
	ceiling.Name, ceiling.Workload = "ceiling", WorkloadCopy
	sized := ceiling
	sized.Name, sized.SizedLike = "ceiling-sized", "warm"
	warm1, cold1 := warm, cold
	warm1.Name, warm1.Partitions = "warm-1p", 1
	cold1.Name, cold1.Partitions = "cold-1p", 1
	redelivery := Scenario{Workload: WorkloadProcessor, Events: n(redeliveryEvents), Users: n(redeliveryUsers), Partitions: partitions, Seed: 4}
	killed, restarted, scaled := redelivery, redelivery, redelivery
	killed.Name, killed.Disruption, killed.Kills = "kill-restart", DisruptKill, kills
	restarted.Name, restarted.Disruption, restarted.BrokerDown = "broker-restart", DisruptBroker, brokerDown
	scaled.Name, scaled.Disruption, scaled.Instances = "scale-out", DisruptScaleOut, instances
	sharedScale := Scenario{Name: "shared-scale-out", Workload: WorkloadProcessor, Events: n(sharedEvents), Partitions: partitions, Seed: 5,
		Disruption: DisruptScaleOut, Instances: instances, Shared: true}
	sharedKill := Scenario{Name: "shared-kill-restart", Workload: WorkloadProcessor, Events: n(redeliveryEvents), Users: n(redeliveryUsers), Partitions: partitions, Seed: 6,
		Disruption: DisruptKill, Kills: kills, Instances: instances, Shared: true}
	sharedReplay := Scenario{Name: "shared-replay", Workload: WorkloadProcessor, Events: n(sharedLiveEvents), ReplayEvents: n(sharedReplayEvents), Partitions: partitions, Seed: 7,
		Disruption: DisruptReplay, Instances: 1, Shared: true}
	// The outage keeps its share of the run at every scale (at least 1s).
	sharedRedis := Scenario{Name: "shared-redis-outage", Workload: WorkloadProcessor, Events: n(sharedEvents), Partitions: partitions, Seed: 8,
		Disruption: DisruptRedis, Instances: instances, Shared: true, RedisDown: max(time.Second, time.Duration(float64(redisDown)*scale)).Round(time.Millisecond)}
	return []Scenario{
		ceiling,
		warm,
		sized,
		cold,
		{Name: "skewed", Workload: WorkloadProcessor, Events: n(skewedEvents), Users: n(skewedUsers), ZipfS: zipfS, Partitions: partitions, Seed: 3},
		warm1,
		cold1,
		killed,
		restarted,
		scaled,
		sharedScale,
		sharedKill,
		sharedReplay,
		sharedRedis,
	}
}

// groups are names that select several scenarios at once.
var groups = map[string][]string{
	"all":           {"ceiling", "warm", "ceiling-sized", "cold", "skewed", "warm-1p", "cold-1p", "kill-restart", "broker-restart", "scale-out"},
	"one-partition": {"warm-1p", "cold-1p"},
	"redelivery":    {"kill-restart", "broker-restart", "scale-out"},
	// Not in all: they need redis-server.
	"shared": {"shared-scale-out", "shared-kill-restart", "shared-replay", "shared-redis-outage"},
}

// Select returns the scenarios named (or grouped: "all", "one-partition",
// "redelivery") in names, in the order of all. When any undisturbed
// processor scenario is selected, the ceiling runs first and again last (as
// "ceiling-end"): their difference shows how much the machine drifted
// during the run. When warm is selected, ceiling-sized (the ceiling padded
// to warm's output size) runs right after it: ratios are taken against it,
// bytes for bytes. The disrupted scenarios measure redelivery, not
// throughput: they need no ceiling.
func Select(all []Scenario, names []string) ([]Scenario, error) {
	want := map[string]bool{}
	for _, name := range names {
		name = strings.TrimSpace(name)
		if g, ok := groups[name]; ok {
			for _, n := range g {
				want[n] = true
			}
			continue
		}
		if !slices.ContainsFunc(all, func(s Scenario) bool { return s.Name == name }) {
			return nil, fmt.Errorf("bench: unknown scenario %q (known: %s, one-partition, redelivery, shared, all)", name, strings.Join(Names(all), ", "))
		}
		want[name] = true
	}
	var out []Scenario
	var ceiling *Scenario
	processors := false
	for _, s := range all {
		switch {
		case s.Sized():
			if !want[s.SizedLike] && !want[s.Name] {
				continue
			}
			if !want[s.SizedLike] {
				return nil, fmt.Errorf("bench: scenario %q needs %q in the same run", s.Name, s.SizedLike)
			}
			out = append(out, s)
			continue
		case s.Workload == WorkloadCopy:
			ceiling = &s
		case s.Disruption == "":
			processors = processors || want[s.Name]
		}
		if want[s.Name] || (s.Workload == WorkloadCopy && processors) {
			out = append(out, s)
		}
	}
	if processors && ceiling != nil {
		if !slices.ContainsFunc(out, func(s Scenario) bool { return s.Workload == WorkloadCopy && !s.Sized() }) {
			out = append([]Scenario{*ceiling}, out...)
		}
		end := *ceiling
		end.Name = ceiling.Name + "-end"
		out = append(out, end)
	}
	return out, nil
}

// Names lists the names of scenarios.
func Names(scenarios []Scenario) []string {
	names := make([]string, len(scenarios))
	for i, s := range scenarios {
		names[i] = s.Name
	}
	return names
}
