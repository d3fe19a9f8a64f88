package processor

import (
	"errors"
	"fmt"
	"sort"
	"sync"
)

// errOffsetOrder is returned by watermark.add for an offset that does not
// follow the previous one.
var errOffsetOrder = errors.New("offset not above the previous one")

// watermark is the commit tracker of one partition: the contiguous published
// watermark. Records are added in fetch order (offsets strictly increasing,
// gaps allowed, as in compacted or transactional topics) and marked done in
// any order once published. committable is the offset to commit: one past
// the last record of the longest prefix of added records that are all done.
// It never passes a record that is not done. Safe for concurrent use.
type watermark struct {
	mu      sync.Mutex
	entries []wmEntry // pending records in fetch order; entries[head:] are live
	head    int
	last    int64 // last offset added, -1 before the first
	next    int64 // offset to commit; -1 while nothing is done
}

type wmEntry struct {
	offset int64
	done   bool
}

func newWatermark() *watermark { return &watermark{last: -1, next: -1} }

// add registers a fetched record.
func (w *watermark) add(offset int64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if offset <= w.last {
		return fmt.Errorf("watermark: add %d after %d: %w", offset, w.last, errOffsetOrder)
	}
	w.last = offset
	if w.head > 0 && w.head >= len(w.entries)/2 {
		n := copy(w.entries, w.entries[w.head:])
		w.entries = w.entries[:n]
		w.head = 0
	}
	w.entries = append(w.entries, wmEntry{offset: offset})
	return nil
}

// done marks a record published and returns how many records the
// watermark moved past (0 while an earlier record is pending). It reports
// false for an offset that is not pending (never added, or already done).
func (w *watermark) done(offset int64) (int, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	live := w.entries[w.head:]
	i := sort.Search(len(live), func(i int) bool { return live[i].offset >= offset })
	if i == len(live) || live[i].offset != offset || live[i].done {
		return 0, false
	}
	live[i].done = true
	start := w.head
	for w.head < len(w.entries) && w.entries[w.head].done {
		w.next = w.entries[w.head].offset + 1
		w.head++
	}
	return w.head - start, true
}

// committable returns the offset to commit (the next offset to consume) and
// whether any record has been completed yet.
func (w *watermark) committable() (int64, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.next, w.next >= 0
}

// pending is the number of added records not yet behind the watermark.
func (w *watermark) pending() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.entries) - w.head
}
