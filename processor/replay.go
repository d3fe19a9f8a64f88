package processor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
)

// ReplayRange selects the slice of the input topic a Replay reads.
//
// Per partition, the start offset is Offsets[p].Start when given, else the
// first offset whose timestamp is at or after From (Kafka's ListOffsets by
// time), else the earliest retained offset. The end offset (exclusive) is
// Offsets[p].End when given, else the first offset whose timestamp is at or
// after To, else the high watermark. Both are resolved once, when the
// replay first starts, and stored with its checkpoint: a replay of a topic
// still being written ends where the topic ended at start, and a resumed
// replay ends at the same place.
//
// Record timestamps (CreateTime, set by producers) need not increase with
// the offset. Records between the start and end offsets whose timestamp
// is outside [From, To) are read and skipped: not published, but passed by
// the checkpoint. A record before the start offset, or at or after the end
// offset, is not read even when its timestamp is inside [From, To).
type ReplayRange struct {
	// From is the inclusive lower bound of record timestamps. Zero: none.
	From time.Time
	// To is the exclusive upper bound of record timestamps. Zero: none.
	To time.Time
	// Offsets, when not empty, restricts the replay to the listed
	// partitions and fixes their start (and, when End >= 0, end) offsets.
	// Offsets outside the retained log are clamped to it.
	Offsets map[int]OffsetRange
}

// OffsetRange is the offsets [Start, End) of one partition. End < 0 leaves
// the end to ReplayRange.To or the high watermark.
type OffsetRange struct {
	Start, End int64
}

// Validate reports an empty or reversed range.
func (r ReplayRange) Validate() error {
	if !r.From.IsZero() && !r.To.IsZero() && !r.From.Before(r.To) {
		return fmt.Errorf("%w: replay range: From %s is not before To %s", ErrConfig, r.From.Format(time.RFC3339), r.To.Format(time.RFC3339))
	}
	for p, o := range r.Offsets {
		switch {
		case p < 0:
			return fmt.Errorf("%w: replay range: partition %d is negative", ErrConfig, p)
		case o.Start < 0:
			return fmt.Errorf("%w: replay range: partition %d start offset %d is negative", ErrConfig, p, o.Start)
		case o.End >= 0 && o.End < o.Start:
			return fmt.Errorf("%w: replay range: partition %d end offset %d is before start offset %d", ErrConfig, p, o.End, o.Start)
		}
	}
	return nil
}

// inTime reports whether ts is inside [From, To).
func (r ReplayRange) inTime(ts time.Time) bool {
	return (r.From.IsZero() || !ts.Before(r.From)) && (r.To.IsZero() || ts.Before(r.To))
}

// String is the canonical form of the range: times in UTC, partitions in
// order.
func (r ReplayRange) String() string {
	var b strings.Builder
	if !r.From.IsZero() {
		fmt.Fprintf(&b, "from=%s ", r.From.UTC().Format(time.RFC3339Nano))
	}
	if !r.To.IsZero() {
		fmt.Fprintf(&b, "to=%s ", r.To.UTC().Format(time.RFC3339Nano))
	}
	for _, p := range slices.Sorted(maps.Keys(r.Offsets)) {
		o := r.Offsets[p]
		fmt.Fprintf(&b, "%d=%d", p, o.Start)
		if o.End >= 0 {
			fmt.Fprintf(&b, ":%d", o.End)
		}
		b.WriteByte(' ')
	}
	if b.Len() == 0 {
		return "all"
	}
	return strings.TrimSpace(b.String())
}

// ReplayGroup is the default checkpoint group of a replay: derived from the
// input topic, the output topic and the range, so that the same replay
// started again resumes, and a different one starts afresh.
func ReplayGroup(inputTopic, outputTopic string, r ReplayRange) string {
	h := sha256.Sum256([]byte(inputTopic + "\x00" + outputTopic + "\x00" + r.String()))
	return "enricher-replay-" + hex.EncodeToString(h[:8])
}

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

	mu      sync.Mutex
	parts   []*replayPart
	resumed bool
	unclean bool
	skipped atomic.Int64
}

