package processor

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
	c := completedSet{base: base}
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
	return c
}

// completed returns the offset to commit and the completed set above it.
// The offset is committable() when a record is done, else the first pending
// record's offset (nothing done yet at the head, but records after it may
// be). It reports false while no record was ever added.
func (w *watermark) completed() (completedSet, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	live := w.entries[w.head:]
	base := w.next
	if base < 0 {
		if len(live) == 0 {
			return completedSet{}, false
		}
		base = live[0].offset
	}
	return newCompletedSet(base, live), true
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
