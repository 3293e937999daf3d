package main

import (
	"fmt"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
)

// homeInUse reports whether another process runs on the home: a daemon
// answers on the control socket, or a chat window or daemon holds the
// message database (the lock store.ErrBusy reports).
func homeInUse(h identity.Home) bool {
	if conn, err := dialControl(h); err == nil {
		conn.Close()
		return true
	}
	return fileLocked(h.Path(store.FileName))
}

// noteRestart tells the user, after a change that a running chat window
// or daemon read at its start, that it must restart to pick the change up.
func (c *ctx) noteRestart(h identity.Home, toWhat string) {
	if homeInUse(h) {
		fmt.Fprintf(c.io.err, "A chat window or daemon is running on %s: restart it to %s.\n", h.Dir, toWhat)
	}
}

// databaseFree refuses, before any passphrase is asked, a home whose
// message database a chat window (or a daemon without its socket) holds:
// the command could not open it anyway.
func databaseFree(h identity.Home) error {
	if fileLocked(h.Path(store.FileName)) {
		return store.ErrBusy
	}
	return nil
}
