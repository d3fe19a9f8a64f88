package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/segmentio/kafka-go"
)

// ReplayPartition is the state of one partition of a replay.
type ReplayPartition struct {
	Partition int
	// Start and End are the offsets [Start, End) fixed when the replay
	// first started.
	Start, End int64
	// Position is the next offset to process: every offset before it is
	// published, dead-lettered or skipped.
	Position int64
	// Resumed is the position at which this run took the partition over
	// from a checkpoint of an earlier run; -1 when this run started it.
	Resumed int64
}

// ReplayProgress is a snapshot of a replay's progress. Done and Total count
// offsets (records, and skipped records outside the time range), so Done
// reaches Total exactly when the replay is complete.
type ReplayProgress struct {
	Total, Done int64
	// Skipped is the number of records this run read and left out because
	// their timestamp is outside [From, To).
	Skipped int64
	// Resumed reports that this run continued an earlier run's checkpoint.
	Resumed bool
	// Unclean reports that the run this one resumed did not stop cleanly
	// (crash, kill, or its records in flight did not finish within
	// Config.ShutdownTimeout): the records it published after its last
	// checkpoint are published again (consumers deduplicate on the source
	// coordinates). After a clean stop nothing is published twice.
	Unclean    bool
	Complete   bool
	Partitions []ReplayPartition
}

// Replay is a bounded Source: it reads the slice of Config.InputTopic
// selected by a ReplayRange, submits the records whose timestamp is in
// range, and returns when every partition's checkpoint reached its end
// offset (or when ctx ends or the pipeline fails).
//
// Its checkpoint is a consumer group of its own (Config.Group, by default
// ReplayGroup), committed without joining it (standalone commits, as a
// tool resetting offsets does): the committed offset of each partition is
// its contiguous watermark, and the commit metadata carries the start and
// end offsets fixed at the first start ("enricher-replay/1 start=S
// end=E"), marked "stopped" by the final checkpoint of a run that stopped
// cleanly. Started again with the same group, a replay continues from the
// committed offsets to the stored ends; after a crash the records
// published after the last checkpoint are published again, and
// ReplayProgress.Unclean says so. A replay whose checkpoint is complete
// publishes nothing. Two replays must not run with the same group at the
// same time.
//
// Connections: the fetchers use Config.Dialer, the offset requests and
// commits Config.Transport (both TLS and SASL capable). Commits happen
// every Config.CommitInterval and at the end; on ctx's end the records in
// flight get Config.ShutdownTimeout to finish. Create it with NewReplay; it
// runs once.
type Replay struct {
	cfg Config
	rng ReplayRange
	log *slog.Logger
	cl  *kafka.Client

	planOnce sync.Once
	planErr  error
	assigned atomic.Bool

	mu      sync.Mutex
	parts   []*replayPart
	resumed bool
	unclean bool
	skipped atomic.Int64
}

type replayPart struct {
	ReplayPartition
	committed int64        // last committed position
	done      completedSet // published above committed, from the checkpoint
	stopped   bool         // the stored checkpoint is a clean stop's
}

// NewReplay returns a replay of r for cfg (the pipeline's configuration:
// Brokers, InputTopic, Group, Dialer, Transport, CommitInterval,
// FetchMaxWait, ShutdownTimeout, Logger).
func NewReplay(cfg Config, r ReplayRange) (*Replay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Replay{
		cfg: cfg, rng: r, cl: newKafkaClient(cfg),
		log: cfg.Logger.With("replay", cfg.Group, "topic", cfg.InputTopic),
	}, nil
}

// Plan resolves the partitions and their offsets, or reads them from the
// checkpoint of an earlier run, and stores the checkpoint of a new one.
// Run calls it; call it first to show the plan. Only the first call does
// the work; later calls return its result.
func (r *Replay) Plan(ctx context.Context) (ReplayProgress, error) {
	r.planOnce.Do(func() { r.planErr = r.plan(ctx) })
	if r.planErr != nil {
		return ReplayProgress{}, r.planErr
	}
	return r.Progress(), nil
}

// MissingTopicError is returned by Replay.Plan for a topic that does not
// exist: the input topic, or an output or DLQ topic while
// Config.AutoCreateTopics is off. It is a configuration error (Is ErrConfig).
type MissingTopicError struct {
	Topic string
	Input bool // the input topic, which AutoCreateTopics does not create
}

func (e *MissingTopicError) Error() string {
	if e.Input {
		return fmt.Sprintf("%v: input topic %q does not exist", ErrConfig, e.Topic)
	}
	return fmt.Sprintf("%v: topic %q does not exist (create it, or allow AutoCreateTopics)", ErrConfig, e.Topic)
}

