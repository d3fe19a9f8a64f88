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
)

// GroupSource is the Source of a Processor: a member of the consumer group
// Config.Group reading Config.InputTopic. Each generation is one
// Assignment, revoked when the generation ends (rebalance); positions are
// committed as the generation's member. Safe for concurrent use; a
// pipeline runs it once.
type GroupSource struct {
	cfg   Config
	log   *slog.Logger
	cl    *kafka.Client
	ready atomic.Bool

	mu sync.Mutex
	cg *kafka.ConsumerGroup
}

// NewGroupSource returns the group source for cfg (validated by the caller).
func NewGroupSource(cfg Config) *GroupSource {
	cfg = cfg.withDefaults()
	return &GroupSource{cfg: cfg, cl: newKafkaClient(cfg), log: cfg.Logger.With("group", cfg.Group, "topic", cfg.InputTopic)}
}

// Ready reports whether the source is a member of the current generation.
func (s *GroupSource) Ready() bool { return s.ready.Load() }

// Assign joins the group (on the first call) and returns the next
// generation's partitions. Failures to join are logged and retried until
// ctx ends.
func (s *GroupSource) Assign(ctx context.Context) (Assignment, error) {
	cg, err := s.group()
	if err != nil {
		return nil, err
	}
	for {
		gen, err := cg.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if errors.Is(err, kafka.ErrGroupClosed) {
				return nil, fmt.Errorf("processor: consumer group: %w", err)
			}
			s.log.Warn("joining group failed, retrying", "error", err)
			continue
		}
		a := &generation{s: s, gen: gen, revoked: make(chan struct{}), done: make(chan struct{})}
		var ids []int
		for _, pa := range gen.Assignments[s.cfg.InputTopic] {
			ids = append(ids, pa.ID)
		}
		if len(ids) > 0 {
			if a.completed, err = fetchCompleted(ctx, s.cl, s.cfg.Group, s.cfg.InputTopic, ids); err != nil {
				// Without the sets the partitions are read from the
				// committed offsets: records are published again, none lost.
				s.log.Warn("cannot read the published offsets above the committed ones", "error", err)
			}
		}
		gen.Start(func(genCtx context.Context) {
			defer context.AfterFunc(genCtx, func() { close(a.revoked) })()
			<-a.done // kafka-go rejoins only after this returns
		})
		s.ready.Store(true)
		s.log.Info("generation joined", "generation", gen.ID)
		return a, nil
	}
}

func (s *GroupSource) group() (*kafka.ConsumerGroup, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cg != nil {
		return s.cg, nil
	}
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
		return nil, fmt.Errorf("processor: consumer group: %w", err)
	}
	s.cg = cg
	return cg, nil
}

// Close leaves the group.
func (s *GroupSource) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cg == nil {
		return nil
	}
	return s.cg.Close()
}

// generation is the Assignment of one consumer-group generation.
type generation struct {
	s         *GroupSource
	gen       *kafka.Generation
	revoked   chan struct{}        // closed when the generation ends
	completed map[int]completedSet // per partition: published above the committed offset
	done      chan struct{}        // closed by Done: the generation's goroutine returns
}

func (g *generation) Topic() string            { return g.s.cfg.InputTopic }
func (g *generation) Revoked() <-chan struct{} { return g.revoked }
func (g *generation) Skip(kafka.Message) bool  { return false }

func (g *generation) Partitions() []PartitionStart {
	assigned := g.gen.Assignments[g.s.cfg.InputTopic]
	out := make([]PartitionStart, len(assigned))
	for i, a := range assigned {
		// kafka-go gives the committed offset, or the configured start
		// offset (FirstOffset, LastOffset) when there is none.
		out[i] = PartitionStart{Partition: a.ID, Offset: a.Offset, End: -1, Committed: max(a.Offset, -1), done: g.completed[a.ID]}
	}
	return out
}

// Commit commits the positions as this generation's member.
func (g *generation) Commit(ctx context.Context, positions []Position, _, _ bool) error {
	return commitOffsets(ctx, g.s.cl, g.s.cfg.Group, int(g.gen.ID), g.gen.MemberID, g.s.cfg.InputTopic, positions, nil)
}

func (g *generation) Done() {
	g.s.ready.Store(false)
	close(g.done)
}
