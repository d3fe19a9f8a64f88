package processor

import (
	"context"
	"strconv"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/tencentchat-enricher/enricher/schemas"
)

const instrumentationName = "github.com/tencentchat-enricher/enricher/processor"

// Metric attribute keys.
var (
	attrStatus     = attribute.Key("enrichment.status")
	attrErrorClass = attribute.Key("error.type")
	attrTopic      = attribute.Key("messaging.destination.name")
	attrPartition  = attribute.Key("messaging.destination.partition.id")
	attrCache      = attribute.Key("enrichment.cache")
	attrCacheLayer = attribute.Key("enrichment.cache.layer")
	attrRetryAfter = attribute.Key("enrichment.retry_after")
	attrChange     = attribute.Key("enrichment.change.outcome")
)

// metrics are the pipeline's OTel instruments plus the counters behind
// Stats. Telemetry never fails the data path: instrument creation errors
// leave no-op instruments.
type metrics struct {
	// The per-record counters are atomics, observed by the instruments at
	// collection: a record costs atomic adds and two histogram
	// measurements, not a call into the metrics SDK per counter.
	latency      metric.Float64Histogram // input timestamp to publish ack
	processing   metric.Float64Histogram // fetch to publish ack
	changes      metric.Int64Counter     // users' cached lists changed by ApplyChange, by outcome
	nChanges     [len(changeOutcomeNames)]atomic.Int64
	registration metric.Registration
	refreshReg   metric.Registration
	nIn, nOut    atomic.Int64
	nDLQ         atomic.Int64
	nInFlight    atomic.Int64
	nSkipped     atomic.Int64
	nOverflows   atomic.Int64
	byStatus     [4]atomic.Int64               // indexed by statusIndex
	byClass      [len(classes)]atomic.Int64    // indexed by classIndex
	byLayer      [len(layerNames)]atomic.Int64 // cache answers, layerAPI the misses
}

// Attribute sets of the per-record measurements, built once: a record
// adds to a counter without building a set.
var (
	statusAttrs = func() (o [len(statuses)]metric.ObserveOption) {
		for i, s := range statuses {
			o[i] = metric.WithAttributeSet(attribute.NewSet(attrStatus.String(string(s))))
		}
		return o
	}()
	classAttrs = func() (o [len(classes)]metric.ObserveOption) {
		for i, c := range classes {
			o[i] = metric.WithAttributeSet(attribute.NewSet(attrErrorClass.String(string(c))))
		}
		return o
	}()
	layerAttrs = func() (o [len(layerNames)]metric.ObserveOption) {
		for i, n := range layerNames {
			o[i] = metric.WithAttributeSet(attribute.NewSet(attrCacheLayer.String(n)))
		}
		return o
	}()
)

var statuses = [...]schemas.Status{schemas.StatusOK, schemas.StatusUserNotFound, schemas.StatusInvalidUser, schemas.StatusUnavailable}
var classes = [...]ErrorClass{ClassTooLarge, ClassNotJSON, ClassNotObject, ClassMissingUserID, ClassInvalidUserID, ClassEnrichment,
	ClassEnrichmentUnavailable, ClassEncodeFailed, ClassOutputTooLarge}

func statusIndex(s schemas.Status) int {
	for i, x := range statuses {
		if x == s {
			return i
		}
	}
	return 0
}

func classIndex(c ErrorClass) int {
	for i, x := range classes {
		if x == c {
			return i
		}
	}
	return len(classes) - 1
}

