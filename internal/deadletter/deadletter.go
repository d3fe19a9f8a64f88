// Package deadletter reads the processor's dead-letter topic and re-drives
// dead letters to the input topic once their cause is fixed.
//
// A dead letter is the input record unchanged (key, value, headers) plus
// the processor's enricher-* headers (processor/encode.go). Scan reads the
// letters of a Selection up to the partitions' end when it starts; Redrive
// re-publishes them to the input topic with HeaderRedriveOf naming the
// dead letter, and records what it re-published in a checkpoint consumer
// group (ledger.go), so that a run resumes where it stopped and no dead
// letter is re-driven by two runs.
package deadletter

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tencentchat-enricher/enricher/processor"
)

// Headers a re-driven record carries on the input topic. A re-driven
// record that fails again keeps them in its new dead letter, so it is
// recognisable there (Letter.RedriveOf).
const (
	// HeaderRedriveOf is "topic/partition/offset" of the dead letter the record was re-driven from.
	HeaderRedriveOf = "enricher-redrive-of"
	// HeaderRedriveClass is the error class of that dead letter.
	HeaderRedriveClass = "enricher-redrive-class"
)

// Config is how to reach the dead-letter topic.
type Config struct {
	Brokers []string
	Topic   string // the dead-letter topic
	// Dialer reads partitions; Transport serves metadata, offsets and
	// writes (TLS, SASL). nil: plaintext defaults.
	Dialer    *kafka.Dialer
	Transport kafka.RoundTripper
}

func (c Config) client() *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(c.Brokers...), Transport: c.Transport, Timeout: 10 * time.Second}
}

// Letter is one dead letter as read from the topic.
type Letter struct {
	Partition int
	Offset    int64
	Time      time.Time
	// From the processor's headers.
	Class           string
	Message         string
	SourceTopic     string
	SourcePartition int
	SourceOffset    int64
	Attempts        int
	// OriginalBytes is set when the input was too large for the DLQ: the
	// value is empty, read it from the source position.
	OriginalBytes int
	// RedriveOf is set when the input record was itself re-driven from
	// this dead letter position and failed again.
	RedriveOf string
	Key       []byte
	Value     []byte
	Headers   []kafka.Header
}

// Position is "topic/partition/offset" of the letter, as HeaderRedriveOf gives it.
func (l Letter) Position(topic string) string {
	return topic + "/" + strconv.Itoa(l.Partition) + "/" + strconv.FormatInt(l.Offset, 10)
}

func parseLetter(m kafka.Message) Letter {
	l := Letter{Partition: m.Partition, Offset: m.Offset, Time: m.Time, Key: m.Key, Value: m.Value, Headers: m.Headers,
		SourcePartition: -1, SourceOffset: -1}
	for _, h := range m.Headers {
		v := string(h.Value)
		switch h.Key {
		case processor.HeaderErrorClass:
			l.Class = v
		case processor.HeaderErrorMessage:
			l.Message = v
		case processor.HeaderSourceTopic:
			l.SourceTopic = v
		case processor.HeaderSourcePartition:
			l.SourcePartition = atoiOr(v, -1)
		case processor.HeaderSourceOffset:
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				l.SourceOffset = n
			}
		case processor.HeaderAttempts:
			l.Attempts = atoiOr(v, 0)
		case processor.HeaderOriginalBytes:
			l.OriginalBytes = atoiOr(v, 0)
		case HeaderRedriveOf:
			l.RedriveOf = v
		}
	}
	return l
}

func atoiOr(s string, def int) int {
	if n, err := strconv.Atoi(s); err == nil {
		return n
	}
	return def
}

// OffsetRange is a span of one partition's offsets; End < 0 means the
// partition's end when the scan starts. End is exclusive.
type OffsetRange struct{ Start, End int64 }

// Selection picks dead letters: by error class (any of Classes; none:
// all), by the time they were dead-lettered (in [From, To); zero: open),
// and by their partitions and offsets in the dead-letter topic (nil: every
// partition, all offsets).
type Selection struct {
	Classes  []string
	From, To time.Time
	Offsets  map[int]OffsetRange
}

// Match reports whether l is selected (the offsets are applied by Scan).
func (s Selection) Match(l Letter) bool {
	if len(s.Classes) > 0 && !slices.Contains(s.Classes, l.Class) {
		return false
	}
	if !s.From.IsZero() && l.Time.Before(s.From) {
		return false
	}
	if !s.To.IsZero() && !l.Time.Before(s.To) {
		return false
	}
	return true
}

// String describes the selection for logs and summaries.
func (s Selection) String() string {
	var parts []string
	if len(s.Classes) > 0 {
		parts = append(parts, "class="+strings.Join(s.Classes, ","))
	}
	if !s.From.IsZero() {
		parts = append(parts, "from="+s.From.UTC().Format(time.RFC3339))
	}
	if !s.To.IsZero() {
		parts = append(parts, "to="+s.To.UTC().Format(time.RFC3339))
	}
	if len(s.Offsets) > 0 {
		var os []string
		for _, p := range slices.Sorted(maps.Keys(s.Offsets)) {
			r := s.Offsets[p]
			o := fmt.Sprintf("%d=%d", p, r.Start)
			if r.End >= 0 {
				o += fmt.Sprintf(":%d", r.End)
			}
			os = append(os, o)
		}
		parts = append(parts, "offsets="+strings.Join(os, ","))
	}
	if len(parts) == 0 {
		return "all"
	}
	return strings.Join(parts, " ")
}

// ErrNoTopic is returned when the dead-letter topic does not exist.
var ErrNoTopic = errors.New("topic does not exist")

