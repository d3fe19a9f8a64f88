package simulator

import (
	"testing"
	"time"
)

func TestWindowTrailingSecond(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	var w window
	steps := []struct {
		at   time.Duration
		want int // events in the window ending at this arrival, this one included
	}{
		{0, 1},
		{100 * time.Millisecond, 2},
		{999 * time.Millisecond, 3},
		{time.Second, 3},                         // the event at 0 left: (0, 1s]
		{1100 * time.Millisecond, 3},             // 100ms left
		{1099 * time.Millisecond, 4},             // older than the newest: counted at the newest time
		{3 * time.Second, 1},                     // all left
		{3*time.Second + time.Nanosecond, 2},     // nanosecond resolution
		{4*time.Second + time.Nanosecond - 1, 2}, // 3s is out, 3s+1ns still in
	}
	for i, s := range steps {
		if got := w.arrive(t0.Add(s.at)); got != s.want {
			t.Fatalf("step %d at %v: %d in window, want %d", i, s.at, got, s.want)
		}
	}
}

func TestWindowGrows(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	var w window
	for i := range 10_000 {
		if got := w.arrive(t0.Add(time.Duration(i) * 50 * time.Microsecond)); got != min(i+1, 20_000) {
			t.Fatalf("arrival %d: %d", i, got)
		}
	}
	// 10,000 arrivals 50µs apart span 0.5s; one second later they are gone.
	if got := w.arrive(t0.Add(2 * time.Second)); got != 1 {
		t.Fatalf("after 2s: %d", got)
	}
}

func TestLimiter(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	l := &limiter{limit: 3}
	steps := []struct {
		at time.Duration
		ok bool
	}{
		{0, true}, {0, true}, {0, true},
		{0, false},                      // 4th in the same second
		{999 * time.Millisecond, false}, // the window still holds 4 attempts
		{time.Second, true},             // (0, 1s] holds only the attempt at 999ms
		{time.Second, true},             // 3 now
		{time.Second, false},            // limit
		{2*time.Second - time.Millisecond, false},
		{2 * time.Second, true}, // (1s, 2s] holds only the attempt at 1.999s
	}
	for i, s := range steps {
		if got := l.allow(t0.Add(s.at)); got != s.ok {
			t.Fatalf("step %d at %v: allow=%v, want %v", i, s.at, got, s.ok)
		}
	}
	unlimited := &limiter{limit: -1}
	for range 1000 {
		if !unlimited.allow(t0) {
			t.Fatal("unlimited limiter refused")
		}
	}
}
