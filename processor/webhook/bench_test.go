package webhook_test

import (
	"context"
	"encoding/json"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tencentchat-enricher/enricher/client/simulator"
	"github.com/tencentchat-enricher/enricher/internal/testsupport"
	"github.com/tencentchat-enricher/enricher/schemas"
)

// BenchmarkChangeVisible measures, per change, the time from the
// simulator sending the webhook (to the first of two processors sharing
// Redis) to the enriched record of the user's next event, produced right
// after, being built with the changed list (its processed_at), whichever
// processor handles the user. It reports the median, p99 and maximum.
func BenchmarkChangeVisible(b *testing.B) {
	st := startStack(b)
	const parts = 4
	w := &kafka.Writer{Addr: kafka.TCP(st.broker.Addr()), Topic: "in", Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	b.Cleanup(func() { _ = w.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	records := make(chan schemas.Record, 1024)
	for p := range parts {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{st.broker.Addr()}, Topic: "out", Partition: p, MaxWait: 10 * time.Millisecond})
		b.Cleanup(func() { _ = r.Close() })
		go func() {
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					return
				}
				var rec schemas.Record
				if json.Unmarshal(m.Value, &rec) == nil {
					records <- rec
				}
			}
		}()
	}
	send := func(user string, seq int) {
		v, _ := json.Marshal(map[string]any{"user_id": user, "seq": seq})
		if err := w.WriteMessages(ctx, kafka.Message{Key: []byte(user), Value: v}); err != nil {
			b.Fatal(err)
		}
	}
	next := func(seq int) schemas.Record {
		for {
			select {
			case rec := <-records:
				var ev struct {
					Seq int `json:"seq"`
				}
				_ = json.Unmarshal(rec.Event, &ev)
				if ev.Seq == seq {
					return rec
				}
			case <-time.After(30 * time.Second):
				b.Fatalf("no record for event %d", seq)
			}
		}
	}
	// Warm the caches: one event per user.
	for i := range e2eUsers {
		send(simulator.UserID(i), -1-i)
	}
	testsupport.WaitFor(b, 60*time.Second, "warm-up published", func() bool { return topicEnd(b, st.broker.Addr(), "out", parts) >= e2eUsers })

	var lat []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		u := simulator.UserID(i % e2eUsers)
		subs := st.sim.Subscriptions(u)
		if len(subs) == 0 {
			if _, err := st.sim.Subscribe(ctx, u, simulator.AccountPrefix+"oa-1"); err != nil {
				b.Fatal(err)
			}
			subs = st.sim.Subscriptions(u)
		}
		gone := subs[0].OfficialAccount
		t0 := time.Now()
		if _, err := st.sim.Unsubscribe(ctx, u, gone); err != nil {
			b.Fatal(err)
		}
		send(u, i)
		rec := next(i)
		if slices.ContainsFunc(rec.Enrichment.OfficialAccounts, func(a schemas.OfficialAccount) bool { return a.OfficialAccount == gone }) {
			b.Fatalf("event %d of %s after the webhook still lists %s", i, u, gone)
		}
		lat = append(lat, rec.ProcessedAt.Sub(t0))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Milliseconds()), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Milliseconds()), "max-ms")
}
