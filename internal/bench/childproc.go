package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// childProc is one running child process of a scenario: started with
// startChild, ended with stop (told to stop, and killed if it does not
// within stopGrace) or kill (SIGKILL at once, as a crash).
type childProc struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	stderr  *tail
	drains  *lineCount // "drain incomplete" warnings on its standard error
	degrade *lineCount // the shared budget's "Redis unreachable" warnings
	started time.Time
	exited  chan struct{} // closed when the child closed its standard output

	mu   sync.Mutex
	done *childMessage // the last message, once received
}

// drainIncomplete is the start of the warning the processor logs when a
// drain drops unpublished records.
const drainIncomplete = "drain incomplete"

// startChild starts the workload of j in a child process and waits until
// it reports its start.
func (r *Runner) startChild(ctx context.Context, j job) (*childProc, error) {
	cmd := r.cfg.Child(context.WithoutCancel(ctx))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("child: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("child: %w", err)
	}
	c := &childProc{cmd: cmd, stdin: stdin, stderr: &tail{max: 4 << 10}, drains: &lineCount{match: []byte(drainIncomplete)},
		degrade: &lineCount{match: []byte(degradedWarning)}, exited: make(chan struct{})}
	cmd.Stderr = io.MultiWriter(c.stderr, c.drains, c.degrade)
	line, err := json.Marshal(j)
	if err != nil {
		return nil, fmt.Errorf("child: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("child: start: %w", err)
	}
	if _, err := stdin.Write(append(line, '\n')); err != nil {
		stdin.Close()
		cmd.Wait()
		return nil, fmt.Errorf("child: send job: %w (child: %s)", err, c.stderr.lastLine())
	}
	startedCh := make(chan time.Time, 1)
	go func() { // owned: ends when the child closes its output, before cmd.Wait returns
		defer close(c.exited)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 16<<20)
		for sc.Scan() {
			var m childMessage
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				continue
			}
			if m.Started != 0 {
				startedCh <- time.Unix(0, m.Started)
			}
			if m.Done {
				c.mu.Lock()
				c.done = &m
				c.mu.Unlock()
			}
		}
	}()
	select {
	case c.started = <-startedCh:
		return c, nil
	case <-c.exited:
		_, err := c.wait()
		return nil, fmt.Errorf("child ended before starting: %v (child: %s)", err, c.stderr.lastLine())
	case <-ctx.Done():
		_, _ = c.kill()
		return nil, fmt.Errorf("child did not start: %w", ctx.Err())
	}
}

// earlyError describes a child that stopped before it was told to.
func (c *childProc) earlyError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done != nil && c.done.Error != "" {
		return fmt.Errorf("child stopped early: %s", c.done.Error)
	}
	return errors.New("child stopped early")
}

// stop tells the child to stop (closes its input), waits for it (killing
// it after stopGrace) and returns its resource usage and final report.
func (c *childProc) stop() (*childRun, error) {
	c.stdin.Close()
	kill := time.AfterFunc(stopGrace, func() { _ = c.cmd.Process.Kill() })
	defer kill.Stop()
	<-c.exited
	return c.wait()
}

// kill kills the child at once (SIGKILL: nothing flushed, committed or
// reported) and waits for it.
func (c *childProc) kill() (*childRun, error) {
	_ = c.cmd.Process.Kill()
	c.stdin.Close()
	<-c.exited
	run, err := c.wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		err = nil // killed, as intended
	}
	return run, err
}

// wait waits for the process and collects what it reported.
func (c *childProc) wait() (*childRun, error) {
	werr := c.cmd.Wait()
	run := &childRun{started: c.started, drains: c.drains.count(), degraded: c.degrade.count()}
	if ru, ok := c.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		run.cpu = seconds(ru.Utime) + seconds(ru.Stime)
	}
	var err error
	c.mu.Lock()
	if m := c.done; m != nil {
		run.stats, run.maxRSS = m.Stats, m.PeakRSS
		if m.Error != "" {
			err = fmt.Errorf("workload: %s", m.Error)
		}
	}
	c.mu.Unlock()
	if werr != nil && err == nil {
		err = fmt.Errorf("child: %w", werr)
	}
	return run, err
}

// lineCount counts the lines written to it that contain match. Safe for
// concurrent use.
type lineCount struct {
	match []byte
	mu    sync.Mutex
	buf   []byte
	n     int
}

func (l *lineCount) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		if bytes.Contains(l.buf[:i], l.match) {
			l.n++
		}
		l.buf = l.buf[i+1:]
	}
	if len(l.buf) > 64<<10 { // a line that never ends: keep its tail
		l.buf = l.buf[len(l.buf)-(1<<10):]
	}
	return len(p), nil
}

func (l *lineCount) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}
