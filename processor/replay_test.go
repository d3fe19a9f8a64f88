package processor

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tencentchat-enricher/enricher/client"
	"github.com/tencentchat-enricher/enricher/client/simulator"
	"github.com/tencentchat-enricher/enricher/internal/testsupport"
)

// replayBase is the timestamp of the first timed event (millisecond
// precision, as Kafka stores it).
var replayBase = time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)

// timedEvents returns n events keyed over 13 keys; event i has timestamp
// replayBase+i minutes, except every 9th one, produced late with a
// timestamp an hour older (CreateTime is not monotonic), and every 10th is
// malformed (dead-lettered).
func timedEvents(from, n int) []kafka.Message {
	msgs := userEvents(from, n, 13, plainUser)
	for j := range msgs {
		i := from + j
		msgs[j].Time = replayBase.Add(time.Duration(i) * time.Minute)
		if i%9 == 4 {
			msgs[j].Time = msgs[j].Time.Add(-time.Hour)
		}
		if i%10 == 7 {
			msgs[j].Value = []byte(fmt.Sprintf("not json %d", i))
		}
	}
	return msgs
}

func at(minute int) time.Time { return replayBase.Add(time.Duration(minute) * time.Minute) }

// expectedReplay computes, from the input as read back, the records a
// replay of rng must publish and the number it must skip: per partition,
// start is the first offset with a timestamp at or after From (Kafka's
// by-time lookup), end the first at or after To, explicit offsets win, and
// records between whose timestamp is outside [From, To) are skipped.
func expectedReplay(in []kafka.Message, parts int, rng ReplayRange) (want map[tp]bool, skipped int64) {
	byPart := make([][]kafka.Message, parts)
	for _, m := range in {
		byPart[m.Partition] = append(byPart[m.Partition], m)
	}
	firstAt := func(msgs []kafka.Message, t time.Time) int64 {
		for _, m := range msgs {
			if !m.Time.Before(t) {
				return m.Offset
			}
		}
		return int64(len(msgs))
	}
	want = map[tp]bool{}
	for p, msgs := range byPart {
		o, explicit := rng.Offsets[p]
		if len(rng.Offsets) > 0 && !explicit {
			continue
		}
		start, end := int64(0), int64(len(msgs))
		switch {
		case explicit:
			start = min(o.Start, end)
		case !rng.From.IsZero():
			start = firstAt(msgs, rng.From)
		}
		switch {
		case explicit && o.End >= 0:
			end = min(o.End, end)
		case !rng.To.IsZero():
			end = firstAt(msgs, rng.To)
		}
		for _, m := range msgs {
			if m.Offset < start || m.Offset >= end {
				continue
			}
			if rng.inTime(m.Time) {
				want[tp{m.Partition, m.Offset}] = true
			} else {
				skipped++
			}
		}
	}
	return want, skipped
}

// replayConfig is the pipeline config of a replay of "in" to "out"/"dlq"
// with the default checkpoint group.
func (c *cluster) replayConfig(rng ReplayRange) Config {
	cfg := c.config(ReplayGroup("in", "out", rng))
	cfg.ShutdownTimeout = 10 * time.Second
	return cfg
}

// replayRun is a replay whose Run is in progress.
type replayRun struct {
	r       *Replay
	p       *Processor
	cancel  context.CancelFunc
	done    chan struct{}
	err     error
	started time.Time
}

func startReplay(t testing.TB, cfg Config, rng ReplayRange, p *Processor) *replayRun {
	t.Helper()
	r, err := NewReplay(cfg, rng)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	run := &replayRun{r: r, p: p, cancel: cancel, done: make(chan struct{}), started: time.Now()}
	go func() {
		defer close(run.done)
		run.err = p.pipe.Run(ctx, r)
	}()
	return run
}

func (run *replayRun) wait(t testing.TB) error {
	t.Helper()
	select {
	case <-run.done:
		return run.err
	case <-time.After(90 * time.Second):
		t.Fatalf("replay did not finish; progress %+v", run.r.Progress())
		return nil
	}
}

// outputs counts the output and DLQ records of each input position.
func (c *cluster) outputs(t testing.TB) map[tp]int {
	t.Helper()
	seen := map[tp]int{}
	for _, topic := range []string{"out", "dlq"} {
		for _, m := range c.readAll(topic) {
			seen[sourceOf(t, m)]++
		}
	}
	return seen
}

