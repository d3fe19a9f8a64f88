package processor

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tencentchat-enricher/enricher/client"
	"github.com/tencentchat-enricher/enricher/client/simulator"
	"github.com/tencentchat-enricher/enricher/internal/testsupport"
	"github.com/tencentchat-enricher/enricher/schemas"
)

// countingFetcher counts the processor's lookups and notes when the first
// one succeeds after arm.
type countingFetcher struct {
	*client.Client
	lookups atomic.Int64
	armed   atomic.Bool
	firstOK atomic.Int64 // unix nanos of the first success after arm
}

func (f *countingFetcher) GetAll(ctx context.Context, user string) (*client.Subscriptions, error) {
	f.lookups.Add(1)
	subs, err := f.Client.GetAll(ctx, user)
	if err == nil && f.armed.Load() {
		f.firstOK.CompareAndSwap(0, time.Now().UnixNano())
	}
	return subs, err
}

// outageResult is what outageRecovery measured.
type outageResult struct {
	lag     time.Duration // from the outage's end to the first lookup answered
	lookups int64         // the processor's lookups during the outage
	calls   int           // calls the API received during the outage
	waiting int           // records waiting for the API during the outage
}

// outageRecovery runs a processor with the client's default retry and
// breaker settings through an API outage of d, with records of users not
// looked up yet arriving delay after it starts (which moves the breaker's
// probes relative to its end), and checks that every record is enriched
// once after it.
func outageRecovery(t testing.TB, d, delay time.Duration) outageResult {
	srv, _ := startSimulator(t, simulator.GenConfig{Seed: 9, Users: 300, UnknownShare: -1}, simulator.Faults{})
	c := startCluster(t, 2)
	const n, before = 300, 50
	msgs := userEvents(0, n, 0, simulator.UserID)
	c.produce(msgs[:before])
	f := &countingFetcher{Client: newClient(t, srv, nil)}
	p := newSimProcessor(t, c.config("outage"), f)
	run := runProcessor(t, p)
	waitCommitted(t, p, c.endOffsets())

	if err := srv.SetFaults(simulator.Faults{OutageFor: d}); err != nil {
		t.Fatal(err)
	}
	end := time.Now().Add(d)
	f.armed.Store(true)
	lookups0, calls0 := f.lookups.Load(), srv.Stats().Total
	<-time.After(delay)
	c.produce(msgs[before:])
	testsupport.WaitFor(t, d+time.Minute, "a lookup answered after the outage", func() bool { return f.firstOK.Load() != 0 })
	res := outageResult{
		lag:     time.Unix(0, f.firstOK.Load()).Sub(end),
		lookups: f.lookups.Load() - lookups0,
		calls:   srv.Stats().Total - calls0,
		waiting: n - before,
	}
	waitCommitted(t, p, c.endOffsets())
	if err := run.stop(); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, c, n)
	if st := p.Stats(); st.ByStatus[schemas.StatusOK] != n {
		t.Fatalf("stats %+v", st)
	}
	return res
}

// TestOutageRecovery: after an API outage, lookups resume within the
// breaker's longest open period (2s by default) of its end; during it the
// waiting records do not spin (a few lookups each per open period) and
// the API sees the failing calls that open the breaker, then one probe
// per open period.
func TestOutageRecovery(t *testing.T) {
	const outage = 4 * time.Second
	res := outageRecovery(t, outage, 0)
	t.Logf("outage %s: first lookup answered %s after its end; %d lookups of %d waiting records, %d API calls during it",
		outage, res.lag, res.lookups, res.waiting, res.calls)
	if res.lag > 3*client.DefaultBreakerOpenFor {
		t.Errorf("lookups resumed %s after the outage's end", res.lag)
	}
	// Open periods of 0.5, 1, 2, 2 s: a record asks at most twice per
	// period (once refused by the hold, once behind the probe), plus its
	// first lookup; spinning every 10ms would be hundreds each.
	if max := int64(res.waiting) * 12; res.lookups > max {
		t.Errorf("%d lookups during the outage, more than %d", res.lookups, max)
	}
	// The calls sent before the breaker opens (about a hundred), then one
	// probe per open period; calls that queued for the limiter before it
	// opened are not sent.
	if res.calls > 200 {
		t.Errorf("%d API calls during the outage", res.calls)
	}
}

// BenchmarkOutageRecovery measures the recovery after a 20s API outage:
// the time from its end to the first lookup answered (recovery-s), with the
// records arriving 0 to 1.5s into the outage, so that the breaker's probes
// fall at different times before its end.
func BenchmarkOutageRecovery(b *testing.B) {
	for _, delay := range []time.Duration{0, 500 * time.Millisecond, time.Second, 1500 * time.Millisecond} {
		b.Run("delay="+delay.String(), func(b *testing.B) {
			for range b.N {
				res := outageRecovery(b, 20*time.Second, delay)
				b.ReportMetric(res.lag.Seconds(), "recovery-s")
				b.ReportMetric(float64(res.lookups), "lookups")
				b.ReportMetric(float64(res.calls), "api-calls")
			}
		})
	}
}
