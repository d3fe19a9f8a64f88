package processor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tencentchat-enricher/enricher/schemas"
)

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

// publisher is what the sink needs from a kafka.Writer.
type publisher interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
	Close() error
}

// newWriter returns the writer of output and DLQ records: topic per
// message, key-hashed partitions (same key, same partition), RequiredAcks
// all, batches of BatchSize records or BatchTimeout, records up to
// MaxRecordBytes.
func newWriter(cfg Config) *kafka.Writer {
	w := &kafka.Writer{
		Addr:                   kafka.TCP(cfg.Brokers...),
		Balancer:               &kafka.Hash{},
		RequiredAcks:           kafka.RequireAll,
		BatchSize:              cfg.BatchSize,
		BatchTimeout:           cfg.BatchTimeout,
		BatchBytes:             int64(cfg.MaxRecordBytes),
		AllowAutoTopicCreation: cfg.AutoCreateTopics,
	}
	if cfg.Transport != nil {
		w.Transport = cfg.Transport
	}
	return w
}

// unknownTopicAttempts is how many writes in a row must fail with
// UnknownTopicOrPartition (without AutoCreateTopics) before the topic is
// taken to be missing rather than still being created or moved.
const unknownTopicAttempts = 5

// writeError is a permanent failure to write a record: retrying cannot
// help.
type writeError struct {
	tooLarge bool // the record exceeds Config.MaxRecordBytes or the topic's limit
	err      error
}

func (e *writeError) Error() string { return e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// classifyWrite returns the kafka-go error of a one-message write (the
// element of a WriteErrors) and whether it is permanent and why.
func (p *Pipeline) classifyWrite(err error, attempt int) (permanent, tooLarge bool) {
	var we kafka.WriteErrors
	if errors.As(err, &we) {
		for _, e := range we {
			if e != nil {
				err = e
				break
			}
		}
	}
	var mtl kafka.MessageTooLargeError
	switch {
	case errors.As(err, &mtl), errors.Is(err, kafka.MessageSizeTooLarge):
		return true, true
	case errors.Is(err, kafka.TopicAuthorizationFailed), errors.Is(err, kafka.InvalidTopic),
		errors.Is(err, kafka.ClusterAuthorizationFailed):
		return true, false
	case errors.Is(err, kafka.UnknownTopicOrPartition):
		return !p.cfg.AutoCreateTopics && attempt >= unknownTopicAttempts, false
	}
	return false, false
}

// publish writes msgs in one call per attempt, retrying transient failures
// with backoff until every message is acknowledged or ctx ends; a record is
// not given up on for a transient failure, as its offset must not be
// committed before it is published. It returns how many leading messages
// were acknowledged and, if not all were, the error of the first one that
// was not: ctx's error, or a *writeError for a permanent failure.
//
// kafka-go reports one error per message (kafka.WriteErrors). A retry
// writes again from the first failed message onward, in order, including
// later messages that were acknowledged: those are duplicated, but a
// message is never written after a later one of the same call (callers
// pass the records of one key in offset order, so reordering would break
// the key's order, while duplicates are within at-least-once). An error
// of the whole call that cannot be attributed to one message (such as a
// kafka.MessageTooLargeError, which writes nothing) is, when permanent,
// attributed by bisection: the rest of the call is written in halves
// until one message alone fails.
func (p *Pipeline) publish(ctx context.Context, msgs []kafka.Message) (int, error) {
	backoff := 50 * time.Millisecond
	done, attempt, limit := 0, 1, len(msgs)
	for done < len(msgs) {
		batch := msgs[done:]
		batch = batch[:min(len(batch), limit)]
		err := p.out.WriteMessages(ctx, batch...)
		if err == nil {
			done += len(batch)
			attempt, backoff = 1, 50*time.Millisecond
			continue
		}
		if ctx.Err() != nil {
			return done, ctx.Err()
		}
		failed, ferr := firstFailure(err, len(batch))
		if failed < 0 {
			if permanent, _ := p.classifyWrite(ferr, attempt); permanent && len(batch) > 1 {
				limit = len(batch) / 2
				continue
			}
			failed = 0
		}
		if failed > 0 {
			// Progress: the messages before the first failure are
			// acknowledged; the failure is counted afresh.
			done += failed
			attempt, backoff = 1, 50*time.Millisecond
		}
		if permanent, tooLarge := p.classifyWrite(ferr, attempt); permanent {
			return done, &writeError{tooLarge: tooLarge, err: fmt.Errorf("write to %s: %w", msgs[done].Topic, ferr)}
		}
		p.cfg.Logger.Warn("publish failed, retrying", "topic", msgs[done].Topic, "error", ferr, "backoff", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return done, ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, 5*time.Second)
		attempt++
	}
	return done, nil
}

// firstFailure returns the index of the first message of an n-message
// write that err reports as failed, and that message's error; the index is
// -1 when err is not a per-message kafka.WriteErrors of the call.
func firstFailure(err error, n int) (int, error) {
	var we kafka.WriteErrors
	if !errors.As(err, &we) || len(we) != n {
		return -1, err
	}
	for i, e := range we {
		if e != nil {
			return i, e
		}
	}
	return -1, err
}

// writeFatal is the *FatalError of a permanent write failure to topic.
func (p *Pipeline) writeFatal(topic string, err error) *FatalError {
	setting := "the output topic (--output-topic, Config.OutputTopic): it must exist and this client must be allowed to write it (ACLs)"
	if topic == p.cfg.DLQTopic {
		setting = "the dead-letter topic (--dlq-topic, Config.DLQTopic): it must exist, this client must be allowed to write it (ACLs), and its max.message.bytes must allow MaxRecordBytes"
	}
	return &FatalError{Topic: topic, Setting: setting, Err: err}
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
