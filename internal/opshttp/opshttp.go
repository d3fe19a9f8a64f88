// Package opshttp serves a process's operational HTTP endpoints:
//
//	/healthz  200 while the process is alive
//	/readyz   200 when every readiness check passes, 503 otherwise;
//	          the body lists each check as "ok NAME", "fail NAME: REASON"
//	          or "degraded NAME: REASON" (a Degraded error: still ready)
//	/metrics  the metrics handler given (Prometheus exposition)
package opshttp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Check reports whether one readiness condition holds: nil means ready.
// It must honour ctx and be safe for concurrent use.
type Check interface {
	Check(ctx context.Context) error
}

// Degraded marks a check's error as a degradation that keeps the process
// ready: /readyz lists it as "degraded NAME: REASON" and still answers 200
// when no other check fails.
func Degraded(err error) error { return degradedError{err} }

// IsDegraded reports whether a check's error is a degradation (Degraded):
// the process is still ready.
func IsDegraded(err error) bool {
	var d degradedError
	return errors.As(err, &d)
}

type degradedError struct{ err error }

func (d degradedError) Error() string { return d.err.Error() }
func (d degradedError) Unwrap() error { return d.err }

// CheckFunc adapts a function to Check.
type CheckFunc func(ctx context.Context) error

// Check calls f.
func (f CheckFunc) Check(ctx context.Context) error { return f(ctx) }

// Config configures a Server.
type Config struct {
	// Addr is the listen address, for example ":9464". Required.
	Addr string
	// Metrics serves /metrics. Default: /metrics answers 404.
	Metrics http.Handler
	// Checks are the readiness conditions by name. Default: none (always ready).
	Checks map[string]Check
	// CheckTimeout bounds one /readyz evaluation. Default 2s.
	CheckTimeout time.Duration
	// Logger logs serve errors. Default slog.Default().
	Logger *slog.Logger
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("opshttp: Addr %q: %w", c.Addr, err)
	}
	if c.CheckTimeout < 0 {
		return fmt.Errorf("opshttp: CheckTimeout must not be negative, got %s", c.CheckTimeout)
	}
	return nil
}

// Server is a listening operational endpoint. Run serves it until its
// context ends.
type Server struct {
	cfg Config
	ln  net.Listener
	srv *http.Server
}

// New validates cfg and listens on cfg.Addr, so a taken port fails here.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.CheckTimeout == 0 {
		cfg.CheckTimeout = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("opshttp: listen: %w", err)
	}
	s := &Server{cfg: cfg, ln: ln}
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
	return s, nil
}

// Addr is the address actually listened on (useful with port 0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Handler returns the endpoint mux.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	if s.cfg.Metrics != nil {
		mux.Handle("GET /metrics", s.cfg.Metrics)
	}
	return mux
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.CheckTimeout)
	defer cancel()
	names := make([]string, 0, len(s.cfg.Checks))
	for n := range s.cfg.Checks {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	ready := true
	for _, n := range names {
		err := s.cfg.Checks[n].Check(ctx)
		var d degradedError
		switch {
		case errors.As(err, &d):
			fmt.Fprintf(&b, "degraded %s: %s\n", n, strings.Join(strings.Fields(err.Error()), " "))
		case err != nil:
			ready = false
			fmt.Fprintf(&b, "fail %s: %s\n", n, strings.Join(strings.Fields(err.Error()), " "))
		default:
			fmt.Fprintf(&b, "ok %s\n", n)
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_, _ = io.WriteString(w, b.String())
}

// Run serves until ctx ends, then shuts down gracefully (at most 5s).
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("opshttp: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("opshttp: shutdown: %w", err)
	}
	return nil
}

// Close stops listening without waiting for Run; for use when Run never started.
func (s *Server) Close() error {
	err := s.srv.Close()
	if lerr := s.ln.Close(); lerr != nil && !errors.Is(lerr, net.ErrClosed) {
		err = errors.Join(err, lerr)
	}
	return err
}