type replayPart struct {
	ReplayPartition
	claim     *Claim // nil before Run or when nothing is left to read
	committed int64  // last committed position
	stopped   bool   // the stored checkpoint is a clean stop's
}

// Commit metadata: "enricher-replay/1 start=S end=E", followed by
// " stopped" in the final checkpoint of a run that stopped cleanly.
const (
	checkpointVersion = "enricher-replay/1"
	checkpointStopped = "stopped"
)

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
	cl := &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: 30 * time.Second}
	if cfg.Transport != nil {
		cl.Transport = cfg.Transport
	}
	return &Replay{
		cfg: cfg, rng: r, cl: cl,
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
				return fmt.Errorf("%w: replay range: topic %q has no partition %d", ErrConfig, topic, p)
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
	offsets := map[int]int64{}
	for _, p := range planned {
		offsets[p.Partition] = p.Start
	}
	if err := r.commitOffsets(ctx, planned, offsets, false); err != nil {
		return err
	}
	r.mu.Lock()
	r.parts = planned
	for _, p := range planned {
		p.committed = p.Start
	}
	r.mu.Unlock()
	for _, p := range planned {
		r.log.Info("replaying partition", "partition", p.Partition, "start", p.Start, "end", p.End)
	}
	return nil
}

// listOffsets asks for one offset per partition: ts is kafka.FirstOffset,
// kafka.LastOffset or a time in Unix milliseconds (-1 in the answer: no
// record at or after it).
func (r *Replay) listOffsets(ctx context.Context, parts []int, ts int64) (map[int]int64, error) {
	req := make([]kafka.OffsetRequest, len(parts))
	for i, p := range parts {
		req[i] = kafka.OffsetRequest{Partition: p, Timestamp: ts}
	}
	res, err := r.cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{r.cfg.InputTopic: req}})
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

// fetchCheckpoint returns the partitions stored by an earlier run, keyed by
// partition; none for a new replay.
func (r *Replay) fetchCheckpoint(ctx context.Context, parts []int) (map[int]*replayPart, error) {
	res, err := r.cl.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: r.cfg.Group, Topics: map[string][]int{r.cfg.InputTopic: parts}})
	if err == nil && res.Error != nil {
		err = res.Error
	}
	if errors.Is(err, kafka.GroupIdNotFound) {
		return nil, nil // a new group (Kafka answers -1 offsets instead)
	}
	if err != nil {
		return nil, fmt.Errorf("replay: read checkpoint of group %q: %w", r.cfg.Group, err)
	}
	out := map[int]*replayPart{}
	for _, p := range res.Topics[r.cfg.InputTopic] {
		if p.Error != nil {
			return nil, fmt.Errorf("replay: read checkpoint of group %q partition %d: %w", r.cfg.Group, p.Partition, p.Error)
		}
		if p.CommittedOffset < 0 {
			continue
		}
		start, end, stopped, err := parseCheckpoint(p.Metadata)
		if err != nil {
			return nil, fmt.Errorf("%w: group %q has offsets for %q partition %d that are not a replay checkpoint (%w); choose another group",
				ErrConfig, r.cfg.Group, r.cfg.InputTopic, p.Partition, err)
		}
		pos := min(max(p.CommittedOffset, start), end)
		out[p.Partition] = &replayPart{
			ReplayPartition: ReplayPartition{Partition: p.Partition, Start: start, End: end, Position: pos, Resumed: pos},
			committed:       p.CommittedOffset,
			stopped:         stopped,
		}
	}
	return out, nil
}

// errCheckpoint marks commit metadata that is not a replay checkpoint.
var errCheckpoint = errors.New("no replay checkpoint in the commit metadata")

func formatCheckpoint(start, end int64, stopped bool) string {
	s := fmt.Sprintf("%s start=%d end=%d", checkpointVersion, start, end)
	if stopped {
		s += " " + checkpointStopped
	}
	return s
}

