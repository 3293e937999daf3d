package e2e

import (
	"io"
	"net"
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

// netConn adapts a Conn to net.Conn.
type netConn struct {
	Conn
	local, remote peerAddr
}

func (c netConn) LocalAddr() net.Addr  { return c.local }
func (c netConn) RemoteAddr() net.Addr { return c.remote }
