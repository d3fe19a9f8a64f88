package processor

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
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

// metaSet returns the set of runs above base.
func metaSet(base int64, runs ...offsetRun) completedSet {
	return completedSet{base: base, runs: runs}
}

// everyNth returns n pending records from offset base, of which those at
// index i with i%k == k-1 are done: the head is never done.
func everyNth(base int64, n, k int) completedSet {
	es := make([]wmEntry, n)
	for i := range es {
		es[i] = wmEntry{offset: base + int64(i), done: i%k == k-1}
	}
	return newCompletedSet(base, es)
}

// metaRoundTrip encodes m with no size limit, checks the result is
// printable ASCII, and decodes it.
func metaRoundTrip(t *testing.T, m commitMeta) (string, commitMeta) {
	t.Helper()
	s, ok := encodeMetadata(m, math.MaxInt)
	if !ok {
		t.Fatalf("encodeMetadata(%v) did not fit without a limit", m)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 && s[i] != ' ' || s[i] > 0x7e {
			t.Fatalf("encoding %q has byte %#x at %d", s, s[i], i)
		}
	}
	got, err := decodeMetadata(s)
	if err != nil {
		t.Fatalf("decodeMetadata(%q): %v", s, err)
	}
	return s, got
}

func TestMetadataRoundTrip(t *testing.T) {
	gaps := newCompletedSet(100, completedEntries(
		[]int64{100, 101, 103, 104, 110, 111, 112},
		[]bool{false, true, true, true, false, true, true}))
	many := everyNth(1_000_000, 1000, 3)
	tests := []struct {
		name string
		m    commitMeta
		want string // the exact encoding, or its prefix when ending in "="
	}{
		{"empty", commitMeta{}, "enricher/2"},
		{"empty set with a base", commitMeta{done: metaSet(42)}, "enricher/2"},
		{"one offset", commitMeta{done: metaSet(10, offsetRun{12, 12})}, "enricher/2 base=10 bits=Ag"},
		{"one run", commitMeta{done: metaSet(10, offsetRun{12, 13})}, "enricher/2 base=10 bits=Bg"},
		{"one long run", commitMeta{done: metaSet(10, offsetRun{11, 1010})}, "enricher/2 base=10 runs=AOcH"},
		{"many runs", commitMeta{done: many}, "enricher/2 base=1000000 bits="},
		{"gaps", commitMeta{done: gaps}, "enricher/2 base=100 bits="},
		{"sparse runs", commitMeta{done: metaSet(0, offsetRun{1000, 1000}, offsetRun{5000, 5009}, offsetRun{90000, 90000})}, "enricher/2 base=0 runs="},
		{"up to MaxInt64", commitMeta{done: metaSet(0, offsetRun{1, 1}, offsetRun{3, math.MaxInt64})}, "enricher/2 base=0 runs="},
		{"near MaxInt64", commitMeta{done: metaSet(math.MaxInt64-10, offsetRun{math.MaxInt64 - 8, math.MaxInt64 - 8}, offsetRun{math.MaxInt64 - 2, math.MaxInt64})}, "enricher/2 base=9223372036854775797 bits=ggM"},
		{"replay", commitMeta{replay: true, start: 5, end: 900}, "enricher/2 start=5 end=900"},
		{"replay stopped", commitMeta{replay: true, start: 5, end: 900, stopped: true}, "enricher/2 start=5 end=900 stopped"},
		{"replay empty range", commitMeta{replay: true, start: 7, end: 7}, "enricher/2 start=7 end=7"},
		{"replay with a set", commitMeta{replay: true, start: 5, end: 900, stopped: true, done: metaSet(40, offsetRun{42, 44})}, "enricher/2 start=5 end=900 stopped base=40 bits=Dg"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, got := metaRoundTrip(t, tc.m)
			if prefix, ok := strings.CutSuffix(tc.want, "="); ok {
				if !strings.HasPrefix(s, prefix+"=") {
					t.Fatalf("encoding %q, want prefix %q", s, tc.want)
				}
			} else if s != tc.want {
				t.Fatalf("encoding %q, want %q", s, tc.want)
			}
			if !got.equal(tc.m) {
				t.Fatalf("decoded %v, want %v", got, tc.m)
			}
			if again, _ := encodeMetadata(got, math.MaxInt); again != s {
				t.Fatalf("encoding of the decoded value %q, want %q", again, s)
			}
		})
	}
}

func TestMetadataRoundTripRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for iter := range 500 {
		base := r.Int64N(1 << 50)
		n := r.IntN(2000)
		es := make([]wmEntry, n)
		o := base
		density := r.Float64()
		for i := range es {
			if i > 0 {
				o += 1 + r.Int64N(1+int64(r.IntN(2))*r.Int64N(50)) // mostly contiguous, some gaps
			}
			es[i] = wmEntry{offset: o, done: i > 0 && r.Float64() < density}
		}
		c := newCompletedSet(base, es)
		_, got := metaRoundTrip(t, commitMeta{done: c})
		if !got.done.equal(c) {
			t.Fatalf("iteration %d: decoded %v, want %v", iter, got.done, c)
		}
		// Both payloads decode to the set, whichever the encoder chose.
		runs, err := decodeRuns(c.base, appendRuns(nil, c, math.MaxInt))
		if err != nil || !(completedSet{base: c.base, runs: runs}).equal(c) && !c.empty() {
			t.Fatalf("iteration %d: runs payload decoded to %v, %v", iter, runs, err)
		}
		if !c.empty() {
			bs, err := decodeBitset(c.base, appendBitset(nil, c))
			if err != nil || !(completedSet{base: c.base, runs: bs}).equal(c) {
				t.Fatalf("iteration %d: bitset payload decoded to %v, %v", iter, bs, err)
			}
		}
	}
}

