package bench

import (
	"math/rand/v2"
	"strconv"
	"time"
)

// userSequence returns the user index of every event of s: a Zipf draw
// over s.Users (rank r is mapped to a fixed random permutation of the
// users, so popularity does not follow the user numbering), or a random
// permutation of distinct users when s.Distinct(). The same scenario always
// yields the same sequence.
func userSequence(s Scenario) []int32 {
	rng := rand.New(rand.NewPCG(s.Seed, 0x62656e6368))
	seq := make([]int32, s.Events)
	if s.Distinct() {
		for i, u := range rng.Perm(s.Events) {
			seq[i] = int32(u)
		}
		return seq
	}
	perm := rng.Perm(s.Users)
	var draw func() int
	if s.Users == 1 {
		draw = func() int { return 0 }
	} else {
		z := rand.NewZipf(rng, s.ZipfS, 1, uint64(s.Users-1))
		draw = func() int { return int(z.Uint64()) }
	}
	for i := range seq {
		seq[i] = int32(perm[draw()])
	}
	return seq
}

// distinctUsers counts the distinct users of a sequence.
func distinctUsers(seq []int32) int {
	seen := map[int32]struct{}{}
	for _, u := range seq {
		seen[u] = struct{}{}
	}
	return len(seen)
}

// appendEvent appends event i of a scenario as a user-event JSON document.
func appendEvent(b []byte, scenario string, i int, user string, at time.Time) []byte {
	b = append(b, `{"event_id":"`...)
	b = append(b, scenario...)
	b = append(b, '-')
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, `","user_id":"`...)
	b = append(b, user...)
	b = append(b, `","type":"message_sent","ts":"`...)
	b = at.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `"}`...)
	return b
}
