package processor

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// completedSet is the part of a partition's progress that the committed
// offset cannot express: the offsets above it that are already published.
// It travels in the offset commit's metadata (encodeMetadata) so that the
// consumer taking the partition over skips those records instead of
// publishing them again.
//
// Gaps. Offsets need not be contiguous (compacted topics, transaction
// markers, aborted transactions). The set holds only offsets of records that
// were fetched and are done; an offset that was never fetched is not in it,
// exactly like a pending one. A gap therefore splits a run: done records at
// 10, 11 and 13 with nothing fetched at 12 are the runs 10-11 and 13, never
// 10-13. Such an offset has no record to skip, so leaving it out costs only
// a few bytes of encoding, and an offset is never reported done unless a
// record at it was published.
//
// The zero value is the empty set.
type completedSet struct {
	// base is the committed offset the set belongs to: the first record not
	// done (or the first offset after the done prefix). It is never in the
	// set; every run is above it.
	base int64
	// runs are sorted, disjoint and non-adjacent (two runs are at least one
	// offset apart), all above base.
	runs []offsetRun
}

// offsetRun is the offsets first..last, both included.
type offsetRun struct {
	first, last int64
}

// newCompletedSet returns the completed set above base of pending, a
// watermark's records in fetch order (offsets increasing). Entries at or
// below base, entries not done, and entries out of order are left out:
// leaving out an offset only means its record is delivered again.
func newCompletedSet(base int64, pending []wmEntry) completedSet {
	c, _ := newCompletedSetWithin(base, pending, math.MaxInt)
	return c
}

// newCompletedSetWithin is newCompletedSet, reading pending only as far as
// a set of at most maxPayload bytes of either encoding can reach: a run
// takes at least two bytes of the runs encoding, and an offset past
// 8×maxPayload above base takes the bitset past maxPayload. It reports
// whether it stopped before the end (the set is then a prefix of the
// whole, its last run possibly shortened: still only done offsets).
func newCompletedSetWithin(base int64, pending []wmEntry, maxPayload int) (completedSet, bool) {
	// Count the runs first to allocate them once: a done record starts a
	// run unless the record before it is done at the offset before.
	n, prev := 0, wmEntry{offset: base}
	spanLimit := int64(math.MaxInt64)
	if maxPayload < math.MaxInt64/8 {
		spanLimit = 8 * int64(maxPayload)
	}
	cut := false
	for i, e := range pending {
		if 2*n > maxPayload && e.offset-base > spanLimit {
			pending, cut = pending[:i], true
			break
		}
		if e.done && e.offset > base && !(prev.done && prev.offset == e.offset-1) {
			n++
		}
		prev = e
	}
	c := completedSet{base: base}
	if n > 0 {
		c.runs = make([]offsetRun, 0, n)
	}
	for _, e := range pending {
		if !e.done || e.offset <= base {
			continue
		}
		n := len(c.runs)
		switch {
		case n > 0 && e.offset <= c.runs[n-1].last:
			continue // out of order
		case n > 0 && e.offset == c.runs[n-1].last+1:
			c.runs[n-1].last = e.offset
		default:
			c.runs = append(c.runs, offsetRun{first: e.offset, last: e.offset})
		}
	}
	return c, cut
}

// completed returns the offset to commit and the completed set above it.
// The offset is committable() when a record is done, else the first pending
// record's offset (nothing done yet at the head, but records after it may
// be). It reports false while no record was ever added.
func (w *watermark) completed() (completedSet, bool) {
	c, _, ok := w.completedWithin(math.MaxInt)
	return c, ok
}

// completedWithin is completed, with the set read only as far as
// maxPayload bytes reach (newCompletedSetWithin); it also reports whether
// the set was cut there.
func (w *watermark) completedWithin(maxPayload int) (completedSet, bool, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	live := w.entries[w.head:]
	base := w.next
	if base < 0 {
		if len(live) == 0 {
			return completedSet{}, false, false
		}
		base = live[0].offset
	}
	c, cut := newCompletedSetWithin(base, live, maxPayload)
	return c, cut, true
}

// base returns the offset completed would give, without the set.
func (w *watermark) base() (int64, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.next >= 0 {
		return w.next, true
	}
	if w.head < len(w.entries) {
		return w.entries[w.head].offset, true
	}
	return 0, false
}

