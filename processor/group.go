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
	// joinErr is the last failure to join, nil once joined; joinLog logs
	// those failures at most every joinWarnEvery.
	joinErr atomic.Pointer[error]
	joinLog *kafkaErrorLog

	mu sync.Mutex
	cg *kafka.ConsumerGroup
	// carry are final positions a revoked generation could not commit
	// (the group moved on, as after a broker restart): committed by the
	// next generation that is assigned their partitions.
	carry map[int]Position
}

// NewGroupSource returns the group source for cfg (validated by the caller).
func NewGroupSource(cfg Config) *GroupSource {
	cfg = cfg.withDefaults()
	log := cfg.Logger.With("group", cfg.Group, "topic", cfg.InputTopic)
	return &GroupSource{cfg: cfg, cl: newKafkaClient(cfg), log: log, joinLog: newRateLog(log, joinWarnEvery)}
}

// joinWarnEvery is the least time between two warnings of failures to join
// the group (kafka-go retries every second; run names --brokers every 5 s).
const joinWarnEvery = 30 * time.Second

// Ready reports whether the source is a member of the current generation.
func (s *GroupSource) Ready() bool { return s.ready.Load() }

// Joined returns nil while the source is a member of the current
// generation, or why it is not, with the last failure to join.
func (s *GroupSource) Joined() error {
	if s.ready.Load() {
		return nil
	}
	if err := s.joinErr.Load(); err != nil {
		return fmt.Errorf("not joined: cannot join the group through brokers %v: %w", s.cfg.Brokers, *err)
	}
	return errors.New("not joined yet")
}

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
			s.joinErr.Store(&err)
			s.joinLog.warn("cannot join the consumer group, retrying", "brokers", s.cfg.Brokers, "error", err)
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
		a.carried = s.takeCarry(ctx, gen, ids, a.completed)
		gen.Start(func(genCtx context.Context) {
			defer context.AfterFunc(genCtx, func() { close(a.revoked) })()
			<-a.done // kafka-go rejoins only after this returns
		})
		s.joinErr.Store(nil)
		s.ready.Store(true)
		s.log.Info("generation joined", "generation", gen.ID)
		return a, nil
	}
}

// takeCarry commits, as gen's member, the carried positions of the
// partitions gen is assigned that are ahead of what the group committed, and
// returns them (the partitions start there). The other carried positions
// are dropped: another member owns those partitions now.
func (s *GroupSource) takeCarry(ctx context.Context, gen *kafka.Generation, ids []int, completed map[int]completedSet) map[int]Position {
	s.mu.Lock()
	carry := s.carry
	s.carry = nil
	s.mu.Unlock()
	if len(carry) == 0 {
		return nil
	}
	committed := map[int]int64{}
	for _, pa := range gen.Assignments[s.cfg.InputTopic] {
		committed[pa.ID] = pa.Offset
	}
	out := map[int]Position{}
	var positions []Position
	for _, id := range ids {
		c, ok := carry[id]
		if !ok || (committed[id] >= 0 && c.Offset <= committed[id]) {
			continue
		}
		out[id] = c
		positions = append(positions, c)
	}
	if len(positions) > 0 {
		if err := commitOffsets(ctx, s.cl, s.cfg.Group, int(gen.ID), gen.MemberID, s.cfg.InputTopic, positions, nil); err != nil {
			s.log.Warn("cannot commit the positions of the previous generation", "error", err)
		} else {
			s.log.Info("committed the positions the previous generation could not", "partitions", len(positions))
		}
	}
	return out
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
	carried   map[int]Position     // per partition: a previous generation's uncommitted final position
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
		if c, ok := g.carried[a.ID]; ok {
			out[i].Offset, out[i].Committed, out[i].done = c.Offset, c.Offset, c.done
		}
	}
	return out
}

// Commit commits the positions as this generation's member. A final commit
// that fails (the group moved on without this generation) is carried to
// the next generation, which commits it if it is assigned the partitions.
func (g *generation) Commit(ctx context.Context, positions []Position, final, _ bool) error {
	err := commitOffsets(ctx, g.s.cl, g.s.cfg.Group, int(g.gen.ID), g.gen.MemberID, g.s.cfg.InputTopic, positions, nil)
	if err != nil && final {
		g.s.mu.Lock()
		if g.s.carry == nil {
			g.s.carry = map[int]Position{}
		}
		for _, p := range positions {
			g.s.carry[p.Partition] = p
		}
		g.s.mu.Unlock()
	}
	return err
}

func (g *generation) Done() {
	g.s.ready.Store(false)
	close(g.done)
}
