package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/certchat/certchat/identity"
)

// The control socket (home/run/control.sock) lets one-shot commands such as
// `chat send` and `chat history` use a running daemon, which holds the
// message database, instead of starting a node. It speaks the daemon's
// JSON-lines protocol (jsonproto.go).
//
// Only the home's owner may connect. A socket file is created with the
// process's umask (0777 under umask 000) and only then can be made 0600:
// in between another local user could connect. So the socket is bound
// inside a folder of its own that is private (0700) before the socket
// exists, made afresh at every start; the socket is made 0600 as well,
// and on Linux both ends check the other's uid (SO_PEERCRED).

// controlDir is the socket's private folder.
func controlDir(h identity.Home) string { return h.Path("run") }

func controlPath(h identity.Home) string { return filepath.Join(controlDir(h), "control.sock") }

// oldControlPath is where versions before the private folder had the
// socket. Scripts that connect there directly keep working: it is a
// symbolic link to the socket, which gives nobody else a way in (to
// follow it, one needs the run folder, which is the owner's alone).
func oldControlPath(h identity.Home) string { return h.Path("control.sock") }

// listenControl opens the control socket. The caller holds the message
// database, so no other daemon runs on the home: a leftover folder or
// socket is stale and is replaced.
func listenControl(h identity.Home) (net.Listener, error) {
	path := controlPath(h)
	if len(path) > 100 {
		return nil, fmt.Errorf("control socket path %s is too long for a unix socket", path)
	}
	os.Remove(oldControlPath(h))
	dir := controlDir(h)
	// A new folder rather than the old one made private: a process of
	// another user that entered the old one while it was open could still
	// reach a socket in it by a relative path. mkdir gives 0700 or less
	// whatever the umask; the chmod undoes a umask that took the owner's
	// bits too.
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Symlink(filepath.Join("run", "control.sock"), oldControlPath(h)); err != nil {
		l.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return l, nil
}

// serveControl answers control connections until l closes. A connection
// from another user (which the folder's mode already keeps out) is closed
// unanswered.
func serveControl(l net.Listener, h *handler) {
	for {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		if uid, ok := peerUID(conn); ok && uid != os.Geteuid() {
			conn.Close()
			continue
		}
		go func() {
			defer conn.Close()
			h.serve(conn, &lineWriter{w: conn}, true)
		}()
	}
}

// errNoDaemon means no daemon answers on the control socket.
var errNoDaemon = errors.New("no daemon running")

// dialControl connects to a running daemon of this home. A socket that is
// not the owner's, in a folder that is not private, or answered by another
// user's process is no daemon of ours: messages and history are not
// handed to it.
func dialControl(h identity.Home) (net.Conn, error) {
	if !ownPrivateDir(controlDir(h)) {
		return nil, errNoDaemon
	}
	path := controlPath(h)
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode().Type() != fs.ModeSocket {
		return nil, errNoDaemon
	}
	if uid, ok := fileOwner(fi); ok && uid != os.Geteuid() {
		return nil, errNoDaemon
	}
	conn, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return nil, errNoDaemon
	}
	if uid, ok := peerUID(conn); ok && uid != os.Geteuid() {
		conn.Close()
		return nil, errNoDaemon
	}
	return conn, nil
}

// ownPrivateDir reports whether dir is a folder (not a link) of this
// user's that nobody else may enter.
func ownPrivateDir(dir string) bool {
	fi, err := os.Lstat(dir)
	if err != nil || !fi.IsDir() {
		return false
	}
	uid, ok := fileOwner(fi)
	return !ok || (uid == os.Geteuid() && fi.Mode().Perm()&0o077 == 0)
}
