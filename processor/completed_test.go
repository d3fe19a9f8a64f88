package processor

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// completedEntries returns watermark entries at offsets with done[i] for
// offsets[i].
func completedEntries(offsets []int64, done []bool) []wmEntry {
	es := make([]wmEntry, len(offsets))
	for i, o := range offsets {
		es[i] = wmEntry{offset: o, done: done[i]}
	}
	return es
}

func TestCompletedSetFromEntries(t *testing.T) {
	tests := []struct {
		name    string
		base    int64
		offsets []int64
		done    []bool
		want    []offsetRun
	}{
		{"none done", 10, []int64{10, 11, 12}, []bool{false, false, false}, nil},
		{"one run", 10, []int64{10, 11, 12, 13}, []bool{false, true, true, false}, []offsetRun{{11, 12}}},
		{"two runs", 10, []int64{10, 11, 12, 13, 14}, []bool{false, true, false, true, true}, []offsetRun{{11, 11}, {13, 14}}},
		{"gap splits a run", 10, []int64{10, 11, 13, 14}, []bool{false, true, true, true}, []offsetRun{{11, 11}, {13, 14}}},
		{"gap before the first pending", 10, []int64{12, 13, 20}, []bool{false, true, true}, []offsetRun{{13, 13}, {20, 20}}},
		{"at or below base ignored", 12, []int64{10, 11, 12, 13}, []bool{true, true, false, true}, []offsetRun{{13, 13}}},
		{"out of order ignored", 0, []int64{1, 5, 3, 6}, []bool{true, true, true, true}, []offsetRun{{1, 1}, {5, 6}}},
		{"near MaxInt64", math.MaxInt64 - 3, []int64{math.MaxInt64 - 3, math.MaxInt64 - 1, math.MaxInt64}, []bool{false, true, true}, []offsetRun{{math.MaxInt64 - 1, math.MaxInt64}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newCompletedSet(tc.base, completedEntries(tc.offsets, tc.done))
			if !slices.Equal(c.runs, tc.want) {
				t.Fatalf("runs = %v, want %v", c.runs, tc.want)
			}
			if !c.valid() {
				t.Fatalf("set %v does not keep its invariants", c)
			}
			var n int64
			for _, r := range tc.want {
				n += r.last - r.first + 1
			}
			if c.len() != n {
				t.Fatalf("len = %d, want %d", c.len(), n)
			}
			if c.contains(tc.base) {
				t.Fatalf("base %d is in the set", tc.base)
			}
		})
	}
}

func TestCompletedSetFromWatermark(t *testing.T) {
	w := newWatermark()
	if _, ok := w.completed(); ok {
		t.Fatal("completed reported a set before any record was added")
	}
	for _, o := range []int64{100, 101, 102, 104, 105, 106} {
		if err := w.add(o); err != nil {
			t.Fatal(err)
		}
	}
	mark := func(offs ...int64) {
		for _, o := range offs {
			if _, ok := w.done(o); !ok {
				t.Fatalf("done(%d) refused", o)
			}
		}
	}
	check := func(wantBase int64, want []offsetRun) {
		t.Helper()
		c, ok := w.completed()
		if !ok || c.base != wantBase || !slices.Equal(c.runs, want) {
			t.Fatalf("completed = %v, %v; want base %d runs %v", c, ok, wantBase, want)
		}
	}
	// Nothing done at the head: the base is the first pending record.
	mark(102, 104)
	check(100, []offsetRun{{102, 102}, {104, 104}})
	// The head moves to the watermark; 103 was never fetched, so 102 and
	// 104 stay separate runs.
	mark(100)
	check(101, []offsetRun{{102, 102}, {104, 104}})
	// The watermark passes the gap at 103 (no record there).
	mark(106)
	check(101, []offsetRun{{102, 102}, {104, 104}, {106, 106}})
	mark(101)
	check(105, []offsetRun{{106, 106}})
	mark(105)
	check(107, nil)
}

func TestCompletedSetContains(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for iter := range 200 {
		base := r.Int64N(1 << 40)
		n := r.IntN(300)
		offsets := make([]int64, 0, n)
		done := make([]bool, 0, n)
		want := map[int64]bool{}
		o := base
		for i := range n {
			if i > 0 {
				o += 1 + r.Int64N(3) // gaps of 0..2 offsets
			}
			d := i > 0 && r.IntN(2) == 0
			offsets = append(offsets, o)
			done = append(done, d)
			if d {
				want[o] = true
			}
		}
		c := newCompletedSet(base, completedEntries(offsets, done))
		if !c.valid() {
			t.Fatalf("iteration %d: invalid set %v", iter, c)
		}
		if c.len() != int64(len(want)) {
			t.Fatalf("iteration %d: len = %d, want %d", iter, c.len(), len(want))
		}
		for q := base - 2; q <= o+2; q++ {
			if c.contains(q) != want[q] {
				t.Fatalf("iteration %d: contains(%d) = %v, want %v", iter, q, c.contains(q), want[q])
			}
		}
	}
}

func TestCompletedSetValid(t *testing.T) {
	tests := []struct {
		name string
		c    completedSet
		want bool
	}{
		{"empty", completedSet{}, true},
		{"negative base", completedSet{base: -1}, false},
		{"run at base", completedSet{base: 5, runs: []offsetRun{{5, 6}}}, false},
		{"run above base", completedSet{base: 5, runs: []offsetRun{{6, 6}}}, true},
		{"reversed run", completedSet{base: 5, runs: []offsetRun{{8, 7}}}, false},
		{"adjacent runs", completedSet{base: 5, runs: []offsetRun{{7, 8}, {9, 9}}}, false},
		{"overlapping runs", completedSet{base: 5, runs: []offsetRun{{7, 9}, {9, 10}}}, false},
		{"unsorted runs", completedSet{base: 5, runs: []offsetRun{{10, 11}, {7, 8}}}, false},
		{"one apart", completedSet{base: 5, runs: []offsetRun{{7, 8}, {10, 10}}}, true},
		{"run after MaxInt64", completedSet{base: 0, runs: []offsetRun{{5, math.MaxInt64}, {math.MinInt64, math.MinInt64}}}, false},
		{"up to MaxInt64", completedSet{base: 0, runs: []offsetRun{{1, 1}, {3, math.MaxInt64}}}, true},
	}
	for _, tc := range tests {
		if got := tc.c.valid(); got != tc.want {
			t.Errorf("%s: valid = %v, want %v", tc.name, got, tc.want)
		}
	}
}
