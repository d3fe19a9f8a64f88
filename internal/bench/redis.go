package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisStartTimeout bounds the wait for a started redis-server to answer.
const redisStartTimeout = 10 * time.Second

// errNoRedis is returned by startRedis when redis-server is not installed.
var errNoRedis = errors.New("bench: redis-server not on PATH (install the redis-server package)")

// redisServer is the redis-server of a shared scenario: a process of its
// own, bound to a free loopback port, without persistence (a restart
// starts empty, as a replaced Redis would). The shared scenarios' children
// reach it by URL. Its methods are safe for concurrent use.
type redisServer struct {
	bin, dir string
	port     int

	mu  sync.Mutex
	cmd *exec.Cmd
	out *tail
}

// startRedis starts a redis-server and waits until it answers PING.
func startRedis(ctx context.Context) (*redisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errNoRedis
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bench: redis port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir, err := os.MkdirTemp("", "enricher-bench-redis-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	s := &redisServer{bin: bin, dir: dir, port: port}
	if err := s.start(ctx); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// addr is the server's host:port.
func (s *redisServer) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL is what the children are given, as --redis-url would be.
func (s *redisServer) URL() string { return "redis://" + s.addr() }

// start starts the server (again, empty, on the same port after kill)
// and waits until it answers PING.
func (s *redisServer) start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	s.out = &tail{max: 4 << 10}
	cmd := exec.Command(s.bin,
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir,
		"--protected-mode", "no", "--loglevel", "warning")
	cmd.Stdout, cmd.Stderr = s.out, s.out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("bench: start redis-server: %w", err)
	}
	s.cmd = cmd
	if err := waitRedis(ctx, s.addr()); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		s.cmd = nil
		return fmt.Errorf("bench: redis-server on %s: %w (%s)", s.addr(), err, s.out.lastLine())
	}
	return nil
}

// kill stops the server abruptly (SIGKILL), as a crash or a network
// partition would, and waits for the process to exit.
func (s *redisServer) kill() {
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
func (s *redisServer) Close() {
	s.kill()
	os.RemoveAll(s.dir)
}

// waitRedis polls addr with PING until it answers, ctx ends or
// redisStartTimeout passes.
func waitRedis(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, redisStartTimeout)
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
