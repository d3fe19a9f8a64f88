package processor

import (
	"context"
	"errors"

	"github.com/segmentio/kafka-go"
)

// Source says which partitions a Pipeline reads and stores how far it got.
// The Pipeline owns the lifecycle of what a source assigns: it runs one
// fetch loop per partition, commits every Config.CommitInterval, drains
// when the partitions are revoked or the pipeline stops, releases them and
// commits one last time — the way a Kafka client owns the group and calls
// its owner back on assignment and revocation. The consumer group
// (GroupSource) and the bounded Replay are the two sources.
//
// The pipeline calls Assign, runs the Assignment to its end, calls its
// Done, and asks for the next one, until ctx ends, the pipeline fails or
// Assign returns ErrSourceDone. Then it calls Close.
type Source interface {
	// Assign blocks until partitions are assigned to this pipeline and
	// returns them. A bounded source returns ErrSourceDone when it has
	// nothing more to hand out.
	Assign(ctx context.Context) (Assignment, error)
	// Close releases the source (leaves the group).
	Close() error
}

// ErrSourceDone is returned by Source.Assign when a bounded source is
// exhausted.
var ErrSourceDone = errors.New("processor: source done")

// Assignment is a set of partitions of one topic, owned by the pipeline
// from Assign until it calls Done.
type Assignment interface {
	// Topic is the topic of the partitions.
	Topic() string
	// Partitions are the partitions and where to read them.
	Partitions() []PartitionStart
	// Revoked is closed when the source takes the partitions back (a
	// rebalance): the pipeline drains within Config.DrainTimeout. Nil
	// when the source never revokes.
	Revoked() <-chan struct{}
	// Skip reports whether a fetched record is left out: read and passed
	// by the commit, but not processed (a replay's records outside its
	// time range).
	Skip(kafka.Message) bool
	// Commit stores the positions. final marks the last commit of the
	// assignment, after every partition was released; clean then reports
	// that every submitted record was published, none dropped by a drain
	// timeout.
	Commit(ctx context.Context, positions []Position, final, clean bool) error
	// Done is called once, after the final commit.
	Done()
}

// PartitionStart is one assigned partition and where to read it.
type PartitionStart struct {
	Partition int
	// Offset is the first offset to fetch, or kafka.FirstOffset or
	// kafka.LastOffset.
	Offset int64
	// End is the exclusive end offset of a bounded partition: the fetch
	// loop ends after the record just before it. -1: unbounded.
	End int64
	// Committed is the offset the source last committed, for lag; -1 none.
	Committed int64
	// done are the offsets above Committed that an earlier owner already
	// published (from the commit metadata): they are skipped.
	done completedSet
}

// Position is how far one partition is done: every record before Offset is
// published, dead-lettered or skipped, and so is every record in its
// completed set, which a source stores in the commit metadata
// (encodeMetadata) so that the next owner skips them.
type Position struct {
	Partition int
	Offset    int64
	done      completedSet
}
