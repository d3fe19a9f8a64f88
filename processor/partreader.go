package processor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	fetchAPI "github.com/segmentio/kafka-go/protocol/fetch"
)

// This file is the fetch stage's reader of one partition: Fetch requests
// (Kafka's Fetch API, v4 and later) sent through a kafka.Transport of its
// own, with the isolation level of Config.IsolationLevel. kafka-go's
// kafka.Reader hands transaction markers and the records of aborted
// transactions out as ordinary records; this reader drops both, and tells
// the fetch loop where the next fetch starts, so that the offsets it left
// out (markers, aborted records, offsets compacted away) are passed by the
// commit like the records around them.

// fetched is the answer of one fetch.
type fetched struct {
	// from is the offset the fetch started at (FirstOffset and LastOffset
	// resolved).
	from int64
	// msgs are the records at or after from, in offset order.
	msgs []kafka.Message
	// next is the offset to fetch next: past msgs and past the offsets the
	// reader left out. It is from when the partition has nothing at or
	// after from yet.
	next int64
	// highWater is the end of the partition as the consumer sees it: the
	// last stable offset when reading committed records, else the high
	// watermark; 0 when unknown.
	highWater int64
}

// partitionReader reads one partition, one fetch at a time.
type partitionReader interface {
	// Fetch returns the records at or after offset (kafka.FirstOffset and
	// kafka.LastOffset are resolved first), waiting up to the reader's
	// MaxWait for some to come.
	Fetch(ctx context.Context, offset int64) (fetched, error)
	Close() error
}

// txnReader is the partitionReader of the fetch loops.
type txnReader struct {
	topic     string
	partition int
	addr      net.Addr
	committed bool // read_committed
	maxWait   time.Duration
	maxBytes  int32
	dialer    *kafka.Dialer
	warn      *kafkaErrorLog

	tr *kafka.Transport
}

// fetchMaxBytes bounds the records of one fetch: Kafka's default
// max.partition.fetch.bytes. A fetch is decoded whole, so this bounds a
// partition's decoded records waiting for the fetch loop (a record batch
// larger than this still comes, alone).
const fetchMaxBytes = 1 << 20

func newTxnReader(cfg Config, topic string, partition int, warn *kafkaErrorLog) *txnReader {
	return &txnReader{
		topic: topic, partition: partition,
		addr:      kafka.TCP(cfg.Brokers...),
		committed: cfg.IsolationLevel != ReadUncommitted,
		maxWait:   cfg.FetchMaxWait,
		maxBytes:  fetchMaxBytes,
		dialer:    cfg.Dialer,
		warn:      warn,
	}
}

// transport returns the reader's transport, making one when there is none
// (at the start, and after an error that may mean the partition's leader
// moved: a new transport starts from fresh metadata).
func (r *txnReader) transport() *kafka.Transport {
	if r.tr == nil {
		r.tr = &kafka.Transport{MetadataTopics: []string{r.topic}}
		if d := r.dialer; d != nil {
			r.tr.Dial, r.tr.TLS, r.tr.SASL, r.tr.ClientID = d.DialFunc, d.TLS, d.SASLMechanism, d.ClientID
			if d.Timeout > 0 {
				r.tr.DialTimeout = d.Timeout
			}
		}
	}
	return r.tr
}

// reset drops the transport, its connections and its metadata.
func (r *txnReader) reset() {
	if r.tr != nil {
		r.tr.CloseIdleConnections()
		r.tr = nil
	}
}

// Close implements partitionReader.
func (r *txnReader) Close() error {
	r.reset()
	return nil
}

func (r *txnReader) isolation() kafka.IsolationLevel {
	if r.committed {
		return kafka.ReadCommitted
	}
	return kafka.ReadUncommitted
}

