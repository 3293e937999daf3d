package ui

import (
	"strings"
	"testing"

	"github.com/certchat/certchat/internal/testproc"
	"github.com/certchat/certchat/node"
	"github.com/gdamore/tcell/v2"
)

// /id shows bob's invitation whole (in pieces of 64 characters) with its
// QR code; c copies it (OSC 52, here the simulation screen's clipboard);
// alice's /add takes it, pins bob under his name and connects.
func TestInvitationShownCopiedAdded(t *testing.T) {
	t.Parallel()
	alice, bob := newPeer(t, "alice", 0), newPeer(t, "bob", 0)
	alice.start()
	bob.start()
	wa := openWindow(t, alice.n, 80, 24, Options{})
	wb := openWindow(t, bob.n, 80, 24, Options{})
	text, err := bob.n.Invitation()
	if err != nil {
		t.Fatal(err)
	}
	wb.enter("/id")
	pieces := chunks(text, inviteWidth)
	wb.waitText("Your invitation", "c copies it", pieces[0], pieces[1])
	screen := wb.text()
	for _, row := range strings.Split(screen, "\n") {
		if w := textWidth(row); w > 80 {
			t.Fatalf("a row of %d columns:\n%s", w, screen)
		}
	}
	wb.key(tcell.KeyRune, 'c', tcell.ModNone)
	wb.waitText("Your invitation: copied to the clipboard")
	var copied string
	wb.do(func() { copied = string(wb.scr.GetClipboardData()) })
	if copied != text {
		t.Fatalf("copied %q, want %q", copied, text)
	}
	// Scrolling down reaches the QR code.
	for range 10 {
		wb.key(tcell.KeyDown, 0, tcell.ModNone)
	}
	wb.waitText("█████")
	wb.key(tcell.KeyEscape, 0, tcell.ModNone)
	wb.waitGone("Your invitation")

	wa.enter("/add " + copied)
	wa.waitText("Connected to bob (unverified: trusted on first use).", " bob  unverified: trusted on first use")
	if c, ok, _ := alice.trust.Contact(bob.peerID()); !ok || c.Name != "bob" {
		t.Fatalf("bob's contact: %+v %v", c, ok)
	}
	// A damaged invitation is refused in a sentence.
	wa.enter("/add " + text[:len(text)-20])
	wa.waitText("Cannot add this invitation: the invitation is", "damaged or incomplete")
}

// A relay's address given to /add: explained, and no chat or contact is
// made for it. The relay is a real `chat relay` process.
func TestAddRelayExplained(t *testing.T) {
	t.Parallel()
	relay := testproc.StartRelay(t, testproc.RelayOptions{})
	alice := newPeer(t, "alice", 0)
	alice.start()
	w := openWindow(t, alice.n, 100, 30, Options{})
	w.enter("/add " + relay.Addr)
	w.waitText("That is a relay, not a person: start chat with --relay")
	if cs, _ := alice.trust.Contacts(); len(cs) != 0 {
		t.Fatalf("contacts: %+v", cs)
	}
}

// A window whose node listens on loopback only, LAN discovery asked for:
// the status bar says it is off and why.
func TestStatusLANOff(t *testing.T) {
	t.Parallel()
	alice := newPeer(t, "alice", 0)
	n, err := node.New(node.Config{Home: alice.home, Identity: alice.id, Trust: alice.trust, Now: testClock,
		Listen: []string{"/ip4/127.0.0.1/tcp/0"}, MDNS: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	w := openWindow(t, n, 140, 24, Options{LAN: true})
	w.waitText("LAN off: no LAN address in use", "LAN discovery is off: no LAN address in use.")
	w80 := openWindow(t, n, 80, 24, Options{LAN: true})
	w80.waitText("LAN off")
}
