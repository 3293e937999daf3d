package ui

import (
	"errors"
	"strings"
	"testing"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
)

// lookAlike sets up alice, who knows bob (online when bobOnline), and a
// new key whose certificate says "bоb" (Cyrillic о) reaching her, in a
// window of 80×h.
func lookAlike(t *testing.T, bobOnline bool, h int) (alice, bob, imp *testPeer, w *window) {
	alice, bob, imp = newPeer(t, "alice", 0), newPeer(t, "bob", 0), newPeer(t, "bоb", 0)
	alice.pin(bob.peerID(), "bob", identity.StateTOFU)
	bob.pin(alice.peerID(), "alice", identity.StateTOFU)
	imp.pin(alice.peerID(), "alice", identity.StateTOFU)
	alice.start()
	imp.start()
	w = openWindow(t, alice.n, 80, h, Options{})
	if bobOnline {
		bob.start()
		if _, err := connect(t, bob, alice); err != nil {
			t.Fatal(err)
		}
		w.waitText("~ unverified · direct") // loopback: direct, not lan
	}
	connect(t, imp, alice) // alice refuses the handshake
	w.waitText("! KEY CHANGED")
	return alice, bob, imp, w
}

// The key-changed dialog says who the new key claims to be and what its
// certificate says, whether the known key is online and whether a CA
// vouches for either, and what each button does to which key.
func TestKeyChangedDialogText(t *testing.T) {
	t.Parallel()
	_, _, imp, w := lookAlike(t, false, 40)
	w.tabUntil(" bоb  KEY CHANGED")
	w.waitText("KEY CHANGED: this is not the key you trusted for", "bob. Nothing is sent to it.")
	w.enter("/trust")
	w.waitText("KEY CHANGED: bob",
		"A new key claims to be your contact bob.",
		"Its certificate says \u201cbоb\u201d", "reads like bob.",
		"bob's key: offline; unverified: trusted on first use, not CA-verified",
		"New key:   "+imp.id.Fingerprint().String(),
		"not CA-verified: self-signed",
		"Accept new key: bob's old key is blocked and the new key becomes bob.",
		"Someone else: keep bob, add this key as bob (2).",
		"Reject: block the new key; bob keeps the known key.")
	w.click("Someone else")
	w.waitText(" bob (2)  unverified: trusted on first use", "Added as a new contact, bob (2)")
}

// The warning is in the new key's chat and the chat list only: the real
// contact's chat shows none, and /trust there acts on the real contact,
// never on the key that claims its name. The dialog, opened in the new
// key's chat, tells that the known key is online.
func TestKeyChangedNotInContactsChat(t *testing.T) {
	t.Parallel()
	alice, bob, imp, w := lookAlike(t, true, 40)
	s := w.tabUntil(" bob  unverified")
	for _, bad := range []string{"KEY CHANGED:", "claims to be", "not the key you trusted"} {
		if strings.Contains(s, bad) {
			t.Fatalf("bob's chat shows %q:\n%s", bad, s)
		}
	}
	w.enter("/trust")
	s = w.waitText("bob is trusted on first use; /verify compares")
	if strings.Contains(s, "Accept new key") {
		t.Fatalf("/trust in bob's chat asks about the new key:\n%s", s)
	}
	w.enter("hi bob")
	w.waitText("me: hi bob  ✓ delivered")
	if pi := alice.n.PeerInfo(imp.peerID()); pi.Trust != identity.StateChanged {
		t.Fatalf("the new key is now %s", pi.Trust)
	}
	if c, _, _ := alice.trust.Contact(bob.peerID()); c.State != identity.StateTOFU || c.Label() != "bob" {
		t.Fatalf("bob is now %s %q", c.State, c.Label())
	}
	w.tabUntil(" bоb  KEY CHANGED")
	w.enter("/trust")
	w.waitText("bob's key: online now; unverified: trusted on first use, not CA-verified")
}

// After a restart, with the new key offline, its chat still says KEY
// CHANGED (not a first contact with a plain Accept), and nothing is sent.
func TestKeyChangedAfterRestart(t *testing.T) {
	t.Parallel()
	alice, _, imp, w := lookAlike(t, false, 40)
	w.close()
	imp.n.Close()
	alice.n.Close()
	w = openWindow(t, alice.start(), 80, 40, Options{})
	w.waitText("! KEY CHANGED · offline")
	w.tabUntil(" bоb  KEY CHANGED")
	w.waitText("KEY CHANGED: this is not the key you trusted for", "bob. Nothing is sent to it.")
	w.enter("hello?")
	s := w.waitText("A new key claims to be your contact bob.", "Accept new key")
	if strings.Contains(s, "First contact") {
		t.Fatalf("a first contact's question for a changed key:\n%s", s)
	}
	if _, err := alice.n.Send(imp.peerID(), "direct"); !errors.Is(err, node.ErrKeyChanged) {
		t.Fatalf("Send to the changed key after a restart: %v", err)
	}
}

// A contact whose certificate now says another name keeps the label the
// user knows, and its chat says what the certificate says.
func TestContactRenamedShown(t *testing.T) {
	t.Parallel()
	alice, mallory := newPeer(t, "alice", 0), newPeer(t, "x", 0)
	alice.pin(mallory.peerID(), "", identity.StateTOFU)
	for _, name := range []string{"mallory", "bоb"} {
		if err := alice.trust.NoteCertName(mallory.peerID(), name); err != nil {
			t.Fatal(err)
		}
	}
	w := openWindow(t, alice.start(), 80, 24, Options{})
	w.tabUntil(" mallory  unverified")
	w.waitText("mallory, whose certificate now says \u201cbоb\u201d", "key, so the name you know stays")
}