// above returns the part of c above base (the later base of the same
// partition: c's offsets stay done).
func (c completedSet) above(base int64) completedSet {
	i := 0
	for i < len(c.runs) && c.runs[i].last <= base {
		i++
	}
	// No run left contains base: base is not done (or past every record).
	return completedSet{base: base, runs: c.runs[i:]}
}

// contains reports whether off is in the set (a binary search over the
// runs).
func (c completedSet) contains(off int64) bool {
	lo, hi := 0, len(c.runs)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if c.runs[m].last < off {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo < len(c.runs) && c.runs[lo].first <= off
}

// len is the number of offsets in the set. It cannot overflow: the runs
// are disjoint and inside (base, MaxInt64].
func (c completedSet) len() int64 {
	var n int64
	for _, r := range c.runs {
		n += r.last - r.first + 1
	}
	return n
}

// empty reports whether the set has no offset.
func (c completedSet) empty() bool { return len(c.runs) == 0 }

// valid reports whether the set keeps its invariants: base not negative,
// runs sorted, disjoint, non-adjacent and above base.
func (c completedSet) valid() bool {
	if c.base < 0 {
		return false
	}
	prev := c.base - 1 // the first run may start at base+1
	for _, r := range c.runs {
		// first > prev >= -1, so first-1 cannot overflow; together the
		// two say first >= prev+2 without computing prev+2.
		if r.first > r.last || r.first <= prev || r.first-1 == prev {
			return false
		}
		prev = r.last
	}
	return true
}

// equal reports whether c and o hold the same offsets above the same base;
// two empty sets are equal whatever their base.
func (c completedSet) equal(o completedSet) bool {
	if len(c.runs) != len(o.runs) {
		return false
	}
	if len(c.runs) == 0 {
		return true
	}
	if c.base != o.base {
		return false
	}
	for i := range c.runs {
		if c.runs[i] != o.runs[i] {
			return false
		}
	}
	return true
}

// Commit metadata, version 2: one line of printable ASCII, fields separated
// by one space, in this order, all but the version optional:
//
//	enricher/2 start=S end=E stopped base=B runs=P
//	enricher/2 start=S end=E stopped base=B bits=P
//
// start=S end=E are the replay range of a replay checkpoint, stopped marks
// a clean stop's final checkpoint (only after start and end). base=B is the
// committed offset the completed set belongs to, and is followed by the set
// as one of:
//
//   - runs=P: P is unpadded base64url of unsigned varints, two per run: the
//     gap before the run and its length less one. The gap of the first run
//     is counted from B+1, the gap of each next one from two past the end of
//     the previous one (runs are never adjacent), so every varint sequence
//     is a valid set and no two sets share one.
//   - bits=P: P is unpadded base64url of a bitset: bit j (least significant
//     first) of byte i is offset B+1+8i+j. The last byte is not zero.
//
// The encoder picks the shorter of the two (runs on a tie). Numbers are
// decimal without sign or leading zeros. A set is sent only when it is not
// empty; without one the commit means the watermark alone, as before.
//
// The decoder also reads the replay checkpoint format of version 1,
// "enricher-replay/1 start=S end=E" with an optional " stopped", which has
// no completed set.
const (
	metadataVersion = "enricher/2"
	replayV1Version = "enricher-replay/1"

	// metadataMaxBytes is the brokers' default offset.metadata.max.bytes: a
	// commit with longer metadata is refused.
	metadataMaxBytes = 4096
	// metadataBudget is the size encodeMetadata is normally given: the
	// brokers' default less a margin for fields added later.
	metadataBudget = metadataMaxBytes - 256
	// metadataDecodeLimit is the longest metadata decodeMetadata reads
	// (sixteen times the brokers' default), which bounds its memory: at
	// most four runs per byte. encodeMetadata never writes more.
	metadataDecodeLimit = 64 << 10
)

// errMetadata marks commit metadata that decodeMetadata cannot read. The
// caller then resumes from the committed offset alone, which is safe: it
// only publishes again.
var errMetadata = errors.New("malformed commit metadata")

// commitMeta is what a partition's offset commit carries in its metadata.
type commitMeta struct {
	// done is the completed set above the committed offset; empty when the
	// commit is the watermark alone.
	done completedSet
	// replay reports that start, end and stopped are present: the commit
	// is a replay checkpoint of the offsets [start, end).
	replay     bool
	start, end int64
	// stopped marks the final checkpoint of a replay that stopped cleanly;
	// it is written only with the other replay fields.
	stopped bool
}

// equal reports whether m and o carry the same information.
func (m commitMeta) equal(o commitMeta) bool {
	if m.replay != o.replay || m.replay && (m.start != o.start || m.end != o.end || m.stopped != o.stopped) {
		return false
	}
	return m.done.equal(o.done)
}

// completedAt returns the completed set when it belongs to committed, the
// offset the metadata was fetched with. A different offset means the commit
// was rewritten without the set (an offset reset keeping the old metadata,
// another writer): the set is then ignored.
func (m commitMeta) completedAt(committed int64) (completedSet, bool) {
	if m.done.empty() || m.done.base != committed {
		return completedSet{}, false
	}
	return m.done, true
}

// encodeMetadata returns the commit metadata of m, at most maxBytes long
// (clamped to metadataDecodeLimit), and true. When m's completed set does
// not fit, the result carries its longest prefix that does (its first
// runs: the offsets left out are only published again by a next owner)
// and reports false so that the caller can count it; a set that does not
// keep its invariants is left out. It also reports false when the replay
// fields alone are longer than maxBytes. The replay fields are written as
// given: start and end must be offsets with start <= end for
// decodeMetadata to read them back.
func encodeMetadata(m commitMeta, maxBytes int) (string, bool) {
	s, kept := encodePrefix(m, maxBytes)
	return s, kept == len(m.done.runs) && len(s) <= min(maxBytes, metadataDecodeLimit)
}

// encodePrefix is encodeMetadata, also returning how many of m's runs the
// encoding carries.
func encodePrefix(m commitMeta, maxBytes int) (string, int) {
	maxBytes = min(maxBytes, metadataDecodeLimit)
	b := make([]byte, 0, 64)
	b = append(b, metadataVersion...)
	if m.replay {
		b = append(b, " start="...)
		b = strconv.AppendInt(b, m.start, 10)
		b = append(b, " end="...)
		b = strconv.AppendInt(b, m.end, 10)
		if m.stopped {
			b = append(b, " stopped"...)
		}
	}
	if m.done.empty() || !m.done.valid() {
		return string(b), 0
	}
	head := len(b)
	b = append(b, " base="...)
	b = strconv.AppendInt(b, m.done.base, 10)
	room := maxBytes - len(b) - len(" runs=")
	if room <= 0 {
		return string(b[:head]), 0
	}
	// The largest payload whose base64 fits in room.
	maxPayload := room / 4 * 3
	switch room % 4 {
	case 2:
		maxPayload++
	case 3:
		maxPayload += 2
	}
	set := m.done
	set.runs = set.runs[:fittingRuns(set, maxPayload)]
	if set.empty() {
		return string(b[:head]), 0
	}
	runs := appendRuns(nil, set, maxPayload+1)
	if len(runs) <= bitsetLen(set, maxPayload+1) {
		b = append(b, " runs="...)
	} else {
		b = append(b, " bits="...)
		runs = appendBitset(runs[:0], set)
	}
	b = base64.RawURLEncoding.AppendEncode(b, runs)
	return string(b), len(set.runs)
}

// fittingRuns returns the largest k such that the first k runs of c have
// a runs or a bitset payload of at most maxPayload bytes. Both payloads
// only grow with k.
func fittingRuns(c completedSet, maxPayload int) int {
	k, runsLen, cursor := 0, 0, c.base+1
	for _, r := range c.runs {
		runsLen += uvarintLen(uint64(r.first-cursor)) + uvarintLen(uint64(r.last-r.first))
		bitsLen := (uint64(r.last-c.base) + 7) / 8
		if runsLen > maxPayload && bitsLen > uint64(maxPayload) {
			break
		}
		k++
		cursor = r.last + 2 // wraps only after the last run
	}
	return k
}

// uvarintLen is the length of v as an unsigned varint.
func uvarintLen(v uint64) int { return (bits.Len64(v|1) + 6) / 7 }

// appendRuns appends the runs payload of c to dst, stopping once it is
// longer than limit bytes.
func appendRuns(dst []byte, c completedSet, limit int) []byte {
	start := len(dst)
	cursor := c.base + 1
	for _, r := range c.runs {
		dst = binary.AppendUvarint(dst, uint64(r.first-cursor))
		dst = binary.AppendUvarint(dst, uint64(r.last-r.first))
		if len(dst)-start > limit {
			break
		}
		cursor = r.last + 2 // wraps only after the last run
	}
	return dst
}

// bitsetLen is the length of the bitset payload of c, or limit when it
// would be longer.
func bitsetLen(c completedSet, limit int) int {
	span := uint64(c.runs[len(c.runs)-1].last - c.base) // bits for base+1..last
	n := (span + 7) / 8
	if n > uint64(limit) {
		return limit
	}
	return int(n)
}

// appendBitset appends the bitset payload of c to dst.
func appendBitset(dst []byte, c completedSet) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, bitsetLen(c, math.MaxInt))...)
	bs := dst[start:]
	for _, r := range c.runs {
		for i := uint64(r.first - c.base - 1); i <= uint64(r.last-c.base-1); i++ {
			bs[i/8] |= 1 << (i % 8)
		}
	}
	return dst
}

