package processor

import (
	"context"
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

// outputMessage builds the enriched record of r.
func (p *Pipeline) outputMessage(r *record, l lookup, cache schemas.CacheResult) (kafka.Message, error) {
	rec := schemas.Record{
		SchemaVersion: schemas.RecordVersion,
		Event:         r.msg.Value,
		Source: schemas.Source{
			Topic:     r.msg.Topic,
			Partition: r.msg.Partition,
			Offset:    r.msg.Offset,
			Timestamp: r.msg.Time,
		},
		Enrichment: schemas.Enrichment{
			Status:           l.status,
			OfficialAccounts: l.accounts,
			TotalCount:       l.total,
			Complete:         l.complete,
			Cache:            cache,
		},
		ProcessedAt: p.cfg.Now(),
	}
	if len(r.msg.Key) > 0 {
		k := string(r.msg.Key)
		rec.Source.Key = &k
	}
	if !l.fetchedAt.IsZero() {
		rec.Enrichment.FetchedAt = &l.fetchedAt
	}
	value, err := rec.Encode(make([]byte, 0, 256+len(r.msg.Value)+200*len(l.accounts)))
	if err != nil {
		return kafka.Message{}, err
	}
	key := r.msg.Key
	if len(key) == 0 {
		key = []byte(r.userID)
	}
	headers := make([]kafka.Header, 0, len(r.msg.Headers)+3)
	headers = append(headers, r.msg.Headers...)
	c := HeaderCarrier(headers)
	c.Set(HeaderSchema, schemas.RecordVersion)
	return kafka.Message{Topic: p.cfg.OutputTopic, Key: key, Value: value, Headers: c}, nil
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
