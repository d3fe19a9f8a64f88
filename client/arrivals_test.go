package client

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The trailing-window test measures arrival times in a separate server
// process, as the real server does: an in-process server shares the Go
// scheduler with 64 busy callers, and its handler goroutines can run (and
// timestamp) requests long after they arrived, which would measure the
// test's own scheduling rather than the client's sending.

const arrivalServerEnv = "CLIENT_TEST_ARRIVAL_SERVER_LIMIT"

func TestMain(m *testing.M) {
	if v := os.Getenv(arrivalServerEnv); v != "" {
		limit, _ := strconv.Atoi(v)
		os.Exit(serveArrivals(limit))
	}
	os.Exit(m.Run())
}

// arrivalReport is what the arrival server returns at GET /arrivals.
type arrivalReport struct {
	Arrivals  []int64 // kernel receive time of each call's first bytes, unix nanos
	Handled   []int64 // time the server process got to parse each call, unix nanos
	Kernel    bool    // Arrivals are kernel timestamps (else user-space reads)
	Throttled int     // answers with 60007
}

// serveArrivals runs in the child process: it answers the API like a
// three-page list per user, fails every 50th call with 502 (so retries
// happen), answers 60007 when the trailing second already holds limit
// calls, and exits when its stdin closes.
//
// It speaks HTTP/1.1 on raw connections so that it can read the kernel's
// receive timestamp (SO_TIMESTAMPNS) of each request: the time the bytes
// reached the server host, unaffected by how late this process is
// scheduled on a busy machine.
func serveArrivals(limit int) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var (
		mu     sync.Mutex
		report arrivalReport
	)
	report.Kernel = true
	enableTimestamps(l) // accepted sockets inherit it, so first requests carry timestamps too
	handle := func(r *http.Request, arrived time.Time, kernel bool) (int, any) {
		if r.Method == http.MethodGet && r.URL.Path == "/arrivals" {
			mu.Lock()
			defer mu.Unlock()
			return 200, report
		}
		var req wireRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		at := arrived.UnixNano()
		mu.Lock()
		report.Kernel = report.Kernel && kernel
		report.Arrivals = append(report.Arrivals, at)
		report.Handled = append(report.Handled, time.Now().UnixNano())
		n := len(report.Arrivals)
		inWindow := 0
		for _, a := range report.Arrivals {
			if a <= at && at-a < int64(time.Second) {
				inWindow++
			}
		}
		if inWindow > limit {
			report.Throttled++
		}
		mu.Unlock()
		switch {
		case inWindow > limit:
			return 200, errBody(CodeFrequencyLimit)
		case n%50 == 0:
			return http.StatusBadGateway, nil
		case req.Offset == 0:
			return 200, okBody(3, 0, 1, account("@TOA#_a"))
		case req.Offset == 1:
			return 200, okBody(3, 0, 2, account("@TOA#_b"))
		default:
			return 200, okBody(3, 1, 0, account("@TOA#_c"))
		}
	}
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		_ = l.Close()
	}()
	fmt.Println("http://" + l.Addr().String())
	for {
		conn, err := l.Accept()
		if err != nil {
			return 0
		}
		go serveConn(conn, handle)
	}
}

// serveConn serves one keep-alive connection. Clients do not pipeline, so
// each request starts on a fresh read whose timestamp is its arrival.
func serveConn(conn net.Conn, handle func(*http.Request, time.Time, bool) (int, any)) {
	defer conn.Close()
	tr := newTimestampReader(conn)
	br := bufio.NewReader(tr)
	for {
		tr.reset()
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		arrived, kernel := tr.first()
		status, body := handle(req, arrived, kernel)
		_, _ = io.Copy(io.Discard, req.Body)
		var payload []byte
		if body != nil {
			payload, _ = json.Marshal(body)
		}
		_, err = fmt.Fprintf(conn, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
			status, http.StatusText(status), len(payload), payload)
		if err != nil {
			return
		}
	}
}

// arrivalServer is the parent's handle on the child process.
type arrivalServer struct {
	URL string
}

func startArrivalServer(t *testing.T, limit int) *arrivalServer {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), arrivalServerEnv+"="+strconv.Itoa(limit))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("arrival server: %v", err)
	}
	return &arrivalServer{URL: strings.TrimSpace(line)}
}

func (s *arrivalServer) report(t *testing.T) arrivalReport {
	t.Helper()
	resp, err := http.Get(s.URL + "/arrivals")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r arrivalReport
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestMaxInTrailingSecond(t *testing.T) {
	base := time.Unix(100, 0)
	at := func(ms ...int) []time.Time {
		var ts []time.Time
		for _, m := range ms {
			ts = append(ts, base.Add(time.Duration(m)*time.Millisecond))
		}
		return ts
	}
	tests := []struct {
		ts   []time.Time
		want int
	}{
		{nil, 0},
		{at(0), 1},
		{at(0, 999), 2},
		{at(0, 1000), 1},
		{at(1500, 0, 500, 999, 1000), 3},
		{at(0, 10, 20, 990, 995, 1000, 1005), 6},
	}
	for _, tt := range tests {
		if got := maxInTrailingSecond(tt.ts); got != tt.want {
			t.Errorf("maxInTrailingSecond(%v) = %d, want %d", tt.ts, got, tt.want)
		}
	}
}
