package processor

import (
	"context"
	"errors"
	"fmt"

	"github.com/segmentio/kafka-go"
)

// A replay's checkpoint is the committed offsets of its own consumer group
// (Config.Group), committed without joining it. The commit metadata
// (completed.go) carries the partition's start and end offsets, fixed at
// the first start, the offsets above the committed one already published,
// and, in the final checkpoint of a run that stopped cleanly, "stopped".

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
		m, err := decodeMetadata(p.Metadata)
		if err == nil && !m.replay {
			err = errNotReplay
		}
		if err != nil {
			return nil, &ConfigError{Field: "Group", Value: r.cfg.Group,
				Reason: fmt.Sprintf("holds offsets for %q partition %d that are not a replay checkpoint (%v); choose another group", r.cfg.InputTopic, p.Partition, err)}
		}
		pos := min(max(p.CommittedOffset, m.start), m.end)
		done, _ := m.completedAt(p.CommittedOffset)
		out[p.Partition] = &replayPart{
			ReplayPartition: ReplayPartition{Partition: p.Partition, Start: m.start, End: m.end, Position: pos, Resumed: pos},
			committed:       p.CommittedOffset,
			stopped:         m.stopped,
			done:            done,
		}
	}
	return out, nil
}

// commit stores positions as the checkpoint, a standalone commit (no
// generation, no member); stopped marks a clean stop's final checkpoint.
func (r *Replay) commit(ctx context.Context, positions []Position, stopped bool) error {
	r.mu.Lock()
	meta := map[int]string{}
	for _, pos := range positions {
		for _, p := range r.parts {
			if p.Partition == pos.Partition {
				meta[p.Partition], _ = encodeMetadata(commitMeta{done: pos.done, replay: true, start: p.Start, end: p.End, stopped: stopped}, metadataMaxBytes)
			}
		}
	}
	r.mu.Unlock()
	if err := commitOffsets(ctx, r.cl, r.cfg.Group, -1, "", r.cfg.InputTopic, positions, func(p int) string { return meta[p] }); err != nil {
		return fmt.Errorf("replay: checkpoint: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, part := range r.parts {
		for _, pos := range positions {
			if pos.Partition == part.Partition {
				part.committed = pos.Offset
				part.Position = min(max(part.Position, pos.Offset), part.End)
			}
		}
	}
	return nil
}

// errNotReplay marks commit metadata without the replay fields.
var errNotReplay = errors.New("no replay start and end offsets")