func TestMetadataReplayV1(t *testing.T) {
	tests := []string{
		"enricher-replay/1 start=0 end=0",
		"enricher-replay/1 start=5 end=900",
		"enricher-replay/1 start=5 end=900 stopped",
		formatCheckpoint(12, 3456, false),
		formatCheckpoint(12, 3456, true),
		"enricher-replay/1 start=9 end=5",
		"enricher-replay/1 start=-1 end=5",
		"enricher-replay/1 start=1",
		"enricher-replay/1 start=1 end=2 paused",
		"enricher-replay/1 end=2 start=1",
	}
	for _, s := range tests {
		start, end, stopped, werr := parseCheckpoint(s)
		got, err := decodeMetadata(s)
		if (err == nil) != (werr == nil) {
			t.Fatalf("decodeMetadata(%q) error %v, version 1 reader %v", s, err, werr)
		}
		if err != nil {
			if !errors.Is(err, errMetadata) {
				t.Fatalf("decodeMetadata(%q) error %v is not errMetadata", s, err)
			}
			continue
		}
		want := commitMeta{replay: true, start: start, end: end, stopped: stopped}
		if !got.equal(want) {
			t.Fatalf("decodeMetadata(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestMetadataMalformed(t *testing.T) {
	tests := []string{
		" ",
		"enricher/3",
		"enricher/2 ",
		"enricher/2  start=1 end=2",
		"enricher/20",
		"enricher/2 start=1",
		"enricher/2 end=2 start=1",
		"enricher/2 start=2 end=1",
		"enricher/2 start=01 end=2",
		"enricher/2 start=+1 end=2",
		"enricher/2 start=-1 end=2",
		"enricher/2 start=1 end=9223372036854775808",
		"enricher/2 stopped",
		"enricher/2 start=1 end=2 stopped stopped",
		"enricher/2 base=5",
		"enricher/2 base=5 runs=",
		"enricher/2 base=5 bits=",
		"enricher/2 runs=AQE",
		"enricher/2 base=5 runs=AQE base=5",
		"enricher/2 base=5 runs=AQE bits=Ag",
		"enricher/2 base=5 runs=AQE=",
		"enricher/2 base=5 runs=AQ\nE",
		"enricher/2 base=5 runs=AQ+E",
		"enricher/2 base=5 runs=AQF", // non-zero padding bits
		"enricher/2 base=5 runs=AQ",  // a gap without a length
		"enricher/2 base=5 runs=gAE", // a varint cut short
		"enricher/2 base=5 runs=gAAB",
		"enricher/2 base=5 bits=AgA",                  // trailing zero byte
		"enricher/2 base=5 runs=AAAA",                 // adjacent runs cannot be written: 0,0,0 is odd
		"enricher/2 base=5 runs=" + b64(0x80, 0, 0),   // non-minimal varint
		"enricher/2 base=9223372036854775807 bits=AQ", // no offset above base
		"enricher/2 base=9223372036854775806 bits=Ag",
		"enricher/2 base=0 runs=" + b64(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0),             // gap to MaxInt64+1
		"enricher/2 base=0 runs=" + b64(0, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0),       // a run after MaxInt64
		"enricher/2 base=0 runs=" + b64(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0), // varint over 64 bits
		"enricher/2 base=0 runs=" + b64(1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f),             // run length past MaxInt64
		"enricher-replay/2 start=1 end=2",
		"kcat was here",
		"enricher/2 base=5 runs=" + strings.Repeat("A", metadataDecodeLimit),
		"enricher/2 start=1 end=2 caf\u00e9",
	}
	for _, s := range tests {
		m, err := decodeMetadata(s)
		if !errors.Is(err, errMetadata) {
			t.Errorf("decodeMetadata(%q) = %v, %v; want errMetadata", clip(s), m, err)
		}
	}
}

// b64 is the base64url payload of bytes.
func b64(p ...byte) string { return base64.RawURLEncoding.EncodeToString(p) }

func TestMetadataCompletedAt(t *testing.T) {
	m := commitMeta{done: metaSet(10, offsetRun{12, 12})}
	if c, ok := m.completedAt(10); !ok || !c.contains(12) {
		t.Fatalf("completedAt(10) = %v, %v", c, ok)
	}
	if c, ok := m.completedAt(11); ok || c.contains(12) {
		t.Fatalf("completedAt(11) = %v, %v; want the set ignored", c, ok)
	}
	if _, ok := (commitMeta{}).completedAt(0); ok {
		t.Fatal("completedAt of no set reported one")
	}
}

func TestMetadataTooLarge(t *testing.T) {
	replay := commitMeta{replay: true, start: 1_000_000, end: 2_000_000}
	tests := []struct {
		name string
		done completedSet
		fits bool
	}{
		// Alternating done and not done: the bitset needs one bit per
		// offset, so 10,000 fit in 1,250 bytes and 40,000 do not.
		{"10,000 alternating", everyNth(1_500_000, 10_000, 2), true},
		{"40,000 alternating", everyNth(1_500_000, 40_000, 2), false},
		// Single offsets 1,000 apart: too sparse for the bitset, three
		// bytes a run.
		{"3,000 sparse", everyNth(1_500_000, 3_000_000, 1000), false},
		{"not valid", metaSet(10, offsetRun{12, 13}, offsetRun{14, 15}), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := replay
			m.done = tc.done
			s, ok := encodeMetadata(m, metadataBudget)
			t.Logf("%d offsets in %d runs: %d bytes, fits %v", tc.done.len(), len(tc.done.runs), len(s), ok)
			if ok != tc.fits {
				t.Fatalf("fits = %v, want %v", ok, tc.fits)
			}
			if len(s) > metadataBudget {
				t.Fatalf("encoding of %d bytes, more than %d", len(s), metadataBudget)
			}
			got, err := decodeMetadata(s)
			if err != nil {
				t.Fatal(err)
			}
			want := m
			if !ok {
				want.done = longestFitting(t, m, metadataBudget)
				if !tc.done.valid() && !got.done.empty() {
					t.Fatalf("a set that is not valid was kept: %d runs", len(got.done.runs))
				}
			}
			if !got.equal(want) {
				t.Fatalf("decoded %v", got)
			}
		})
	}
	// A limit below the replay fields alone still gives them, not fitting.
	if s, ok := encodeMetadata(replay, 10); ok || s != "enricher/2 start=1000000 end=2000000" {
		t.Fatalf("encodeMetadata with 10 bytes = %q, %v", s, ok)
	}
	// The limit is exact: one byte less than the encoding keeps one run less.
	m := commitMeta{done: everyNth(0, 3000, 7)}
	s, _ := encodeMetadata(m, math.MaxInt)
	if got, ok := encodeMetadata(m, len(s)); !ok || got != s {
		t.Fatalf("at its own length: %q, %v", got, ok)
	}
	got, ok := encodeMetadata(m, len(s)-1)
	if ok || len(got) > len(s)-1 {
		t.Fatalf("one byte short: %q, %v", got, ok)
	}
	short, err := decodeMetadata(got)
	if err != nil {
		t.Fatal(err)
	}
	if want := longestFitting(t, m, len(s)-1); !short.done.equal(want) || len(want.runs) != len(m.done.runs)-1 {
		t.Fatalf("one byte short: %d of %d runs kept, want %d", len(short.done.runs), len(m.done.runs), len(want.runs))
	}
}

// longestFitting returns the longest prefix of m's runs (as a set) whose
// metadata fits maxBytes, found by trying every length: what
// encodeMetadata keeps of a set that does not fit whole. An invalid set
// is kept not at all.
func longestFitting(t *testing.T, m commitMeta, maxBytes int) completedSet {
	t.Helper()
	if !m.done.valid() {
		return completedSet{}
	}
	best := completedSet{}
	for k := 1; k <= len(m.done.runs); k++ {
		p := m
		p.done.runs = m.done.runs[:k]
		if s, ok := encodeMetadata(p, maxBytes); ok && len(s) <= maxBytes {
			best = p.done
		}
	}
	return best
}

// TestMetadataSize measures encodings of typical in-flight windows and
// bounds them.
func TestMetadataSize(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	random := func(n int, p float64) completedSet {
		es := make([]wmEntry, n)
		for i := range es {
			es[i] = wmEntry{offset: 7_000_000_000 + int64(i), done: i > 0 && r.Float64() < p}
		}
		return newCompletedSet(7_000_000_000, es)
	}
	tests := []struct {
		name string
		done completedSet
		max  int
	}{
		{"1,000 in flight, every 3rd done", everyNth(123_456_789, 1000, 3), 220},
		{"1,000 in flight, all but the head done", everyNth(123_456_789, 1000, 1).without(123_456_789), 40},
		{"1,024 in flight, half done at random", random(1024, 0.5), 210},
		{"1,024 in flight, 95% done at random", random(1024, 0.95), 210},
		{"1,024 in flight, 5% done at random", random(1024, 0.05), 210},
		{"10,000 in flight, every 3rd done", everyNth(123_456_789, 10_000, 3), 1700},
	}
	for _, tc := range tests {
		s, ok := encodeMetadata(commitMeta{done: tc.done}, metadataBudget)
		kind := "runs"
		if strings.Contains(s, "bits=") {
			kind = "bits"
		}
		t.Logf("%s: %d offsets in %d runs: %d bytes (%s)", tc.name, tc.done.len(), len(tc.done.runs), len(s), kind)
		if !ok || len(s) > tc.max {
			t.Errorf("%s: %d bytes, fits %v; want at most %d", tc.name, len(s), ok, tc.max)
		}
	}
}

// without returns c less the runs starting at off (a test helper for
// shaping sets).
func (c completedSet) without(off int64) completedSet {
	out := completedSet{base: c.base}
	for _, r := range c.runs {
		if r.first != off {
			out.runs = append(out.runs, r)
		}
	}
	return out
}

func FuzzDecodeMetadata(f *testing.F) {
	seeds := []commitMeta{
		{},
		{done: metaSet(10, offsetRun{12, 12})},
		{done: metaSet(10, offsetRun{11, 1010})},
		{done: everyNth(1_000_000, 300, 3)},
		{done: metaSet(0, offsetRun{1000, 1000}, offsetRun{5000, 5009}, offsetRun{90000, 90000})},
		{done: metaSet(math.MaxInt64-10, offsetRun{math.MaxInt64 - 8, math.MaxInt64 - 8}, offsetRun{math.MaxInt64 - 2, math.MaxInt64})},
		{replay: true, start: 5, end: 900, stopped: true, done: metaSet(40, offsetRun{42, 44})},
		{replay: true, start: 5, end: 900},
	}
	for _, m := range seeds {
		s, _ := encodeMetadata(m, math.MaxInt)
		f.Add(s)
	}
	f.Add("")
	f.Add("enricher-replay/1 start=5 end=900 stopped")
	f.Add("enricher/2 base=5 runs=" + b64(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0))
	f.Fuzz(func(t *testing.T, s string) {
		m, err := decodeMetadata(s)
		if f := strings.Fields(s); len(f) > 0 && f[0] == replayV1Version && len(s) <= metadataDecodeLimit {
			start, end, stopped, werr := parseCheckpoint(s)
			if (err == nil) != (werr == nil) || err == nil && !m.equal(commitMeta{replay: true, start: start, end: end, stopped: stopped}) {
				t.Fatalf("decodeMetadata(%q) = %v, %v; version 1 reader %d %d %v %v", s, m, err, start, end, stopped, werr)
			}
		}
		if err != nil {
			if !errors.Is(err, errMetadata) {
				t.Fatalf("decodeMetadata(%q) error %v is not errMetadata", s, err)
			}
			return
		}
		if !m.done.valid() {
			t.Fatalf("decodeMetadata(%q) gave a set breaking its invariants: %v", s, m.done)
		}
		enc, ok := encodeMetadata(m, math.MaxInt)
		if !ok {
			t.Fatalf("encodeMetadata of decoded %q did not fit: %q", s, enc)
		}
		if len(enc) > len(s) && strings.HasPrefix(s, metadataVersion) {
			t.Fatalf("re-encoding of %q is longer: %q", s, enc)
		}
		m2, err := decodeMetadata(enc)
		if err != nil {
			t.Fatalf("decodeMetadata(encodeMetadata(decodeMetadata(%q))) = %v", s, err)
		}
		if !m2.equal(m) {
			t.Fatalf("%q decoded to %v, its encoding %q to %v", s, m, enc, m2)
		}
		if enc2, _ := encodeMetadata(m2, math.MaxInt); enc2 != enc {
			t.Fatalf("encoding not canonical: %q then %q", enc, enc2)
		}
		var n int64
		for _, r := range m.done.runs {
			n += r.last - r.first + 1
			if !m.done.contains(r.first) || !m.done.contains(r.last) || m.done.contains(r.first-1) {
				t.Fatalf("contains disagrees with run %v of %q", r, s)
			}
		}
		if n != m.done.len() {
			t.Fatalf("len = %d, want %d", m.done.len(), n)
		}
	})
}

func BenchmarkEncodeMetadata(b *testing.B) {
	for _, n := range []int{256, 1024} {
		for _, k := range []int{3, 50} {
			c := everyNth(5_000_000_000, n, k)
			b.Run(fmt.Sprintf("pending=%d/every=%d", n, k), func(b *testing.B) {
				m := commitMeta{done: c}
				b.ReportAllocs()
				var size int
				for b.Loop() {
					s, _ := encodeMetadata(m, metadataBudget)
					size = len(s)
				}
				b.ReportMetric(float64(size), "bytes")
			})
		}
	}
}

func BenchmarkCompletedFromWatermark(b *testing.B) {
	for _, n := range []int{256, 1024} {
		es := make([]wmEntry, n)
		for i := range es {
			es[i] = wmEntry{offset: int64(i), done: i%3 == 2}
		}
		b.Run(fmt.Sprintf("pending=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				newCompletedSet(0, es)
			}
		})
	}
}

func BenchmarkCompletedContains(b *testing.B) {
	c := everyNth(0, 3000, 3) // 1,000 runs
	b.ReportAllocs()
	var hits int
	off := int64(0)
	for b.Loop() {
		if c.contains(off) {
			hits++
		}
		off = (off + 7) % 3000
	}
	_ = hits
}

// TestCompletedSetWithin: a set read only as far as a budget reaches is a
// prefix of the whole set, and it is cut only when the whole set does not
// fit the budget either: the cut never loses a set that a commit could
// carry.
func TestCompletedSetWithin(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	const budget = 600
	cuts := 0
	for range 300 {
		n := 1 + r.IntN(20_000)
		p := r.Float64()
		es := make([]wmEntry, n)
		for i := range es {
			es[i] = wmEntry{offset: 1_000 + int64(i), done: i > 0 && r.Float64() < p}
		}
		whole := newCompletedSet(1_000, es)
		within, cut := newCompletedSetWithin(1_000, es, budget)
		if !prefixOf(within, whole) {
			t.Fatalf("%d entries, %.2f done: the set within the budget is not a prefix of the whole", n, p)
		}
		if !cut && !within.equal(whole) {
			t.Fatalf("%d entries, %.2f done: not cut, yet not the whole set", n, p)
		}
		if cut {
			cuts++
			if _, fits := encodeMetadata(commitMeta{done: whole}, budget); fits {
				t.Fatalf("%d entries, %.2f done: cut although the whole set fits %d bytes", n, p, budget)
			}
		}
	}
	if cuts == 0 {
		t.Fatal("no set was cut: the test does not exercise the cut")
	}
}

func TestCompletedSetAbove(t *testing.T) {
	c := metaSet(10, offsetRun{12, 13}, offsetRun{15, 15}, offsetRun{18, 20})
	for _, tc := range []struct {
		base int64
		want completedSet
	}{
		{10, c},
		{14, metaSet(14, offsetRun{15, 15}, offsetRun{18, 20})},
		{16, metaSet(16, offsetRun{18, 20})},
		{21, metaSet(21)},
	} {
		if got := c.above(tc.base); !got.equal(tc.want) || got.base != tc.base || !got.valid() {
			t.Errorf("above(%d) = %v, want %v", tc.base, got, tc.want)
		}
	}
}
