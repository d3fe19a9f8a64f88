package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tencentchat-enricher/enricher/client"
	"github.com/tencentchat-enricher/enricher/client/simulator"
	"github.com/tencentchat-enricher/enricher/internal/devkafka"
	"github.com/tencentchat-enricher/enricher/internal/redistest"
	"github.com/tencentchat-enricher/enricher/internal/sharedstate"
	"github.com/tencentchat-enricher/enricher/internal/testsupport"
	"github.com/tencentchat-enricher/enricher/processor"
	"github.com/tencentchat-enricher/enricher/processor/sharedcache"
	"github.com/tencentchat-enricher/enricher/processor/webhook"
	"github.com/tencentchat-enricher/enricher/schemas"
)

const (
	devAdmin  = "administrator"
	devSecret = "dev-only-secret-key"
	e2eUsers  = 40
)

// topicRecords reads every record of topic.
func topicRecords(t testing.TB, addr, topic string, parts int) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []kafka.Message
	for p := range parts {
		conn, err := kafka.DialLeader(ctx, "tcp", addr, topic, p)
		if err != nil {
			t.Fatal(err)
		}
		last, err := conn.ReadLastOffset()
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.Close()
		if last == 0 {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: topic, Partition: p, MaxWait: 50 * time.Millisecond})
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, m)
			if m.Offset == last-1 {
				break
			}
		}
		_ = r.Close()
	}
	return out
}

func topicEnd(t testing.TB, addr, topic string, parts int) int64 {
	t.Helper()
	var n int64
	for p := range parts {
		conn, err := kafka.DialLeader(context.Background(), "tcp", addr, topic, p)
		if err != nil {
			t.Fatal(err)
		}
		last, err := conn.ReadLastOffset()
		_ = conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		n += last
	}
	return n
}

// stack is two processors of one group sharing Redis, the simulator, and
// a webhook receiver in front of the first processor.
type stack struct {
	broker *devkafka.Broker
	sim    *simulator.Server
	procs  []*processor.Processor
}

