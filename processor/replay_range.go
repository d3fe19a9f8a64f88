package processor

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
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

// Validate reports an empty or reversed range as *ConfigErrors (fields
// "From", "Offsets"), joined, partitions in order.
func (r ReplayRange) Validate() error {
	var errs []error
	if !r.From.IsZero() && !r.To.IsZero() && !r.From.Before(r.To) {
		errs = append(errs, &ConfigError{Field: "From", Value: r.From.Format(time.RFC3339Nano), Reason: "must be before",
			Other: "To", OtherValue: r.To.Format(time.RFC3339Nano)})
	}
	for _, p := range slices.Sorted(maps.Keys(r.Offsets)) {
		o := r.Offsets[p]
		bad := func(reason string) {
			errs = append(errs, &ConfigError{Field: "Offsets", Value: fmt.Sprintf("%d=%d:%d", p, o.Start, o.End), Reason: reason})
		}
		switch {
		case p < 0:
			bad("must name partitions that are not negative")
		case o.Start < 0:
			bad("must have start offsets that are not negative")
		case o.End >= 0 && o.End < o.Start:
			bad("must have end offsets at or after their start offsets")
		}
	}
	return errors.Join(errs...)
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
