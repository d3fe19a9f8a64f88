// Package redisserver runs a private redis-server process on a free
// loopback port, without persistence, for the benchmark and the tests
// (internal/redistest wraps it for tests).
package redisserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// StartTimeout bounds the wait for a started server to answer PING.
const StartTimeout = 10 * time.Second

// ErrNotInstalled is returned by Start when redis-server is not on PATH.
var ErrNotInstalled = errors.New("redis-server not on PATH (install the redis-server package)")

// Server is one redis-server process bound to 127.0.0.1, without
// persistence: a restart starts empty, as a replaced Redis would. Its
// methods are safe for concurrent use.
type Server struct {
	bin, dir string
	port     int

	mu  sync.Mutex
	cmd *exec.Cmd
	out *bytes.Buffer
}

// Start starts a redis-server on a free loopback port and waits until it
// answers PING. The caller closes it.
func Start(ctx context.Context) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, ErrNotInstalled
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("redisserver: free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir, err := os.MkdirTemp("", "enricher-redis-")
	if err != nil {
		return nil, fmt.Errorf("redisserver: %w", err)
	}
	s := &Server{bin: bin, dir: dir, port: port}
	if err := s.Restart(ctx); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL is the server's redis:// URL, as --redis-url takes it.
func (s *Server) URL() string { return "redis://" + s.Addr() }

// Restart starts the server (again, empty, on the same port after Kill)
// and waits until it answers PING; a running server is left as it is.
func (s *Server) Restart(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	out := &bytes.Buffer{}
	cmd := exec.Command(s.bin,
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir,
		"--protected-mode", "no", "--loglevel", "warning")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("redisserver: start redis-server: %w", err)
	}
	s.cmd, s.out = cmd, out
	if err := waitPing(ctx, s.Addr()); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		s.cmd = nil
		return fmt.Errorf("redisserver: redis-server on %s: %w (%s)", s.Addr(), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// Kill stops the server abruptly (SIGKILL), as a crash or a network
// partition would, and waits for the process to exit. It is a no-op if the
// server is not running.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Close kills the server and removes its directory.
func (s *Server) Close() {
	s.Kill()
	os.RemoveAll(s.dir)
}

// waitPing polls addr with PING until it answers, ctx ends or StartTimeout
// passes.
func waitPing(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, StartTimeout)
	defer cancel()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		pctx, pcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		err := c.Ping(pctx).Err()
		pcancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no PING answer: %w (last: %v)", ctx.Err(), err)
		case <-tick.C:
		}
	}
}