func parseCheckpoint(s string) (start, end int64, stopped bool, err error) {
	f := strings.Fields(s)
	if len(f) == 4 && f[3] == checkpointStopped {
		stopped, f = true, f[:3]
	}
	if len(f) != 3 || f[0] != checkpointVersion {
		return 0, 0, false, errCheckpoint
	}
	vals := [2]int64{}
	for i, name := range []string{"start=", "end="} {
		v, ok := strings.CutPrefix(f[i+1], name)
		if !ok {
			return 0, 0, false, errCheckpoint
		}
		if vals[i], err = strconv.ParseInt(v, 10, 64); err != nil || vals[i] < 0 {
			return 0, 0, false, errCheckpoint
		}
	}
	if vals[1] < vals[0] {
		return 0, 0, false, errCheckpoint
	}
	return vals[0], vals[1], stopped, nil
}

// commitOffsets commits positions of partitions, with their checkpoint
// metadata, as a standalone commit (no generation, no member); stopped
// marks a clean stop's final checkpoint.
func (r *Replay) commitOffsets(ctx context.Context, parts []*replayPart, positions map[int]int64, stopped bool) error {
	commits := make([]kafka.OffsetCommit, 0, len(positions))
	for _, p := range parts {
		if pos, ok := positions[p.Partition]; ok {
			commits = append(commits, kafka.OffsetCommit{Partition: p.Partition, Offset: pos, Metadata: formatCheckpoint(p.Start, p.End, stopped)})
		}
	}
	res, err := r.cl.OffsetCommit(ctx, &kafka.OffsetCommitRequest{
		GroupID: r.cfg.Group, GenerationID: -1,
		Topics: map[string][]kafka.OffsetCommit{r.cfg.InputTopic: commits},
	})
	if err != nil {
		return fmt.Errorf("replay: commit checkpoint of group %q: %w", r.cfg.Group, err)
	}
	for _, p := range res.Topics[r.cfg.InputTopic] {
		if p.Error != nil {
			return fmt.Errorf("replay: commit checkpoint of group %q partition %d: %w", r.cfg.Group, p.Partition, p.Error)
		}
	}
	return nil
}

// checkpoint commits every claimed partition whose watermark moved (all
// of them when mark is set), unless the pipeline was stopped hard. mark
// is "stopped" for the final checkpoint of a clean stop, "" otherwise.
func (r *Replay) checkpoint(ctx context.Context, p *Pipeline, mark string) {
	if p.Aborted() {
		return
	}
	positions := map[int]int64{}
	r.mu.Lock()
	parts := r.parts
	for _, p := range r.parts {
		if p.claim == nil {
			continue
		}
		off, ok := p.claim.Committable()
		if !ok {
			off = p.committed
		}
		if off != p.committed || mark != "" {
			positions[p.Partition] = off
		}
	}
	r.mu.Unlock()
	if len(positions) == 0 {
		return
	}
	if err := r.commitOffsets(ctx, parts, positions, mark == checkpointStopped); err != nil {
		r.log.Warn("checkpoint failed", "error", err)
		return
	}
	r.mu.Lock()
	for _, p := range r.parts {
		if off, ok := positions[p.Partition]; ok {
			p.committed = off
			p.claim.Committed(off)
		}
	}
	r.mu.Unlock()
}

// Progress returns a snapshot of the replay's progress. Safe for
// concurrent use, also while Run runs.
func (r *Replay) Progress() ReplayProgress {
	r.mu.Lock()
	defer r.mu.Unlock()
	pr := ReplayProgress{Skipped: r.skipped.Load(), Resumed: r.resumed, Unclean: r.unclean, Complete: len(r.parts) > 0}
	for _, p := range r.parts {
		rp := p.ReplayPartition
		if p.claim != nil {
			if off, ok := p.claim.Committable(); ok {
				rp.Position = max(rp.Position, off)
			}
		}
		pr.Total += rp.End - rp.Start
		pr.Done += rp.Position - rp.Start
		pr.Complete = pr.Complete && rp.Position >= rp.End
		pr.Partitions = append(pr.Partitions, rp)
	}
	return pr
}

