package simulator

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkHandler measures the handler alone: a full page of 200
// accounts for a generated heavy user, the limit off.
func BenchmarkHandler(b *testing.B) {
	data := Generate(GenConfig{Seed: 1, Users: 100_000})
	user := ""
	for i := 0; user == ""; i++ {
		if data.SubscriptionCount(UserID(i)) > maxPage {
			user = UserID(i)
		}
	}
	sim, err := New(Config{SDKAppID: testAppID, Admin: testAdmin, SecretKey: testKey, Dataset: data, Rate: -1})
	if err != nil {
		b.Fatal(err)
	}
	e := &testEnv{sig: genSig(b, testAppID, testKey, testAdmin, 86400)}
	target := Path + "?" + e.params().Encode()
	body := userBody(user)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rec := httptest.NewRecorder()
			sim.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, target, strings.NewReader(body)))
			if rec.Code != http.StatusOK {
				b.Fatal(rec.Code)
			}
		}
	})
}

// BenchmarkServer measures calls over TCP with keep-alive connections, one
// small page each, the limit off.
func BenchmarkServer(b *testing.B) {
	srv, err := NewServer(Config{SDKAppID: testAppID, Admin: testAdmin, SecretKey: testKey, Rate: -1,
		Dataset: Generate(GenConfig{Seed: 1, Users: 100_000})})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	e := &testEnv{srv: srv, sig: genSig(b, testAppID, testKey, testAdmin, 86400)}
	target := srv.URL() + Path + "?" + e.params().Encode()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			resp, err := client.Post(target, "application/json", strings.NewReader(`{"Subscriber_Account":"`+UserID(i%100_000)+`","Limit":20}`))
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			i++
		}
	})
}
