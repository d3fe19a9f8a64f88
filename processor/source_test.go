package processor

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"golang.org/x/time/rate"

	"github.com/tencentchat-enricher/enricher/internal/testsupport"
)

// userEvents returns events from..from+n-1 for user(i), keyed k<i mod
// keys> (k<i> when keys is 0).
func userEvents(from, n, keys int, user func(int) string) []kafka.Message {
	msgs := make([]kafka.Message, n)
	for j := range msgs {
		i := from + j
		k := i
		if keys > 0 {
			k = i % keys
		}
		msgs[j] = kafka.Message{Key: []byte(fmt.Sprintf("k%d", k)), Value: event(user(i), i)}
	}
	return msgs
}

func plainUser(i int) string { return fmt.Sprintf("u%d", i) }

func seqEvents(from, n int) []kafka.Message { return userEvents(from, n, 17, plainUser) }

// TestStartLatest: a new group starting at "latest" skips the records
// produced before it joined and processes the ones after.
func TestStartLatest(t *testing.T) {
	c := startCluster(t, 2)
	c.produce(seqEvents(0, 50))
	cfg := c.config("latest")
	cfg.StartOffset = StartLatest
	p := newFakeProcessor(t, cfg, okLookup(0))
	run := runProcessor(t, p)
	testsupport.WaitFor(t, 60*time.Second, "assigned", func() bool { return p.Ready() && len(p.Stats().Partitions) == 2 })
	old := c.endOffsets()
	// "latest" is resolved by each partition's first fetch: probe with one
	// record at a time until one is processed, then produce the batch.
	probes := 0
	testsupport.WaitFor(t, 60*time.Second, "a probe record processed", func() bool {
		if p.Stats().Out > 0 {
			return true
		}
		c.produce(seqEvents(1000+probes, 1))
		probes++
		return false
	})
	testsupport.WaitFor(t, 60*time.Second, "every partition fetching", func() bool {
		for _, ps := range p.Stats().Partitions {
			if ps.Lag < 0 {
				c.produce(seqEvents(1000+probes, 1))
				probes++
				return false
			}
		}
		return true
	})
	afterProbes := c.endOffsets()
	c.produce(seqEvents(50, 30))
	waitCommitted(t, p, c.endOffsets())
	if err := run.stop(); err != nil {
		t.Fatal(err)
	}
	batch := 0
	for _, m := range c.readAll("out") {
		src := sourceOf(t, m)
		if src.offset < old[src.partition] {
			t.Fatalf("processed %v, produced before the group joined", src)
		}
		if src.offset >= afterProbes[src.partition] {
			batch++
		}
	}
	if batch != 30 {
		t.Fatalf("%d of the 30 records produced after the fetch positions resolved were processed", batch)
	}
}

func TestRebalance(t *testing.T) {
	c := startCluster(t, 4)
	cfg := c.config("rebalance")
	c.produce(seqEvents(0, 200))
	p1 := newFakeProcessor(t, cfg, tableLookup(randomLatency(time.Millisecond)))
	run1 := runProcessor(t, p1)
	waitCommitted(t, p1, c.endOffsets())
	p2 := newFakeProcessor(t, cfg, tableLookup(randomLatency(time.Millisecond)))
	run2 := runProcessor(t, p2)
	testsupport.WaitFor(t, 60*time.Second, "partitions split between the members", func() bool {
		return len(p1.Stats().Partitions) > 0 && len(p2.Stats().Partitions) > 0 && len(p1.Stats().Partitions)+len(p2.Stats().Partitions) == 4
	})
	c.produce(seqEvents(200, 200))
	ends := c.endOffsets()
	testsupport.WaitFor(t, 60*time.Second, "group committed to the end", func() bool {
		got := c.committed("rebalance")
		for part, end := range ends {
			if got[part] != end {
				return false
			}
		}
		return true
	})
	if err := run2.stop(); err != nil {
		t.Fatal(err)
	}
	if err := run1.stop(); err != nil {
		t.Fatal(err)
	}
	seen := map[tp]int{}
	for _, m := range c.readAll("out") {
		seen[sourceOf(t, m)]++
	}
	dups := 0
	for _, m := range c.readAll("in") {
		k := tp{m.Partition, m.Offset}
		if seen[k] == 0 {
			t.Fatalf("input %v lost", k)
		}
		dups += seen[k] - 1
	}
	if dups != 0 {
		t.Fatalf("%d duplicates: the revoked member did not drain and commit", dups)
	}
	checkKeyOrder(t, c.readAll("out"))
}

// TestKafkaErrorLog: kafka-go's errors are logged at Warn, one line per
// interval, with the number of lines suppressed in between.
func TestKafkaErrorLog(t *testing.T) {
	var buf bytes.Buffer
	l := newKafkaErrorLog(slog.New(slog.NewTextHandler(&buf, nil)))
	for i := range 5 {
		l.Printf("fetch failed: %d", i)
	}
	if got := strings.Count(buf.String(), "\n"); got != 1 || !strings.Contains(buf.String(), "level=WARN") ||
		!strings.Contains(buf.String(), "fetch failed: 0") {
		t.Fatalf("log %q, want one warning", buf.String())
	}
	if n := l.suppressed.Load(); n != 4 {
		t.Fatalf("suppressed %d, want 4", n)
	}
	l.lim.SetLimit(rate.Inf) // as if the interval had passed
	l.Printf("fetch failed: again")
	if !strings.Contains(buf.String(), "suppressed=4") || l.suppressed.Load() != 0 {
		t.Fatalf("log %q", buf.String())
	}
}