// offsets returns the partition's log start offset and its end (the last
// stable offset when reading committed records).
func (r *txnReader) offsets(ctx context.Context) (first, last int64, err error) {
	cl := &kafka.Client{Addr: r.addr, Transport: r.transport(), Timeout: 30 * time.Second}
	res, err := cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{
		Topics:         map[string][]kafka.OffsetRequest{r.topic: {kafka.FirstOffsetOf(r.partition), kafka.LastOffsetOf(r.partition)}},
		IsolationLevel: r.isolation(),
	})
	if err != nil {
		r.reset()
		return 0, 0, fmt.Errorf("list offsets: %w", err)
	}
	for _, po := range res.Topics[r.topic] {
		if po.Partition != r.partition {
			continue
		}
		if po.Error != nil {
			r.reset()
			return 0, 0, fmt.Errorf("list offsets: %w", po.Error)
		}
		return po.FirstOffset, po.LastOffset, nil
	}
	return 0, 0, fmt.Errorf("list offsets: no answer for partition %d", r.partition)
}

// Fetch implements partitionReader.
func (r *txnReader) Fetch(ctx context.Context, offset int64) (fetched, error) {
	if offset < 0 {
		first, last, err := r.offsets(ctx)
		if err != nil {
			return fetched{}, err
		}
		if offset == kafka.LastOffset {
			offset = last
		} else {
			offset = first
		}
	}
	// The broker answers within maxWait; the rest is for a slow network.
	rctx, cancel := context.WithTimeout(ctx, r.maxWait+30*time.Second)
	defer cancel()
	m, err := r.transport().RoundTrip(rctx, r.addr, &fetchAPI.Request{
		ReplicaID:      -1,
		MaxWaitTime:    int32(r.maxWait.Milliseconds()),
		MinBytes:       1,
		MaxBytes:       r.maxBytes,
		IsolationLevel: int8(r.isolation()),
		SessionID:      -1,
		SessionEpoch:   -1,
		Topics: []fetchAPI.RequestTopic{{
			Topic: r.topic,
			Partitions: []fetchAPI.RequestPartition{{
				Partition:          int32(r.partition),
				CurrentLeaderEpoch: -1,
				FetchOffset:        offset,
				LogStartOffset:     -1,
				PartitionMaxBytes:  r.maxBytes,
			}},
		}},
	})
	if err != nil {
		r.reset()
		return fetched{}, fmt.Errorf("fetch at offset %d: %w", offset, err)
	}
	res := m.(*fetchAPI.Response)
	if res.ErrorCode != 0 {
		r.reset()
		return fetched{}, fmt.Errorf("fetch at offset %d: %w", offset, kafka.Error(res.ErrorCode))
	}
	var part *fetchAPI.ResponsePartition
	for i := range res.Topics {
		for j := range res.Topics[i].Partitions {
			if p := &res.Topics[i].Partitions[j]; res.Topics[i].Topic == r.topic && int(p.Partition) == r.partition {
				part = p
			}
		}
	}
	if part == nil {
		r.reset()
		return fetched{}, fmt.Errorf("fetch at offset %d: no answer for the partition", offset)
	}
	switch code := kafka.Error(part.ErrorCode); {
	case part.ErrorCode == 0:
	case errors.Is(code, kafka.OffsetOutOfRange):
		return r.outOfRange(ctx, offset)
	default:
		// Not the leader, unknown partition, leader epoch fenced, ...: the
		// next fetch starts from fresh metadata.
		r.reset()
		return fetched{}, fmt.Errorf("fetch at offset %d: %w", offset, code)
	}
	f := fetched{from: offset, next: offset, highWater: part.HighWatermark}
	if r.committed && part.LastStableOffset >= 0 {
		f.highWater = part.LastStableOffset
	}
	var aborted []fetchAPI.ResponseTransaction
	if r.committed {
		aborted = part.AbortedTransactions
	}
	if err := readBatches(part.RecordSet.Records, aborted, r.topic, r.partition, f.highWater, &f); err != nil {
		return fetched{}, fmt.Errorf("fetch at offset %d: %w", offset, err)
	}
	if f.next == offset && part.RecordSet.Records != nil && part.HighWatermark > offset {
		// Batches came, but none holds a record at or after offset: the
		// offset is in a batch emptied by compaction, whose extent kafka-go
		// does not tell. Step over it.
		f.next = offset + 1
	}
	return f, nil
}

