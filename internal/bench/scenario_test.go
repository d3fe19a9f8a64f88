package bench

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

func TestSelect(t *testing.T) {
	all := Scenarios(1, 8)
	tests := []struct {
		names   []string
		want    []string
		wantErr bool
	}{
		{names: []string{"all"}, want: []string{"ceiling", "warm", "ceiling-sized", "cold", "skewed", "warm-1p", "cold-1p", "kill-restart", "broker-restart", "scale-out", "ceiling-end"}},
		{names: []string{"redelivery"}, want: []string{"kill-restart", "broker-restart", "scale-out"}},
		{names: []string{"scale-out", "cold"}, want: []string{"ceiling", "cold", "scale-out", "ceiling-end"}},
		{names: []string{"cold"}, want: []string{"ceiling", "cold", "ceiling-end"}},
		{names: []string{"one-partition", "warm"}, want: []string{"ceiling", "warm", "ceiling-sized", "warm-1p", "cold-1p", "ceiling-end"}},
		{names: []string{"warm", "ceiling-sized"}, want: []string{"ceiling", "warm", "ceiling-sized", "ceiling-end"}},
		{names: []string{"ceiling-sized"}, wantErr: true}, // nothing to be sized like
		{names: []string{"ceiling"}, want: []string{"ceiling"}},
		{names: []string{" skewed "}, want: []string{"ceiling", "skewed", "ceiling-end"}},
		{names: []string{"hot"}, wantErr: true},
	}
	for _, tt := range tests {
		got, err := Select(all, tt.names)
		if (err != nil) != tt.wantErr {
			t.Errorf("Select(%q) error = %v, want error %v", tt.names, err, tt.wantErr)
			continue
		}
		if !slices.Equal(Names(got), tt.want) {
			t.Errorf("Select(%q) = %q, want %q", tt.names, Names(got), tt.want)
		}
	}
}

func TestScenariosScale(t *testing.T) {
	tests := []struct {
		scale              float64
		name               string
		events, users, prt int
	}{
		{1, "warm", 1_000_000, 2_000, 8},
		{1, "cold", 6_000, 0, 8},
		{1, "skewed", 200_000, 100_000, 8},
		{1, "warm-1p", 1_000_000, 2_000, 1},
		{1, "cold-1p", 6_000, 0, 1},
		{1, "kill-restart", 6_000, 1_500, 8},
		{0.1, "scale-out", 600, 150, 8},
		{0.1, "warm", 100_000, 200, 8},
		{0.1, "cold", 600, 0, 8},
		{0.1, "skewed", 20_000, 10_000, 8},
		{0.000001, "warm", 1, 1, 8},
	}
	for _, tt := range tests {
		i := slices.IndexFunc(Scenarios(tt.scale, 8), func(s Scenario) bool { return s.Name == tt.name })
		s := Scenarios(tt.scale, 8)[i]
		if s.Events != tt.events || s.Users != tt.users || s.Partitions != tt.prt {
			t.Errorf("scale %g %s: %d events, %d users, %d partitions; want %d, %d, %d", tt.scale, tt.name, s.Events, s.Users, s.Partitions, tt.events, tt.users, tt.prt)
		}
	}
	// The ceiling copies the warm input.
	all := Scenarios(1, 8)
	ceiling, warm := all[0], all[1]
	if ceiling.Events != warm.Events || ceiling.Users != warm.Users || ceiling.Seed != warm.Seed {
		t.Errorf("ceiling %+v does not copy the warm input %+v", ceiling, warm)
	}
}