func startStack(t testing.TB) *stack {
	t.Helper()
	rs := redistest.Start(t)
	const parts = 4
	broker, err := devkafka.Start(devkafka.Config{Partitions: parts, Topics: []string{"in", "out", "dlq", "changes"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Close)
	const appID = 1400000001
	sim, err := simulator.NewServer(simulator.Config{SDKAppID: appID, Admin: devAdmin, SecretKey: devSecret, Rate: -1,
		Dataset: simulator.Generate(simulator.GenConfig{Seed: 5, Users: e2eUsers, Accounts: 400, UnknownShare: -1, HeavyShare: -1})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	var procs []*processor.Processor
	for i := range 2 {
		rc := rs.Client()
		store, err := sharedcache.New(sharedcache.Config{Redis: rc, Prefix: sharedstate.CachePrefix(appID), Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = store.Close() })
		api, err := client.New(client.Config{SDKAppID: appID, Admin: devAdmin, SecretKey: devSecret, BaseURL: sim.URL(), Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = api.Close() })
		p, err := processor.New(processor.Config{
			Brokers: []string{broker.Addr()}, InputTopic: "in", OutputTopic: "out", DLQTopic: "dlq", Group: "g",
			CacheTTL: 24 * time.Hour, SharedCache: store, OrderBy: processor.OrderByUser,
			CommitInterval: 20 * time.Millisecond, FetchMaxWait: 50 * time.Millisecond, BatchTimeout: time.Millisecond,
			HeartbeatInterval: 200 * time.Millisecond, RebalanceTimeout: 2 * time.Second, Logger: log.With("proc", i),
		}, api)
		if err != nil {
			t.Fatal(err)
		}
		procs = append(procs, p)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				t.Error(err)
			}
		}()
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	testsupport.WaitFor(t, 60*time.Second, "both processors own partitions", func() bool { return procs[0].Ready() && procs[1].Ready() })

	changes := &kafka.Writer{Addr: kafka.TCP(broker.Addr()), Topic: "changes", Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	t.Cleanup(func() { _ = changes.Close() })
	recv, err := webhook.New(webhook.Config{SDKAppID: appID, Token: token, Applier: procs[0], Changes: changes, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	hook := httptest.NewServer(recv)
	t.Cleanup(hook.Close)
	sim.SetWebhook(simulator.Webhook{URL: hook.URL, Token: token})

	return &stack{broker: broker, sim: sim, procs: procs}
}

// TestWebhookEndToEnd: two processors of one group share Redis; the
// simulator's subscription changes reach the webhook receiver in front of
// one of them; every event after the changes, whichever processor handles
// it, carries the changed list, unsubscriptions and known accounts
// without an API call; the changes topic holds one valid record per change.
func TestWebhookEndToEnd(t *testing.T) {
	st := startStack(t)
	broker, sim, procs := st.broker, st.sim, st.procs
	const parts = 4
	ctx := context.Background()
	w := &kafka.Writer{Addr: kafka.TCP(broker.Addr()), Topic: "in", Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	t.Cleanup(func() { _ = w.Close() })
	produce := func(round int) {
		var msgs []kafka.Message
		for i := range e2eUsers {
			u := simulator.UserID(i)
			v, _ := json.Marshal(map[string]any{"user_id": u, "round": round})
			msgs = append(msgs, kafka.Message{Key: []byte(u), Value: v})
		}
		if err := w.WriteMessages(context.Background(), msgs...); err != nil {
			t.Fatal(err)
		}
	}
	// Round 1 warms both processors' caches (and Redis).
	produce(1)
	testsupport.WaitFor(t, 60*time.Second, "round 1 published", func() bool { return topicEnd(t, broker.Addr(), "out", parts) == e2eUsers })
	outBefore := []int64{procs[0].Stats().Out, procs[1].Stats().Out}
	if outBefore[0] == 0 || outBefore[1] == 0 {
		t.Fatalf("round 1 published %v per processor: both must own partitions", outBefore)
	}

	// Changes: every user unsubscribes from its first account; a few
	// subscribe to an account another user's list shows; one subscribes to
	// an account nobody holds (its details are unknown: an API call).
	held := map[string]bool{}
	for i := range e2eUsers {
		for _, s := range sim.Subscriptions(simulator.UserID(i)) {
			held[s.OfficialAccount] = true
		}
	}
	unheld := ""
	for j := range 400 {
		if id := fmt.Sprintf("%soa-%d", simulator.AccountPrefix, j); !held[id] {
			unheld = id
			break
		}
	}
	if unheld == "" {
		t.Fatal("every account is held: no unknown account to add")
	}
	nChanges := 0
	for i := range e2eUsers {
		u := simulator.UserID(i)
		subs := sim.Subscriptions(u)
		if len(subs) > 0 {
			if changed, err := sim.Unsubscribe(ctx, u, subs[0].OfficialAccount); !changed || err != nil {
				t.Fatalf("unsubscribe %s: %v, %v", u, changed, err)
			}
			nChanges++
		}
		if i%5 == 0 {
			other := sim.Subscriptions(simulator.UserID((i + 1) % e2eUsers))
			for _, s := range other {
				if !slices.ContainsFunc(sim.Subscriptions(u), func(x simulator.Subscription) bool { return x.OfficialAccount == s.OfficialAccount }) {
					if _, err := sim.Subscribe(ctx, u, s.OfficialAccount); err != nil {
						t.Fatal(err)
					}
					nChanges++
					break
				}
			}
		}
	}
	if _, err := sim.Subscribe(ctx, simulator.UserID(1), unheld); err != nil {
		t.Fatal(err)
	}
	nChanges++
	if st := sim.WebhookStats(); st.Sent != int64(nChanges) || st.Failed != 0 {
		t.Fatalf("webhooks %+v for %d changes", st, nChanges)
	}
	calls := sim.Stats().Total

	// Round 2: whichever processor handles a user, its record shows the
	// changed list.
	produce(2)
	testsupport.WaitFor(t, 60*time.Second, "round 2 published", func() bool { return topicEnd(t, broker.Addr(), "out", parts) == 2*e2eUsers })
	// One call: the user whose added account nobody knew. A shared cache
	// call that times out (a loaded machine) falls back to the API by
	// design; those are counted apart.
	sharedErrs := int(procs[0].Stats().SharedCacheErrors + procs[1].Stats().SharedCacheErrors)
	if n := sim.Stats().Total - calls; n < 1 || n > 1+sharedErrs {
		t.Errorf("round 2 made %d API calls, want 1 (the user whose added account nobody knew) plus at most %d shared cache failures; changes %v %v",
			n, sharedErrs, procs[0].Stats().CacheChanges, procs[1].Stats().CacheChanges)
	} else if n > 1 {
		t.Logf("round 2 made %d API calls, %d after shared cache failures", n, n-1)
	}
	for i, p := range procs {
		if p.Stats().Out == outBefore[i] {
			t.Errorf("processor %d published nothing in round 2: the change across processes is untested", i)
		}
	}
	for _, m := range topicRecords(t, broker.Addr(), "out", parts) {
		var r schemas.Record
		if err := json.Unmarshal(m.Value, &r); err != nil {
			t.Fatal(err)
		}
		var ev struct {
			UserID string `json:"user_id"`
			Round  int    `json:"round"`
		}
		_ = json.Unmarshal(r.Event, &ev)
		if ev.Round != 2 {
			continue
		}
		var got, want []string
		for _, a := range r.Enrichment.OfficialAccounts {
			got = append(got, a.OfficialAccount)
		}
		for _, s := range sim.Subscriptions(ev.UserID) {
			want = append(want, s.OfficialAccount)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) || r.Enrichment.TotalCount != len(want) {
			t.Errorf("%s after the changes: %v (total %d), want %v", ev.UserID, got, r.Enrichment.TotalCount, want)
		}
	}

	v, err := schemas.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	recs := topicRecords(t, broker.Addr(), "changes", parts)
	if len(recs) != nChanges {
		t.Fatalf("%d change records, want %d", len(recs), nChanges)
	}
	for _, m := range recs {
		if err := v.ValidateChange(m.Value); err != nil {
			t.Fatalf("%s: %v", m.Value, err)
		}
	}
}
