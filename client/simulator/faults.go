package simulator

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"time"
)

// Faults are the failures and delays the simulator injects. The zero value
// injects nothing. Faults can be set at start (Config.Faults) and replaced
// while running (Simulator.SetFaults, POST /faults).
type Faults struct {
	// Latency is added to every call; Jitter adds a uniformly random extra
	// delay in [0, Jitter). Both default to zero in this package; the
	// simulator command defaults to a realistic 20ms + [0, 40ms).
	Latency, Jitter time.Duration
	// P502 is the probability that a call fails with HTTP 502 (a network
	// fault). P10004 and P20005 are the probabilities that an authenticated,
	// admitted call answers ErrorCode 10004 or 20005 (internal server errors).
	P502, P10004, P20005 float64
	// OutageFor makes every call fail with HTTP 502 for this long, counted
	// from when the faults are set. Simulator.Faults reports what remains.
	OutageFor time.Duration
	// SlowProbability is the probability that a call is delayed by an
	// extra SlowDelay before it is answered normally: a response slower than
	// the client's timeout.
	SlowProbability float64
	SlowDelay       time.Duration
	// ForceCode makes calls for a Subscriber_Account answer with the given
	// ErrorCode (502 answers HTTP 502); the key "*" applies to every user
	// without an entry of its own. A code of 0 means no forcing.
	ForceCode map[string]int
}

// AllUsers is the ForceCode key that applies to every user.
const AllUsers = "*"

// Validate reports the first invalid field: probabilities must be within
// [0, 1] and durations must not be negative.
func (f Faults) Validate() error {
	for _, p := range []struct {
		name string
		v    float64
	}{{"P502", f.P502}, {"P10004", f.P10004}, {"P20005", f.P20005}, {"SlowProbability", f.SlowProbability}} {
		if !(p.v >= 0 && p.v <= 1) {
			return fmt.Errorf("simulator: faults: %s %v is not a probability in [0, 1]", p.name, p.v)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Latency", f.Latency}, {"Jitter", f.Jitter}, {"OutageFor", f.OutageFor}, {"SlowDelay", f.SlowDelay}} {
		if d.v < 0 {
			return fmt.Errorf("simulator: faults: %s %v is negative", d.name, d.v)
		}
	}
	return nil
}

// forced returns the code forced for user, or 0.
func (f *Faults) forced(user string) int {
	if c, ok := f.ForceCode[user]; ok {
		return c
	}
	return f.ForceCode[AllUsers]
}

// duration is a time.Duration written in JSON as a Go duration string
// ("20ms"); a JSON number is read as nanoseconds.
type duration time.Duration

func (d duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err2 := json.Unmarshal(b, &n); err2 != nil {
			return fmt.Errorf("duration: want a string like \"20ms\" or nanoseconds: %w", err)
		}
		*d = duration(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	*d = duration(v)
	return nil
}

// faultsJSON is the wire form of Faults.
type faultsJSON struct {
	Latency         duration
	Jitter          duration
	P502            float64
	P10004          float64
	P20005          float64
	OutageFor       duration
	SlowProbability float64
	SlowDelay       duration
	ForceCode       map[string]int
}

// MarshalJSON writes durations as strings ("20ms").
func (f Faults) MarshalJSON() ([]byte, error) {
	return json.Marshal(faultsJSON{
		Latency: duration(f.Latency), Jitter: duration(f.Jitter),
		P502: f.P502, P10004: f.P10004, P20005: f.P20005,
		OutageFor: duration(f.OutageFor), SlowProbability: f.SlowProbability,
		SlowDelay: duration(f.SlowDelay), ForceCode: f.ForceCode,
	})
}

// UnmarshalJSON merges the JSON object into f: fields absent from the JSON
// keep their value, ForceCode entries are added or replaced and an entry
// with code 0 is removed. Durations are strings ("20ms") or nanoseconds.
func (f *Faults) UnmarshalJSON(b []byte) error {
	w := faultsJSON{
		Latency: duration(f.Latency), Jitter: duration(f.Jitter),
		P502: f.P502, P10004: f.P10004, P20005: f.P20005,
		OutageFor: duration(f.OutageFor), SlowProbability: f.SlowProbability,
		SlowDelay: duration(f.SlowDelay), ForceCode: maps.Clone(f.ForceCode),
	}
	if w.ForceCode == nil {
		w.ForceCode = make(map[string]int)
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	if w.ForceCode == nil { // JSON null clears every entry
		w.ForceCode = make(map[string]int)
	}
	maps.DeleteFunc(w.ForceCode, func(_ string, c int) bool { return c == 0 })
	if len(w.ForceCode) == 0 {
		w.ForceCode = nil
	}
	*f = Faults{
		Latency: time.Duration(w.Latency), Jitter: time.Duration(w.Jitter),
		P502: w.P502, P10004: w.P10004, P20005: w.P20005,
		OutageFor: time.Duration(w.OutageFor), SlowProbability: w.SlowProbability,
		SlowDelay: time.Duration(w.SlowDelay), ForceCode: w.ForceCode,
	}
	return nil
}

// maxFaultsBody bounds the body of POST /faults.
const maxFaultsBody = 1 << 20

// decodeFaults merges a POST /faults body into cur and validates the result.
func decodeFaults(cur Faults, body []byte) (Faults, error) {
	f := cur
	f.ForceCode = maps.Clone(cur.ForceCode)
	if err := json.Unmarshal(body, &f); err != nil {
		return Faults{}, fmt.Errorf("simulator: faults: %w", err)
	}
	if err := f.Validate(); err != nil {
		return Faults{}, err
	}
	return f, nil
}

// serveGetFaults answers GET /faults with the current faults.
func (s *Simulator) serveGetFaults(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Faults())
}

// servePostFaults answers POST /faults: the JSON body is merged into the
// current faults (see Faults.UnmarshalJSON); the answer is the result. An
// OutageFor in the body starts an outage now; a body without one leaves a
// running outage alone.
func (s *Simulator) servePostFaults(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFaultsBody))
	if err != nil {
		http.Error(w, "simulator: faults: "+err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	s.faultsMu.Lock()
	f, err := decodeFaults(s.faults, body) // s.faults.OutageFor is always 0
	if err == nil {
		s.setFaultsLocked(f, true)
	}
	s.faultsMu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	writeJSON(w, http.StatusOK, s.Faults())
}

// sleep waits for d or until ctx is done; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