// Is reports ErrConfig.
func (e *MissingTopicError) Is(target error) bool { return target == ErrConfig }

func (r *Replay) plan(ctx context.Context) error {
	topic := r.cfg.InputTopic
	topics := []string{topic}
	if !r.cfg.AutoCreateTopics {
		topics = append(topics, r.cfg.OutputTopic, r.cfg.DLQTopic)
	}
	md, err := r.cl.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return fmt.Errorf("replay: metadata of %q: %w", topics, err)
	}
	var all []int
	for _, t := range md.Topics {
		if errors.Is(t.Error, kafka.UnknownTopicOrPartition) {
			// Without the output topics, publishing would retry forever.
			return &MissingTopicError{Topic: t.Name, Input: t.Name == topic}
		}
		if t.Error != nil {
			return fmt.Errorf("replay: topic %q: %w", t.Name, t.Error)
		}
		if t.Name != topic {
			continue
		}
		for _, p := range t.Partitions {
			all = append(all, p.ID)
		}
	}
	if len(all) == 0 {
		return fmt.Errorf("replay: topic %q has no partitions", topic)
	}
	slices.Sort(all)

	stored, err := r.fetchCheckpoint(ctx, all)
	if err != nil {
		return err
	}
	if len(stored) > 0 {
		// The partition set and ends are the first run's.
		parts := slices.SortedFunc(maps.Values(stored), func(a, b *replayPart) int { return a.Partition - b.Partition })
		unclean := false
		for _, p := range parts {
			unclean = unclean || (!p.stopped && p.Position < p.End)
		}
		r.mu.Lock()
		r.resumed, r.unclean, r.parts = true, unclean, parts
		r.mu.Unlock()
		if unclean {
			r.log.Warn("the previous run did not stop cleanly: records it published after its last checkpoint are published again")
		}
		for _, p := range parts {
			r.log.Info("resuming partition from checkpoint", "partition", p.Partition, "start", p.Start, "end", p.End, "position", p.Position)
		}
		return nil
	}

	parts := all
	if len(r.rng.Offsets) > 0 {
		parts = slices.Sorted(maps.Keys(r.rng.Offsets))
		for _, p := range parts {
			if !slices.Contains(all, p) {
				return &ConfigError{Field: "Offsets", Value: p, Reason: fmt.Sprintf("names a partition that topic %q does not have (it has partitions %d to %d)", topic, all[0], all[len(all)-1])}
			}
		}
	}
	first, err := r.listOffsets(ctx, parts, kafka.FirstOffset)
	if err != nil {
		return err
	}
	last, err := r.listOffsets(ctx, parts, kafka.LastOffset)
	if err != nil {
		return err
	}
	var fromOff, toOff map[int]int64
	if !r.rng.From.IsZero() {
		if fromOff, err = r.listOffsets(ctx, parts, r.rng.From.UnixMilli()); err != nil {
			return err
		}
	}
	if !r.rng.To.IsZero() {
		if toOff, err = r.listOffsets(ctx, parts, r.rng.To.UnixMilli()); err != nil {
			return err
		}
	}
	// at is the answer of a by-time lookup: -1 means no record at or after
	// the time, so the range starts (or ends) at the high watermark.
	at := func(m map[int]int64, p int) int64 {
		if o := m[p]; o >= 0 {
			return o
		}
		return last[p]
	}
	var planned []*replayPart
	for _, p := range parts {
		lo, hi := first[p], last[p]
		start, end := lo, hi
		o, explicit := r.rng.Offsets[p]
		switch {
		case explicit:
			start = o.Start
		case fromOff != nil:
			start = at(fromOff, p)
		}
		switch {
		case explicit && o.End >= 0:
			end = o.End
		case toOff != nil:
			end = at(toOff, p)
		}
		if start < lo || start > hi || end > hi {
			r.log.Warn("offsets outside the retained log, clamped", "partition", p, "start", start, "end", end, "log_start", lo, "high_watermark", hi)
		}
		start = min(max(start, lo), hi)
		end = min(max(end, start), hi)
		planned = append(planned, &replayPart{
			ReplayPartition: ReplayPartition{Partition: p, Start: start, End: end, Position: start, Resumed: -1},
			committed:       -1,
		})
	}
	// Store the plan before reading anything: a restart finds the same ends.
	r.mu.Lock()
	r.parts = planned
	r.mu.Unlock()
	starts := make([]Position, len(planned))
	for i, p := range planned {
		starts[i] = Position{Partition: p.Partition, Offset: p.Start}
	}
	if err := r.commit(ctx, starts, false); err != nil {
		return err
	}
	for _, p := range planned {
		r.log.Info("replaying partition", "partition", p.Partition, "start", p.Start, "end", p.End)
	}
	return nil
}

