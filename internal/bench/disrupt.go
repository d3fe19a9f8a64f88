package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/tencentchat-enricher/enricher/internal/devkafka"
	"github.com/tencentchat-enricher/enricher/internal/redisserver"
)

// measureDisrupted runs a disrupted scenario: the processor against the
// simulator, as in measure, but with the scenario's disruption mid-stream
// (kills, a broker restart, several instances), and counts the copies of
// every input record that reach the output topics (Result.Redelivery).
// The clock runs from the first processor's start to the arrival of the
// last input record's first copy.
func (r *Runner) measureDisrupted(ctx context.Context, s Scenario, res *Result) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	bcfg := devkafka.Config{Partitions: s.Partitions, Topics: []string{inputTopic, outputTopic, dlqTopic}}
	if s.Disruption == DisruptReplay {
		bcfg.Topics = append(bcfg.Topics, replayTopic)
	}
	if s.Disruption == DisruptBroker { // persistent, to be restarted
		dir, err := os.MkdirTemp("", "enricher-bench-broker-")
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer os.RemoveAll(dir)
		bcfg.DataDir = dir
	}
	b, err := devkafka.Start(bcfg)
	if err != nil {
		return err
	}
	defer b.Close()
	users := s.Users
	if s.Distinct() {
		users = s.Events
	}
	users += s.FirstUser + s.ReplayEvents // the replay's users follow live's
	d := &disruptedRun{r: r}
	if s.Shared {
		rs, err := redisserver.Start(ctx)
		if err != nil {
			return err
		}
		defer rs.Close()
		d.redis = rs
		d.log = &callLog{}
		if s.Disruption == DisruptReplay {
			d.log.split = s.FirstUser + s.Events
		}
	}
	api, err := startAPI(apiSettings{rate: r.cfg.Rate, latency: r.cfg.Latency, jitter: r.cfg.Jitter, users: users, log: d.log})
	if err != nil {
		return err
	}
	defer api.Close()

	t0 := time.Now()
	var seq []int32
	want := int64(s.Events)
	if s.Disruption == DisruptReplay {
		// The replay's input first; live's arrives mid-run (d.liveInput).
		rsc := s
		rsc.Name, rsc.Events, rsc.FirstUser = s.Name+"-replay", s.ReplayEvents, s.FirstUser+s.Events
		if seq, err = preload(ctx, b.Addr(), replayTopic, rsc); err != nil {
			return err
		}
		want += int64(s.ReplayEvents)
		d.liveInput = func(ctx context.Context) error {
			live, err := preload(ctx, b.Addr(), inputTopic, s)
			seq = append(seq, live...)
			return err
		}
	} else if seq, err = preload(ctx, b.Addr(), inputTopic, s); err != nil {
		return err
	}
	res.PreloadSeconds = time.Since(t0).Seconds()

	watch := watchOutput(b.Cluster(), want, outputTopic, dlqTopic)
	watch.trackSources(outputTopic)
	d.watch, d.want = watch, want
	d.j = job{
		Scenario: s, Brokers: []string{b.Addr()},
		Input: inputTopic, Output: outputTopic, DLQ: dlqTopic, Group: groupID,
		APIURL: api.URL(), Rate: float64(r.cfg.Rate), ProfileDir: r.cfg.ProfileDir,
		SessionTimeout: r.cfg.SessionTimeout, CommitInterval: r.cfg.CommitInterval,
	}
	if d.redis != nil {
		d.j.RedisURL = d.redis.URL()
	}
	infra0 := selfCPU()
	runErr := d.run(ctx, s, b)
	res.DistinctUsers = distinctUsers(seq)
	if err := d.stopAll(); runErr == nil {
		runErr = err
	}
	res.InfraCPUSeconds = selfCPU() - infra0
	red := watch.redelivery(want)
	var stats []json.RawMessage
	for _, run := range d.runs {
		res.CPUSeconds += run.cpu
		res.PeakRSSBytes = max(res.PeakRSSBytes, run.maxRSS)
		red.IncompleteDrains += run.drains
		if run.stats != nil {
			stats = append(stats, run.stats)
			var st struct{ SkippedPublished, MetadataOverflows int64 }
			if json.Unmarshal(run.stats, &st) == nil {
				red.SkippedPublished += st.SkippedPublished
				red.MetadataOverflows += st.MetadataOverflows
			}
		}
	}
	red.Processes = len(d.runs)
	res.Redelivery = red
	if len(stats) > 0 {
		res.WorkloadStats, _ = json.Marshal(stats) // raw JSON: cannot fail
	}
	if runErr != nil {
		return runErr
	}

	arrivals, _ := watch.snapshot()
	end, at := completion(arrivals, want, 0, 0.5, 0.99)
	if end.IsZero() {
		return fmt.Errorf("only %d of %d input records reached the output topics", red.Distinct, want)
	}
	res.Seconds = end.Sub(d.first).Seconds()
	res.EventsPerSec = float64(want) / res.Seconds
	res.FirstOutputMS, res.LatencyP50MS, res.LatencyP99MS = ms(at[0].Sub(d.first)), ms(at[1].Sub(d.first)), ms(at[2].Sub(d.first))
	res.Output, _ = watch.counts(outputTopic)
	res.DLQ, res.OutputBytes = watch.counts(dlqTopic)
	res.OutputMBPerSec = float64(res.OutputBytes) / (1 << 20) / res.Seconds
	res.API = api.result(r.cfg.Rate, seq)
	if s.Shared {
		res.Shared = d.sharedResult(res)
	}
	return nil
}

