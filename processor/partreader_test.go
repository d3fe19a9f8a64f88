package processor

import (
	"slices"
	"testing"

	"github.com/segmentio/kafka-go/protocol"
	fetchAPI "github.com/segmentio/kafka-go/protocol/fetch"
)

// batch returns a v2 record batch of producer pid with records at offsets.
func batch(pid int64, txn bool, offsets ...int64) *protocol.RecordBatch {
	recs := make([]protocol.Record, len(offsets))
	for i, o := range offsets {
		recs[i] = protocol.Record{Offset: o, Value: protocol.NewBytes([]byte(`{}`))}
	}
	b := &protocol.RecordBatch{BaseOffset: offsets[0], ProducerID: pid, Records: protocol.NewRecordReader(recs...)}
	if txn {
		b.Attributes = protocol.Transactional
	}
	return b
}

// marker returns the control batch of producer pid's commit or abort at
// offset.
func marker(pid, offset int64, commit bool) *protocol.ControlBatch {
	typ := byte(0)
	if commit {
		typ = 1
	}
	rec := protocol.Record{Offset: offset, Key: protocol.NewBytes([]byte{0, 0, 0, typ}), Value: protocol.NewBytes([]byte{0, 0, 0, 0, 0, 0})}
	return &protocol.ControlBatch{Attributes: protocol.Transactional | protocol.Control, BaseOffset: offset, ProducerID: pid, Records: protocol.NewRecordReader(rec)}
}

// TestReadBatches: of interleaved transactions of two producers, one
// aborted, read_committed keeps the committed ones and the
// non-transactional records, drops the aborted ones and every marker, and
// the next offset passes everything read; a producer's next transaction
// after its abort marker is kept.
func TestReadBatches(t *testing.T) {
	stream := func() *protocol.RecordStream {
		return &protocol.RecordStream{Records: []protocol.RecordReader{
			batch(1, true, 0, 1),   // producer 1, aborted below
			batch(2, true, 2, 3),   // producer 2, committed
			batch(9, false, 4),     // not transactional
			batch(1, true, 5),      // producer 1, same aborted transaction
			marker(2, 6, true),     // producer 2 commits
			marker(1, 7, false),    // producer 1 aborts
			batch(1, true, 8, 9),   // producer 1, next transaction: committed
			marker(1, 10, true),    // its commit
			batch(3, true, 11, 12), // producer 3, aborted
			marker(3, 13, false),   // its abort: the last offset
		}}
	}
	aborted := []fetchAPI.ResponseTransaction{{ProducerID: 3, FirstOffset: 11}, {ProducerID: 1, FirstOffset: 0}}
	offsets := func(f fetched) []int64 {
		var out []int64
		for _, m := range f.msgs {
			out = append(out, m.Offset)
		}
		return out
	}
	tests := []struct {
		name    string
		from    int64
		aborted []fetchAPI.ResponseTransaction
		want    []int64
	}{
		{"read_committed", 0, aborted, []int64{2, 3, 4, 8, 9}},
		{"read_committed from inside a batch", 3, aborted, []int64{3, 4, 8, 9}},
		{"read_uncommitted", 0, nil, []int64{0, 1, 2, 3, 4, 5, 8, 9, 11, 12}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fetched{from: tt.from, next: tt.from}
			if err := readBatches(stream(), tt.aborted, "in", 0, 14, &f); err != nil {
				t.Fatal(err)
			}
			if got := offsets(f); !slices.Equal(got, tt.want) {
				t.Fatalf("records %v, want %v", got, tt.want)
			}
			if f.next != 14 {
				t.Fatalf("next %d, want 14 (past the last marker)", f.next)
			}
			for _, m := range f.msgs {
				if m.HighWaterMark != 14 || m.Topic != "in" || string(m.Value) != "{}" {
					t.Fatalf("message %+v", m)
				}
			}
		})
	}
}
