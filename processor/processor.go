// Package processor consumes user events from Kafka, enriches each with the
// official accounts its user subscribes to, and publishes one enriched
// record (or one dead-letter record) per event: at least once, in offset
// order per key, with many keys in flight at once, traced end to end.
//
// A record passes one file per stage, in order:
//
//   - fetch.go: a fetch loop per assigned partition reads records in offset
//     order and submits them to the partition's Claim;
//   - decode.go: the record's user id and ordering key, or a DecodeError;
//   - schedule.go: the Claim orders records per key and bounds the records
//     in flight (backpressure to the fetch);
//   - enrich.go: the user's subscriptions from a bounded cache or one
//     coalesced API call, retried while the API is unavailable;
//   - encode.go: the output record, or the dead-letter record;
//   - publish.go: written to the output or DLQ topic, acknowledged by all
//     in-sync replicas;
//   - commit.go: marked done in the partition's watermark, which the
//     source commits and which never passes a record that is not published.
//
// pipeline.go owns the lifecycle around them: for each Assignment of a
// Source (source.go) it runs the fetch loops, the commit ticker, the drain
// on revocation or shutdown, the release and the final commit. The sources
// are the consumer group (group.go), fed to the pipeline by a Processor,
// and the Replay (replay.go): a bounded, resumable read of a time or offset
// range of the input topic.
package processor

import (
	"context"
)

// Processor is the enrichment service: a Pipeline fed by the consumer
// group of Config.Group. Create it with New and run it with Run once.
type Processor struct {
	pipe *Pipeline
	src  *GroupSource
}

// New returns a processor enriching with f, fed by the consumer group
// Config.Group.
func New(cfg Config, f Fetcher) (*Processor, error) {
	if f == nil {
		return nil, &ConfigError{Field: "Fetcher", Reason: "is nil"}
	}
	p, err := newProcessor(cfg, func(c Config) lookupFunc { return fetcherLookup(f, c.Now) })
	if err != nil {
		return nil, err
	}
	p.pipe.paceLookups(f)
	return p, nil
}

// newProcessor validates cfg and wires a pipeline enriching with fetch to
// a group source.
func newProcessor(cfg Config, fetch func(Config) lookupFunc) (*Processor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	pipe, err := newPipeline(cfg, fetch(cfg), newWriter(cfg))
	if err != nil {
		return nil, err
	}
	return &Processor{pipe: pipe, src: NewGroupSource(cfg)}, nil
}

// Run consumes until ctx is canceled, then stops fetching, finishes the
// records in flight (within Config.ShutdownTimeout), flushes, commits and
// returns nil. On an app-fatal API answer it stops the same way and returns
// the *FatalError. See Pipeline.Run.
func (p *Processor) Run(ctx context.Context) error { return p.pipe.Run(ctx, p.src) }

// Close releases the processor's resources. Run closes them on return;
// Close is for a processor that is never run. Safe to call more than once.
func (p *Processor) Close() error { return p.pipe.Close() }

// Ready reports whether the processor has joined its group and owns its
// partitions.
func (p *Processor) Ready() bool { return p.src.Ready() }

// Stats returns a snapshot of the processor's counters.
func (p *Processor) Stats() Stats { return p.pipe.Stats() }

// Stalled reports the partitions that hold input and have not moved for
// Config.StallTimeout (see Pipeline.Stalled); nil when none.
func (p *Processor) Stalled() error { return p.pipe.Stalled() }

// Joined returns nil once the processor is a member of its group's
// current generation, or why it is not: not joined yet, with the last
// failure to join (brokers unreachable, for example).
func (p *Processor) Joined() error { return p.src.Joined() }
