package main

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
)

// mustRun runs the CLI in this process and fails the test unless it exits 0.
func mustRun(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	code, out, errOut := runIn(t, args...)
	if code != 0 {
		t.Fatalf("chat %q: exit %d: %s", args, code, errOut)
	}
	return out, errOut
}

// newHome creates an identity without a passphrase and returns its home
// and peer ID.
func newHome(t *testing.T, dir, name string) (identity.Home, string) {
	t.Helper()
	mustRun(t, "--home", dir, "init", "--name", name, "--no-passphrase")
	out, _ := mustRun(t, "--home", dir, "id", "--json")
	var info idInfo
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatal(err)
	}
	return identity.Home{Dir: info.Home}, info.PeerID
}

// holdDatabase opens the home's message database as a running chat window
// or daemon does, until the test ends or the returned func is called.
func holdDatabase(t *testing.T, h identity.Home) (*store.Store, func()) {
	t.Helper()
	id, err := h.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := store.OpenIdentity(h.Path(store.FileName), id)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	release := func() {
		if !closed {
			closed = true
			s.Close()
		}
	}
	t.Cleanup(release)
	return s, release
}

// After cert import and trust changes, a process running on the home is
// told to restart: it read the certificate and roots when it started.
func TestRestartNoteWhileHomeInUse(t *testing.T) {
	noPassphraseEnv(t)
	// A short path: unix socket paths are limited to about 100 bytes.
	base, err := os.MkdirTemp("", "cc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	dir := filepath.Join(base, "h")
	h, _ := newHome(t, dir, "Alice")
	caDir := filepath.Join(base, "ca")
	mustRun(t, "ca", "init", "--name", "Org", "--out", caDir, "--no-passphrase")
	csr, _ := mustRun(t, "--home", dir, "csr")
	csrFile, crtFile := filepath.Join(base, "me.csr"), filepath.Join(base, "me.crt")
	os.WriteFile(csrFile, []byte(csr), 0o600)
	crt, _ := mustRun(t, "ca", "sign", "--ca", caDir, csrFile)
	os.WriteFile(crtFile, []byte(crt), 0o600)
	caPEM := filepath.Join(caDir, "ca.pem")

	note := regexp.MustCompile(`^A chat window or daemon is running on ` + regexp.QuoteMeta(h.Dir) + `: restart it to (.+)\.\n$`)
	check := func(what string, args []string, wantNote string) {
		t.Helper()
		out, errOut := mustRun(t, append([]string{"--home", dir}, args...)...)
		if out == "" {
			t.Errorf("%s: nothing on stdout", what)
		}
		m := note.FindStringSubmatch(errOut)
		switch {
		case wantNote == "" && errOut != "":
			t.Errorf("%s: stderr %q, want nothing", what, errOut)
		case wantNote != "" && (m == nil || m[1] != wantNote):
			t.Errorf("%s: stderr %q, want the note to %q", what, errOut, wantNote)
		}
	}

	// Nothing runs: no note, and the check leaves the database free.
	if homeInUse(h) {
		t.Fatal("idle home reported in use")
	}
	check("idle add-ca", []string{"trust", "add-ca", caPEM}, "")
	check("idle import", []string{"cert", "import", crtFile}, "")
	_, release := holdDatabase(t, h)
	release()
	if homeInUse(h) {
		t.Fatal("home in use after the database was closed")
	}

	// A chat window (or a daemon) holds the message database.
	_, release = holdDatabase(t, h)
	if !homeInUse(h) {
		t.Fatal("held database not seen")
	}
	check("window import", []string{"cert", "import", crtFile}, "present the new certificate")
	check("window add-ca", []string{"trust", "add-ca", caPEM}, "use the new set of trusted CAs")
	check("window remove-ca", []string{"trust", "remove-ca", caPEM}, "use the new set of trusted CAs")
	release()

	// A daemon answers on the control socket.
	l, err := listenControl(h)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	if !homeInUse(h) {
		t.Fatal("control socket not seen")
	}
	// Scripts written for the socket's old place still reach it.
	if conn, err := net.Dial("unix", h.Path("control.sock")); err != nil {
		t.Errorf("the socket's old path: %v", err)
	} else {
		conn.Close()
	}
	check("daemon add-ca", []string{"trust", "add-ca", caPEM}, "use the new set of trusted CAs")
	check("daemon import", []string{"cert", "import", crtFile}, "present the new certificate")
	l.Close()
	// A stale socket file with nobody listening is not a running daemon.
	if homeInUse(h) {
		t.Error("stale control socket reported in use")
	}
}

// chat history names the contact on the peer's lines, and refuses while
// another process holds the database.
func TestHistoryNamesContact(t *testing.T) {
	noPassphraseEnv(t)
	base := t.TempDir()
	dir := filepath.Join(base, "alice")
	h, _ := newHome(t, dir, "Alice")
	_, bob := newHome(t, filepath.Join(base, "bob"), "Bob")
	mustRun(t, "--home", dir, "contacts", "add", bob, "--name", "bobby")
	bobID, err := identity.ParsePeerID(bob)
	if err != nil {
		t.Fatal(err)
	}

	s, release := holdDatabase(t, h)
	now := time.Now()
	if err := s.Import([]*store.Message{
		{ID: e2e.NewMessageID(), Peer: bobID, Direction: store.Incoming, SentAt: now, StoredAt: now, Body: "hello alice"},
		{ID: e2e.NewMessageID(), Peer: bobID, Direction: store.Outgoing, SentAt: now, StoredAt: now, Body: "hi bob", Status: store.StatusDelivered},
	}); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runIn(t, "--home", dir, "history", "bobby")
	if code != 1 || !strings.Contains(errOut, store.ErrBusy.Error()) {
		t.Errorf("history while the database is held: exit %d, %q", code, errOut)
	}
	release()

	for _, arg := range []string{"bobby", bob} {
		out, _ := mustRun(t, "--home", dir, "history", arg)
		want := regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d  bobby: hello alice\n\d{4}-\d\d-\d\d \d\d:\d\d  me \(delivered\): hi bob\n$`)
		if !want.MatchString(out) {
			t.Errorf("history %s:\n%s", arg, out)
		}
	}
}