// disruptedRun is the processes of one disrupted scenario.
type disruptedRun struct {
	r     *Runner
	j     job
	watch *outputWatch
	want  int64        // input records, all topics
	first time.Time    // when the first process started
	live  []*childProc // running, oldest first
	runs  []*childRun  // ended

	// Shared scenarios: the Redis, the simulator's call log, when Redis
	// was killed and answered again (DisruptRedis), and the live input
	// to produce mid-run (DisruptReplay).
	redis              *redisserver.Server
	log                *callLog
	redisDown, redisUp time.Time
	liveInput          func(ctx context.Context) error
}

// run starts the processors, disrupts them as s says and returns once
// every input record has a copy on the output topics.
func (d *disruptedRun) run(ctx context.Context, s Scenario, b *devkafka.Broker) error {
	n := d.want
	switch s.Disruption {
	case DisruptKill:
		for range max(1, s.Instances) {
			if err := d.start(ctx); err != nil {
				return err
			}
		}
		for k := range s.Kills {
			if err := d.waitArrived(ctx, n*int64(k+1)/int64(s.Kills+1)); err != nil {
				return err
			}
			if err := d.killOldest(); err != nil {
				return err
			}
			d.watch.disrupted()
			if err := d.start(ctx); err != nil {
				return err
			}
		}
	case DisruptBroker:
		if err := d.start(ctx); err != nil {
			return err
		}
		if err := d.waitArrived(ctx, n/2); err != nil {
			return err
		}
		b.Close()
		d.watch.disrupted()
		down := time.NewTimer(s.BrokerDown)
		select {
		case <-down.C:
		case <-ctx.Done():
			down.Stop()
			return ctx.Err()
		}
		if err := b.Restart(); err != nil {
			return err
		}
		d.watch.install(b.Cluster())
	case DisruptScaleOut:
		if !s.Shared {
			d.j.Rate /= float64(s.Instances) // one API budget, split by hand
		}
		for range s.Instances {
			if err := d.start(ctx); err != nil {
				return err
			}
		}
	case DisruptRedis:
		if err := d.redisOutage(ctx, s); err != nil {
			return err
		}
	case DisruptReplay:
		if err := d.replayThenLive(ctx, s); err != nil {
			return err
		}
	default:
		return fmt.Errorf("bench: unknown disruption %q", s.Disruption)
	}
	return d.waitArrived(ctx, n)
}

func (d *disruptedRun) start(ctx context.Context) error { return d.startJob(ctx, d.j) }

func (d *disruptedRun) startJob(ctx context.Context, j job) error {
	c, err := d.r.startChild(ctx, j)
	if err != nil {
		return err
	}
	if d.first.IsZero() {
		d.first = c.started
	}
	d.live = append(d.live, c)
	return nil
}

// killOldest kills the oldest running process (SIGKILL).
func (d *disruptedRun) killOldest() error {
	c := d.live[0]
	d.live = d.live[1:]
	run, err := c.kill()
	d.runs = append(d.runs, run)
	return err
}

// stopAll stops the running processes and returns the first error.
func (d *disruptedRun) stopAll() error {
	var first error
	for _, c := range d.live {
		run, err := c.stop()
		d.runs = append(d.runs, run)
		if err != nil && first == nil {
			first = fmt.Errorf("%w (child: %s)", err, c.stderr.lastLine())
		}
	}
	d.live = nil
	return first
}

// waitArrived waits until n distinct input records have a copy on the
// output topics. It fails when a process stops by itself or ctx ends.
func (d *disruptedRun) waitArrived(ctx context.Context, n int64) error {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for d.watch.arrived() < n {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d input records after %v: %w", d.watch.arrived(), d.want, time.Since(d.first).Round(time.Second), ctx.Err())
		case <-tick.C:
		}
		for _, c := range d.live {
			select {
			case <-c.exited:
				return fmt.Errorf("%w (child: %s)", c.earlyError(), c.stderr.lastLine())
			default:
			}
		}
	}
	return nil
}
