package ui

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/gdamore/tcell/v2"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A contact whose fingerprint was compared shows the verified badge in
// the chat list and spells it out in the title.
func TestVerifiedBadge(t *testing.T) {
	t.Parallel()
	alice, bob := newPeer(t, "alice", 0), newPeer(t, "bob", 0)
	alice.pin(bob.peerID(), "bob", identity.StateVerified)
	w := openWindow(t, alice.start(), 80, 24, Options{})
	w.waitText("bob", "✓ verified · offline")
	w.key(tcell.KeyTab, 0, tcell.ModNone)
	s := w.waitText(" bob  verified: fingerprint compared  " + bob.id.Fingerprint().Short())
	if strings.Contains(s, "not in your contacts") {
		t.Fatalf("a verified contact has a banner:\n%s", s)
	}
}

// A peer whose certificate chains to a trusted CA shows "CA" in the list
// and "verified: issued by Acme Root" in the title.
func TestCAVerifiedTitle(t *testing.T) {
	t.Parallel()
	w, dave := caContact(t, "dave", 365*24*time.Hour, 80)
	w.waitText("dave", "✓ CA · direct") // loopback: direct, not lan
	w.key(tcell.KeyTab, 0, tcell.ModNone)
	w.waitText("dave  verified: issued by Acme Root  " + dave.id.Fingerprint().Short())
}

// A certificate that expires within 30 days is flagged in the title and a
// banner.
func TestExpiringCertificateFlagged(t *testing.T) {
	t.Parallel()
	w, _ := caContact(t, "erin", 10*24*time.Hour, 100)
	w.waitText("erin")
	w.key(tcell.KeyTab, 0, tcell.ModNone)
	w.waitText("certificate expires in 10 days", "erin: certificate expires in 10 days.")
}

// caContact opens the window of alice, who trusts the CA Acme Root, at
// width×24, and connects to her a peer with a certificate from Acme Root
// valid for validity.
func caContact(t *testing.T, name string, validity time.Duration, width int) (*window, *testPeer) {
	ca, err := identity.NewCA("Acme Root", testNow, 0)
	if err != nil {
		t.Fatal(err)
	}
	alice := newPeer(t, "alice", 0)
	p := newCAPeer(t, name, 0, ca, validity)
	if err := alice.trust.AddRoot(ca.Cert); err != nil {
		t.Fatal(err)
	}
	p.pin(alice.peerID(), "alice", identity.StateTOFU)
	alice.start()
	p.start()
	w := openWindow(t, alice.n, width, 24, Options{})
	if _, err := connect(t, p, alice); err != nil {
		t.Fatal(err)
	}
	return w, p
}

// keyChange sets up alice, who knows bob, and a new key calling itself
// bob that reaches her: the changed-key case.
func keyChange(t *testing.T) (alice, newBob *testPeer, w *window) {
	alice = newPeer(t, "alice", 0)
	oldBob, newBob := newPeer(t, "bob", 0), newPeer(t, "bob", 0)
	alice.pin(oldBob.peerID(), "bob", identity.StateTOFU)
	newBob.pin(alice.peerID(), "alice", identity.StateTOFU)
	alice.start()
	newBob.start()
	w = openWindow(t, alice.n, 80, 32, Options{}) // tall enough for the dialog and the notice
	w.waitText("bob")
	connect(t, newBob, alice) // alice refuses the handshake
	w.waitText("! KEY CHANGED")
	return alice, newBob, w
}

// openChanged opens the chat marked KEY CHANGED.
func openChanged(w *window) string {
	return w.tabUntil(" bob  KEY CHANGED")
}

// A changed key shows a red banner, and the input refuses to send (the
// text stays) before the node would refuse with ErrKeyChanged.
func TestKeyChangedBannerBlocksSend(t *testing.T) {
	t.Parallel()
	alice, newBob, w := keyChange(t)
	openChanged(w)
	s := w.waitText("KEY CHANGED: this is not the key you trusted for")
	x, y, _ := w.find("KEY CHANGED: this is not")
	if _, bg, _ := w.styleAt(x, y).Decompose(); bg != tcell.ColorMaroon {
		t.Fatalf("the banner is not red (background %v):\n%s", bg, s)
	}
	w.enter("hello?")
	w.waitText("A new key claims to be your contact bob.")
	w.key(tcell.KeyEscape, 0, tcell.ModNone)
	w.waitText("Not sent: KEY CHANGED for bob", "› hello?")
	if h, _ := alice.n.History(newBob.peerID(), 0, 10); len(h) != 0 {
		t.Fatalf("a message was stored for the changed key: %+v", h)
	}
	if _, err := alice.n.Send(newBob.peerID(), "direct"); !errors.Is(err, node.ErrKeyChanged) {
		t.Fatalf("Send to a changed key: %v", err)
	}
}

