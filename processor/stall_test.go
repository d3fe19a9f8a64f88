package processor

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"golang.org/x/time/rate"

	"github.com/tencentchat-enricher/enricher/internal/testsupport"
)

// TestStalledPartition: a record that does not finish ages as the
// partition's oldest unfinished record; past Config.StallTimeout the
// partition is reported stalled, and once the record finishes it is not.
func TestStalledPartition(t *testing.T) {
	clock := testsupport.NewClock(time.Unix(1700000000, 0))
	release := make(chan struct{})
	cfg := testConfig()
	cfg.Now = clock.Now
	cfg.StallTimeout = time.Minute
	p, _ := newTestPipeline(t, cfg, func(ctx context.Context, user string) (lookup, error) {
		<-release
		return okLookup(1)(ctx, user)
	})
	c := p.Claim("in", 3)
	ctx := context.Background()
	if err := c.Submit(ctx, kafka.Message{Topic: "in", Partition: 3, Offset: 7, Value: event("u", 0)}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(30 * time.Second)
	if err := p.Stalled(); err != nil {
		t.Fatalf("stalled after 30s: %v", err)
	}
	clock.Advance(31 * time.Second)
	st := p.Stats().Partitions
	if len(st) != 1 || st[0].OldestUnfinished != 61*time.Second {
		t.Fatalf("partitions %+v", st)
	}
	err := p.Stalled()
	if err == nil || !strings.Contains(err.Error(), "in/3") || !strings.Contains(err.Error(), "1m1s") {
		t.Fatalf("Stalled = %v", err)
	}
	close(release)
	if err := c.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Stalled(); err != nil || p.Stats().Partitions[0].OldestUnfinished != 0 {
		t.Fatalf("after the record finished: %v, %+v", err, p.Stats().Partitions)
	}
}

// stubAssignment is an Assignment of one partition that leaves nothing out.
type stubAssignment struct{ topic string }

func (a stubAssignment) Topic() string                                        { return a.topic }
func (a stubAssignment) Partitions() []PartitionStart                         { return nil }
func (a stubAssignment) Revoked() <-chan struct{}                             { return nil }
func (a stubAssignment) Skip(kafka.Message) bool                              { return false }
func (a stubAssignment) Commit(context.Context, []Position, bool, bool) error { return nil }
func (a stubAssignment) Done()                                                {}

// TestFetchSubmitFailureStopsPipeline: a fetch loop whose record cannot be
// submitted stops the pipeline with a *PartitionError naming the partition
// and offset, instead of ending quietly.
func TestFetchSubmitFailureStopsPipeline(t *testing.T) {
	c := startCluster(t, 1)
	c.produce(seqEvents(0, 5))
	p, _ := newTestPipeline(t, c.config("fetchfail"), okLookup(1))
	claim := p.Claim("in", 0)
	if err := claim.wm.add(100); err != nil { // records at 0.. now come out of order
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p.fetch(ctx, stubAssignment{"in"}, claim, PartitionStart{Partition: 0, Offset: 0, End: -1}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var pe *PartitionError
	if err := p.Err(); !errors.As(err, &pe) || pe.Partition != 0 || pe.Offset != 0 || !errors.Is(err, errOffsetOrder) {
		t.Fatalf("Err = %v", err)
	}
	select {
	case <-p.Failed():
	default:
		t.Fatal("pipeline not failed")
	}
}

// TestRateLog: a warning repeated many times is logged at most once per
// interval, and every line counts the ones left out before it.
func TestRateLog(t *testing.T) {
	var buf testsupport.SyncBuffer
	l := newRateLog(slog.New(slog.NewTextHandler(&buf, nil)), time.Hour)
	for range 1000 {
		l.warn("publish failed, retrying", "error", "boom")
	}
	if n := strings.Count(buf.String(), "publish failed"); n != 1 {
		t.Fatalf("%d lines for 1000 warnings:\n%s", n, buf.String())
	}
	if got := l.suppressed.Load(); got != 999 {
		t.Fatalf("suppressed %d, want 999", got)
	}
	l.lim.SetLimit(rate.Inf) // let the next line through
	l.warn("publish failed, retrying", "error", "boom")
	if !strings.Contains(buf.String(), "suppressed=999") {
		t.Fatalf("the next line does not count the left-out ones:\n%s", buf.String())
	}
}

// flakyReader fails its first fails fetches, then hands out msgs, one per
// fetch.
type flakyReader struct {
	fails int
	msgs  []kafka.Message
	calls int
	start int64 // the offset of the first fetch
}

func (r *flakyReader) Fetch(ctx context.Context, offset int64) (fetched, error) {
	r.calls++
	if r.calls == 1 {
		r.start = offset
	}
	if r.calls <= r.fails {
		return fetched{}, errors.New("broker went away")
	}
	if len(r.msgs) == 0 {
		<-ctx.Done()
		return fetched{}, ctx.Err()
	}
	m := r.msgs[0]
	r.msgs = r.msgs[1:]
	return fetched{from: offset, msgs: []kafka.Message{m}, next: m.Offset + 1}, nil
}

func (r *flakyReader) Close() error { return nil }

// TestFetchErrorsRetried: fetch errors are retried (after a backoff) until
// records come, and warned once per interval with the count of the others;
// a record that cannot be handled is a *PartitionError.
func TestFetchErrorsRetried(t *testing.T) {
	p, _ := newTestPipeline(t, testConfig(), okLookup(1))
	c := p.Claim("in", 2)
	var buf testsupport.SyncBuffer
	warn := newRateLog(slog.New(slog.NewTextHandler(&buf, nil)), time.Hour)
	r := &flakyReader{fails: 3, msgs: []kafka.Message{{Offset: 5}, {Offset: 6}, {Offset: 7}}}
	var got []int64
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	err := readPartition(ctx, r, warn, c, 5, 8, func(m kafka.Message) error {
		got = append(got, m.Offset)
		return nil
	})
	if err != nil || len(got) != 3 || got[0] != 5 || got[2] != 7 || r.start != 5 {
		t.Fatalf("err %v, records %v, started at %d", err, got, r.start)
	}
	if r.calls != 6 {
		t.Errorf("%d fetches, want 3 failed and 3 records", r.calls)
	}
	// 100ms + 200ms + 400ms of backoff.
	if d := time.Since(start); d < 700*time.Millisecond {
		t.Errorf("retried without backoff: %s for three failures", d)
	}
	if n := strings.Count(buf.String(), "fetch failed, retrying"); n != 1 || warn.suppressed.Load() != 2 {
		t.Errorf("%d warning lines, %d suppressed, want 1 and 2:\n%s", n, warn.suppressed.Load(), buf.String())
	}

	r = &flakyReader{msgs: []kafka.Message{{Offset: 9}}}
	err = readPartition(ctx, r, warn, c, 9, -1, func(kafka.Message) error { return errors.New("cannot submit") })
	var pe *PartitionError
	if !errors.As(err, &pe) || pe.Partition != 2 || pe.Offset != 9 {
		t.Fatalf("a record that cannot be handled: %v", err)
	}
}