func TestEventSource(t *testing.T) {
	now := func() time.Time { return time.Unix(1_700_000_000, 0) }
	draw := func(s Scenario) ([]int32, []kafka.Message) {
		src, err := newEventSource(s, now)
		if err != nil {
			t.Fatal(err)
		}
		seq := make([]int32, s.Events)
		msgs := make([]kafka.Message, s.Events)
		for i := range seq {
			msgs[i], seq[i] = src.next()
		}
		return seq, msgs
	}
	tests := []struct {
		name         string
		s            Scenario
		wantDistinct func(int) bool
	}{
		{"distinct", Scenario{Name: "cold", Events: 5000, Seed: 2}, func(d int) bool { return d == 5000 }},
		{"zipf", Scenario{Name: "warm", Events: 20_000, Users: 2_000, ZipfS: 1.1, Seed: 1}, func(d int) bool { return d > 100 && d <= 2000 }},
		{"one user", Scenario{Name: "one", Events: 10, Users: 1, ZipfS: 1.1}, func(d int) bool { return d == 1 }},
		{"uniform", Scenario{Name: "kill-restart", Events: 6000, Users: 1500, Seed: 4}, func(d int) bool { return d == 1500 }},
	}
	for _, tt := range tests {
		seq, msgs := draw(tt.s)
		if d := distinctUsers(seq); !tt.wantDistinct(d) {
			t.Errorf("%s: %d distinct users", tt.name, d)
		}
		limit := int32(tt.s.Users)
		if tt.s.Distinct() {
			limit = int32(tt.s.Events)
		}
		for i, m := range msgs {
			var ev struct {
				UserID string `json:"user_id"`
			}
			if err := json.Unmarshal(m.Value, &ev); err != nil {
				t.Fatalf("%s: event %d %q: %v", tt.name, i, m.Value, err)
			}
			if ev.UserID != userID(int(seq[i])) || string(m.Key) != ev.UserID {
				t.Fatalf("%s: event %d has user %q, key %q; want %q", tt.name, i, ev.UserID, m.Key, userID(int(seq[i])))
			}
			if seq[i] < 0 || seq[i] >= limit {
				t.Fatalf("%s: user %d outside [0, %d)", tt.name, seq[i], limit)
			}
		}
		if again, _ := draw(tt.s); !slices.Equal(seq, again) {
			t.Errorf("%s: sequence is not reproducible", tt.name)
		}
	}
	// Zipf skew: the hottest user carries far more than a uniform share.
	seq, _ := draw(Scenario{Name: "warm", Events: 100_000, Users: 2_000, ZipfS: 1.1, Seed: 1})
	counts := map[int32]int{}
	hottest := 0
	for _, u := range seq {
		counts[u]++
		hottest = max(hottest, counts[u])
	}
	if uniform := 100_000 / 2_000; hottest < 20*uniform {
		t.Errorf("hottest user has %d events, want a Zipf head far above the uniform %d", hottest, uniform)
	}
}

// TestEventSourceUniform: a uniform scenario gives every user the same
// number of events, not in user order.
func TestEventSourceUniform(t *testing.T) {
	s := Scenario{Name: "kill-restart", Events: 6000, Users: 1500, Seed: 4}
	src, err := newEventSource(s, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[int32]int{}
	inOrder := true
	for i := range s.Events {
		_, u := src.next()
		counts[u]++
		inOrder = inOrder && int(u) == i%s.Users
	}
	for u, n := range counts {
		if n != s.Events/s.Users {
			t.Fatalf("user %d has %d events, want %d", u, n, s.Events/s.Users)
		}
	}
	if inOrder {
		t.Fatal("events are in user order, not shuffled")
	}
}

func TestCompletion(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	arrivals := []arrival{{at(10), 30}, {at(20), 30}, {at(30), 39}, {at(40), 1}, {at(50), 5}}
	end, qs := completion(arrivals, 100, 0, 0.5, 0.99)
	if !end.Equal(at(40)) {
		t.Errorf("end = %v, want the arrival holding record 100", end.Sub(t0))
	}
	want := []time.Time{at(10), at(20), at(30)}
	for i := range want {
		if !qs[i].Equal(want[i]) {
			t.Errorf("quantile %d at %v, want %v", i, qs[i].Sub(t0), want[i].Sub(t0))
		}
	}
	if end, _ := completion(arrivals[:2], 100, 0.5); !end.IsZero() {
		t.Errorf("incomplete arrivals: end = %v, want zero", end)
	}
}
