package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/certchat/certchat/identity"
)

// The control socket (home/control.sock, mode 0600 in the 0700 home) lets
// one-shot commands such as `chat send` and `chat history` use a running
// daemon, which holds the message database, instead of starting a node.
// It speaks the daemon's JSON-lines protocol (jsonproto.go).

func controlPath(h identity.Home) string { return h.Path("control.sock") }

// listenControl opens the control socket. The caller holds the message
// database, so a leftover socket file is stale and is replaced.
func listenControl(h identity.Home) (net.Listener, error) {
	path := controlPath(h)
	if len(path) > 100 {
		return nil, fmt.Errorf("control socket path %s is too long for a unix socket", path)
	}
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// serveControl answers control connections until l closes.
func serveControl(l net.Listener, h *handler) {
	for {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			h.serve(conn, &lineWriter{w: conn}, true)
		}()
	}
}

// errNoDaemon means no daemon answers on the control socket.
var errNoDaemon = errors.New("no daemon running")

// dialControl connects to a running daemon of this home.
func dialControl(h identity.Home) (net.Conn, error) {
	path := controlPath(h)
	if _, err := os.Stat(path); err != nil {
		return nil, errNoDaemon
	}
	conn, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return nil, errNoDaemon
	}
	return conn, nil
}