// decodeMetadata reads commit metadata written by encodeMetadata, or a
// version 1 replay checkpoint. Empty metadata (a commit without any) is
// the zero commitMeta. Anything else is an error wrapping errMetadata.
// Its work and memory are linear in len(s), which it bounds.
func decodeMetadata(s string) (commitMeta, error) {
	switch {
	case s == "":
		return commitMeta{}, nil
	case len(s) > metadataDecodeLimit:
		return commitMeta{}, fmt.Errorf("%w: %d bytes, more than %d", errMetadata, len(s), metadataDecodeLimit)
	case s == metadataVersion || strings.HasPrefix(s, metadataVersion+" "):
		return decodeV2(s[len(metadataVersion):])
	}
	if f := strings.Fields(s); len(f) > 0 && f[0] == replayV1Version {
		return decodeReplayV1(f)
	}
	return commitMeta{}, fmt.Errorf("%w: unknown format %q", errMetadata, clip(s))
}

// decodeV2 reads the fields after the version tag: "" or " field...".
func decodeV2(rest string) (commitMeta, error) {
	var f []string
	if rest != "" {
		f = strings.Split(rest[1:], " ")
	}
	i := 0
	field := func(name string) (string, bool) {
		if i < len(f) {
			if v, ok := strings.CutPrefix(f[i], name); ok {
				i++
				return v, true
			}
		}
		return "", false
	}
	var m commitMeta
	if v, ok := field("start="); ok {
		start, err := parseOffset("start", v)
		if err != nil {
			return commitMeta{}, err
		}
		v, ok := field("end=")
		if !ok {
			return commitMeta{}, fmt.Errorf("%w: start without end", errMetadata)
		}
		end, err := parseOffset("end", v)
		if err != nil {
			return commitMeta{}, err
		}
		if end < start {
			return commitMeta{}, fmt.Errorf("%w: end %d before start %d", errMetadata, end, start)
		}
		m.replay, m.start, m.end = true, start, end
		if i < len(f) && f[i] == "stopped" {
			m.stopped = true
			i++
		}
	}
	if v, ok := field("base="); ok {
		base, err := parseOffset("base", v)
		if err != nil {
			return commitMeta{}, err
		}
		m.done.base = base
		var decode func(int64, []byte) ([]offsetRun, error)
		if v, ok = field("runs="); ok {
			decode = decodeRuns
		} else if v, ok = field("bits="); ok {
			decode = decodeBitset
		} else {
			return commitMeta{}, fmt.Errorf("%w: base without runs or bits", errMetadata)
		}
		p, err := decodePayload(v)
		if err != nil {
			return commitMeta{}, err
		}
		if m.done.runs, err = decode(base, p); err != nil {
			return commitMeta{}, err
		}
	}
	if i < len(f) {
		return commitMeta{}, fmt.Errorf("%w: unexpected field %q", errMetadata, clip(f[i]))
	}
	return m, nil
}