// span is the part of one partition a scan reads.
type span struct {
	Partition  int
	Start, End int64 // End exclusive
	Open       bool  // End is the partition's end now, not set by the selection
}

// plan fixes the spans of sel: the selected partitions, from the first
// offset at or after From (or the selection's start) to the end offset
// now (or before the first offset at or after To).
func plan(ctx context.Context, cfg Config, sel Selection) ([]span, error) {
	cl := cfg.client()
	md, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{cfg.Topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata of %q: %w", cfg.Topic, err)
	}
	var parts []int
	for _, t := range md.Topics {
		if t.Name != cfg.Topic {
			continue
		}
		if errors.Is(t.Error, kafka.UnknownTopicOrPartition) {
			return nil, fmt.Errorf("%q: %w", cfg.Topic, ErrNoTopic)
		}
		if t.Error != nil {
			return nil, fmt.Errorf("metadata of %q: %w", cfg.Topic, t.Error)
		}
		for _, p := range t.Partitions {
			parts = append(parts, p.ID)
		}
	}
	if len(parts) == 0 {
		return nil, fmt.Errorf("%q: %w", cfg.Topic, ErrNoTopic)
	}
	slices.Sort(parts)
	if sel.Offsets != nil {
		for p := range sel.Offsets {
			if !slices.Contains(parts, p) {
				return nil, &PartitionError{Topic: cfg.Topic, Partition: p, Have: len(parts)}
			}
		}
		parts = slices.DeleteFunc(parts, func(p int) bool { _, ok := sel.Offsets[p]; return !ok })
	}
	// list asks for each partition's offset at ts: kafka.FirstOffset,
	// kafka.LastOffset, or the first offset at or after a time (-1: none).
	list := func(ts int64) (map[int]int64, error) {
		req := make([]kafka.OffsetRequest, len(parts))
		for i, p := range parts {
			req[i] = kafka.OffsetRequest{Partition: p, Timestamp: ts}
		}
		res, err := cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{cfg.Topic: req}})
		if err != nil {
			return nil, fmt.Errorf("offsets of %q: %w", cfg.Topic, err)
		}
		out := map[int]int64{}
		for _, po := range res.Topics[cfg.Topic] {
			if po.Error != nil {
				return nil, fmt.Errorf("offsets of %q partition %d: %w", cfg.Topic, po.Partition, po.Error)
			}
			switch ts {
			case kafka.FirstOffset:
				out[po.Partition] = po.FirstOffset
			case kafka.LastOffset:
				out[po.Partition] = po.LastOffset
			default:
				out[po.Partition] = -1
				for off := range po.Offsets {
					out[po.Partition] = off
				}
			}
		}
		for _, p := range parts {
			if _, ok := out[p]; !ok {
				return nil, fmt.Errorf("offsets of %q: no answer for partition %d", cfg.Topic, p)
			}
		}
		return out, nil
	}
	first, err := list(kafka.FirstOffset)
	if err != nil {
		return nil, err
	}
	last, err := list(kafka.LastOffset)
	if err != nil {
		return nil, err
	}
	byTime := func(t time.Time) (map[int]int64, error) {
		if t.IsZero() {
			return nil, nil
		}
		m, err := list(t.UnixMilli())
		if err != nil {
			return nil, err
		}
		for p, o := range m {
			if o < 0 { // no record at or after t
				m[p] = last[p]
			}
		}
		return m, nil
	}
	from, err := byTime(sel.From)
	if err != nil {
		return nil, err
	}
	to, err := byTime(sel.To)
	if err != nil {
		return nil, err
	}
	var spans []span
	for _, p := range parts {
		s := span{Partition: p, Start: first[p], End: last[p], Open: true}
		if o, ok := from[p]; ok {
			s.Start = max(s.Start, o)
		}
		if o, ok := to[p]; ok {
			s.End, s.Open = min(s.End, o), false
		}
		if r, ok := sel.Offsets[p]; ok {
			s.Start = max(s.Start, r.Start)
			if r.End >= 0 {
				s.End, s.Open = min(s.End, r.End), false
			}
		}
		spans = append(spans, s)
	}
	return spans, nil
}

// PartitionError is returned when Selection.Offsets names a partition the
// topic does not have.
type PartitionError struct {
	Topic     string
	Partition int
	Have      int
}

func (e *PartitionError) Error() string {
	return fmt.Sprintf("topic %q has no partition %d (it has partitions 0 to %d)", e.Topic, e.Partition, e.Have-1)
}

// readSpan calls fn with every record of s in offset order.
func readSpan(ctx context.Context, cfg Config, s span, fn func(kafka.Message) error) error {
	if s.Start >= s.End {
		return nil
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: cfg.Brokers, Topic: cfg.Topic, Partition: s.Partition, Dialer: cfg.Dialer,
		MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 250 * time.Millisecond,
	})
	defer r.Close()
	if err := r.SetOffset(s.Start); err != nil {
		return err
	}
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			return fmt.Errorf("read %q partition %d: %w", cfg.Topic, s.Partition, err)
		}
		if m.Offset >= s.End {
			return nil
		}
		if err := fn(m); err != nil {
			return err
		}
		if m.Offset >= s.End-1 {
			return nil
		}
	}
}

// Scan calls fn with every dead letter sel selects, partition by
// partition in offset order, up to the end of each partition when Scan
// started. An error from fn stops the scan and is returned.
func Scan(ctx context.Context, cfg Config, sel Selection, fn func(Letter) error) error {
	spans, err := plan(ctx, cfg, sel)
	if err != nil {
		return err
	}
	for _, s := range spans {
		err := readSpan(ctx, cfg, s, func(m kafka.Message) error {
			if l := parseLetter(m); sel.Match(l) {
				return fn(l)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
