package processor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// This file is the publish stage: a key's messages are written in order,
// each in a producer span carrying the trace into the output headers, and
// finish decides what a failed write means for the record.

// startSend starts msg's producer span and injects its trace context into
// msg's headers (a new slice: HeaderCarrier.Set never writes into the
// one it is given, so msg's own headers stay as they are). The span's
// attributes are built only when it records.
func (p *Pipeline) startSend(ctx context.Context, msg kafka.Message) (kafka.Message, trace.Span) {
	pctx, pspan := p.tracer.Start(ctx, p.spanNames.get("send ", msg.Topic), spanProducer)
	if pspan.IsRecording() {
		pspan.SetAttributes(
			semconv.MessagingSystemKafka,
			semconv.MessagingOperationTypeSend,
			semconv.MessagingOperationName("send"),
			semconv.MessagingDestinationName(msg.Topic),
			semconv.MessagingKafkaMessageKey(string(msg.Key)),
			semconv.MessagingMessageBodySize(len(msg.Value)),
		)
	}
	h := HeaderCarrier(msg.Headers) // so that msg itself stays on the stack
	p.prop.Inject(pctx, &h)
	msg.Headers = h
	return msg, pspan
}

// send publishes msg alone, in a producer span.
func (p *Pipeline) send(ctx context.Context, msg kafka.Message) error {
	msg, pspan := p.startSend(ctx, msg)
	defer pspan.End()
	_, err := p.publish(ctx, []kafka.Message{msg})
	if err != nil {
		pspan.SetStatus(codes.Error, err.Error())
	}
	return err
}

// sendBatch publishes the messages of jobs in order, each in its own
// producer span, and returns publish's result: how many leading messages
// were acknowledged and the error of the first one that was not.
func (p *Pipeline) sendBatch(ctx context.Context, jobs []*job) (int, error) {
	msgs := make([]kafka.Message, len(jobs))
	spans := make([]trace.Span, len(jobs))
	for i, j := range jobs {
		msgs[i], spans[i] = p.startSend(j.ctx, j.msg)
	}
	n, err := p.publish(ctx, msgs)
	for i, s := range spans {
		if i == n && err != nil {
			s.SetStatus(codes.Error, err.Error())
		}
		s.End()
	}
	return n, err
}

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
		Compression:            compressionCodecs[cfg.OutputCompression],
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
		p.publishLog.warn("publish failed, retrying", "topic", msgs[done].Topic, "error", ferr, "backoff", backoff)
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

// writeFatal is the *TopicError of a permanent write failure to topic.
func (p *Pipeline) writeFatal(topic string, err error) *TopicError {
	field := "OutputTopic"
	if topic == p.cfg.DLQTopic {
		field = "DLQTopic"
	}
	return &TopicError{Topic: topic, Field: field, Err: err}
}

// finish completes j given err, the result of writing j.msg: a record too
// large for its topic is dead-lettered (or written without its value), a
// permanent failure fails the pipeline. It records the metrics, ends j's
// span and reports whether the record was published.
func (p *Pipeline) finish(j *job, err error) bool {
	defer j.span.End()
	r, msg, class, span, ctx := j.r, j.msg, j.class, j.span, j.ctx
	var we *writeError
	if errors.As(err, &we) && we.tooLarge && class == "" {
		// The enriched record cannot be written: dead-letter the input.
		p.cfg.Logger.Warn("enriched record too large, sent to the DLQ", "topic", r.msg.Topic, "partition", r.msg.Partition,
			"offset", r.msg.Offset, "bytes", len(msg.Value), "max_record_bytes", p.cfg.MaxRecordBytes)
		class = ClassOutputTooLarge
		msg = p.dlqMessage(r, class, fmt.Sprintf("enriched record of %d bytes exceeds the record size limit (MaxRecordBytes %d): %v",
			len(msg.Value), p.cfg.MaxRecordBytes, we.err), j.attempts)
		err = p.send(ctx, msg)
	}
	if errors.As(err, &we) && we.tooLarge && msg.Topic == p.cfg.DLQTopic && len(msg.Value) > 0 {
		// The input itself is too large for the DLQ: keep its key and
		// headers, and where to find it.
		(*HeaderCarrier)(&msg.Headers).Set(HeaderOriginalBytes, strconv.Itoa(len(msg.Value)))
		msg.Value = nil
		err = p.send(ctx, msg)
	}
	if class != "" {
		span.SetAttributes(attrErrorClass.String(string(class)))
	} else {
		span.SetAttributes(attrStatus.String(string(j.status)))
	}
	if err != nil {
		if errors.As(err, &we) {
			p.fail(p.writeFatal(msg.Topic, err))
		}
		span.SetStatus(codes.Error, err.Error())
		return false
	}
	now := p.cfg.Now()
	if class != "" {
		p.met.recordDLQ(ctx, class, r.msg.Time, r.fetched, now)
	} else {
		p.met.recordOut(ctx, j.status, r.msg.Time, r.fetched, now)
		if p.recycle {
			// Acknowledged: kafka-go's Writer holds no reference to it.
			p.values.put(msg.Value)
			j.msg.Value = nil
		}
	}
	return true
}