// decodeReplayV1 reads the fields of a version 1 replay checkpoint, as the
// version 1 reader did.
func decodeReplayV1(f []string) (commitMeta, error) {
	m := commitMeta{replay: true}
	if len(f) == 4 && f[3] == "stopped" {
		m.stopped, f = true, f[:3]
	}
	if len(f) != 3 {
		return commitMeta{}, fmt.Errorf("%w: %s: %d fields", errMetadata, replayV1Version, len(f))
	}
	for i, name := range []string{"start=", "end="} {
		v, ok := strings.CutPrefix(f[i+1], name)
		if !ok {
			return commitMeta{}, fmt.Errorf("%w: %s: field %q is not %s", errMetadata, replayV1Version, clip(f[i+1]), name)
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return commitMeta{}, fmt.Errorf("%w: %s: %s%q is not an offset", errMetadata, replayV1Version, name, clip(v))
		}
		if i == 0 {
			m.start = n
		} else {
			m.end = n
		}
	}
	if m.end < m.start {
		return commitMeta{}, fmt.Errorf("%w: %s: end %d before start %d", errMetadata, replayV1Version, m.end, m.start)
	}
	return m, nil
}

// parseOffset reads a decimal offset without sign or leading zeros.
func parseOffset(name, v string) (int64, error) {
	if v == "" || len(v) > 1 && v[0] == '0' || strings.Trim(v, "0123456789") != "" {
		return 0, fmt.Errorf("%w: %s=%q is not an offset", errMetadata, name, clip(v))
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s=%q is not an offset", errMetadata, name, clip(v))
	}
	return n, nil
}

