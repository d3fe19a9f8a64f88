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
// reads only the record-batch headers, so it adds almost nothing to the
// broker's work and nothing to the workload's.
type outputWatch struct {
	topics map[string]bool
	want   int64
	done   chan struct{}

	mu       sync.Mutex
	arrivals []arrival
	total    int64
}

// watchOutput installs a produce observer on c that completes when want
// records have arrived on topics.
func watchOutput(c *kfake.Cluster, want int64, topics ...string) *outputWatch {
	w := &outputWatch{topics: map[string]bool{}, want: want, done: make(chan struct{})}
	for _, t := range topics {
		w.topics[t] = true
	}
	c.ControlKey(int16(kmsg.Produce), w.observe)
	return w
}

// observe counts the records of a produce request; it never handles the
// request, so the broker processes it normally.
func (w *outputWatch) observe(req kmsg.Request) (kmsg.Response, error, bool) {
	pr, ok := req.(*kmsg.ProduceRequest)
	if !ok {
		return nil, nil, false
	}
	var n int64
	for _, t := range pr.Topics {
		if !w.topics[t.Topic] {
			continue
		}
		for _, p := range t.Partitions {
			var b kmsg.RecordBatch
			if b.ReadFrom(p.Records) == nil {
				n += int64(b.NumRecords)
			}
		}
	}
	if n == 0 {
		return nil, nil, false
	}
	now := time.Now()
	w.mu.Lock()
	before := w.total
	w.total += n
	w.arrivals = append(w.arrivals, arrival{at: now, n: n})
	w.mu.Unlock()
	if before < w.want && before+n >= w.want {
		close(w.done)
	}
	return nil, nil, false
}

// Done is closed when the expected number of records has arrived.
func (w *outputWatch) Done() <-chan struct{} { return w.done }

// snapshot returns the arrivals so far and their total.
func (w *outputWatch) snapshot() ([]arrival, int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]arrival(nil), w.arrivals...), w.total
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