func newMetrics(mp metric.MeterProvider, p *Pipeline) *metrics {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter(instrumentationName)
	x := &metrics{}
	in, _ := m.Int64ObservableCounter("enricher.records.in", metric.WithDescription("Input records fetched."), metric.WithUnit("{record}"))
	out, _ := m.Int64ObservableCounter("enricher.records.out", metric.WithDescription("Enriched records published, by enrichment.status."), metric.WithUnit("{record}"))
	dlq, _ := m.Int64ObservableCounter("enricher.records.dlq", metric.WithDescription("Records published to the dead-letter topic, by error.type."), metric.WithUnit("{record}"))
	hits, _ := m.Int64ObservableCounter("enricher.cache.hits", metric.WithDescription("Enrichments served from a cache, by enrichment.cache.layer: local, shared (another process fetched it) or stale."))
	misses, _ := m.Int64ObservableCounter("enricher.cache.misses", metric.WithDescription("Enrichments that needed the API (or a coalesced call)."))
	inflight, _ := m.Int64ObservableUpDownCounter("enricher.records.inflight", metric.WithDescription("Records fetched and not yet published."), metric.WithUnit("{record}"))
	x.latency, _ = m.Float64Histogram("enricher.record.latency", metric.WithDescription("End-to-end latency: input record timestamp to output acknowledged."), metric.WithUnit("s"))
	x.processing, _ = m.Float64Histogram("enricher.record.duration", metric.WithDescription("Processing time: fetched to output acknowledged."), metric.WithUnit("s"))
	skipped, _ := m.Int64ObservableCounter("enricher.records.skipped_published", metric.WithDescription("Records skipped on assignment because an earlier owner of the partition had published them (commit metadata)."), metric.WithUnit("{record}"))
	overflows, _ := m.Int64ObservableCounter("enricher.commit.metadata_overflows", metric.WithDescription("Commits whose completed set did not fit the commit metadata: the longest prefix that fits was committed."))
	x.changes, _ = m.Int64Counter("enricher.cache.changes", metric.WithDescription("Subscription changes (webhooks) applied to a user's cached list, by enrichment.change.outcome: patched, invalidated, unchanged, uncached or ignored (duplicate or late)."), metric.WithUnit("{user}"))
	refreshes, _ := m.Int64ObservableCounter("enricher.cache.refreshes", metric.WithDescription("Background refreshes of entries older than --cache-refresh-after."))
	if refreshes != nil {
		x.refreshReg, _ = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
			o.ObserveInt64(refreshes, p.enr.refreshed.Load())
			return nil
		}, refreshes)
	}
	lag, _ := m.Int64ObservableGauge("enricher.consumer.lag", metric.WithDescription("High watermark minus committed offset, per partition."), metric.WithUnit("{record}"))
	committed, _ := m.Int64ObservableGauge("enricher.consumer.committed_offset", metric.WithDescription("Last committed offset (the contiguous published watermark), per partition."))
	ratio, _ := m.Float64ObservableGauge("enricher.cache.hit_ratio", metric.WithDescription("Cache hits over lookups since start."))
	oldest, _ := m.Float64ObservableGauge("enricher.partition.oldest_unfinished_age", metric.WithDescription("Age of the oldest record fetched and not yet behind the commit watermark, per partition (0 when none)."), metric.WithUnit("s"))
	observed := []metric.Observable{in, out, dlq, hits, misses, inflight, skipped, overflows, lag, committed, ratio, oldest}
	for _, o := range observed {
		if o == nil {
			return x // a failed instrument: no counters exported, the data path unaffected
		}
	}
	x.registration, _ = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(in, x.nIn.Load())
		o.ObserveInt64(inflight, x.nInFlight.Load())
		for i := range x.byStatus {
			if n := x.byStatus[i].Load(); n > 0 {
				o.ObserveInt64(out, n, statusAttrs[i])
			}
		}
		for i := range x.byClass {
			if n := x.byClass[i].Load(); n > 0 {
				o.ObserveInt64(dlq, n, classAttrs[i])
			}
		}
		for l := range x.byLayer {
			n := x.byLayer[l].Load()
			switch {
			case layer(l) == layerAPI:
				o.ObserveInt64(misses, n)
			case n > 0:
				o.ObserveInt64(hits, n, layerAttrs[l])
			}
		}
		o.ObserveInt64(skipped, x.nSkipped.Load())
		o.ObserveInt64(overflows, x.nOverflows.Load())
		for _, ps := range p.partitionStats() {
			attrs := metric.WithAttributes(attrTopic.String(ps.Topic), attrPartition.String(strconv.Itoa(ps.Partition)))
			if ps.Committed >= 0 {
				o.ObserveInt64(committed, ps.Committed, attrs)
			}
			if ps.Lag >= 0 {
				o.ObserveInt64(lag, ps.Lag, attrs)
			}
			o.ObserveFloat64(oldest, ps.OldestUnfinished.Seconds(), attrs)
		}
		o.ObserveFloat64(ratio, p.enr.hitRatio())
		return nil
	}, observed...)
	return x
}

