package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"golang.org/x/time/rate"
)

// GroupSource is the Source of a Processor: a member of the consumer group
// Config.Group reading Config.InputTopic. For each generation it claims the
// partitions assigned to it, runs one fetch loop per partition and commits
// the claims' watermarks every CommitInterval; when the generation ends
// (rebalance) or Run's context is canceled it stops fetching, drains
// (DrainTimeout, or ShutdownTimeout on shutdown), releases and commits.
type GroupSource struct {
	cfg   Config
	log   *slog.Logger
	ready atomic.Bool
}

// NewGroupSource returns the group source for cfg (validated by the caller).
func NewGroupSource(cfg Config) *GroupSource {
	cfg = cfg.withDefaults()
	return &GroupSource{cfg: cfg, log: cfg.Logger.With("group", cfg.Group, "topic", cfg.InputTopic)}
}

// Ready reports whether the source is a member of the current generation.
func (s *GroupSource) Ready() bool { return s.ready.Load() }

// Run consumes until ctx ends or the pipeline fails, then leaves the group.
func (s *GroupSource) Run(ctx context.Context, p *Pipeline) error {
	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                    s.cfg.Group,
		Brokers:               s.cfg.Brokers,
		Dialer:                s.cfg.Dialer,
		Topics:                []string{s.cfg.InputTopic},
		StartOffset:           s.cfg.startOffset(),
		SessionTimeout:        s.cfg.SessionTimeout,
		RebalanceTimeout:      s.cfg.RebalanceTimeout,
		HeartbeatInterval:     s.cfg.HeartbeatInterval,
		WatchPartitionChanges: true,
		JoinGroupBackoff:      time.Second,
		ErrorLogger:           newKafkaErrorLog(s.log.With("component", "consumer-group")),
	})
	if err != nil {
		return fmt.Errorf("processor: consumer group: %w", err)
	}
	defer cg.Close()
	for {
		gen, err := cg.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, kafka.ErrGroupClosed) {
				return fmt.Errorf("processor: consumer group: %w", err)
			}
			s.log.Warn("joining group failed, retrying", "error", err)
			continue
		}
		done := make(chan struct{})
		gen.Start(func(genCtx context.Context) {
			defer close(done)
			s.ready.Store(true)
			defer s.ready.Store(false)
			s.generation(ctx, genCtx, gen, p)
		})
		<-done
		if ctx.Err() != nil {
			return nil
		}
	}
}

// generation runs one generation's assignments to completion.
func (s *GroupSource) generation(ctx, genCtx context.Context, gen *kafka.Generation, p *Pipeline) {
	fetchCtx, stopFetch := context.WithCancel(ctx)
	defer stopFetch()
	defer context.AfterFunc(genCtx, stopFetch)()

	assigned := gen.Assignments[s.cfg.InputTopic]
	s.log.Info("partitions assigned", "generation", gen.ID, "partitions", len(assigned))
	claims := make([]*Claim, 0, len(assigned))
	var wg sync.WaitGroup
	for _, a := range assigned {
		c := p.Claim(s.cfg.InputTopic, a.ID)
		if a.Offset >= 0 {
			c.Committed(a.Offset) // the group's committed offset
		}
		claims = append(claims, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.fetch(fetchCtx, c, a.Offset)
		}()
	}
	commits := map[*Claim]int64{}
	tick := time.NewTicker(s.cfg.CommitInterval)
loop:
	for {
		select {
		case <-fetchCtx.Done():
			break loop
		case <-p.Failed():
			stopFetch()
			break loop
		case <-tick.C:
			s.commit(gen, claims, commits)
		}
	}
	tick.Stop()
	wg.Wait()

	timeout := s.cfg.DrainTimeout
	if ctx.Err() != nil {
		timeout = s.cfg.ShutdownTimeout
	}
	dctx, cancel := context.WithTimeout(p.base, timeout)
	for _, c := range claims {
		if err := c.Drain(dctx); err != nil {
			s.log.Warn("drain incomplete, dropping unpublished records", "partition", c.partition, "pending", c.wm.pending())
			break
		}
	}
	cancel()
	for _, c := range claims {
		c.Release()
	}
	if p.Aborted() {
		return
	}
	s.commit(gen, claims, commits)
	s.log.Info("partitions released", "generation", gen.ID, "partitions", len(claims))
}

// commit commits every claim's watermark that moved since the last commit.
func (s *GroupSource) commit(gen *kafka.Generation, claims []*Claim, last map[*Claim]int64) {
	offsets := map[int]int64{}
	for _, c := range claims {
		if off, ok := c.Committable(); ok && off != last[c] {
			offsets[c.partition] = off
		}
	}
	if len(offsets) == 0 {
		return
	}
	if err := gen.CommitOffsets(map[string]map[int]int64{s.cfg.InputTopic: offsets}); err != nil {
		s.log.Warn("commit failed", "generation", gen.ID, "error", err)
		return
	}
	for _, c := range claims {
		if off, ok := offsets[c.partition]; ok {
			last[c] = off
			c.Committed(off)
		}
	}
}

// fetch reads one partition from offset and submits every record to c,
// until ctx ends.
func (s *GroupSource) fetch(ctx context.Context, c *Claim, offset int64) {
	fetchPartition(ctx, s.cfg, s.log, c, offset, func(m kafka.Message) (bool, error) {
		return true, c.Submit(ctx, m)
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
