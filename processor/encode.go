package processor

import (
	"context"
	"math/bits"
	"strconv"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/trace"

	"github.com/tencentchat-enricher/enricher/schemas"
)

// This file is the encode stage: an enriched record becomes its output
// message, a failed one its dead-letter message.

// Dead-letter headers, added to the original record's headers.
const (
	HeaderErrorClass      = "enricher-error-class"      // an ErrorClass
	HeaderErrorMessage    = "enricher-error-message"    // human-readable detail
	HeaderSourceTopic     = "enricher-source-topic"     // input topic
	HeaderSourcePartition = "enricher-source-partition" // input partition, decimal
	HeaderSourceOffset    = "enricher-source-offset"    // input offset, decimal
	HeaderAttempts        = "enricher-attempts"         // attempts made before giving up, decimal
	// HeaderOriginalBytes is set, with the input value's size in bytes, on
	// a dead-letter record whose original value is omitted because the
	// record would exceed Config.MaxRecordBytes (read it from the source
	// topic, partition and offset).
	HeaderOriginalBytes = "enricher-original-bytes"
	HeaderSchema        = "enricher-schema" // on output records: schemas.RecordVersion
)

// job is a record enriched (or dead-lettered) and ready to publish, with
// its process span, open until the record is published or given up on.
type job struct {
	r        *record
	ctx      context.Context
	span     trace.Span
	msg      kafka.Message
	status   schemas.Status
	class    ErrorClass
	attempts int
}

// schemaHeader is the HeaderSchema value of every output record, shared
// (kafka-go only reads header values).
var schemaHeader = []byte(schemas.RecordVersion)

// valueBufs are free lists of output record buffers, one per power-of-two
// size: a record's value goes back when the writer has acknowledged it
// (put), so the cached path writes each record into memory that earlier
// ones used. Channels rather than a sync.Pool: a collection does not empty
// them, and putting a slice back allocates nothing. Each list holds what
// MaxInFlight records use at most, and at most valueClassBytes.
type valueBufs [valueClasses]chan []byte

// Buffer sizes: 4 KiB << class, for classes 0 to valueClasses-1 (4 KiB to
// 1 MiB); larger values are not kept.
const (
	minValueShift = 12
	valueClasses  = 9
	// valueClassBytes bounds the memory a free list keeps: fewer large
	// buffers than small ones.
	valueClassBytes = 8 << 20
)

func newValueBufs(n int) *valueBufs {
	var v valueBufs
	for i := range v {
		v[i] = make(chan []byte, min(n, max(valueClassBytes>>(i+minValueShift), 1)))
	}
	return &v
}

// valueClass is the class of the smallest buffer holding n bytes.
func valueClass(n int) int {
	return max(bits.Len(uint(max(n, 1)-1))-minValueShift, 0)
}

// get returns an empty buffer of at least n bytes.
func (v *valueBufs) get(n int) []byte {
	c := valueClass(n)
	if c >= valueClasses {
		return make([]byte, 0, n)
	}
	select {
	case b := <-v[c]:
		return b
	default:
	}
	return make([]byte, 0, 1<<(c+minValueShift))
}

// put returns an acknowledged output record's value. The value must not
// be read afterwards.
func (v *valueBufs) put(b []byte) {
	c := valueClass(cap(b))
	if c >= valueClasses || cap(b) != 1<<(c+minValueShift) {
		return // not one of get's
	}
	select {
	case v[c] <- b[:0]:
	default:
	}
}

// outputMessage builds the enriched record of r: the record around the
// user's encoded enrichment (encoded when it was cached; a lookup with
// status unavailable is encoded here), in a pooled buffer.
func (p *Pipeline) outputMessage(r *record, l lookup, cache schemas.CacheResult) (kafka.Message, error) {
	enc := l.enc
	if enc == nil {
		var err error
		if l, err = encodeEnrichment(l, p.cfg.fields); err != nil {
			return kafka.Message{}, err
		}
		enc = l.enc
	}
	parts := schemas.RecordParts{
		Event: r.msg.Value, Topic: r.msg.Topic, Partition: r.msg.Partition, Offset: r.msg.Offset, Timestamp: r.msg.Time,
		Key: r.msg.Key, NoKey: len(r.msg.Key) == 0, Cache: cache, ProcessedAt: p.cfg.Now(),
	}
	buf := p.values.get(enc.Size() + len(r.msg.Value) + len(r.msg.Topic) + len(r.msg.Key) + 200)
	value, err := enc.AppendRecord(buf, &parts)
	if err != nil {
		p.values.put(buf)
		return kafka.Message{}, err
	}
	key := r.msg.Key
	if len(key) == 0 {
		key = []byte(r.userID)
	}
	headers := make([]kafka.Header, 0, len(r.msg.Headers)+1)
	for _, h := range r.msg.Headers {
		if h.Key != HeaderSchema {
			headers = append(headers, h)
		}
	}
	headers = append(headers, kafka.Header{Key: HeaderSchema, Value: schemaHeader})
	return kafka.Message{Topic: p.cfg.OutputTopic, Key: key, Value: value, Headers: headers}, nil
}

// dlqMessage builds the dead-letter record of r: original key, value and
// headers, plus headers naming the error and the source.
func (p *Pipeline) dlqMessage(r *record, class ErrorClass, detail string, attempts int) kafka.Message {
	headers := make([]kafka.Header, 0, len(r.msg.Headers)+8)
	headers = append(headers, r.msg.Headers...)
	c := HeaderCarrier(headers)
	c.Set(HeaderErrorClass, string(class))
	c.Set(HeaderErrorMessage, detail)
	c.Set(HeaderSourceTopic, r.msg.Topic)
	c.Set(HeaderSourcePartition, strconv.Itoa(r.msg.Partition))
	c.Set(HeaderSourceOffset, strconv.FormatInt(r.msg.Offset, 10))
	c.Set(HeaderAttempts, strconv.Itoa(attempts))
	return kafka.Message{Topic: p.cfg.DLQTopic, Key: r.msg.Key, Value: r.msg.Value, Headers: c}
}
