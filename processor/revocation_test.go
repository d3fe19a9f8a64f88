package processor

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tencentchat-enricher/enricher/internal/testsupport"
)

// TestRevocationDropsWithoutCommittingPastGap: a record whose lookup hangs
// blocks its partition; a second member joins the group and the first,
// after a short DrainTimeout, drops the unpublished records of its revoked
// partitions. The group's committed offset never passes the hanging
// record; when the lookup is released, the partition's next owner
// publishes it. In the end every input record is in the output at least
// once, and exactly once unless it followed the dropped record in its
// partition.
func TestRevocationDropsWithoutCommittingPastGap(t *testing.T) {
	c := startCluster(t, 2)
	release := make(chan struct{})
	fetch := func(ctx context.Context, user string) (lookup, error) {
		if user == "slow" {
			select {
			case <-release:
			case <-ctx.Done():
				return lookup{}, ctx.Err()
			}
		}
		return okLookup(1)(ctx, user)
	}
	var msgs []kafka.Message
	for i := range 40 {
		msgs = append(msgs, kafka.Message{Key: []byte(fmt.Sprintf("k%d", i%20)), Value: event(plainUser(i), i)})
	}
	msgs = append(msgs, kafka.Message{Key: []byte("slow"), Value: event("slow", 40)})
	for i := 41; i < 80; i++ {
		key := fmt.Sprintf("k%d", i%20)
		if i%10 == 0 {
			key = "slow" // queued behind the hanging record
		}
		msgs = append(msgs, kafka.Message{Key: []byte(key), Value: event(plainUser(i), i)})
	}
	c.produce(msgs)
	slow := findInput(t, c, "slow")
	behind := 0 // records of key "slow" after the hanging one
	for _, m := range c.readAll("in") {
		if string(m.Key) == "slow" && m.Offset > slow.offset {
			behind++
		}
	}

	cfg := c.config("revocation")
	cfg.DrainTimeout = 300 * time.Millisecond
	a := newFakeProcessor(t, cfg, fetch)
	runA := runProcessor(t, a)
	// held: the group's commit of the hanging record's partition stays at
	// or below it while it is unpublished.
	held := func() {
		if off := c.committed("revocation")[slow.partition]; off > slow.offset {
			t.Fatalf("partition %d committed %d past the unpublished record at %d", slow.partition, off, slow.offset)
		}
	}
	testsupport.WaitFor(t, 60*time.Second, "all but the hanging key published", func() bool {
		return a.Stats().Out == int64(len(msgs)-1-behind)
	})
	held()

	b := newFakeProcessor(t, cfg, fetch)
	runB := runProcessor(t, b)
	testsupport.WaitFor(t, 60*time.Second, "rebalanced, the drop committed", func() bool {
		held()
		return b.Ready() && a.Ready() && len(a.Stats().Partitions) == 1 && len(b.Stats().Partitions) == 1 &&
			c.committed("revocation")[slow.partition] == slow.offset
	})
	held()
	close(release)
	ends := c.endOffsets()
	testsupport.WaitFor(t, 60*time.Second, "group committed to the end", func() bool {
		got := c.committed("revocation")
		for p, end := range ends {
			if got[p] != end {
				return false
			}
		}
		return true
	})
	for _, r := range []*running{runA, runB} {
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
	}

	seen := map[tp]int{}
	for _, m := range append(c.readAll("out"), c.readAll("dlq")...) {
		seen[sourceOf(t, m)]++
	}
	dups := 0
	for _, m := range c.readAll("in") {
		pos := tp{m.Partition, m.Offset}
		afterDrop := pos.partition == slow.partition && pos.offset > slow.offset
		switch n := seen[pos]; {
		case n == 0:
			t.Fatalf("input %v never published", pos)
		case n > 1 && !afterDrop:
			t.Fatalf("input %v published %d times, before the drop point", pos, n)
		case n > 1:
			dups += n - 1
		}
	}
	// Per-key order holds over first publications (a redelivered record
	// repeats a suffix of its key's records).
	var first []kafka.Message
	once := map[tp]bool{}
	for _, m := range c.readAll("out") {
		if pos := sourceOf(t, m); !once[pos] {
			once[pos] = true
			first = append(first, m)
		}
	}
	checkKeyOrder(t, first)
	t.Logf("hanging record at %v; %d duplicates after it", slow, dups)
}
