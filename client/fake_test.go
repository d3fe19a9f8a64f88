package client

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Test credentials (dev only).
const (
	testAppID  = 1400000001
	testAdmin  = "administrator"
	testSecret = "dev-only-secret-key"
)

// seenRequest is what the fake server recorded about one call.
type seenRequest struct {
	At       time.Time
	Method   string
	Path     string
	RawQuery string
	Query    map[string][]string
	Body     wireRequest
	RawBody  []byte
	CType    string
}

// fakeServer is a minimal stand-in for the Tencent REST endpoint over real
// TCP on 127.0.0.1. It records every arrival and answers with reply.
type fakeServer struct {
	*httptest.Server
	mu    sync.Mutex
	seen  []seenRequest
	reply func(n int, r seenRequest) (status int, body any)
}

// newFake starts a server; reply gets the 1-based call number and the request.
func newFake(t testing.TB, reply func(n int, r seenRequest) (int, any)) *fakeServer {
	t.Helper()
	f := &fakeServer{reply: reply}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeServer) serve(w http.ResponseWriter, r *http.Request) {
	at := time.Now()
	raw, _ := io.ReadAll(r.Body)
	sr := seenRequest{At: at, Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery,
		Query: r.URL.Query(), RawBody: raw, CType: r.Header.Get("Content-Type")}
	_ = json.Unmarshal(raw, &sr.Body)
	f.mu.Lock()
	f.seen = append(f.seen, sr)
	n := len(f.seen)
	reply := f.reply
	f.mu.Unlock()
	status, body := reply(n, sr)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	switch b := body.(type) {
	case nil:
	case []byte:
		_, _ = w.Write(b)
	case string:
		_, _ = io.WriteString(w, b)
	default:
		_ = json.NewEncoder(w).Encode(b)
	}
}

func (f *fakeServer) requests() []seenRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seenRequest(nil), f.seen...)
}

func (f *fakeServer) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.seen)
}

// maxInTrailingSecond returns the largest number of arrivals inside any
// window [t, t+1s) — the quantity the real server limits.
func maxInTrailingSecond(ts []time.Time) int {
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	best, j := 0, 0
	for i := range ts {
		for ts[i].Sub(ts[j]) >= time.Second {
			j++
		}
		best = max(best, i-j+1)
	}
	return best
}

// okBody is a successful answer.
func okBody(total, complete int, next uint64, accounts ...map[string]any) map[string]any {
	if accounts == nil {
		accounts = []map[string]any{}
	}
	return map[string]any{
		"ActionStatus": "OK", "ErrorInfo": "", "ErrorCode": 0,
		"TotalCount": total, "OfficialAccountInfoList": accounts,
		"CompleteFlag": complete, "Next": next,
	}
}

// errBody is an error answer (HTTP 200 with ErrorCode).
func errBody(code int) map[string]any {
	return map[string]any{"ActionStatus": "FAIL", "ErrorCode": code, "ErrorInfo": "error " + strconv.Itoa(code)}
}

func account(id string) map[string]any {
	return map[string]any{"Official_Account": id, "Name": "name-" + id}
}

// testConfig returns a valid config pointing at the fake, with fast retries.
func testConfig(url string) Config {
	return Config{
		SDKAppID:    testAppID,
		Admin:       testAdmin,
		SecretKey:   testSecret,
		BaseURL:     url,
		BackoffBase: time.Millisecond,
		BackoffMax:  5 * time.Millisecond,
		Logger:      slog.New(slog.DiscardHandler),
	}
}

func newTestClient(t testing.TB, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}
