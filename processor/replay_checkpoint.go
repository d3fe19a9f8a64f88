package processor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/segmentio/kafka-go"
)

// A replay's checkpoint is the committed offsets of its own consumer group
// (Config.Group), committed without joining it, with the partition's start
// and end offsets, fixed at the first start, in the commit metadata.

// Commit metadata: "enricher-replay/1 start=S end=E", followed by
// " stopped" in the final checkpoint of a run that stopped cleanly.
const (
	checkpointVersion = "enricher-replay/1"
	checkpointStopped = "stopped"
)

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

// commit stores positions as the checkpoint, a standalone commit (no
// generation, no member); stopped marks a clean stop's final checkpoint.
func (r *Replay) commit(ctx context.Context, positions []Position, stopped bool) error {
	r.mu.Lock()
	meta := map[int]string{}
	for _, p := range r.parts {
		meta[p.Partition] = formatCheckpoint(p.Start, p.End, stopped)
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
