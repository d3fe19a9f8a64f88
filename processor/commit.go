package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// errOffsetOrder is returned by watermark.add for an offset that does not
// follow the previous one.
var errOffsetOrder = errors.New("offset not above the previous one")

// This file is the commit stage: a partition's watermark says how far it
// may be committed, and commits store it with the source.

// watermark is the commit tracker of one partition: the contiguous published
// watermark. Records are added in fetch order (offsets strictly increasing,
// gaps allowed, as in compacted or transactional topics) and marked done in
// any order once published. committable is the offset to commit: one past
// the last record of the longest prefix of added records that are all done.
// It never passes a record that is not done. Safe for concurrent use.
type watermark struct {
	mu      sync.Mutex
	entries []wmEntry // pending records in fetch order; entries[head:] are live
	head    int
	last    int64 // last offset added, -1 before the first
	next    int64 // offset to commit; -1 while nothing is done
	// full closes the span to new records (room) while the completed set
	// takes most of the commit metadata (setFull).
	full bool
	// moved is closed when the head moves or full is cleared; made by a
	// waiter (room), nil while none waits.
	moved chan struct{}
}

// wmEntry is one added record. It holds no pointer, so that a wide span
// costs the garbage collector nothing to scan.
type wmEntry struct {
	offset int64
	at     int64 // when the record was fetched, in Unix nanoseconds (0 for a skipped offset)
	done   bool
}

func newWatermark() *watermark { return &watermark{last: -1, next: -1} }

// add registers a fetched record.
func (w *watermark) add(offset int64) error { return w.addAt(offset, time.Time{}) }

// addAt registers a record fetched at at.
func (w *watermark) addAt(offset int64, at time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if offset <= w.last {
		return fmt.Errorf("watermark: add %d after %d: %w", offset, w.last, errOffsetOrder)
	}
	w.last = offset
	if w.head > 0 && w.head >= len(w.entries)/2 {
		n := copy(w.entries, w.entries[w.head:])
		w.entries = w.entries[:n]
		w.head = 0
	}
	e := wmEntry{offset: offset}
	if !at.IsZero() {
		e.at = at.UnixNano()
	}
	w.entries = append(w.entries, e)
	return nil
}

// done marks a record published and returns how many records the
// watermark moved past (0 while an earlier record is pending). It reports
// false for an offset that is not pending (never added, or already done).
func (w *watermark) done(offset int64) (int, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	live := w.entries[w.head:]
	i := sort.Search(len(live), func(i int) bool { return live[i].offset >= offset })
	if i == len(live) || live[i].offset != offset || live[i].done {
		return 0, false
	}
	live[i].done = true
	start := w.head
	for w.head < len(w.entries) && w.entries[w.head].done {
		w.next = w.entries[w.head].offset + 1
		w.head++
	}
	if w.head > start {
		w.wake()
	}
	return w.head - start, true
}

// wake wakes the waiters of room.
func (w *watermark) wake() {
	if w.moved != nil {
		close(w.moved)
		w.moved = nil
	}
}

// room reports whether a record at offset may be added now: every added
// record is done, or offset is less than span past the first one not
// done and the span is not full (setFull). Otherwise it returns a
// channel closed when that may have changed.
func (w *watermark) room(offset, span int64) (bool, <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.head == len(w.entries) || !w.full && offset-w.entries[w.head].offset < span {
		return true, nil
	}
	if w.moved == nil {
		w.moved = make(chan struct{})
	}
	return false, w.moved
}

// setFull closes the span to new records (room) or opens it again.
func (w *watermark) setFull(full bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.full && !full {
		w.wake()
	}
	w.full = full
}

// committable returns the offset to commit (the next offset to consume) and
// whether any record has been completed yet.
func (w *watermark) committable() (int64, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.next, w.next >= 0
}

// oldest returns when the oldest record not yet behind the watermark was
// fetched, and false when every record is.
func (w *watermark) oldest() (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.head == len(w.entries) {
		return time.Time{}, false
	}
	if at := w.entries[w.head].at; at != 0 {
		return time.Unix(0, at), true
	}
	return time.Time{}, true
}

// pending is the number of added records not yet behind the watermark.
func (w *watermark) pending() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.entries) - w.head
}

// committer commits the positions of one assignment's claims through the
// assignment: each claim's watermark and the completed set above it,
// whenever either changed. A completed set that does not fit the commit
// metadata (metadataBudget) is cut to its longest prefix that does, and
// counted: the records left out are only published again by a next owner.
// The committer also bounds each claim's span: while its set takes more
// than spanFullShare of the budget, the claim fetches nothing new (its
// records still finish, the set shrinks) until a later commit finds it
// below. Used by one goroutine, the pipeline's assignment loop.
type committer struct {
	a        Assignment
	claims   []*Claim
	last     map[*Claim]Position
	sets     map[*Claim]*lastSet
	log      *slog.Logger
	overflow func() // counts a completed set cut to fit
}

// lastSet is the completed set a committer last read from a claim, when,
// and how long reading and encoding it took.
type lastSet struct {
	set  completedSet
	at   time.Time
	cost time.Duration
}

// setCostShare bounds the time spent reading a claim's completed set: it
// is read again only once setCostShare times its last cost has passed;
// until then a commit carries the last one above the current watermark
// (its offsets are still done; those done since are only left out; a
// final commit, on revocation or shutdown, always reads it afresh). A
// span of 100,000 offsets costs a few milliseconds to read, more than a
// core's tenth at a commit every 100 ms over eight partitions.
const setCostShare = 100