// TestReplayRange: a replay enriches exactly the records its range
// selects (by time, by offsets, both, or everything), each once, with the
// source coordinates and timestamp, and skips the records between the
// offsets whose timestamp is outside the time range.
func TestReplayRange(t *testing.T) {
	tests := []struct {
		name string
		rng  ReplayRange
	}{
		{"time range", ReplayRange{From: at(50), To: at(150)}},
		{"from only", ReplayRange{From: at(120)}},
		{"to only", ReplayRange{To: at(30)}},
		{"offsets and to", ReplayRange{To: at(100), Offsets: map[int]OffsetRange{0: {Start: 10, End: 40}, 1: {Start: 5, End: -1}}}},
		{"offsets past the end clamped", ReplayRange{Offsets: map[int]OffsetRange{1: {Start: 3, End: 1 << 40}}}},
		{"everything", ReplayRange{}},
		{"empty time range", ReplayRange{From: at(1000), To: at(2000)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := startCluster(t, 3)
			c.produce(timedEvents(0, 200))
			in := c.readAll("in")
			want, skipped := expectedReplay(in, c.parts, tt.rng)
			cfg := c.replayConfig(tt.rng)
			run := startReplay(t, cfg, tt.rng, newFakeProcessor(t, cfg, okLookup(1)))
			if err := run.wait(t); err != nil {
				t.Fatal(err)
			}
			pr := run.r.Progress()
			if !pr.Complete || pr.Done != pr.Total || pr.Resumed {
				t.Fatalf("progress %+v", pr)
			}
			if pr.Skipped != skipped {
				t.Fatalf("skipped %d, want %d", pr.Skipped, skipped)
			}
			inTime := map[tp]time.Time{}
			for _, m := range in {
				inTime[tp{m.Partition, m.Offset}] = m.Time
			}
			seen := c.outputs(t)
			for k, n := range seen {
				if !want[k] || n != 1 {
					t.Fatalf("input %v published %d times; in range: %v", k, n, want[k])
				}
			}
			if len(seen) != len(want) {
				t.Fatalf("%d inputs published, want %d", len(seen), len(want))
			}
			for _, m := range c.readAll("out") {
				r := decodeOut(t, m)
				if r.Source.Topic != "in" || !r.Source.Timestamp.Equal(inTime[tp{r.Source.Partition, r.Source.Offset}]) {
					t.Fatalf("source %+v", r.Source)
				}
			}
			st := run.p.Stats()
			if st.Out+st.DLQ != int64(len(want)) {
				t.Fatalf("stats out %d + dlq %d, want %d", st.Out, st.DLQ, len(want))
			}
			// The checkpoint is complete: the same replay again publishes nothing.
			again := startReplay(t, cfg, tt.rng, newFakeProcessor(t, cfg, okLookup(1)))
			if err := again.wait(t); err != nil {
				t.Fatal(err)
			}
			if pr := again.r.Progress(); !pr.Complete || !pr.Resumed || pr.Unclean || again.p.Stats().In != 0 {
				t.Fatalf("second run: progress %+v, %d records in", pr, again.p.Stats().In)
			}
			if n := len(c.readAll("out")) + len(c.readAll("dlq")); n != len(want) {
				t.Fatalf("second run published: %d records, want %d", n, len(want))
			}
		})
	}
}

