// Package redistest starts a private redis-server on a free loopback port for
// tests (internal/redisserver, tied to the test's lifetime). It is meant for
// tests only.
//
// Start skips the test when redis-server is not on PATH, unless the
// environment variable CI is set, in which case it fails it: CI must run the
// tests against the real server.
package redistest

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tencentchat-enricher/enricher/internal/redisserver"
)

// Server is one redis-server process bound to 127.0.0.1, stopped when the
// test ends. Its methods are safe for concurrent use.
type Server struct {
	t   testing.TB
	srv *redisserver.Server
}

// Start starts a redis-server without persistence on a free loopback port,
// waits until it answers PING and stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	srv, err := redisserver.Start(context.Background())
	if errors.Is(err, redisserver.ErrNotInstalled) {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set: %v", err)
		}
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return &Server{t: t, srv: srv}
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.srv.Addr() }

// Client returns a new go-redis client of the server, closed when the test
// ends. Each call returns a separate client (its own connection pool), as a
// separate process would have.
func (s *Server) Client(opts ...func(*redis.Options)) *redis.Client {
	o := &redis.Options{Addr: s.Addr(), DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second}
	for _, f := range opts {
		f(o)
	}
	c := redis.NewClient(o)
	s.t.Cleanup(func() { _ = c.Close() })
	return c
}

// Kill stops the server abruptly (SIGKILL) and waits for the process to exit.
// It is a no-op if the server is not running.
func (s *Server) Kill() { s.srv.Kill() }

// Stop is Kill.
func (s *Server) Stop() { s.srv.Kill() }

// Restart starts the server again on the same port (empty: no persistence)
// and waits until it answers PING.
func (s *Server) Restart() error {
	s.srv.Kill()
	return s.srv.Restart(context.Background())
}