// decodePayload decodes unpadded base64url, refusing other characters
// (the standard decoder skips line breaks) and an empty payload.
func decodePayload(v string) ([]byte, error) {
	if v == "" {
		return nil, fmt.Errorf("%w: empty set payload", errMetadata)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return nil, fmt.Errorf("%w: byte %#x in set payload", errMetadata, c)
		}
	}
	p, err := base64.RawURLEncoding.Strict().DecodeString(v)
	if err != nil {
		return nil, fmt.Errorf("%w: set payload: %w", errMetadata, err)
	}
	return p, nil
}

// decodeRuns reads a runs payload above base.
func decodeRuns(base int64, p []byte) ([]offsetRun, error) {
	// Every varint ends with a byte below 0x80: at most half of them
	// start a run.
	n := 0
	for _, c := range p {
		if c < 0x80 {
			n++
		}
	}
	runs := make([]offsetRun, 0, n/2)
	cursor := uint64(base) + 1 // the smallest offset the next run may start at
	for len(p) > 0 {
		gap, err := readUvarint(&p)
		if err != nil {
			return nil, err
		}
		length, err := readUvarint(&p)
		if err != nil {
			return nil, err
		}
		// cursor <= MaxInt64+2: none of these sums wraps a uint64.
		if cursor > math.MaxInt64 || gap > math.MaxInt64-cursor || length > math.MaxInt64-(cursor+gap) {
			return nil, fmt.Errorf("%w: run %d passes the largest offset", errMetadata, len(runs))
		}
		first := cursor + gap
		last := first + length
		runs = append(runs, offsetRun{first: int64(first), last: int64(last)})
		cursor = last + 2
	}
	return runs, nil
}

// readUvarint reads a minimally encoded unsigned varint off the front of
// *p.
func readUvarint(p *[]byte) (uint64, error) {
	v, n := binary.Uvarint(*p)
	switch {
	case n == 0:
		return 0, fmt.Errorf("%w: set payload ends inside a run", errMetadata)
	case n < 0:
		return 0, fmt.Errorf("%w: varint overflows 64 bits", errMetadata)
	case n > 1 && (*p)[n-1] == 0:
		return 0, fmt.Errorf("%w: varint not minimally encoded", errMetadata)
	}
	*p = (*p)[n:]
	return v, nil
}

// decodeBitset reads a bitset payload above base.
func decodeBitset(base int64, p []byte) ([]offsetRun, error) {
	last := p[len(p)-1]
	if last == 0 {
		return nil, fmt.Errorf("%w: bitset ends with a zero byte", errMetadata)
	}
	// top is the highest bit set; its offset base+1+top must not pass
	// MaxInt64.
	top := uint64(len(p)-1)*8 + uint64(bits.Len8(last)) - 1
	if top >= uint64(math.MaxInt64-base) {
		return nil, fmt.Errorf("%w: bitset passes the largest offset", errMetadata)
	}
	// A run starts at each set bit whose previous bit is clear.
	n, carry := 0, byte(0)
	for _, c := range p {
		n += bits.OnesCount8(c &^ (c<<1 | carry))
		carry = c >> 7
	}
	runs := make([]offsetRun, 0, n)
	in := false // the previous bit is set
	for i, c := range p {
		switch {
		case c == 0 && !in:
			continue
		case c == 0xff && in:
			runs[len(runs)-1].last = base + 1 + int64(i)*8 + 7
			continue
		}
		for j := range 8 {
			if c>>j&1 == 0 {
				in = false
				continue
			}
			off := base + 1 + int64(i)*8 + int64(j) // <= base+1+top: no overflow
			if in {
				runs[len(runs)-1].last = off
			} else {
				runs = append(runs, offsetRun{first: off, last: off})
				in = true
			}
		}
	}
	return runs, nil
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
