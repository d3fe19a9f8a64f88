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
	url    string
	srv    *http.Server
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	err    error // Close's result
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
	s := &Server{
		Simulator: sim,
		url:       "http://" + ln.Addr().String(),
		srv: &http.Server{
			Handler:           sim,
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
// at once) and waits for the server to stop. It is safe to call twice.
func (s *Server) Close() error {
	s.once.Do(func() {
		s.cancel()
		err := s.srv.Close()
		<-s.done
		s.err = errors.Join(s.serveErr, err)
	})
	return s.err
}
