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
// topic and returns, once the broker has acknowledged all of them, the user
// index of every event in order. It is not part of any measured time.
func preload(ctx context.Context, broker, topic string, s Scenario) ([]int32, error) {
	src, err := newEventSource(s, time.Now)
	if err != nil {
		return nil, err
	}
	w := &kafka.Writer{
		Addr:         kafka.TCP(broker),
		Topic:        topic,
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireOne,
		BatchSize:    preloadChunk,
		BatchBytes:   900_000, // under the broker's 1 MB message.max.bytes
		BatchTimeout: time.Millisecond,
	}
	seq := make([]int32, s.Events)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(preloadConcurrency)
	for start := 0; start < s.Events; start += preloadChunk {
		end := min(start+preloadChunk, s.Events)
		msgs := make([]kafka.Message, 0, end-start)
		for i := start; i < end; i++ {
			m, u := src.next()
			msgs = append(msgs, m)
			seq[i] = u
		}
		g.Go(func() error {
			if err := w.WriteMessages(gctx, msgs...); err != nil {
				return fmt.Errorf("bench: preload %s events %d-%d: %w", s.Name, start, end, err)
			}
			return nil
		})
	}
	err = g.Wait()
	if cerr := w.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("bench: preload %s: close writer: %w", s.Name, cerr)
	}
	if err != nil {
		return nil, err
	}
	return seq, nil
}
