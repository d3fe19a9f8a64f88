package deadletter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"
)

// The redrive checkpoint is the committed offsets of a consumer group on
// the dead-letter topic, committed without joining it. The commit metadata
// of each partition is its ledger: one run per selection that re-drove
// from it, with the span it covers and how far it got. A run that resumes
// finds its own entry (same classes, time range and start); every run
// skips the letters another entry covers, so a dead letter is re-driven
// by one run only, whatever the selections.

// ledgerMaxBytes is the commit metadata size brokers accept by default
// (offset.metadata.max.bytes).
const ledgerMaxBytes = 4096

// ledgerVersion tells a redrive ledger from other commit metadata.
const ledgerVersion = "enricher-redrive/1"

// run is one selection's progress in one partition: every letter in
// [Start, Pos) with a class in Classes (none: any) and a time in [From, To)
// (0: open) has been re-published; the run ends at End.
type run struct {
	Classes []string `json:"c,omitempty"`
	From    int64    `json:"f,omitempty"` // Unix ms
	To      int64    `json:"t,omitempty"`
	Start   int64    `json:"s"`
	End     int64    `json:"x"`
	Pos     int64    `json:"e"`
	// Open: End is the partition's end when the run first started (not
	// part of the selection, so a run of the same selection resumes).
	Open bool `json:"o,omitempty"`
}

func (r run) covers(l Letter) bool {
	if l.Offset < r.Start || l.Offset >= r.Pos {
		return false
	}
	if len(r.Classes) > 0 && !slices.Contains(r.Classes, l.Class) {
		return false
	}
	ms := l.Time.UnixMilli()
	return (r.From == 0 || ms >= r.From) && (r.To == 0 || ms < r.To)
}

func (r run) sameSelection(o run) bool {
	return slices.Equal(r.Classes, o.Classes) && r.From == o.From && r.To == o.To && r.Start == o.Start &&
		r.Open == o.Open && (r.Open || r.End == o.End)
}

func newRun(sel Selection, s span) run {
	r := run{Classes: slices.Sorted(slices.Values(sel.Classes)), Start: s.Start, End: s.End, Pos: s.Start, Open: s.Open}
	if !sel.From.IsZero() {
		r.From = sel.From.UnixMilli()
	}
	if !sel.To.IsZero() {
		r.To = sel.To.UnixMilli()
	}
	return r
}

type ledger struct {
	Version string `json:"v"`
	Runs    []run  `json:"runs"`
}

func (l ledger) covered(letter Letter, except int) bool {
	for i, r := range l.Runs {
		if i != except && r.covers(letter) {
			return true
		}
	}
	return false
}

// ErrNotLedger is returned when the checkpoint group holds offsets that are
// not a redrive ledger (another consumer's group).
var ErrNotLedger = errors.New("holds offsets that are not a redrive checkpoint")

// fetchLedgers returns the ledger of each partition (empty for a new group).
func fetchLedgers(ctx context.Context, cl *kafka.Client, group, topic string, parts []int) (map[int]*ledger, error) {
	out := map[int]*ledger{}
	for _, p := range parts {
		out[p] = &ledger{Version: ledgerVersion}
	}
	res, err := cl.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: parts}})
	if err == nil && res.Error != nil {
		err = res.Error
	}
	if errors.Is(err, kafka.GroupIdNotFound) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read checkpoint of group %q: %w", group, err)
	}
	for _, po := range res.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("read checkpoint of group %q partition %d: %w", group, po.Partition, po.Error)
		}
		if po.CommittedOffset < 0 {
			continue
		}
		var l ledger
		if err := json.Unmarshal([]byte(po.Metadata), &l); err != nil || l.Version != ledgerVersion {
			return nil, fmt.Errorf("group %q partition %d %w; choose another group", group, po.Partition, ErrNotLedger)
		}
		out[po.Partition] = &l
	}
	return out, nil
}

// commitLedger stores l as partition p's checkpoint. The committed offset
// is the furthest position of its runs.
func commitLedger(ctx context.Context, cl *kafka.Client, group, topic string, p int, l *ledger) error {
	meta, err := json.Marshal(l)
	if err != nil {
		return err
	}
	if len(meta) > ledgerMaxBytes {
		return fmt.Errorf("the checkpoint of partition %d in group %q is full (%d runs); use another group", p, group, len(l.Runs))
	}
	var off int64
	for _, r := range l.Runs {
		off = max(off, r.Pos)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := cl.OffsetCommit(ctx, &kafka.OffsetCommitRequest{
		GroupID: group, GenerationID: -1,
		Topics: map[string][]kafka.OffsetCommit{topic: {{Partition: p, Offset: off, Metadata: string(meta)}}},
	})
	if err != nil {
		return fmt.Errorf("checkpoint group %q: %w", group, err)
	}
	for _, po := range res.Topics[topic] {
		if po.Error != nil {
			return fmt.Errorf("checkpoint group %q partition %d: %w", group, po.Partition, po.Error)
		}
	}
	return nil
}
