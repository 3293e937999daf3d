package ui

import (
	"testing"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
	"github.com/gdamore/tcell/v2"
)

// Contacts are renamed, blocked, unblocked and removed from the window,
// as `chat contacts` does; a name that reads like another contact's is
// refused, and removing asks first.
func TestContactsFromWindow(t *testing.T) {
	t.Parallel()
	alice, bob, carol := newPeer(t, "alice", 0), newPeer(t, "bob", 0), newPeer(t, "carol", 0)
	alice.pin(bob.peerID(), "bob", identity.StateTOFU)
	alice.pin(carol.peerID(), "carol", identity.StateTOFU)
	alice.fill(
		msg(carol.peerID(), store.Incoming, testNow.Add(-2*time.Hour), "from carol", ""),
		msg(bob.peerID(), store.Incoming, testNow.Add(-time.Hour), "from bob", ""),
	)
	w := openWindow(t, alice.start(), 80, 30, Options{})
	w.tabUntil(" bob ")
	label := func(p *testPeer) (string, identity.State, bool) {
		c, ok, err := alice.trust.Contact(p.peerID())
		if err != nil {
			t.Fatal(err)
		}
		return c.Label(), c.State, ok
	}

	w.enter("/rename Robert Smith")
	w.waitText("Renamed bob to Robert Smith.", " Robert Smith  unverified")
	if l, _, _ := label(bob); l != "Robert Smith" {
		t.Fatalf("label %q", l)
	}
	// Another contact's name, in any case or with look-alike letters, is
	// refused, whichever way the contact is named.
	for _, cmd := range []string{"/rename @carol robert smith", "/rename carol ROBERT SMITH", "/rename carol Rоbert Smith" /* Cyrillic о */} {
		w.enter(cmd)
		w.waitText("Not renamed:", "Two contacts must never")
		w.key(tcell.KeyEscape, 0, tcell.ModNone)
		w.waitGone("Not renamed:")
	}
	if l, _, _ := label(carol); l != "carol" {
		t.Fatalf("carol was renamed to %q", l)
	}
	w.enter("/rename @nobody x")
	w.waitText(`/rename: no chat is called "nobody"`)

	w.enter("/block carol")
	w.waitText("You rejected carol's key")
	if _, st, _ := label(carol); st != identity.StateUntrusted {
		t.Fatalf("carol is %s after /block", st)
	}
	w.enter("/unblock @carol")
	w.waitText("carol is in your contacts: trusted on first use.")
	if _, st, _ := label(carol); st != identity.StateTOFU {
		t.Fatalf("carol is %s after /unblock", st)
	}
	w.enter("/unblock")
	w.waitText("Robert Smith is not blocked.")

	// Removing asks; Keep changes nothing, Remove forgets the key.
	w.enter("/remove")
	w.waitText("Remove Robert Smith from your contacts?", "Keep (Esc)")
	w.key(tcell.KeyEscape, 0, tcell.ModNone)
	w.waitGone("Keep (Esc)")
	if _, _, ok := label(bob); !ok {
		t.Fatal("Esc removed the contact")
	}
	w.enter("/remove")
	w.choose("Remove")
	w.waitText("Removed Robert Smith from your contacts.", "is not in your contacts")
	if _, _, ok := label(bob); ok {
		t.Fatal("the contact is still there")
	}
	w.enter("/remove")
	w.waitText("is not in your contacts.")
}

// A peer a CA vouches for is no contact until named: /rename pins it and
// it stays CA-verified.
func TestRenameCAVerified(t *testing.T) {
	t.Parallel()
	w, _ := caContact(t, "dave", 365*24*time.Hour, 80)
	w.waitText("✓ CA")
	w.tabUntil(" dave  verified: issued by Acme Root")
	w.enter("/rename David")
	w.waitText("Renamed dave to David.", " David  verified: issued by Acme Root")
	w.waitText("✓ CA")
}

// A new user with no chat yet is pointed to invitations, what /id shows
// and the README starts with, not to a bare peer ID: in the chat list, and
// when they type before any chat is open.
func TestNoChatPointsToInvitations(t *testing.T) {
	t.Parallel()
	p := newPeer(t, "alice", 0)
	w := openWindow(t, p.start(), 80, 24, Options{})
	w.waitText("No chats yet.", "/add INVITATION")
	w.enter("hello")
	w.waitText("with /add INVITATION (/id shows yours).")
}
