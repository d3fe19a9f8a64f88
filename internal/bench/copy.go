package bench

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
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

// codec is the kafka-go codec named (processor.Config.OutputCompression;
// "" is the processor's default).
func codec(name string) (kafka.Compression, error) {
	switch strings.ToLower(cmp.Or(name, processor.DefaultOutputCompression)) {
	case "none":
		return 0, nil
	case "gzip":
		return kafka.Gzip, nil
	case "snappy":
		return kafka.Snappy, nil
	case "lz4":
		return kafka.Lz4, nil
	case "zstd":
		return kafka.Zstd, nil
	}
	return 0, fmt.Errorf("bench: compression %q: want none, gzip, snappy, lz4 or zstd", name)
}

// runCopy consumes j.Input in consumer group j.Group and produces every
// record (key, value, headers) to j.Output with an asynchronous writer,
// committing each input record once its copy is acknowledged, with at
// most copyMaxInFlight records unacknowledged. It runs until ctx is
// canceled. With j.Scenario.PadBytes the copy's value is the input's
// followed by that many spaces (still one JSON value), written into
// buffers reused once acknowledged; else the value is copied unchanged.
func runCopy(ctx context.Context, j job) (any, error) {
	compression, err := codec(j.Compression)
	if err != nil {
		return nil, err
	}
	pad := bytes.Repeat([]byte{' '}, j.Scenario.PadBytes)
	var bufs sync.Pool
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
		Compression:  compression,
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
				if len(pad) > 0 {
					b := m.Value[:0]
					bufs.Put(&b)
				}
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
		value := m.Value
		if len(pad) > 0 {
			var b []byte
			if p, ok := bufs.Get().(*[]byte); ok {
				b = *p
			}
			value = append(append(b, m.Value...), pad...)
		}
		if err := w.WriteMessages(ctx, kafka.Message{Key: m.Key, Value: value, Headers: m.Headers, WriterData: ref}); err != nil {
			if ctx.Err() == nil {
				fail(fmt.Errorf("bench copy: produce: %w", err))
			}
			break
		}
	}
	err = errors.Join(w.Close(), r.Close())
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
