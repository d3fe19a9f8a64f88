package deadletter

import (
	"context"
	"fmt"
	"hash/crc32"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// RedriveConfig configures Redrive.
type RedriveConfig struct {
	Config
	// InputTopic receives the re-driven records.
	InputTopic string
	// Group is the checkpoint consumer group on the dead-letter topic.
	Group string
	// BatchSize is the number of records written, then checkpointed, at
	// once (default 100).
	BatchSize int
	Logger    *slog.Logger // nil: slog.Default()
}

// RedriveResult counts what a Redrive did.
type RedriveResult struct {
	Redriven int64            // re-published to the input topic
	ByClass  map[string]int64 // Redriven by error class
	// Already counts selected letters an earlier run re-drove (this
	// selection's before a resume, or another one's).
	Already int64
	// TooLarge counts selected letters without their value (the input was
	// too large for the DLQ): not re-driven, read them from the source.
	TooLarge int64
	// Resumed counts the partitions where an earlier run of this selection
	// had started.
	Resumed int
	// Partitions are the spans read.
	Partitions int
}

// Redrive re-publishes the dead letters sel selects to the input topic,
// each with its original key, value and headers (the processor's enricher-*
// headers removed) plus HeaderRedriveOf and HeaderRedriveClass, to the
// partition it came from when the input topic has it. It reads up to the
// end of each partition when the selection first ran, and checkpoints in
// cfg.Group after each batch the brokers acknowledged; run again, it
// resumes, and a letter re-driven by any earlier run is not re-driven
// again. A stop (ctx done) finishes and checkpoints the batch in hand.
func Redrive(ctx context.Context, cfg RedriveConfig, sel Selection) (RedriveResult, error) {
	res := RedriveResult{ByClass: map[string]int64{}}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	batchSize := cfg.BatchSize
	if batchSize <= 0 {
		batchSize = 100
	}
	spans, err := plan(ctx, cfg.Config, sel)
	if err != nil {
		return res, err
	}
	cl := cfg.client()
	parts := make([]int, len(spans))
	for i, s := range spans {
		parts[i] = s.Partition
	}
	ledgers, err := fetchLedgers(ctx, cl, cfg.Group, cfg.Topic, parts)
	if err != nil {
		return res, err
	}

	bal := &sourceBalancer{to: map[string]int{}}
	w := &kafka.Writer{
		Addr: kafka.TCP(cfg.Brokers...), Topic: cfg.InputTopic, Balancer: bal, Transport: cfg.Transport,
		RequiredAcks: kafka.RequireAll, BatchSize: batchSize, BatchTimeout: 5 * time.Millisecond,
	}
	defer w.Close()
	// Writes and checkpoints finish even when ctx ends: a batch is either
	// not written, or written and checkpointed.
	wctx := context.WithoutCancel(ctx)

	res.Partitions = len(spans)
	for _, s := range spans {
		l := ledgers[s.Partition]
		cur := newRun(sel, s)
		idx := slices.IndexFunc(l.Runs, cur.sameSelection)
		if idx >= 0 {
			cur = l.Runs[idx]
			res.Resumed++
			log.Info("redrive resuming", slog.Int("partition", s.Partition), slog.Int64("position", cur.Pos), slog.Int64("end", cur.End))
		} else {
			l.Runs = append(l.Runs, cur)
			idx = len(l.Runs) - 1
		}
		var batch []kafka.Message
		var classes []string
		pos := cur.Pos
		flush := func() error {
			if len(batch) > 0 {
				if err := w.WriteMessages(wctx, batch...); err != nil {
					return fmt.Errorf("write to %q: %w", cfg.InputTopic, err)
				}
				bal.reset()
				res.Redriven += int64(len(batch))
				for _, c := range classes {
					res.ByClass[c]++
				}
				batch, classes = batch[:0], classes[:0]
			}
			if pos == l.Runs[idx].Pos {
				return nil
			}
			l.Runs[idx].Pos = pos
			if err := commitLedger(wctx, cl, cfg.Group, cfg.Topic, s.Partition, l); err != nil {
				return err
			}
			if afterCheckpoint != nil {
				afterCheckpoint()
			}
			return nil
		}
		err := readSpan(ctx, cfg.Config, span{Partition: s.Partition, Start: cur.Pos, End: cur.End}, func(m kafka.Message) error {
			letter := parseLetter(m)
			switch {
			case !sel.Match(letter):
			case l.covered(letter, idx):
				res.Already++
			case letter.OriginalBytes > 0 && len(letter.Value) == 0:
				res.TooLarge++
			default:
				batch = append(batch, redriven(letter, cfg.Topic, bal))
				classes = append(classes, letter.Class)
			}
			pos = m.Offset + 1
			if len(batch) >= batchSize {
				return flush()
			}
			return nil
		})
		if err == nil && pos < cur.End {
			pos = cur.End // the span's tail holds no record (compacted or aborted)
		}
		if ferr := flush(); ferr != nil {
			return res, ferr
		}
		if err != nil {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			return res, err
		}
	}
	return res, nil
}

// afterCheckpoint, when set (tests), runs after each checkpoint.
var afterCheckpoint func()

// redriven is the input record of letter, marked as re-driven from it.
func redriven(l Letter, dlqTopic string, bal *sourceBalancer) kafka.Message {
	headers := make([]kafka.Header, 0, len(l.Headers)+2)
	for _, h := range l.Headers {
		if !strings.HasPrefix(h.Key, "enricher-") {
			headers = append(headers, h)
		}
	}
	of := l.Position(dlqTopic)
	headers = append(headers,
		kafka.Header{Key: HeaderRedriveOf, Value: []byte(of)},
		kafka.Header{Key: HeaderRedriveClass, Value: []byte(l.Class)})
	bal.set(of, l.SourcePartition)
	return kafka.Message{Key: l.Key, Value: l.Value, Headers: headers}
}

// sourceBalancer writes a re-driven record to the partition its dead
// letter came from, so it joins its key's other records there; without
// one (or when the topic has fewer partitions now) it hashes the key.
type sourceBalancer struct {
	mu sync.Mutex
	to map[string]int // HeaderRedriveOf value -> source partition
}

func (b *sourceBalancer) reset() {
	b.mu.Lock()
	clear(b.to)
	b.mu.Unlock()
}

func (b *sourceBalancer) set(of string, p int) {
	b.mu.Lock()
	b.to[of] = p
	b.mu.Unlock()
}

// Balance implements kafka.Balancer.
func (b *sourceBalancer) Balance(msg kafka.Message, partitions ...int) int {
	for _, h := range msg.Headers {
		if h.Key != HeaderRedriveOf {
			continue
		}
		b.mu.Lock()
		p, ok := b.to[string(h.Value)]
		b.mu.Unlock()
		if ok && slices.Contains(partitions, p) {
			return p
		}
	}
	return partitions[crc32.ChecksumIEEE(msg.Key)%uint32(len(partitions))]
}

// String is "redriven N (class=n ...), already A, too large T".
func (r RedriveResult) String() string {
	var cs []string
	for _, c := range slices.Sorted(maps.Keys(r.ByClass)) {
		cs = append(cs, c+"="+strconv.FormatInt(r.ByClass[c], 10))
	}
	return fmt.Sprintf("redriven %d (%s), already redriven %d, too large to redrive %d", r.Redriven, strings.Join(cs, " "), r.Already, r.TooLarge)
}
