package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/semaphore"

	"github.com/tencentchat-enricher/enricher/processor"
)

// Settings of the raw copy: the processor's defaults for its source and
// sink, so that the ceiling differs from the processor only by the
// enrichment.
var (
	copyReader = kafka.ReaderConfig{
		MinBytes:       1,
		MaxBytes:       10 << 20,
		MaxWait:        processor.DefaultFetchMaxWait,
		CommitInterval: processor.DefaultCommitInterval,
	}
	copyWriter = kafka.Writer{
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		BatchSize:    processor.DefaultBatchSize,
		BatchTimeout: processor.DefaultBatchTimeout,
	}
	// copyMaxInFlight bounds the records fetched but not yet acknowledged,
	// as the processor bounds its in-flight records.
	copyMaxInFlight int64 = processor.DefaultMaxInFlight
)

// copyStats is the raw copy's account of a run.
type copyStats struct {
	Consumed int64 `json:"consumed"`
	Produced int64 `json:"produced"`
}

// runCopy consumes j.Input in consumer group j.Group and produces every
// record unchanged (key, value, headers) to j.Output with an asynchronous
// writer, committing each input record once its copy is acknowledged, with
// at most copyMaxInFlight records unacknowledged. It runs until ctx is
// canceled.
func runCopy(ctx context.Context, j job) (any, error) {
	rc := copyReader
	rc.Brokers, rc.Topic, rc.GroupID, rc.StartOffset = j.Brokers, j.Input, j.Group, kafka.FirstOffset
	r := kafka.NewReader(rc)

	var (
		stats    copyStats
		produced atomic.Int64
		errOnce  sync.Once
		firstErr error
		inFlight = semaphore.NewWeighted(copyMaxInFlight)
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	w := &kafka.Writer{
		Addr:         kafka.TCP(j.Brokers...),
		Topic:        j.Output,
		Balancer:     copyWriter.Balancer,
		RequiredAcks: copyWriter.RequiredAcks,
		BatchSize:    copyWriter.BatchSize,
		BatchTimeout: copyWriter.BatchTimeout,
		Async:        true,
		Completion: func(out []kafka.Message, err error) {
			if err != nil {
				fail(fmt.Errorf("bench copy: produce: %w", err))
				return
			}
			produced.Add(int64(len(out)))
			inFlight.Release(int64(len(out)))
			in := make([]kafka.Message, len(out))
			for i, m := range out {
				in[i] = m.WriterData.(kafka.Message)
			}
			if err := r.CommitMessages(context.WithoutCancel(ctx), in...); err != nil {
				fail(fmt.Errorf("bench copy: commit: %w", err))
			}
		},
	}
	for {
		m, err := r.FetchMessage(ctx)
		if err == nil {
			err = inFlight.Acquire(ctx, 1)
		}
		if err != nil {
			if ctx.Err() == nil {
				fail(fmt.Errorf("bench copy: fetch: %w", err))
			}
			break
		}
		stats.Consumed++
		// Only the offset is needed to commit; drop the payload reference.
		ref := kafka.Message{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset}
		if err := w.WriteMessages(ctx, kafka.Message{Key: m.Key, Value: m.Value, Headers: m.Headers, WriterData: ref}); err != nil {
			if ctx.Err() == nil {
				fail(fmt.Errorf("bench copy: produce: %w", err))
			}
			break
		}
	}
	err := errors.Join(w.Close(), r.Close())
	stats.Produced = produced.Load()
	errOnce.Do(func() {}) // no more failures after this point
	if firstErr != nil {
		return stats, firstErr
	}
	if err != nil {
		return stats, fmt.Errorf("bench copy: close: %w", err)
	}
	return stats, nil
}
