package bench

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestCallWatch(t *testing.T) {
	release := make(chan struct{})
	w := &callWatch{next: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		rw.WriteHeader(http.StatusNoContent)
	})}
	srv := httptest.NewServer(w)
	defer srv.Close()

	for range 3 {
		resp, err := http.Get(srv.URL + "/fast")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	slow := make(chan error, 1)
	go func() {
		resp, err := http.Get(srv.URL + "/slow")
		if err == nil {
			resp.Body.Close()
		}
		slow <- err
	}()
	// The slow call has arrived once the watch counts it.
	deadline := time.Now().Add(10 * time.Second)
	for w.span().calls < 4 {
		if time.Now().After(deadline) {
			t.Fatal("slow call never arrived")
		}
		time.Sleep(time.Millisecond)
	}
	before := w.span()
	close(release)
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
	after := w.span()
	if after.calls != 4 {
		t.Errorf("calls = %d, want 4", after.calls)
	}
	if !after.lastEnd.After(before.lastEnd) || after.lastEnd.Before(after.lastAt) {
		t.Errorf("last completion %v not after the slow call's arrival %v (was %v before it ended)", after.lastEnd, after.lastAt, before.lastEnd)
	}
	if r := after.rate(); r <= 0 {
		t.Errorf("rate = %v, want positive", r)
	}
	if r := (callSpan{calls: 1}).rate(); r != 0 {
		t.Errorf("rate of one call = %v, want 0", r)
	}
}
