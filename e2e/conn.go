package e2e

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Conn is the byte stream a session runs over: a libp2p stream, or any
// net.Conn. Close must close both directions.
type Conn interface {
	io.ReadWriteCloser
	SetDeadline(t time.Time) error
	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
}

// peerAddr names a peer as a net.Addr for crypto/tls. The client's session
// cache is keyed by the remote address, so tickets are kept per peer.
type peerAddr peer.ID

func (a peerAddr) Network() string { return "certchat" }
func (a peerAddr) String() string  { return "certchat/" + peer.ID(a).String() }

// netConn adapts a Conn to net.Conn, and gathers writes: while a Session
// sends a frame, the TLS records crypto/tls writes (one Write each, of at
// most 16 KiB of plaintext) are collected and go to the stream in one
// Write. On a libp2p stream every Write is a muxer frame and a hand-off to
// the muxer's send loop, so a 64 KiB frame written as four records cost
// four round trips through it (docs/BENCHMARKS.md).
type netConn struct {
	Conn
	local, remote peerAddr

	mu     sync.Mutex
	gather bool
	// eager: while gathering, a Read first flushes what was gathered.
	// During the handshake crypto/tls writes a flight and then reads the
	// answer; the last server flight (the session ticket) and the ready
	// frame after it leave together.
	// Atomic, so that after the handshake Read takes no lock: a Send
	// blocked on the stream holds mu, and a Receive waiting behind it
	// could deadlock two peers whose windows are full.
	eager atomic.Bool
	buf   *[]byte
	werr  error
}

// Read flushes gathered writes first when eager: the peer cannot answer
// what it has not received.
func (c *netConn) Read(p []byte) (int, error) {
	if !c.eager.Load() {
		return c.Conn.Read(p)
	}
	c.mu.Lock()
	if c.gather {
		err := c.flushLocked()
		c.buf = getBuffer()
		c.mu.Unlock()
		if err != nil {
			return 0, err
		}
	} else {
		c.mu.Unlock()
	}
	return c.Conn.Read(p)
}

// startHandshake gathers writes until flush, flushing before every read.
func (c *netConn) startHandshake() {
	c.startGather()
	c.eager.Store(true)
}

func newNetConn(c Conn, local, remote peer.ID) *netConn {
	return &netConn{Conn: c, local: peerAddr(local), remote: peerAddr(remote)}
}

func (c *netConn) LocalAddr() net.Addr  { return c.local }
func (c *netConn) RemoteAddr() net.Addr { return c.remote }

func (c *netConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.werr != nil {
		return 0, c.werr
	}
	if c.gather {
		*c.buf = append(*c.buf, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// startGather collects the following writes until flush.
func (c *netConn) startGather() {
	c.mu.Lock()
	c.gather = true
	c.buf = getBuffer()
	c.mu.Unlock()
}

// flush writes what was gathered in one Write. crypto/tls has spent the
// records' sequence numbers, so after a failed write the stream is broken
// for good: the error sticks, as crypto/tls's own does.
func (c *netConn) flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gather = false
	c.eager.Store(false)
	return c.flushLocked()
}

func (c *netConn) flushLocked() error {
	buf := c.buf
	c.buf = nil
	defer putBuffer(buf)
	if c.werr != nil {
		return c.werr
	}
	if buf == nil || len(*buf) == 0 {
		return nil
	}
	if _, err := c.Conn.Write(*buf); err != nil {
		c.werr = err
		return err
	}
	return nil
}

// Buffers for frames and gathered records, shared by all sessions so that
// an idle session holds none of them (it keeps only its receive buffer,
// at most maxKeptBuffer).
var buffers = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// maxPooled bounds the buffers kept for reuse: one largest frame and its
// records.
const maxPooled = MaxFramePayload + 32<<10

func getBuffer() *[]byte { return buffers.Get().(*[]byte) }

func putBuffer(b *[]byte) {
	if b == nil || cap(*b) > maxPooled {
		return
	}
	*b = (*b)[:0]
	buffers.Put(b)
}
