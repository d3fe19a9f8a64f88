package bench

import (
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// arrival is one produce request's worth of records reaching the broker.
type arrival struct {
	at time.Time
	n  int64
}

// outputWatch observes, inside the broker, produce requests for the output
// topics: when each record arrives (for throughput and latency) and when
// all expected records have arrived (for the end of the measurement). It
// reads only record-batch headers.
//
// It also acknowledges those requests itself, with consecutive offsets,
// without storing the records: enriched records are far larger than input
// events (13 KB on average for the warm scenario), and a million of them
// would otherwise pile up in the broker's memory. Nothing reads the output
// topics back, and the ceiling's copies are treated the same way. With
// trackSources it also decodes each record to find which input record it
// is a copy of (copies.go).
type outputWatch struct {
	topics map[string]bool
	want   int64
	done   chan struct{}

	mu       sync.Mutex
	arrivals []arrival
	total    int64
	bytes    int64
	byTopic  map[string]int64
	next     map[string]map[int32]int64 // next offset per topic and partition
	copies   *copyCount                 // set by trackSources
}

// watchOutput installs the produce observer on c; Done closes when want
// records have arrived on topics.
func watchOutput(c *kfake.Cluster, want int64, topics ...string) *outputWatch {
	w := &outputWatch{topics: map[string]bool{}, want: want, done: make(chan struct{}),
		byTopic: map[string]int64{}, next: map[string]map[int32]int64{}}
	for _, t := range topics {
		w.topics[t] = true
		w.next[t] = map[int32]int64{}
	}
	w.install(c)
	return w
}

// install installs the observer on c: once at the start, and again on the
// new cluster of a restarted broker.
func (w *outputWatch) install(c *kfake.Cluster) {
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) { return w.observe(c, req) })
}

// trackSources makes the watch count the copies of each input record, by
// the source partition and offset of each output or DLQ record, with
// output the output topic: an arrival then counts only first copies, and
// Done closes when want distinct input records have arrived.
func (w *outputWatch) trackSources(output string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.copies = newCopyCount(output)
}

// observe counts and acknowledges a produce request that writes only to
// watched topics; any other request is left to the broker.
func (w *outputWatch) observe(c *kfake.Cluster, req kmsg.Request) (kmsg.Response, error, bool) {
	pr, ok := req.(*kmsg.ProduceRequest)
	if !ok || len(pr.Topics) == 0 || pr.Acks == 0 {
		return nil, nil, false
	}
	for _, t := range pr.Topics {
		if !w.topics[t.Topic] {
			return nil, nil, false
		}
	}
	now := time.Now()
	resp := pr.ResponseKind().(*kmsg.ProduceResponse)
	var n, size int64
	w.mu.Lock()
	for _, t := range pr.Topics {
		rt := kmsg.NewProduceResponseTopic()
		rt.Topic, rt.TopicID = t.Topic, t.TopicID
		for _, p := range t.Partitions {
			rp := kmsg.NewProduceResponseTopicPartition()
			rp.Partition = p.Partition
			var b kmsg.RecordBatch
			err := b.ReadFrom(p.Records)
			if err != nil {
				rp.ErrorCode = 2 // CORRUPT_MESSAGE
				rt.Partitions = append(rt.Partitions, rp)
				continue
			}
			records := int64(b.NumRecords)
			if w.copies != nil {
				if records, err = w.copies.add(t.Topic, &b); err != nil {
					rp.ErrorCode = 2 // CORRUPT_MESSAGE
					rt.Partitions = append(rt.Partitions, rp)
					continue
				}
			}
			rp.BaseOffset = w.next[t.Topic][p.Partition]
			rp.LogAppendTime = -1
			w.next[t.Topic][p.Partition] += int64(b.NumRecords)
			w.byTopic[t.Topic] += int64(b.NumRecords)
			n += records
			size += int64(len(p.Records))
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	before := w.total
	w.total += n
	w.bytes += size
	if n > 0 {
		w.arrivals = append(w.arrivals, arrival{at: now, n: n})
	}
	w.mu.Unlock()
	if before < w.want && before+n >= w.want {
		close(w.done)
	}

	c.KeepControl()
	return resp, nil, true
}

// Done is closed when the expected number of records has arrived.
func (w *outputWatch) Done() <-chan struct{} { return w.done }

// arrived is the number of records that arrived (with trackSources: of
// distinct input records).
func (w *outputWatch) arrived() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.total
}

// disrupted starts a new phase of the copy count: the copies that arrive
// from now on are counted against the disruption that begins now.
func (w *outputWatch) disrupted() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.copies != nil {
		w.copies.phase()
	}
}

// redelivery returns the copy count's account (nil without trackSources).
func (w *outputWatch) redelivery(want int64) *RedeliveryResult {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.copies == nil {
		return nil
	}
	return w.copies.result(want)
}

// snapshot returns the arrivals so far and their total (with trackSources:
// of first copies).
func (w *outputWatch) snapshot() ([]arrival, int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]arrival(nil), w.arrivals...), w.total
}

// counts returns the records that arrived on topic (every copy) and the
// record-batch bytes of all watched topics.
func (w *outputWatch) counts(topic string) (records, bytes int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.byTopic[topic], w.bytes
}

// completion returns when the want-th record arrived (zero if it has not)
// and the time at which the fraction q of want had arrived, for each q.
func completion(arrivals []arrival, want int64, qs ...float64) (end time.Time, at []time.Time) {
	at = make([]time.Time, len(qs))
	var sum int64
	for _, a := range arrivals {
		prev := sum
		sum += a.n
		for i, q := range qs {
			k := int64(q * float64(want))
			if k < 1 {
				k = 1
			}
			if prev < k && sum >= k {
				at[i] = a.at
			}
		}
		if prev < want && sum >= want {
			end = a.at
		}
	}
	return end, at
}
