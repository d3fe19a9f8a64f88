package processor

import (
	"errors"
	"math/rand/v2"
	"testing"
	"testing/quick"
	"time"
)

func TestWatermarkTable(t *testing.T) {
	tests := []struct {
		name   string
		added  []int64
		done   []int64
		want   int64
		wantOK bool
	}{
		{"nothing done", []int64{0, 1, 2}, nil, -1, false},
		{"gap at head", []int64{0, 1, 2}, []int64{1, 2}, -1, false},
		{"prefix", []int64{0, 1, 2}, []int64{0, 2}, 1, true},
		{"all", []int64{5, 6, 7}, []int64{7, 5, 6}, 8, true},
		{"offset gaps (compaction)", []int64{3, 9, 20}, []int64{9, 3}, 10, true},
		{"all with gaps", []int64{3, 9, 20}, []int64{20, 9, 3}, 21, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWatermark()
			for _, o := range tc.added {
				if err := w.add(o); err != nil {
					t.Fatal(err)
				}
			}
			for _, o := range tc.done {
				if _, ok := w.done(o); !ok {
					t.Fatalf("done(%d) = false", o)
				}
			}
			got, ok := w.committable()
			if got != tc.want || ok != tc.wantOK {
				t.Fatalf("committable = %d,%v, want %d,%v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestWatermarkRejects(t *testing.T) {
	w := newWatermark()
	if err := w.add(5); err != nil {
		t.Fatal(err)
	}
	if err := w.add(5); !errors.Is(err, errOffsetOrder) {
		t.Fatalf("duplicate add: %v", err)
	}
	if err := w.add(4); !errors.Is(err, errOffsetOrder) {
		t.Fatalf("backwards add: %v", err)
	}
	if _, ok := w.done(6); ok {
		t.Fatal("done of an offset never added")
	}
	if n, ok := w.done(5); !ok || n != 1 {
		t.Fatalf("done(5) = %d,%v", n, ok)
	}
	if _, ok := w.done(5); ok {
		t.Fatal("second done of the same offset accepted")
	}
}

// TestWatermarkProperty: over random offsets (with gaps) completed in random
// orders, the committable offset is always exactly one past the longest done
// prefix, so it never passes an unpublished record, and reaches the end once
// all are done.
func TestWatermarkProperty(t *testing.T) {
	f := func(seed uint64, n uint8) bool {
		rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
		w := newWatermark()
		offsets := make([]int64, int(n)+1)
		o := int64(rng.IntN(100))
		for i := range offsets {
			offsets[i] = o
			if err := w.add(o); err != nil {
				return false
			}
			o += 1 + int64(rng.IntN(3))
		}
		done := make([]bool, len(offsets))
		order := rng.Perm(len(offsets))
		prev := 0
		for step, idx := range order {
			moved, ok := w.done(offsets[idx])
			if !ok {
				return false
			}
			done[idx] = true
			prefix := 0
			for prefix < len(done) && done[prefix] {
				prefix++
			}
			if moved != prefix-prev {
				t.Logf("step %d: moved %d, want %d", step, moved, prefix-prev)
				return false
			}
			prev = prefix
			got, ok := w.committable()
			if prefix == 0 {
				if ok {
					t.Logf("step %d: committable %d with nothing contiguous", step, got)
					return false
				}
				continue
			}
			if !ok || got != offsets[prefix-1]+1 {
				t.Logf("step %d: committable %d,%v want %d", step, got, ok, offsets[prefix-1]+1)
				return false
			}
			// Never past an unpublished offset.
			for i, d := range done {
				if !d && offsets[i] < got {
					return false
				}
			}
		}
		return w.pending() == 0
	}
	if err := quick.Check(f, &quick.Config{MaxCount: 500}); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkWatermark(b *testing.B) {
	w := newWatermark()
	var next int64
	b.ReportAllocs()
	for b.Loop() {
		if err := w.add(next); err != nil {
			b.Fatal(err)
		}
		// Complete records out of order, in blocks of 8 completed backwards.
		if next%8 == 7 {
			for o := next; o > next-8; o-- {
				if _, ok := w.done(o); !ok {
					b.Fatalf("done(%d) = false", o)
				}
			}
		}
		next++
	}
	if w.pending() > 8 {
		b.Fatalf("%d pending", w.pending())
	}
}

// TestCommitterReusesCostlySet: a completed set that was costly to read
// is carried again, above the moved watermark, until setCostShare times
// its cost has passed; then it is read afresh.
func TestCommitterReusesCostlySet(t *testing.T) {
	c := &Claim{wm: newWatermark(), partition: 3}
	for i := range 10 {
		if err := c.wm.add(int64(i)); err != nil {
			t.Fatal(err)
		}
	}
	done := func(offs ...int64) {
		for _, o := range offs {
			if _, ok := c.wm.done(o); !ok {
				t.Fatalf("done(%d) refused", o)
			}
		}
	}
	done(2, 3, 6)
	m := &committer{last: map[*Claim]Position{}, sets: map[*Claim]*lastSet{}, overflow: func() { t.Fatal("overflow") }}
	check := func(pos Position, offset int64, want completedSet) {
		t.Helper()
		if pos.Partition != 3 || pos.Offset != offset || !pos.done.equal(want) || pos.done.base != offset {
			t.Fatalf("position %d %v, want %d %v", pos.Offset, pos.done, offset, want)
		}
	}
	check(m.position(c, false), 0, metaSet(0, offsetRun{2, 3}, offsetRun{6, 6}))
	m.sets[c].cost = time.Hour // as if reading it had been costly
	done(0, 1, 8)
	// The watermark moved to 4; offset 8, done since, is not read yet.
	check(m.position(c, false), 4, metaSet(4, offsetRun{6, 6}))
	// A final commit reads it afresh.
	check(m.position(c, true), 4, metaSet(4, offsetRun{6, 6}, offsetRun{8, 8}))
	m.sets[c].cost = time.Hour
	done(9)
	m.sets[c].cost = 0
	check(m.position(c, false), 4, metaSet(4, offsetRun{6, 6}, offsetRun{8, 9}))
}