func (m *metrics) change(ctx context.Context, o ChangeOutcome) {
	m.nChanges[o].Add(1)
	if m.changes != nil {
		m.changes.Add(ctx, 1, metric.WithAttributes(attrChange.String(o.String())))
	}
}

func (m *metrics) recordIn(context.Context) {
	m.nIn.Add(1)
	m.nInFlight.Add(1)
}

func (m *metrics) recordSkippedPublished(context.Context) { m.nSkipped.Add(1) }

func (m *metrics) recordMetadataOverflow() { m.nOverflows.Add(1) }

func (m *metrics) recordDone(context.Context) { m.nInFlight.Add(-1) }

func (m *metrics) recordOut(ctx context.Context, s schemas.Status, produced, fetched time.Time, now time.Time) {
	m.nOut.Add(1)
	m.byStatus[statusIndex(s)].Add(1)
	m.observeLatency(ctx, produced, fetched, now)
}

func (m *metrics) recordDLQ(ctx context.Context, c ErrorClass, produced, fetched time.Time, now time.Time) {
	m.nDLQ.Add(1)
	m.byClass[classIndex(c)].Add(1)
	m.observeLatency(ctx, produced, fetched, now)
}

func (m *metrics) observeLatency(ctx context.Context, produced, fetched, now time.Time) {
	if !produced.IsZero() {
		m.latency.Record(ctx, now.Sub(produced).Seconds())
	}
	m.processing.Record(ctx, now.Sub(fetched).Seconds())
}

func (m *metrics) cache(_ context.Context, l layer) { m.byLayer[l].Add(1) }

func (m *metrics) close() {
	if m.refreshReg != nil {
		_ = m.refreshReg.Unregister()
	}
	if m.registration != nil {
		_ = m.registration.Unregister()
	}
}

// Stats is a snapshot of the processor's counters since start, for summary
// lines and tests.
type Stats struct {
	In, Out, DLQ  int64                    // records fetched, enriched records and DLQ records published
	ByStatus      map[schemas.Status]int64 // enriched records by status
	DLQByClass    map[ErrorClass]int64     // DLQ records by class
	InFlight      int64                    // fetched, not yet published
	CacheHits     int64
	CacheMisses   int64
	CacheHitRatio float64 // hits / (hits + misses); 0 before the first lookup
	// CacheShared and CacheStale count the hits answered by the shared
	// cache and by stale entries (included in CacheHits, by record).
	CacheShared, CacheStale int64
	// CacheChanges counts users' cached lists changed by ApplyChange, by
	// outcome (only outcomes that occurred); CacheRefreshes the background
	// refreshes of entries older than CacheRefreshAfter.
	CacheChanges   map[ChangeOutcome]int64
	CacheRefreshes int64
	// SharedCacheErrors counts failed calls to the shared cache (the
	// process then fetched by itself).
	SharedCacheErrors int64
	APICalls          int64            // lookups that reached the API client (after coalescing)
	Pauses            int64            // times fetching paused because the API was unavailable
	Paused            bool             // fetching is paused now
	Partitions        []PartitionStats // by topic and partition
	// SkippedPublished counts records skipped on assignment because an
	// earlier owner had published them; MetadataOverflows the commits
	// whose completed set did not fit the commit metadata (cut to its
	// longest prefix that fits).
	SkippedPublished, MetadataOverflows int64
}

// PartitionStats describes one partition this processor owns.
type PartitionStats struct {
	Topic     string
	Partition int
	Committed int64 // last committed offset; -1 before the first commit
	Lag       int64 // high watermark minus committed (or fetched) offset; -1 unknown
	Pending   int   // fetched records not yet behind the watermark
	// OldestUnfinished is the age of the oldest record fetched and not
	// yet behind the watermark (published, dead-lettered or skipped); 0
	// when there is none. It grows while the partition does not move.
	OldestUnfinished time.Duration
}