// TestReplayLiveTopicEnds: a replay of a topic still being written ends
// at the high watermarks fixed when it started.
func TestReplayLiveTopicEnds(t *testing.T) {
	c := startCluster(t, 2)
	c.produce(timedEvents(0, 150))
	ends := c.endOffsets()
	cfg := c.replayConfig(ReplayRange{})
	r, err := NewReplay(cfg, ReplayRange{})
	if err != nil {
		t.Fatal(err)
	}
	pr, err := r.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pr.Partitions {
		if p.Start != 0 || p.End != ends[p.Partition] {
			t.Fatalf("plan %+v, end offsets %v", p, ends)
		}
	}
	// The topic goes on growing before and while the replay runs.
	c.produce(timedEvents(150, 50))
	stop := make(chan struct{})
	produced := make(chan int)
	go func() {
		n := 200
		defer func() { produced <- n }()
		for {
			c.produce(timedEvents(n, 10))
			n += 10
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	p := newFakeProcessor(t, cfg, okLookup(1))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := p.pipe.Run(ctx, r); err != nil {
		t.Fatal(err)
	}
	close(stop)
	total := <-produced
	if ctx.Err() != nil {
		t.Fatal("replay of a live topic did not end")
	}
	if pr := r.Progress(); !pr.Complete {
		t.Fatalf("progress %+v", pr)
	}
	seen := c.outputs(t)
	want := 0
	for _, m := range c.readAll("in") {
		k := tp{m.Partition, m.Offset}
		switch {
		case m.Offset < ends[m.Partition]:
			want++
			if seen[k] != 1 {
				t.Fatalf("input %v before the end published %d times", k, seen[k])
			}
		case seen[k] != 0:
			t.Fatalf("input %v after the end %d published", k, ends[m.Partition])
		}
	}
	if len(seen) != want || total <= 200 {
		t.Fatalf("%d published, want %d; %d produced", len(seen), want, total)
	}
}

// TestReplayResumeAfterCrash: a replay killed mid-stream (nothing drained,
// flushed or committed at the kill) and started again with the same
// arguments publishes every record in range, in the output or the DLQ;
// the records published above the stalled checkpoint are in its completed
// set, and the resumed run skips them: no duplicate.
func TestReplayResumeAfterCrash(t *testing.T) {
	c := startCluster(t, 2)
	c.produce(timedEvents(0, 400))
	rng := ReplayRange{From: at(20), To: at(380)}
	in := c.readAll("in")
	want, _ := expectedReplay(in, c.parts, rng)
	cfg := c.replayConfig(rng)
	cfg.MaxInFlight, cfg.MaxInFlightPerPartition = 32, 16

	// Run 1 stalls on u200: its partition's watermark stops there.
	stall := make(chan struct{})
	defer close(stall)
	fetch1 := func(ctx context.Context, user string) (lookup, error) {
		if user == "u200" {
			select {
			case <-stall:
			case <-ctx.Done():
				return lookup{}, ctx.Err()
			}
		}
		return okLookup(1)(ctx, user)
	}
	var stallAt tp
	for _, m := range in {
		if string(m.Value) == string(event("u200", 200)) {
			stallAt = tp{m.Partition, m.Offset}
		}
	}
	p1 := newFakeProcessor(t, cfg, fetch1)
	run1 := startReplay(t, cfg, rng, p1)
	testsupport.WaitFor(t, 60*time.Second, "run 1 stalled with its watermark committed", func() bool {
		pr := run1.r.Progress()
		st := p1.Stats()
		if len(st.Partitions) != 2 || len(pr.Partitions) != 2 {
			return false
		}
		for i, ps := range st.Partitions {
			if ps.Partition == stallAt.partition {
				// Every record after the stalled one but its key's is
				// published and in the committed completed set.
				g := c.commits(cfg.Group)[ps.Partition]
				if ps.Committed != stallAt.offset || g.offset != stallAt.offset || g.done.len() != pr.Partitions[i].End-stallAt.offset-int64(chainAt(in, stallAt, pr.Partitions[i].End)) {
					return false
				}
			} else if ps.Committed != pr.Partitions[i].End {
				return false
			}
		}
		return true
	})
	committedAtKill := c.committed(cfg.Group)
	p1.pipe.stopHard()
	if err := run1.wait(t); err != nil {
		t.Fatal(err)
	}
	if pr := run1.r.Progress(); pr.Complete {
		t.Fatalf("run 1 complete after the kill: %+v", pr)
	}
	uncommitted := 0
	for k := range c.outputs(t) {
		if k.offset >= committedAtKill[k.partition] {
			uncommitted++
		}
	}

	p2 := newFakeProcessor(t, cfg, okLookup(1))
	run2 := startReplay(t, cfg, rng, p2)
	if err := run2.wait(t); err != nil {
		t.Fatal(err)
	}
	pr := run2.r.Progress()
	if !pr.Complete || !pr.Resumed || !pr.Unclean {
		t.Fatalf("run 2 progress %+v", pr)
	}
	for _, p := range pr.Partitions {
		if p.Resumed != committedAtKill[p.Partition] {
			t.Fatalf("partition %d resumed at %d, committed at the kill %d", p.Partition, p.Resumed, committedAtKill[p.Partition])
		}
	}
	dups := 0
	for k, n := range c.outputs(t) {
		switch {
		case !want[k]:
			t.Fatalf("input %v outside the range published", k)
		case n > 1:
			dups += n - 1
			if k.offset < committedAtKill[k.partition] {
				t.Fatalf("input %v below the checkpoint %d published again", k, committedAtKill[k.partition])
			}
		}
	}
	seen := c.outputs(t)
	for k := range want {
		if seen[k] == 0 {
			t.Fatalf("input %v lost", k)
		}
	}
	// The records published above the stalled checkpoint were in its
	// completed set: the resumed run skips them all.
	if uncommitted == 0 {
		t.Fatal("nothing published above the checkpoint: the kill did not happen mid-stream")
	}
	if dups != 0 || p2.Stats().SkippedPublished != int64(uncommitted) {
		t.Fatalf("%d duplicates, %d skipped; %d published above the checkpoint at the kill (all in its completed set)", dups, p2.Stats().SkippedPublished, uncommitted)
	}
	t.Logf("after the crash: %d duplicates, %d records above the checkpoint skipped", dups, uncommitted)
}

// TestReplayInterruptResume: a replay interrupted (ctx canceled, as by
// Ctrl-C) finishes its records in flight and checkpoints them; started
// again, it ends at the end fixed by the first run although the topic grew,
// with every record in range exactly once.
func TestReplayInterruptResume(t *testing.T) {
	c := startCluster(t, 2)
	c.produce(timedEvents(0, 300))
	ends := c.endOffsets()
	rng := ReplayRange{}
	cfg := c.replayConfig(rng)
	cfg.MaxInFlight, cfg.MaxInFlightPerPartition = 16, 8
	// Run 1 is interrupted once a third of the records are published;
	// users from u200 on wait for the interrupt, so it cannot finish first.
	gate := make(chan struct{})
	fetch1 := func(ctx context.Context, user string) (lookup, error) {
		var i int
		if _, err := fmt.Sscanf(user, "u%d", &i); err == nil && i >= 200 {
			select {
			case <-gate:
			case <-ctx.Done():
				return lookup{}, ctx.Err()
			}
		}
		return okLookup(1)(ctx, user)
	}
	p1 := newFakeProcessor(t, cfg, fetch1)
	run1 := startReplay(t, cfg, rng, p1)
	testsupport.WaitFor(t, 60*time.Second, "a third published", func() bool { return p1.Stats().Out+p1.Stats().DLQ >= 100 })
	run1.cancel()
	close(gate)
	if err := run1.wait(t); err != nil {
		t.Fatal(err)
	}
	pr1 := run1.r.Progress()
	if pr1.Complete || pr1.Done == 0 {
		t.Fatalf("run 1 progress %+v", pr1)
	}
	c.produce(timedEvents(300, 100))

	p2 := newFakeProcessor(t, cfg, okLookup(1))
	run2 := startReplay(t, cfg, rng, p2)
	if err := run2.wait(t); err != nil {
		t.Fatal(err)
	}
	pr2 := run2.r.Progress()
	if !pr2.Complete || !pr2.Resumed || pr2.Unclean || pr2.Total != pr1.Total {
		t.Fatalf("run 2 progress %+v; run 1 %+v", pr2, pr1)
	}
	// Run 1 left what is past its checkpoint's position; of that, what it
	// published above a record it dropped at the interrupt (waiting for
	// the API) is in the checkpoint's completed set, and run 2 skips it.
	if st := p2.Stats(); st.In+st.SkippedPublished != pr1.Total-pr1.Done {
		t.Fatalf("run 2 processed %d records and skipped %d published, run 1 left %d", st.In, st.SkippedPublished, pr1.Total-pr1.Done)
	}
	seen := c.outputs(t)
	for _, m := range c.readAll("in") {
		k := tp{m.Partition, m.Offset}
		want := 0
		if m.Offset < ends[m.Partition] {
			want = 1
		}
		if seen[k] != want {
			t.Fatalf("input %v published %d times, want %d (end %d)", k, seen[k], want, ends[m.Partition])
		}
	}
}

// TestReplayAPIRate: through the simulator, a replay's API calls stay
// under its own rate.
func TestReplayAPIRate(t *testing.T) {
	const rate = 25
	srv, _ := startSimulator(t, simulator.GenConfig{Seed: 7, Users: 200}, simulator.Faults{})
	c := startCluster(t, 2)
	var msgs []kafka.Message
	for i := range 120 {
		msgs = append(msgs, kafka.Message{Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprintf(`{"user_id":%q}`, simulator.UserID(i))), Time: at(i)})
	}
	c.produce(msgs)
	api := newClient(t, srv, func(cc *client.Config) { cc.Rate = rate })
	cfg := c.replayConfig(ReplayRange{})
	p := newSimProcessor(t, cfg, api)
	run := startReplay(t, cfg, ReplayRange{}, p)
	if err := run.wait(t); err != nil {
		t.Fatal(err)
	}
	st := srv.Stats()
	if st.Total < len(msgs) {
		t.Fatalf("%d API calls for %d users", st.Total, len(msgs))
	}
	if st.MaxPerSecond > rate || st.MaxPerSecond < rate/2 {
		t.Fatalf("max %d calls per second, replay rate %d", st.MaxPerSecond, rate)
	}
	if ps := p.Stats(); ps.Out != int64(len(msgs)) {
		t.Fatalf("%d enriched, want %d", ps.Out, len(msgs))
	}
	t.Logf("%d calls, max %d per second at rate %d, %s", st.Total, st.MaxPerSecond, rate, time.Since(run.started).Round(time.Millisecond))
}

// TestReplayConfig: invalid ranges and checkpoints of another kind are
// configuration errors.
func TestReplayConfig(t *testing.T) {
	c := startCluster(t, 2)
	c.produce(timedEvents(0, 10))
	tests := []struct {
		name string
		rng  ReplayRange
	}{
		{"reversed times", ReplayRange{From: at(10), To: at(5)}},
		{"negative start", ReplayRange{Offsets: map[int]OffsetRange{0: {Start: -1, End: -1}}}},
		{"end before start", ReplayRange{Offsets: map[int]OffsetRange{0: {Start: 5, End: 4}}}},
		{"negative partition", ReplayRange{Offsets: map[int]OffsetRange{-1: {Start: 0, End: -1}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewReplay(c.replayConfig(tt.rng), tt.rng); !errors.Is(err, ErrConfig) {
				t.Fatalf("NewReplay = %v, want ErrConfig", err)
			}
		})
	}
	t.Run("missing partition", func(t *testing.T) {
		rng := ReplayRange{Offsets: map[int]OffsetRange{7: {Start: 0, End: -1}}}
		r, err := NewReplay(c.replayConfig(rng), rng)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Plan(context.Background()); !errors.Is(err, ErrConfig) {
			t.Fatalf("Plan = %v, want ErrConfig", err)
		}
	})
	t.Run("missing output topic", func(t *testing.T) {
		cfg := c.replayConfig(ReplayRange{})
		cfg.OutputTopic = "no-such-topic"
		r, err := NewReplay(cfg, ReplayRange{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.Plan(context.Background())
		var missing *MissingTopicError
		if !errors.Is(err, ErrConfig) || !errors.As(err, &missing) || missing.Topic != "no-such-topic" || missing.Input {
			t.Fatalf("Plan = %v, want a MissingTopicError for the output topic", err)
		}
	})
	t.Run("missing input topic", func(t *testing.T) {
		cfg := c.replayConfig(ReplayRange{})
		cfg.InputTopic = "no-such-input"
		r, err := NewReplay(cfg, ReplayRange{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.Plan(context.Background())
		var missing *MissingTopicError
		if !errors.Is(err, ErrConfig) || !errors.As(err, &missing) || missing.Topic != "no-such-input" || !missing.Input {
			t.Fatalf("Plan = %v, want a MissingTopicError for the input topic", err)
		}
	})
	t.Run("group of a live processor", func(t *testing.T) {
		cl := &kafka.Client{Addr: kafka.TCP(c.b.Addr())}
		if _, err := cl.OffsetCommit(context.Background(), &kafka.OffsetCommitRequest{GroupID: "live", GenerationID: -1,
			Topics: map[string][]kafka.OffsetCommit{"in": {{Partition: 0, Offset: 3}}}}); err != nil {
			t.Fatal(err)
		}
		cfg := c.replayConfig(ReplayRange{})
		cfg.Group = "live"
		r, err := NewReplay(cfg, ReplayRange{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Plan(context.Background()); !errors.Is(err, ErrConfig) {
			t.Fatalf("Plan = %v, want ErrConfig", err)
		}
	})
}

// FuzzParseCheckpoint: commit metadata read from Kafka either parses into
// a range that formats back to itself, or is rejected.
func FuzzParseCheckpoint(f *testing.F) {
	f.Add(formatCheckpoint(0, 0, false))
	f.Add(formatCheckpoint(12, 3400, true))
	f.Add("enricher-replay/1 start=5 end=9 running")
	f.Add("enricher-replay/1 start=5 end=4")
	f.Add("enricher-replay/1 start=-1 end=4")
	f.Add("")
	f.Add("some other tool's metadata")
	f.Fuzz(func(t *testing.T, s string) {
		start, end, stopped, err := parseCheckpoint(s)
		if err != nil {
			if !errors.Is(err, errCheckpoint) {
				t.Fatalf("error %v is not errCheckpoint", err)
			}
			return
		}
		if start < 0 || end < start {
			t.Fatalf("%q parsed to start %d end %d", s, start, end)
		}
		if s2, e2, st2, err := parseCheckpoint(formatCheckpoint(start, end, stopped)); err != nil || s2 != start || e2 != end || st2 != stopped {
			t.Fatalf("round trip of %d, %d, %v: %d, %d, %v, %v", start, end, stopped, s2, e2, st2, err)
		}
	})
}

// TestReplayGroup: the default group depends on the topics and the range,
// not on how the range was written.
func TestReplayGroup(t *testing.T) {
	base := ReplayGroup("in", "out", ReplayRange{From: at(1), To: at(2)})
	tests := []struct {
		name      string
		in, out   string
		rng       ReplayRange
		wantEqual bool
	}{
		{"same range in another zone", "in", "out", ReplayRange{From: at(1).In(time.FixedZone("x", 3600)), To: at(2)}, true},
		{"other input", "in2", "out", ReplayRange{From: at(1), To: at(2)}, false},
		{"other output", "in", "out2", ReplayRange{From: at(1), To: at(2)}, false},
		{"other from", "in", "out", ReplayRange{From: at(0), To: at(2)}, false},
		{"no to", "in", "out", ReplayRange{From: at(1)}, false},
		{"offsets", "in", "out", ReplayRange{From: at(1), To: at(2), Offsets: map[int]OffsetRange{0: {Start: 1, End: -1}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ReplayGroup(tt.in, tt.out, tt.rng); (got == base) != tt.wantEqual {
				t.Fatalf("%s vs %s, want equal %v", got, base, tt.wantEqual)
			}
		})
	}
}

// TestReplayUncleanAfterClean: a run that resumes a clean stop and then
// crashes leaves a checkpoint that the next run reports as unclean.
func TestReplayUncleanAfterClean(t *testing.T) {
	c := startCluster(t, 2)
	c.produce(timedEvents(0, 200))
	rng := ReplayRange{}
	cfg := c.replayConfig(rng)
	cfg.MaxInFlight, cfg.MaxInFlightPerPartition = 8, 4
	gate := make(chan struct{})
	blocked := func(ctx context.Context, user string) (lookup, error) {
		var i int
		if _, err := fmt.Sscanf(user, "u%d", &i); err == nil && i >= 100 {
			select {
			case <-gate:
			case <-ctx.Done():
				return lookup{}, ctx.Err()
			}
		}
		return okLookup(1)(ctx, user)
	}
	// Run 1 stops cleanly (interrupt, records in flight finish).
	p1 := newFakeProcessor(t, cfg, blocked)
	run1 := startReplay(t, cfg, rng, p1)
	testsupport.WaitFor(t, 60*time.Second, "records published", func() bool { return p1.Stats().Out > 20 })
	run1.cancel()
	close(gate)
	if err := run1.wait(t); err != nil {
		t.Fatal(err)
	}
	// Run 2 resumes the clean stop, then is killed.
	p2 := newFakeProcessor(t, cfg, func(ctx context.Context, user string) (lookup, error) {
		<-ctx.Done()
		return lookup{}, ctx.Err()
	})
	run2 := startReplay(t, cfg, rng, p2)
	testsupport.WaitFor(t, 60*time.Second, "run 2 fetching", func() bool { return p2.Stats().In > 0 })
	if pr := run2.r.Progress(); !pr.Resumed || pr.Unclean {
		t.Fatalf("run 2 progress %+v, want a resumed clean stop", pr)
	}
	p2.pipe.stopHard()
	if err := run2.wait(t); err != nil {
		t.Fatal(err)
	}
	r3, err := NewReplay(cfg, rng)
	if err != nil {
		t.Fatal(err)
	}
	pr, err := r3.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !pr.Resumed || !pr.Unclean {
		t.Fatalf("run 3 plan %+v, want a resumed unclean stop", pr)
	}
}