// listOffsets asks for one offset per partition: ts is kafka.FirstOffset,
// kafka.LastOffset or a time in Unix milliseconds (-1 in the answer: no
// record at or after it). With Config.IsolationLevel ReadCommitted the
// partition's end (LastOffset) is its last stable offset: a replay does not
// wait for a transaction still open when it starts.
func (r *Replay) listOffsets(ctx context.Context, parts []int, ts int64) (map[int]int64, error) {
	req := make([]kafka.OffsetRequest, len(parts))
	for i, p := range parts {
		req[i] = kafka.OffsetRequest{Partition: p, Timestamp: ts}
	}
	isolation := kafka.ReadCommitted
	if r.cfg.IsolationLevel == ReadUncommitted {
		isolation = kafka.ReadUncommitted
	}
	res, err := r.cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{r.cfg.InputTopic: req}, IsolationLevel: isolation})
	if err != nil {
		return nil, fmt.Errorf("replay: list offsets of %q: %w", r.cfg.InputTopic, err)
	}
	out := map[int]int64{}
	for _, po := range res.Topics[r.cfg.InputTopic] {
		if po.Error != nil {
			return nil, fmt.Errorf("replay: list offsets of %q partition %d: %w", r.cfg.InputTopic, po.Partition, po.Error)
		}
		switch ts {
		case kafka.FirstOffset:
			out[po.Partition] = po.FirstOffset
		case kafka.LastOffset:
			out[po.Partition] = po.LastOffset
		default:
			out[po.Partition] = -1
			for off := range po.Offsets {
				out[po.Partition] = off
			}
		}
	}
	for _, p := range parts {
		if _, ok := out[p]; !ok {
			return nil, fmt.Errorf("replay: list offsets of %q: no answer for partition %d", r.cfg.InputTopic, p)
		}
	}
	return out, nil
}

// Progress returns a snapshot of the replay's progress. Safe for
// concurrent use, also while the replay runs; positions move with each
// checkpoint (every Config.CommitInterval).
func (r *Replay) Progress() ReplayProgress {
	r.mu.Lock()
	defer r.mu.Unlock()
	pr := ReplayProgress{Skipped: r.skipped.Load(), Resumed: r.resumed, Unclean: r.unclean, Complete: len(r.parts) > 0}
	for _, p := range r.parts {
		rp := p.ReplayPartition
		pr.Total += rp.End - rp.Start
		pr.Done += rp.Position - rp.Start
		pr.Complete = pr.Complete && rp.Position >= rp.End
		pr.Partitions = append(pr.Partitions, rp)
	}
	return pr
}

// Assign returns the replay's one assignment — the partitions not done yet,
// from their checkpoint to their end offsets — after planning (Plan) and
// marking the checkpoint as not cleanly stopped, so that if this run
// crashes the next one knows. Later calls return ErrSourceDone.
func (r *Replay) Assign(ctx context.Context) (Assignment, error) {
	if r.assigned.Swap(true) {
		return nil, ErrSourceDone
	}
	if _, err := r.Plan(ctx); err != nil {
		return nil, err
	}
	r.mu.Lock()
	var running []Position
	for _, part := range r.parts {
		if part.Position < part.End {
			running = append(running, Position{Partition: part.Partition, Offset: part.Position, done: part.done})
		}
	}
	r.mu.Unlock()
	if len(running) == 0 {
		return nil, ErrSourceDone
	}
	if err := r.commit(ctx, running, false); err != nil {
		return nil, err
	}
	return (*replayAssignment)(r), nil
}

// Close implements Source; a replay holds nothing to release.
func (r *Replay) Close() error { return nil }

// replayAssignment is the Assignment of a Replay.
type replayAssignment Replay

func (a *replayAssignment) Topic() string            { return a.cfg.InputTopic }
func (a *replayAssignment) Revoked() <-chan struct{} { return nil }
func (a *replayAssignment) Done()                    {}

func (a *replayAssignment) Partitions() []PartitionStart {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []PartitionStart
	for _, p := range a.parts {
		if p.Position < p.End {
			out = append(out, PartitionStart{Partition: p.Partition, Offset: p.Position, End: p.End, Committed: p.committed, done: p.done})
		}
	}
	return out
}

// Skip leaves out, and counts, the records whose timestamp is outside the
// range.
func (a *replayAssignment) Skip(m kafka.Message) bool {
	if a.rng.inTime(m.Time) {
		return false
	}
	a.skipped.Add(1)
	return true
}

// Commit checkpoints the positions; the final checkpoint of a clean stop
// is marked stopped.
func (a *replayAssignment) Commit(ctx context.Context, positions []Position, final, clean bool) error {
	return (*Replay)(a).commit(ctx, positions, final && clean)
}
