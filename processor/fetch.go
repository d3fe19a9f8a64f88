package processor

import (
	"context"
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

// fetch reads partition ps of assignment a into c until ctx ends, or until
// the record just before ps.End of a bounded partition.
func (p *Pipeline) fetch(ctx context.Context, a Assignment, c *Claim, ps PartitionStart, log *slog.Logger) {
	fetchPartition(ctx, p.cfg, log, c, ps.Offset, func(m kafka.Message) (bool, error) {
		if ps.End >= 0 && m.Offset >= ps.End {
			return false, nil
		}
		var err error
		if ps.done.contains(m.Offset) {
			err = c.Skip(ctx, m.Offset) // published by an earlier owner
			p.met.recordSkippedPublished(ctx)
		} else if a.Skip(m) {
			err = c.Skip(ctx, m.Offset)
		} else {
			err = c.Submit(ctx, m)
		}
		return ps.End < 0 || m.Offset < ps.End-1, err
	})
}

// fetchPartition reads c's partition from offset and hands every record to
// handle, until ctx ends, handle fails or handle returns false (the source
// is done with the partition). Fetch errors are logged and retried after a
// second; kafka-go's own error log goes to a rate-limited warn log.
func fetchPartition(ctx context.Context, cfg Config, log *slog.Logger, c *Claim, offset int64, handle func(kafka.Message) (more bool, err error)) {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:        cfg.Brokers,
		Topic:          c.topic,
		Partition:      c.partition,
		Dialer:         cfg.Dialer,
		MinBytes:       1,
		MaxBytes:       10 << 20,
		MaxWait:        cfg.FetchMaxWait,
		ReadBackoffMin: 10 * time.Millisecond,
		ReadBackoffMax: time.Second,
		ErrorLogger:    newKafkaErrorLog(log.With("component", "fetcher", "partition", c.partition)),
	})
	defer r.Close()
	if err := r.SetOffset(offset); err != nil {
		log.Error("cannot start fetching", "partition", c.partition, "offset", offset, "error", err)
		return
	}
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Warn("fetch failed", "partition", c.partition, "error", err)
			t := time.NewTimer(time.Second)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		more, err := handle(m)
		if err != nil {
			if ctx.Err() == nil {
				log.Error("submit failed", "partition", c.partition, "offset", m.Offset, "error", err)
			}
			return
		}
		if !more {
			return
		}
	}
}

// kafkaErrorLogEvery is the least time between two lines of one kafka-go
// error log.
const kafkaErrorLogEvery = 10 * time.Second

// kafkaErrorLog is a kafka-go ErrorLogger logging at Warn, at most one line
// per kafkaErrorLogEvery, with the count of lines suppressed since the last
// one. kafka-go retries some failures forever and only logs them, so they
// must be visible, but not one line per retry. Safe for concurrent use.
type kafkaErrorLog struct {
	log        *slog.Logger
	lim        *rate.Limiter
	suppressed atomic.Int64
}

func newKafkaErrorLog(log *slog.Logger) *kafkaErrorLog {
	return &kafkaErrorLog{log: log, lim: rate.NewLimiter(rate.Every(kafkaErrorLogEvery), 1)}
}

// Printf implements kafka.Logger.
func (l *kafkaErrorLog) Printf(msg string, args ...any) {
	if !l.lim.Allow() {
		l.suppressed.Add(1)
		return
	}
	l.log.Warn("kafka client error", "error", fmt.Sprintf(msg, args...), "suppressed", l.suppressed.Swap(0))
}