// outOfRange handles a fetch at an offset the partition does not have, as
// kafka.Reader does: before the log start (the records were deleted by
// retention), the reader goes on from the log start, with a warning; past
// the end, it is an error, retried (the fetch loop backs off).
func (r *txnReader) outOfRange(ctx context.Context, offset int64) (fetched, error) {
	first, last, err := r.offsets(ctx)
	if err != nil {
		return fetched{}, fmt.Errorf("fetch at offset %d: out of range, and: %w", offset, err)
	}
	if offset < first {
		r.warn.warn("offset before the start of the partition, skipping to the start", "offset", offset, "log_start", first, "skipped", first-offset)
		return fetched{from: offset, next: first}, nil
	}
	return fetched{}, fmt.Errorf("fetch at offset %d: past the end of the partition (%d): %w", offset, last, kafka.OffsetOutOfRange)
}

// readBatches appends to f the records of rs at or after f.from that are
// not control records and, when aborted lists the partition's aborted
// transactions (read_committed), not in one of them; f.next goes past
// every offset read, kept or not.
//
// A transaction of producer P aborted from offset O covers P's
// transactional batches from O up to P's abort marker: the batches are
// read in offset order, an aborted transaction starts counting at the
// first batch at or after its first offset, and P's abort marker ends it.
func readBatches(rs protocol.RecordReader, aborted []fetchAPI.ResponseTransaction, topic string, partition int, highWater int64, f *fetched) error {
	stream, ok := rs.(*protocol.RecordStream)
	if !ok {
		if rs == nil {
			return nil
		}
		stream = &protocol.RecordStream{Records: []protocol.RecordReader{rs}}
	}
	aborted = slices.Clone(aborted)
	slices.SortFunc(aborted, func(a, b fetchAPI.ResponseTransaction) int { return cmp.Compare(a.FirstOffset, b.FirstOffset) })
	abortedBy := map[int64]bool{} // producers in an aborted transaction
	see := func(offset int64) {
		if offset >= f.next {
			f.next = offset + 1
		}
	}
	for _, b := range stream.Records {
		switch b := b.(type) {
		case *protocol.ControlBatch:
			for {
				rec, err := b.ReadRecord()
				if err != nil {
					break
				}
				see(rec.Offset)
				cr, err := protocol.ReadControlRecord(rec)
				if err == nil && cr.Type == controlAbort {
					delete(abortedBy, b.ProducerID)
				}
			}
		case *protocol.RecordBatch:
			for len(aborted) > 0 && aborted[0].FirstOffset <= b.BaseOffset {
				abortedBy[aborted[0].ProducerID] = true
				aborted = aborted[1:]
			}
			drop := b.Attributes.Transactional() && abortedBy[b.ProducerID]
			if err := readRecords(b, drop, topic, partition, highWater, f, see); err != nil {
				return err
			}
		default: // v0 and v1 message sets: never transactional
			if err := readRecords(b, false, topic, partition, highWater, f, see); err != nil {
				return err
			}
		}
	}
	return nil
}

// controlAbort is the type of an abort marker's control record (a commit
// marker is 1).
const controlAbort = 0

// readRecords appends the records of batch b at or after f.from to f.msgs,
// unless drop; see is called with every offset.
func readRecords(b protocol.RecordReader, drop bool, topic string, partition int, highWater int64, f *fetched, see func(int64)) error {
	for {
		rec, err := b.ReadRecord()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read a record: %w", err)
		}
		if rec.Offset < f.from {
			closeRecord(rec)
			continue
		}
		see(rec.Offset)
		if drop {
			closeRecord(rec)
			continue
		}
		key, err := protocol.ReadAll(rec.Key)
		if err != nil {
			return fmt.Errorf("read the key of offset %d: %w", rec.Offset, err)
		}
		value, err := protocol.ReadAll(rec.Value)
		if err != nil {
			return fmt.Errorf("read the value of offset %d: %w", rec.Offset, err)
		}
		closeRecord(rec)
		f.msgs = append(f.msgs, kafka.Message{
			Topic: topic, Partition: partition, Offset: rec.Offset, HighWaterMark: highWater,
			Key: key, Value: value, Headers: slices.Clone(rec.Headers), Time: rec.Time,
		})
	}
}

// closeRecord releases the buffers of rec's key and value.
func closeRecord(rec *protocol.Record) {
	if rec.Key != nil {
		rec.Key.Close()
	}
	if rec.Value != nil {
		rec.Value.Close()
	}
}