func newCommitter(a Assignment, claims []*Claim, log *slog.Logger, overflow func()) *committer {
	return &committer{a: a, claims: claims, last: map[*Claim]Position{}, sets: map[*Claim]*lastSet{}, log: log, overflow: overflow}
}

// commitMetadataBudget is the metadata a commit's completed set may take:
// metadataBudget (a variable so that a test can make a set overflow it
// within the largest window).
var commitMetadataBudget = metadataBudget

// spanFullShare is the share of commitMetadataBudget, in percent, above
// which a claim's span is full: the rest leaves room for the records
// finishing between two commits, each of which may add a run to the set.
const spanFullShare = 75

// spanBounded turns the bound on a claim's span by its completed set on;
// a test turns it off to overflow the set.
var spanBounded = true

// partitionSpan bounds a partition's span: the offsets from its first
// record not yet published to the next one it fetches. It bounds the
// watermark's memory (about 40 bytes an offset) when a record stalls while
// the ones after it finish without growing the completed set.
const partitionSpan = 1 << 17

// commitTimeout bounds one commit request, also the final one after ctx
// ended.
const commitTimeout = 10 * time.Second

// position returns c's position: its watermark and completed set, or its
// last committed offset while nothing was fetched.
func (m *committer) position(c *Claim, fresh bool) Position {
	last := m.sets[c]
	start := time.Now()
	if !fresh && last != nil && start.Sub(last.at) < setCostShare*last.cost {
		if base, ok := c.wm.base(); ok {
			return Position{Partition: c.partition, Offset: base, done: last.set.above(base)}
		}
	}
	// The set is read only as far as the budget can reach (a set cut
	// there does not fit either).
	set, cut, ok := c.wm.completedWithin(commitMetadataBudget)
	if !ok {
		return Position{Partition: c.partition, Offset: c.committed.Load()}
	}
	s, kept := encodePrefix(commitMeta{done: set}, commitMetadataBudget)
	c.wm.setFull(spanBounded && (cut || len(s) > commitMetadataBudget*spanFullShare/100))
	if cut || kept < len(set.runs) {
		m.overflow()
		set.runs = set.runs[:kept]
	}
	if m.sets != nil {
		m.sets[c] = &lastSet{set: set, at: start, cost: time.Since(start)}
	}
	return Position{Partition: c.partition, Offset: set.base, done: set}
}

// commit commits every claim whose position changed since its last
// commit; the final commit includes every claim with a position.
func (m *committer) commit(ctx context.Context, final, clean bool) {
	var positions []Position
	for _, c := range m.claims {
		pos := m.position(c, final) // a final commit carries every record done
		last, seen := m.last[c]
		if pos.Offset < 0 || (!final && seen && pos.Offset == last.Offset && pos.done.equal(last.done)) {
			continue
		}
		positions = append(positions, pos)
	}
	if len(positions) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	if err := m.a.Commit(ctx, positions, final, clean); err != nil {
		m.log.Warn("commit failed", "error", err)
		return
	}
	for _, c := range m.claims {
		for _, pos := range positions {
			if pos.Partition == c.partition {
				m.last[c] = pos
				c.Committed(pos.Offset)
			}
		}
	}
}

// newKafkaClient returns the client of offset requests and commits, over
// Config.Transport.
func newKafkaClient(cfg Config) *kafka.Client {
	cl := &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: 30 * time.Second}
	if cfg.Transport != nil {
		cl.Transport = cfg.Transport
	}
	return cl
}

// commitOffsets commits positions of topic for group, as the member of a
// generation or, with generation -1 and no member, as a standalone commit
// (a tool resetting offsets does the same); metadata, when not nil, gives
// each partition's commit metadata (by default the completed set's).
func commitOffsets(ctx context.Context, cl *kafka.Client, group string, generation int, member, topic string, positions []Position, metadata func(partition int) string) error {
	commits := make([]kafka.OffsetCommit, len(positions))
	for i, p := range positions {
		commits[i] = kafka.OffsetCommit{Partition: p.Partition, Offset: p.Offset}
		if metadata != nil {
			commits[i].Metadata = metadata(p.Partition)
		} else {
			commits[i].Metadata, _ = encodeMetadata(commitMeta{done: p.done}, metadataMaxBytes)
		}
	}
	res, err := cl.OffsetCommit(ctx, &kafka.OffsetCommitRequest{
		GroupID: group, GenerationID: generation, MemberID: member,
		Topics: map[string][]kafka.OffsetCommit{topic: commits},
	})
	if err != nil {
		return fmt.Errorf("commit offsets of group %q: %w", group, err)
	}
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			return fmt.Errorf("commit offsets of group %q partition %d: %w", group, p.Partition, p.Error)
		}
	}
	return nil
}

// fetchCompleted returns, per partition of topic, the offset group
// committed and the completed set above it from the commit metadata
// (empty when there is none, or it cannot be read: the partition is then
// read from the committed offset, which only publishes again).
func fetchCompleted(ctx context.Context, cl *kafka.Client, group, topic string, parts []int) (map[int]completedSet, error) {
	res, err := cl.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: parts}})
	if err == nil && res.Error != nil {
		err = res.Error
	}
	if err != nil {
		return nil, fmt.Errorf("fetch offsets of group %q: %w", group, err)
	}
	out := map[int]completedSet{}
	for _, p := range res.Topics[topic] {
		if p.Error != nil || p.CommittedOffset < 0 {
			continue
		}
		if m, err := decodeMetadata(p.Metadata); err == nil {
			if set, ok := m.completedAt(p.CommittedOffset); ok {
				out[p.Partition] = set
			}
		}
	}
	return out, nil
}
