package bench

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tencentchat-enricher/enricher/processor"
)

// source is the input position an output or DLQ record is a copy of.
type source struct {
	topic     string
	partition int32
	offset    int64
}

// copyCount counts the copies of each input record that reach the output
// and DLQ topics, in phases: phase 0 until the first disruption, phase k
// after the k-th. A copy beyond the first is a duplicate of the phase it
// arrives in. It also checks per-key order on first copies: for each
// output key, the first copies of its input records arrive in input
// offset order. Used under the outputWatch's lock.
type copyCount struct {
	output     string // the output topic; the others are DLQ topics
	seen       map[source]int32
	copies     int64
	duplicates []int64 // per phase
	lastFirst  map[string]source
	outOfOrder int64
}

func newCopyCount(output string) *copyCount {
	return &copyCount{output: output, seen: map[source]int32{}, duplicates: []int64{0}, lastFirst: map[string]source{}}
}

// phase starts the next phase.
func (c *copyCount) phase() { c.duplicates = append(c.duplicates, 0) }

// add counts the records of a batch produced to topic and returns how many
// are first copies. A batch that cannot be read is not counted at all.
func (c *copyCount) add(topic string, b *kmsg.RecordBatch) (int64, error) {
	var recs []copyRecord
	if err := eachRecord(b, func(r *kmsg.Record) error {
		src, err := sourceOf(topic == c.output, r)
		if err != nil {
			return err
		}
		recs = append(recs, copyRecord{src: src, key: string(r.Key), output: topic == c.output})
		return nil
	}); err != nil {
		return 0, err
	}
	var first int64
	for _, r := range recs {
		c.copies++
		c.seen[r.src]++
		if c.seen[r.src] > 1 {
			c.duplicates[len(c.duplicates)-1]++
			continue
		}
		first++
		if !r.output {
			continue
		}
		if last, ok := c.lastFirst[r.key]; ok && last.topic == r.src.topic && last.partition == r.src.partition && r.src.offset < last.offset {
			c.outOfOrder++
		}
		c.lastFirst[r.key] = r.src
	}
	return first, nil
}

type copyRecord struct {
	src    source
	key    string
	output bool
}

// eachRecord calls fn with each record of an uncompressed batch (the
// processor's writer does not compress).
func eachRecord(b *kmsg.RecordBatch, fn func(*kmsg.Record) error) error {
	if b.Attributes&0x07 != 0 {
		return errors.New("bench: compressed record batch")
	}
	raw := b.Records
	for range b.NumRecords {
		l, n := binary.Varint(raw)
		if n <= 0 || l < 0 || int64(len(raw)-n) < l {
			return errors.New("bench: truncated record batch")
		}
		size := n + int(l)
		var r kmsg.Record
		if err := r.ReadFrom(raw[:size]); err != nil {
			return fmt.Errorf("bench: record: %w", err)
		}
		if err := fn(&r); err != nil {
			return err
		}
		raw = raw[size:]
	}
	return nil
}

// sourceOf reads the input position of an output record (its source
// field) or a DLQ record (its source headers): topic, partition and offset.
func sourceOf(output bool, r *kmsg.Record) (source, error) {
	if output {
		var v struct {
			Source struct {
				Topic     string `json:"topic"`
				Partition *int32 `json:"partition"`
				Offset    *int64 `json:"offset"`
			} `json:"source"`
		}
		if err := json.Unmarshal(r.Value, &v); err != nil {
			return source{}, fmt.Errorf("bench: output record: %w", err)
		}
		if v.Source.Partition == nil || v.Source.Offset == nil {
			return source{}, errors.New("bench: output record without its source")
		}
		return source{v.Source.Topic, *v.Source.Partition, *v.Source.Offset}, nil
	}
	var src source
	var havePart, haveOff bool
	for _, h := range r.Headers {
		switch h.Key {
		case processor.HeaderSourceTopic:
			src.topic = string(h.Value)
		case processor.HeaderSourcePartition:
			p, err := strconv.ParseInt(string(h.Value), 10, 32)
			if err != nil {
				return source{}, fmt.Errorf("bench: DLQ record: %w", err)
			}
			src.partition, havePart = int32(p), true
		case processor.HeaderSourceOffset:
			o, err := strconv.ParseInt(string(h.Value), 10, 64)
			if err != nil {
				return source{}, fmt.Errorf("bench: DLQ record: %w", err)
			}
			src.offset, haveOff = o, true
		}
	}
	if !havePart || !haveOff {
		return source{}, errors.New("bench: DLQ record without its source headers")
	}
	return src, nil
}

// result is the account of want input records.
func (c *copyCount) result(want int64) *RedeliveryResult {
	dups := int64(0)
	for _, d := range c.duplicates {
		dups += d
	}
	distinct := int64(len(c.seen))
	return &RedeliveryResult{
		Distinct: distinct, Lost: max(want-distinct, 0), Copies: c.copies, Duplicates: dups,
		DuplicatesBefore: c.duplicates[0], DuplicatesAfter: append([]int64(nil), c.duplicates[1:]...),
		OutOfOrder: c.outOfOrder,
	}
}
