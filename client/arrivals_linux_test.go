//go:build linux

package client

import (
	"io"
	"net"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// timestampReader reads a TCP connection with recvmsg and keeps the kernel
// receive timestamp (SO_TIMESTAMPNS) of the first read since reset.
type timestampReader struct {
	raw    syscall.RawConn
	plain  net.Conn
	oob    []byte
	mu     sync.Mutex
	ts     time.Time
	kernel bool
}

func newTimestampReader(conn net.Conn) *timestampReader {
	r := &timestampReader{plain: conn, oob: make([]byte, 128)}
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return r
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return r
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
	}); err != nil || serr != nil {
		return r
	}
	r.raw = raw
	return r
}

// enableTimestamps turns on SO_TIMESTAMPNS for a listener's socket.
func enableTimestamps(l net.Listener) {
	tl, ok := l.(*net.TCPListener)
	if !ok {
		return
	}
	if raw, err := tl.SyscallConn(); err == nil {
		_ = raw.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
		})
	}
}

func (r *timestampReader) reset() {
	r.mu.Lock()
	r.ts, r.kernel = time.Time{}, false
	r.mu.Unlock()
}

func (r *timestampReader) first() (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ts.IsZero() {
		return time.Now(), false
	}
	return r.ts, r.kernel
}

func (r *timestampReader) note(ts time.Time, kernel bool) {
	r.mu.Lock()
	if r.ts.IsZero() {
		r.ts, r.kernel = ts, kernel
	}
	r.mu.Unlock()
}

func (r *timestampReader) Read(p []byte) (int, error) {
	if r.raw == nil {
		n, err := r.plain.Read(p)
		if n > 0 {
			r.note(time.Now(), false)
		}
		return n, err
	}
	var (
		n, oobn int
		rerr    error
	)
	err := r.raw.Read(func(fd uintptr) bool {
		n, oobn, _, _, rerr = syscall.Recvmsg(int(fd), p, r.oob, 0)
		return rerr != syscall.EAGAIN
	})
	if err != nil {
		return 0, err
	}
	if rerr != nil {
		return 0, rerr
	}
	if n == 0 {
		return 0, io.EOF
	}
	ts, kernel := time.Now(), false
	if msgs, err := syscall.ParseSocketControlMessage(r.oob[:oobn]); err == nil {
		for _, m := range msgs {
			if m.Header.Level == syscall.SOL_SOCKET && m.Header.Type == syscall.SCM_TIMESTAMPNS &&
				len(m.Data) >= int(unsafe.Sizeof(syscall.Timespec{})) {
				spec := (*syscall.Timespec)(unsafe.Pointer(&m.Data[0]))
				ts, kernel = time.Unix(spec.Unix()), true
			}
		}
	}
	r.note(ts, kernel)
	return n, nil
}