// Comparing and accepting the new key lifts the block.
func TestKeyChangedAccept(t *testing.T) {
	t.Parallel()
	alice, newBob, w := keyChange(t)
	oldBob := alice.n.PeerInfo(newBob.peerID()).Changed.Previous.PeerID
	openChanged(w)
	w.enter("/trust")
	w.waitText("Known key:", "New key:   "+newBob.id.Fingerprint().String())
	w.typeText("a") // a letter never chooses: it goes to the input line
	w.waitText("› a")
	w.click("Accept new key")
	w.waitText(" bob  unverified: trusted on first use  " + newBob.id.Fingerprint().Short())
	w.waitGone("KEY CHANGED")
	if r := alice.n.PeerInfo(oldBob).Reason; r != "replaced: you accepted a new key for bob" {
		t.Fatalf("the old key's reason: %q", r)
	}
}

// Rejecting the new key blocks it.
func TestKeyChangedReject(t *testing.T) {
	t.Parallel()
	alice, newBob, w := keyChange(t)
	openChanged(w)
	w.enter("/trust")
	w.waitText("Reject")
	w.choose("Reject") // with the keyboard: Tab to the button, Enter
	w.waitText(" bob  blocked: you rejected this key")
	if c, ok, _ := alice.trust.Contact(newBob.peerID()); !ok || c.State != identity.StateUntrusted {
		t.Fatalf("the new key is not rejected: %+v", c)
	}
}

