package ui

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/gdamore/tcell/v2"
)

// A file offered to the window's user shows under its offer, /accept
// fetches it, and the conversation then shows where it is and its type.
func TestFileOfferInWindow(t *testing.T) {
	t.Parallel()
	alice, bob := newPeer(t, "alice", 0), newPeer(t, "bob", 0)
	alice.pin(bob.peerID(), "bob", identity.StateTOFU)
	bob.pin(alice.peerID(), "alice", identity.StateTOFU)
	w := openWindow(t, alice.start(), 160, 30, Options{})
	bob.start()
	introduce(bob, alice)
	png := append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 3000)...)
	path := filepath.Join(t.TempDir(), "photo.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.n.Files().Send(alice.peerID(), path); err != nil {
		t.Fatal(err)
	}
	w.tabUntil(" bob  ")
	w.waitText("bob: [file] photo.png (2.9 KiB)", "offered: /accept to receive it")
	w.enter("/accept")
	s := w.waitText("saved: ", "(image/png, 2.9 KiB)")
	if !strings.Contains(s, filepath.Join(alice.home.Dir, "downloads", "photo.png")) {
		t.Fatalf("the path is not shown:\n%s", s)
	}
	w.enter("/files")
	w.waitText("Files", "← bob  photo.png  2.9 KiB")
}

// /send completes the path on Tab and offers the file to the open chat.
func TestFileSendFromWindow(t *testing.T) {
	t.Parallel()
	alice, bob := newPeer(t, "alice", 0), newPeer(t, "bob", 0)
	alice.pin(bob.peerID(), "bob", identity.StateTOFU)
	bob.pin(alice.peerID(), "alice", identity.StateTOFU)
	w := openWindow(t, alice.start(), 160, 30, Options{})
	bob.start()
	introduce(alice, bob)
	sub := bob.n.Subscribe()
	defer sub.Close()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "report-2026.txt"), []byte("numbers"), 0o644); err != nil {
		t.Fatal(err)
	}
	w.tabUntil(" bob  ")
	w.typeText("/send " + dir + "/rep")
	w.waitText("/send " + dir + "/rep")
	w.key(tcell.KeyTab, 0, tcell.ModNone)
	w.waitText("/send " + dir + "/report-2026.txt")
	w.key(tcell.KeyEnter, 0, tcell.ModNone)
	e := waitEvent(t, sub, "the offer", func(e node.Event) bool { return e.Kind == node.EventFileOffer })
	if e.File.Name != "report-2026.txt" || e.File.Size != 7 {
		t.Fatalf("bob was offered %+v", e.File)
	}
	w.waitText("me: [file] report-2026.txt (7 B)", "waiting for bob to accept")
	if err := bob.n.Files().Accept(e.File.ID); err != nil {
		t.Fatal(err)
	}
	w.waitText("received by bob")
}

// A file command that reaches a transfer already over (the peer
// cancelled it a moment before, or the command names a file that ended)
// says how it ended: /accept is too late, /cancel has nothing to do. It
// is not told as the node's error ("The file transfer is over: it is
// cancelled.").
func TestFileCommandAfterTheEnd(t *testing.T) {
	t.Parallel()
	alice, bob, w := talking(t, 160, 30, Options{})
	path := filepath.Join(t.TempDir(), "minutes.txt")
	if err := os.WriteFile(path, []byte("what we decided"), 0o644); err != nil {
		t.Fatal(err)
	}
	fi, err := bob.n.Files().Send(alice.peerID(), path)
	if err != nil {
		t.Fatal(err)
	}
	w.waitText("bob: [file] minutes.txt", "offered: /accept to receive it")
	if err := bob.n.Files().Cancel(fi.ID); err != nil {
		t.Fatal(err)
	}
	w.waitText("bob: [file] minutes.txt", "cancelled")
	id := fi.ID.String()[:8]
	w.enter("/accept " + id)
	w.waitText("Too late to accept: the file transfer is over (cancelled).")
	w.enter("/cancel " + id)
	w.waitText("Nothing to cancel: the file transfer is over (cancelled).")
}