// Run reads the range through p until every partition is done, then drains,
// commits and returns nil. When ctx ends or the pipeline fails first, it
// stops fetching, gives the records in flight Config.ShutdownTimeout,
// commits what was published and returns nil: Progress().Complete tells
// the two apart.
func (r *Replay) Run(ctx context.Context, p *Pipeline) error {
	if _, err := r.Plan(ctx); err != nil {
		return err
	}
	// Mark the checkpoint as not cleanly stopped before publishing
	// anything: if this run crashes, the next one knows.
	r.mu.Lock()
	parts, running := r.parts, map[int]int64{}
	for _, part := range parts {
		if part.Position < part.End {
			running[part.Partition] = part.Position
		}
	}
	r.mu.Unlock()
	if len(running) > 0 {
		if err := r.commitOffsets(ctx, parts, running, false); err != nil {
			return err
		}
	}
	fetchCtx, stopFetch := context.WithCancel(ctx)
	defer stopFetch()
	var wg sync.WaitGroup
	r.mu.Lock()
	var claims []*Claim
	for _, part := range r.parts {
		if part.Position >= part.End {
			continue
		}
		c := p.Claim(r.cfg.InputTopic, part.Partition)
		c.Committed(part.committed)
		part.claim = c
		claims = append(claims, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.fetch(fetchCtx, c, part.Position, part.End)
		}()
	}
	r.mu.Unlock()
	fetched := make(chan struct{})
	go func() {
		wg.Wait()
		close(fetched)
	}()

	// stopping starts the shutdown allowance of the records in flight.
	stopping := make(chan struct{})
	var stopOnce sync.Once
	stop := func() { stopOnce.Do(func() { close(stopping); stopFetch() }) }
	tick := time.NewTicker(r.cfg.CommitInterval)
	defer tick.Stop()
	commitCtx := context.WithoutCancel(ctx)
	done, failed := ctx.Done(), p.Failed()
fetching:
	for {
		select {
		case <-fetched:
			break fetching
		case <-done:
			done = nil
			stop()
		case <-failed:
			failed = nil
			stop()
		case <-tick.C:
			r.checkpoint(commitCtx, p, "")
		}
	}

	// Drain: without limit while the replay runs to its end, then within
	// ShutdownTimeout of a stop.
	dctx, cancel := context.WithCancel(p.base)
	defer cancel()
	go func() {
		select {
		case <-ctx.Done():
		case <-p.Failed():
		case <-stopping:
		case <-dctx.Done():
			return
		}
		t := time.NewTimer(r.cfg.ShutdownTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-dctx.Done():
		}
	}()
	drained := make(chan error, 1)
	clean := true
	go func() {
		for _, c := range claims {
			if err := c.Drain(dctx); err != nil {
				drained <- err
				return
			}
		}
		drained <- nil
	}()
draining:
	for {
		select {
		case err := <-drained:
			if err != nil {
				clean = false
				r.log.Warn("drain incomplete, dropping unpublished records (the next run reads them again)")
			}
			break draining
		case <-tick.C:
			r.checkpoint(commitCtx, p, "")
		}
	}
	cancel()
	for _, c := range claims {
		c.Release()
	}
	mark := checkpointStopped
	if !clean {
		mark = ""
	}
	r.checkpoint(commitCtx, p, mark)
	r.mu.Lock()
	for _, part := range r.parts {
		if part.claim != nil {
			part.Position = max(part.Position, part.committed)
			part.claim = nil
		}
	}
	r.mu.Unlock()
	return nil
}

// fetch reads one partition from offset up to end, submitting the records
// in the time range and skipping the others, until the last record before
// end was handed over or ctx ends.
func (r *Replay) fetch(ctx context.Context, c *Claim, offset, end int64) {
	fetchPartition(ctx, r.cfg, r.log, c, offset, func(m kafka.Message) (bool, error) {
		if m.Offset >= end {
			return false, nil
		}
		if !r.rng.inTime(m.Time) {
			if err := c.Skip(ctx, m.Offset); err != nil {
				return false, err
			}
			r.skipped.Add(1)
		} else if err := c.Submit(ctx, m); err != nil {
			return false, err
		}
		return m.Offset < end-1, nil
	})
}
