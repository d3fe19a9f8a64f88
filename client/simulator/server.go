package simulator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// Server is a Simulator listening on 127.0.0.1 on a free port, like
// httptest.Server. Close it when done.
type Server struct {
	*Simulator
	url     string
	srv     *http.Server
	cancel  context.CancelFunc
	done    chan struct{}
	calls   sync.WaitGroup // handlers running
	mu      sync.Mutex
	closing bool // guarded by mu; no handler starts once set
	once    sync.Once
	err     error // Close's result
	// serveErr is written by the serving goroutine before done closes.
	serveErr error
}

// NewServer starts a Simulator for cfg on 127.0.0.1:0.
func NewServer(cfg Config) (*Server, error) {
	sim, err := New(cfg)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("simulator: listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var s *Server
	s = &Server{
		Simulator: sim,
		url:       "http://" + ln.Addr().String(),
		srv: &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !s.enter() {
					writeBadGateway(w)
					return
				}
				defer s.calls.Done()
				sim.ServeHTTP(w, r)
			}),
			ReadHeaderTimeout: 10 * time.Second,
			BaseContext:       func(net.Listener) context.Context { return ctx },
		},
		cancel: cancel,
		done:   make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.serveErr = err
		}
	}()
	return s, nil
}

// URL returns the base URL, "http://127.0.0.1:<port>"; the endpoint is at
// URL() + Path.
func (s *Server) URL() string { return s.url }

// Close stops listening, aborts calls in flight (their injected delays end
// at once, their clients get no answer) and waits for every handler to
// return. It is safe to call twice.
func (s *Server) Close() error {
	s.once.Do(func() {
		err := s.srv.Close() // connections first, so aborted calls get no answer
		s.cancel()
		<-s.done
		s.mu.Lock()
		s.closing = true
		s.mu.Unlock()
		s.calls.Wait()
		s.err = errors.Join(s.serveErr, err)
	})
	return s.err
}

// enter registers a handler, unless the server is closing.
func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.calls.Add(1)
	return true
}
