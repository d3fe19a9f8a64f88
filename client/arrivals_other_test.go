//go:build !linux

package client

import (
	"net"
	"time"
)

// timestampReader falls back to user-space read times off Linux.
type timestampReader struct {
	net.Conn
	ts time.Time
}

func enableTimestamps(net.Listener) {}

func newTimestampReader(conn net.Conn) *timestampReader { return &timestampReader{Conn: conn} }
func (r *timestampReader) reset()                       { r.ts = time.Time{} }
func (r *timestampReader) first() (time.Time, bool) {
	if r.ts.IsZero() {
		return time.Now(), false
	}
	return r.ts, false
}
func (r *timestampReader) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	if n > 0 && r.ts.IsZero() {
		r.ts = time.Now()
	}
	return n, err
}