// /verify shows the safety number and a QR code, and marks the peer
// verified.
func TestVerifyMarksVerified(t *testing.T) {
	t.Parallel()
	alice, bob := newPeer(t, "alice", 0), newPeer(t, "bob", 0)
	alice.pin(bob.peerID(), "bob", identity.StateTOFU)
	w := openWindow(t, alice.start(), 80, 50, Options{})
	w.waitText("~ unverified")
	w.key(tcell.KeyTab, 0, tcell.ModNone)
	w.waitText("unverified: trusted on first use")
	w.enter("/verify")
	number, err := identity.SafetyNumber(alice.id.PublicKey(), bob.id.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	g := strings.Fields(number)
	fp := strings.Split(bob.id.Fingerprint().String(), "-")
	w.waitText(strings.Join(g[:4], " "), strings.Join(g[8:], " "), "▄▄▄▄▄", strings.Join(fp[:4], "-"), strings.Join(fp[4:], "-"))
	w.click("Mark verified")
	w.waitText(" bob  verified: fingerprint compared", "✓ verified")
	if c, _, _ := alice.trust.Contact(bob.peerID()); c.State != identity.StateVerified {
		t.Fatalf("contact state %q", c.State)
	}
}

// On a 40-column terminal the safety number dialog keeps its text and
// both buttons on screen.
func TestVerifyNarrow(t *testing.T) {
	t.Parallel()
	alice, bob := newPeer(t, "alice", 0), newPeer(t, "bob", 0)
	alice.pin(bob.peerID(), "bob", identity.StateTOFU)
	w := openWindow(t, alice.start(), 40, 24, Options{})
	w.tabUntil(" bob ")
	w.enter("/verify")
	number, err := identity.SafetyNumber(alice.id.PublicKey(), bob.id.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	g := strings.Fields(number)
	w.waitText("Read these numbers to bob over a", "If every group matches, choose Mark", strings.Join(g[:4], " "), strings.Join(g[8:], " "),
		"Mark verified", "Close (Esc)")
}

// firstContact opens the window of alice, with no contacts, and starts
// carol, who has alice as a contact.
func firstContact(t *testing.T, opts Options) (alice, carol *testPeer, w *window) {
	alice, carol = newPeer(t, "alice", 0), newPeer(t, "carol", 0)
	carol.pin(alice.peerID(), "alice", identity.StateTOFU)
	alice.start()
	carol.start()
	w = openWindow(t, alice.n, 80, 24, opts)
	w.waitText("Welcome to certchat, alice.")
	return alice, carol, w
}

// A first message from an unknown peer opens its chat (no chat was open)
// with a prompt; accepting pins the key, and the input, which has the
// focus, replies.
func TestFirstContactAcceptAndReply(t *testing.T) {
	t.Parallel()
	alice, carol, w := firstContact(t, Options{})
	introduce(carol, alice)
	sub := carol.n.Subscribe()
	defer sub.Close()
	if _, err := carol.n.Send(alice.peerID(), "hello from carol"); err != nil {
		t.Fatal(err)
	}
	w.waitText("First contact: carol", "carol is not in your contacts.", carol.id.Fingerprint().String(), "Accept")
	w.click("Accept")
	w.waitText(" carol  unverified: trusted on first use", "carol: hello from carol")
	w.enter("hi carol")
	w.waitText("me: hi carol  ✓ delivered")
	waitEvent(t, sub, "alice's reply", func(e node.Event) bool {
		return e.Kind == node.EventMessage && e.Message.Body == "hi carol"
	})
}

// Rejecting a first contact blocks the peer.
func TestFirstContactReject(t *testing.T) {
	t.Parallel()
	alice, carol, w := firstContact(t, Options{})
	introduce(carol, alice)
	if _, err := carol.n.Send(alice.peerID(), "buy now"); err != nil {
		t.Fatal(err)
	}
	w.waitText("First contact: carol")
	w.typeText("r") // a letter never chooses
	w.waitText("› r")
	if tr := alice.n.PeerInfo(carol.peerID()).Trust; tr != identity.StateUnknown {
		t.Fatalf("a letter decided the key: %s", tr)
	}
	w.key(tcell.KeyBackspace2, 0, tcell.ModNone)
	w.click("Reject")
	w.waitText(" carol  blocked: you rejected this key", "✗ blocked")
	w.enter("hello?")
	w.waitText("Rejected key") // a refused message asks again
	w.key(tcell.KeyEscape, 0, tcell.ModNone)
	w.waitText("Not sent: you rejected carol's key.", "› hello?")
	// The rejection can be undone; the dialog says so once.
	w.key(tcell.KeyCtrlU, 0, tcell.ModNone)
	w.enter("/trust")
	s := w.waitText("Rejected key", "You rejected carol's key. Accept it again?")
	if strings.Contains(s, "(you rejected") {
		t.Fatalf("the dialog says the same thing twice:\n%s", s)
	}
	w.choose("Accept")
	w.waitText(" carol  unverified: trusted on first use")
}

// The user is typing when a first contact's message opens its chat: the
// question waits while the input holds text, so the Enter that follows
// runs what was typed; it opens once the input is empty. Typing goes on
// to the input line while it is open: no letter accepts or rejects the
// key, an Enter while the input holds text sends that text instead of
// choosing, and the keyboard chooses once the input is empty and typing
// has paused.
func TestFirstContactWhileTyping(t *testing.T) {
	t.Parallel()
	const delay = 2 * time.Second
	alice, carol, w := firstContact(t, Options{DialogDelay: delay})
	w.typeText("/mu")
	introduce(carol, alice)
	if _, err := carol.n.Send(alice.peerID(), "hello from carol"); err != nil {
		t.Fatal(err)
	}
	s := w.waitText("carol: hello from carol", "carol is not in your contacts. /trust accepts")
	if strings.Contains(s, "First contact: carol") {
		t.Fatalf("the question opened while the input held text:\n%s", s)
	}
	w.enter("te")
	w.waitText("Muted carol", "First contact: carol")
	if d := w.draft(); d != "" {
		t.Fatalf("after Enter the input holds %q", d)
	}
	w.typeText("/unmute")
	w.key(tcell.KeyEnter, 0, tcell.ModNone) // sends the line: it has text
	w.waitText("Unmuted carol", "First contact: carol")
	w.typeText("really a")
	w.waitFor("the typed text in the input line", func(string) bool { return w.draft() == "really a" })
	if tr := alice.n.PeerInfo(carol.peerID()).Trust; tr != identity.StateUnknown {
		t.Fatalf("typing decided the key: %s", tr)
	}
	w.key(tcell.KeyEnter, 0, tcell.ModNone) // sends: refused, carol is no contact; kept
	w.waitText("Not sent: carol is not in your contacts.", "First contact: carol")
	for range len("really a") {
		w.key(tcell.KeyBackspace2, 0, tcell.ModNone) // to the input line
	}
	w.waitFor("an empty input line", func(string) bool { return w.draft() == "" })
	time.Sleep(delay + delay/4)
	w.key(tcell.KeyLeft, 0, tcell.ModNone)    // from Later to Reject
	w.key(tcell.KeyBacktab, 0, tcell.ModNone) // to Accept
	w.key(tcell.KeyEnter, 0, tcell.ModNone)
	w.waitText(" carol  unverified: trusted on first use", "carol: hello from carol")
}

// A first-contact question asked before the peer's certificate arrived
// (its first message came through a relay's mailbox) must not replace a
// contact once the certificate claims that contact's name: Accept then
// refuses and asks the key-changed question, and an open first-contact
// dialog turns into it as soon as the change is known.
func TestFirstContactTurnsIntoKeyChange(t *testing.T) {
	t.Parallel()
	alice, newBob, w := keyChange(t)
	oldBob := alice.n.PeerInfo(newBob.peerID()).Changed.Previous.PeerID
	stale := node.PeerInfo{ID: newBob.peerID(), Name: identity.ShortID(newBob.peerID()), Trust: identity.StateUnknown}

	// Accept on a question asked with stale knowledge.
	w.do(func() {
		c := w.u.roster.setInfo(stale)
		w.u.dlg.firstContactPrompt(c)
		w.u.app.ForceDraw()
	})
	w.click("Accept")
	w.waitText("Not accepted:", "A new key claims to be your contact bob.")
	if c, _, _ := alice.trust.Contact(oldBob); c.State != identity.StateTOFU {
		t.Fatalf("bob's key is now %s: the stale Accept replaced him", c.State)
	}
	if _, ok, _ := alice.trust.Contact(newBob.peerID()); ok {
		t.Fatal("the new key was pinned")
	}
	w.key(tcell.KeyEscape, 0, tcell.ModNone)
	// Escape closes the key-changed dialog that Accept opened. Key events
	// and updates reach the event loop by separate queues: let it land
	// before the next dialog opens, or it may close that one instead.
	w.waitGone("A new key claims to be your contact bob.")

	// The question is open when the change becomes known.
	w.do(func() {
		c := w.u.roster.setInfo(stale)
		w.u.dlg.firstContactPrompt(c)
		w.u.applyEvents([]node.Event{{Kind: node.EventPeer, Peer: ptr(alice.n.PeerInfo(newBob.peerID()))}}, nil)
		w.u.app.ForceDraw()
	})
	w.waitText("KEY CHANGED: bob", "Accept new key")
	w.waitGone("First contact")
}

func ptr[T any](v T) *T { return &v }

// Another person with a contact's name is added as a new contact with a
// label of its own; the contact keeps its key.
func TestKeyChangedSomeoneElse(t *testing.T) {
	t.Parallel()
	alice, newBob, w := keyChange(t)
	oldBob := alice.n.PeerInfo(newBob.peerID()).Changed.Previous.PeerID
	openChanged(w)
	w.enter("/trust")
	w.click("Someone else")
	w.waitText(" bob (2)  unverified: trusted on first use", "Added as a new contact, bob (2)")
	w.waitGone("KEY CHANGED")
	if c, _, _ := alice.trust.Contact(oldBob); c.State != identity.StateTOFU || c.Label() != "bob" {
		t.Fatalf("bob is now %s %q", c.State, c.Label())
	}
	if c, _, _ := alice.trust.Contact(newBob.peerID()); c.State != identity.StateTOFU || c.Label() != "bob (2)" {
		t.Fatalf("the new key is %s %q", c.State, c.Label())
	}
	w.enter("hello, other bob")
	w.waitText("me: hello, other bob  ✓ delivered")
}

// A name is its owner's choice, up to 64 characters: in the title bar it
// is cut to leave the trust state room, at 80 and 60 columns, in a group
// too. It pushed "unverified: trusted on first use" off the title, and a
// name could end in words that read like a trust state in its place. The
// empty input's hint, "Message NAME ..." cut to "Message", says /help.
func TestTitleKeepsTrustWithLongName(t *testing.T) {
	t.Parallel()
	alice, bob := newPeer(t, "alice", 0), newPeer(t, "bob", 0)
	long := "bob verified: fingerprint compared " + strings.Repeat("x", identity.MaxNameLength-35)
	alice.pin(bob.peerID(), long, identity.StateTOFU)
	n := alice.start()
	if _, err := n.Groups().Create("team "+strings.Repeat("y", identity.MaxNameLength-5), []peer.ID{bob.peerID()}); err != nil {
		t.Fatal(err)
	}
	w := openWindow(t, n, 80, 24, Options{})
	for _, tc := range []struct{ open, state string }{
		{" bob verified", "unverified: trusted on first use"},
		{" team yyy", "2 members: you, 1 unverified"},
	} {
		w.tabUntil(tc.open)
		for _, cols := range []int{80, 60} {
			screen := w.resize(cols, 24)
			if title, _, _ := strings.Cut(screen, "\n"); !strings.Contains(title, tc.state) || !strings.Contains(title, "…") {
				t.Errorf("at %d columns the title is %q, want the name cut and %q", cols, title, tc.state)
			}
			// The input's hint, too long with the name, still says /help.
			if !strings.Contains(screen, "› /help") {
				t.Errorf("at %d columns the input's hint is not /help:\n%s", cols, screen)
			}
		}
		w.resize(80, 24)
	}
}
