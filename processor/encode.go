package processor

import (
	"context"
	"strconv"
	"sync"

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

// valueBufs holds output record buffers: a record's value goes back when
// the writer has acknowledged it (releaseValue), so the cached path writes
// each record into memory that the previous ones used.
var valueBufs sync.Pool

// maxPooledValue bounds the buffers kept in valueBufs.
const maxPooledValue = 256 << 10

func valueBuf(n int) []byte {
	if b, ok := valueBufs.Get().(*[]byte); ok && cap(*b) >= n {
		return (*b)[:0]
	} else if ok {
		valueBufs.Put(b)
	}
	return make([]byte, 0, max(n, 4<<10))
}

// releaseValue returns an acknowledged output record's value to the pool.
// The value must not be read afterwards.
func releaseValue(v []byte) {
	if cap(v) == 0 || cap(v) > maxPooledValue {
		return
	}
	v = v[:0]
	valueBufs.Put(&v)
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
	buf := valueBuf(enc.Size() + len(r.msg.Value) + len(r.msg.Topic) + len(r.msg.Key) + 200)
	value, err := enc.AppendRecord(buf, &parts)
	if err != nil {
		releaseValue(buf)
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
