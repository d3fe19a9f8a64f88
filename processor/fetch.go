package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"golang.org/x/time/rate"
)

// This file is the fetch stage: one loop per assigned partition reads its
// records in offset order and submits them to the partition's Claim
// (schedule.go), or skips the ones the assignment leaves out.

// fetch reads partition ps of assignment a into c until ctx ends, or up to
// ps.End of a bounded partition. A record that cannot be submitted stops
// the pipeline (a *PartitionError): a partition never stops quietly.
func (p *Pipeline) fetch(ctx context.Context, a Assignment, c *Claim, ps PartitionStart, log *slog.Logger) {
	err := fetchPartition(ctx, p.cfg, log, c, ps.Offset, ps.End, func(m kafka.Message) error {
		if ps.done.contains(m.Offset) {
			p.met.recordSkippedPublished(ctx)
			return c.Skip(ctx, m.Offset) // published by an earlier owner
		}
		if a.Skip(m) {
			return c.Skip(ctx, m.Offset)
		}
		return c.Submit(ctx, m)
	})
	if err != nil && ctx.Err() == nil && !errors.Is(err, errReleased) {
		p.fail(err)
	}
}

// PartitionError stops the pipeline: a partition's fetch loop cannot go on
// (a record out of offset order, a reader that cannot start). Run returns
// it after committing what was published.
type PartitionError struct {
	Topic     string
	Partition int
	Offset    int64 // the offset the loop was at
	Err       error
}

func (e *PartitionError) Error() string {
	return fmt.Sprintf("processor stopped: partition %d of topic %q cannot go on at offset %d: %v", e.Partition, e.Topic, e.Offset, e.Err)
}

func (e *PartitionError) Unwrap() error { return e.Err }

// fetchBackoffMin and fetchBackoffMax bound the wait after a fetch error
// before fetching again: it doubles with every error in a row and starts
// over after a record arrives.
const (
	fetchBackoffMin = 100 * time.Millisecond
	fetchBackoffMax = 5 * time.Second
)

// fetchPartition reads c's partition from offset and hands every record
// to handle, until ctx ends, handle fails or, when end >= 0, the partition
// is read up to end (exclusive). It returns nil, or handle's error as a
// *PartitionError. Fetch errors are retried with backoff and logged at most
// once per kafkaErrorLogEvery.
func fetchPartition(ctx context.Context, cfg Config, log *slog.Logger, c *Claim, offset, end int64, handle func(kafka.Message) error) error {
	warn := newKafkaErrorLog(log.With("component", "fetcher", "partition", c.partition))
	r := newTxnReader(cfg, c.topic, c.partition, warn)
	defer r.Close()
	return readPartition(ctx, r, warn, c, offset, end, handle)
}

// readPartition is fetchPartition's loop over r, warning to warn. The
// offsets r leaves out (transaction markers, aborted records, offsets
// compacted away) are passed with Claim.Skip when no record after them
// comes in the same fetch, so that the commit passes them too (the
// watermark passes gaps between records by itself).
func readPartition(ctx context.Context, r partitionReader, warn *kafkaErrorLog, c *Claim, offset, end int64, handle func(kafka.Message) error) error {
	backoff := fetchBackoffMin
	last := int64(-1) // the last offset handed to handle or skipped
	for end < 0 || offset < end {
		f, err := r.Fetch(ctx, offset)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			warn.warn("fetch failed, retrying", "offset", offset, "error", err, "backoff", backoff)
			if !sleep(ctx, backoff) {
				return nil
			}
			backoff = min(2*backoff, fetchBackoffMax)
			continue
		}
		backoff = fetchBackoffMin
		if f.highWater > 0 {
			c.highWater.Store(f.highWater)
		}
		for _, m := range f.msgs {
			if end >= 0 && m.Offset >= end {
				break
			}
			if m.Offset <= last {
				continue // read again after a retried fetch
			}
			if err := handle(m); err != nil {
				if ctx.Err() != nil || errors.Is(err, errReleased) {
					return err
				}
				return &PartitionError{Topic: c.topic, Partition: c.partition, Offset: m.Offset, Err: err}
			}
			last = m.Offset
		}
		next := f.next
		if end >= 0 {
			next = min(next, end)
		}
		if next > f.from && next-1 > last {
			if err := c.Skip(ctx, next-1); err != nil {
				if ctx.Err() != nil || errors.Is(err, errReleased) {
					return err
				}
				return &PartitionError{Topic: c.topic, Partition: c.partition, Offset: next - 1, Err: err}
			}
			last = next - 1
		}
		if next > offset || offset < 0 {
			offset = next
		}
	}
	return nil
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// kafkaErrorLogEvery is the least time between two lines of one kafka
// client error log.
const kafkaErrorLogEvery = 10 * time.Second

// kafkaErrorLog logs at Warn, at most one line per interval, with the
// count of lines suppressed since the last one. kafka-go retries some
// failures forever and only logs them, so they must be visible, but not
// one line per retry. It is kafka-go's ErrorLogger (Printf), and the log of
// other warnings that repeat per record or per retry (warn). Safe for
// concurrent use.
type kafkaErrorLog struct {
	log        *slog.Logger
	lim        *rate.Limiter
	suppressed atomic.Int64
}

func newKafkaErrorLog(log *slog.Logger) *kafkaErrorLog {
	return newRateLog(log, kafkaErrorLogEvery)
}

// newRateLog returns a log of at most one line per every, counting the
// lines it suppresses.
func newRateLog(log *slog.Logger, every time.Duration) *kafkaErrorLog {
	return &kafkaErrorLog{log: log, lim: rate.NewLimiter(rate.Every(every), 1)}
}

// Printf implements kafka.Logger.
func (l *kafkaErrorLog) Printf(msg string, args ...any) {
	l.warn("kafka client error", "error", fmt.Sprintf(msg, args...))
}

// warn logs msg with args at Warn, unless a line was logged within the
// limit; the line carries "suppressed", the lines left out before it.
func (l *kafkaErrorLog) warn(msg string, args ...any) {
	if !l.lim.Allow() {
		l.suppressed.Add(1)
		return
	}
	l.log.Warn(msg, append(args, "suppressed", l.suppressed.Swap(0))...)
}
