package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"
)

// preloadChunk is how many events one WriteMessages call carries; a few
// calls run at once so that every partition always has a batch in flight.
const (
	preloadChunk       = 20_000
	preloadConcurrency = 4
)

// preload produces the events of s (keyed by user, timestamped now) into
// topic and returns when the broker has acknowledged all of them. It is not
// part of any measured time.
func preload(ctx context.Context, broker, topic string, s Scenario, seq []int32) error {
	w := &kafka.Writer{
		Addr:         kafka.TCP(broker),
		Topic:        topic,
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireOne,
		BatchSize:    preloadChunk,
		BatchBytes:   900_000, // under the broker's 1 MB message.max.bytes
		BatchTimeout: time.Millisecond,
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(preloadConcurrency)
	for start := 0; start < len(seq); start += preloadChunk {
		end := min(start+preloadChunk, len(seq))
		g.Go(func() error {
			msgs := make([]kafka.Message, 0, end-start)
			now := time.Now()
			for i := start; i < end; i++ {
				user := userID(int(seq[i]))
				msgs = append(msgs, kafka.Message{
					Key:   []byte(user),
					Value: appendEvent(make([]byte, 0, 160), s.Name, i, user, now),
					Time:  now,
				})
			}
			if err := w.WriteMessages(gctx, msgs...); err != nil {
				return fmt.Errorf("bench: preload %s events %d-%d: %w", s.Name, start, end, err)
			}
			return nil
		})
	}
	err := g.Wait()
	if cerr := w.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("bench: preload %s: close writer: %w", s.Name, cerr)
	}
	return err
}
