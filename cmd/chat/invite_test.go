package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/internal/testproc"
)

// startDaemonProc runs `chat daemon --json` on dir listening on loopback
// only, LAN discovery left on, until the test ends, and waits for its
// control socket.
func startDaemonProc(t *testing.T, bin, dir string) {
	t.Helper()
	lines := runDaemonEvents(t, bin, "--home", dir, "daemon", "--json", "--listen", "/ip4/127.0.0.1/tcp/0")
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("the daemon exited (its stderr follows)")
			}
			var ev struct{ Event string }
			if json.Unmarshal([]byte(l), &ev) == nil && ev.Event == "lan" {
				// The second line: the socket is up by now or soon.
				for range 100 {
					if conn, err := dialControl(homeOf(dir)); err == nil {
						conn.Close()
						return
					}
					time.Sleep(50 * time.Millisecond)
				}
				t.Fatal("no control socket")
			}
		case <-timeout:
			t.Fatal("the daemon did not start (its stderr follows)")
		}
	}
}

// Bob's invitation, from `chat id --invite` (his daemon makes it), added
// by alice with `chat contacts add`: she pins his key under his name and
// connects. A tampered invitation and a relay's address are refused and
// pin nothing.
func TestContactsAddInvitation(t *testing.T) {
	noPassphraseEnv(t)
	bin := testproc.ChatBinary(t)
	base, err := os.MkdirTemp("", "cc") // unix socket paths are short
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	aDir, bDir := filepath.Join(base, "a"), filepath.Join(base, "b")
	newHome(t, aDir, "alice")
	_, bobID := newHome(t, bDir, "bob")
	startDaemonProc(t, bin, bDir)

	text, _ := mustRun(t, "--home", bDir, "id", "--invite")
	text = strings.TrimSpace(text)
	if !strings.HasPrefix(text, "CERTCHAT:") || strings.Contains(text, "\n") {
		t.Fatalf("chat id --invite: %q", text)
	}
	full, _ := mustRun(t, "--home", bDir, "id")
	if !strings.Contains(full, text) || !strings.Contains(full, "█") {
		t.Fatalf("chat id does not show the invitation and its QR code:\n%s", full)
	}

	// Tampered: one character in the middle changed.
	i := len(text) / 2
	swap := "A"
	if text[i] == 'A' {
		swap = "B"
	}
	if code, _, errOut := runIn(t, "--home", aDir, "contacts", "add", text[:i]+swap+text[i+1:]); code != 1 || !strings.Contains(errOut, "invitation") {
		t.Fatalf("tampered invitation: exit %d: %s", code, errOut)
	}
	// A relay's address: refused, with the way to use it.
	relay := testproc.StartRelay(t, testproc.RelayOptions{})
	if code, _, errOut := runIn(t, "--home", aDir, "contacts", "add", relay.Addr); code != 1 || !strings.Contains(errOut, "that is a relay, not a person: use it with --relay") {
		t.Fatalf("a relay's address: exit %d: %s", code, errOut)
	}
	if out, _ := mustRun(t, "--home", aDir, "contacts", "list", "--json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("contacts after refusals: %s", out)
	}

	out, _ := mustRun(t, "--home", aDir, "contacts", "add", text)
	if want := "Added bob (" + bobID + ") as tofu and connected.\n"; out != want {
		t.Fatalf("contacts add: %q, want %q", out, want)
	}
	out, _ = mustRun(t, "--home", aDir, "contacts", "list", "--json")
	var cs []contactJSON
	if err := json.Unmarshal([]byte(out), &cs); err != nil || len(cs) != 1 || cs[0].PeerID != bobID || cs[0].Name != "bob" || cs[0].Trust != "tofu" {
		t.Fatalf("contacts: %s", out)
	}
}

func homeOf(dir string) identity.Home { return identity.Home{Dir: dir} }

// With a chat window holding alice's home, `chat contacts add
// INVITATION` pins bob's key under the suggested name and leaves the
// connecting to the window; a contact already verified stays verified.
func TestContactsAddInvitationWindowOpen(t *testing.T) {
	noPassphraseEnv(t)
	base := t.TempDir()
	aDir, bDir := filepath.Join(base, "a"), filepath.Join(base, "b")
	aHome, _ := newHome(t, aDir, "alice")
	_, bobID := newHome(t, bDir, "bob")
	text, _ := mustRun(t, "--home", bDir, "id", "--invite", "--listen", "/ip4/127.0.0.1/tcp/0")
	text = strings.TrimSpace(text)
	holdDatabase(t, aHome)

	out, _ := mustRun(t, "--home", aDir, "contacts", "add", text)
	if want := "Added bob (" + bobID + ") as tofu. A chat window has this home open"; !strings.HasPrefix(out, want) {
		t.Fatalf("contacts add: %q, want %q...", out, want)
	}
	mustRun(t, "--home", aDir, "contacts", "verify", bobID, "--yes")
	out, _ = mustRun(t, "--home", aDir, "contacts", "add", text)
	if !strings.Contains(out, " as verified.") {
		t.Fatalf("adding a verified contact again: %q", out)
	}
}
