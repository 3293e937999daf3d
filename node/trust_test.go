package node_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Trust decisions as the node enforces them: first contact, blocking, and
// a changed key. Each check is shown refusing something.

// refused checks that to refuses a handshake from from. In TLS 1.3 the
// server checks the client's certificate after the client has finished
// its side of the handshake, so the client may see a session that its
// first read then ends with ErrRejected: what matters is that to never
// has a session with from.
func refused(t *testing.T, from, to *testNode) {
	t.Helper()
	if _, err := connect(t, from, to); err == nil {
		eventually(t, "the refused session ends at the client", func() bool { return !from.PeerInfo(to.ID()).Online })
	}
	if to.PeerInfo(from.ID()).Online {
		t.Fatalf("%s has a session with %s, which it should refuse", to.ID(), from.ID())
	}
}

// TestFirstContact: a stranger may write to us (we see it as unknown), but
// nothing goes to it until we accept it.
func TestFirstContact(t *testing.T) {
	alice := startNode(t, newHome(t, "alice"), "/ip4/127.0.0.1/tcp/0")
	stranger := startNode(t, newHome(t, "stranger"), "/ip4/127.0.0.1/tcp/0")

	// The stranger has not accepted alice either: it cannot send.
	if _, err := stranger.Send(alice.ID(), "too early"); !errors.Is(err, node.ErrNotTrusted) {
		t.Fatalf("send to a peer not accepted: %v, want ErrNotTrusted", err)
	}
	if err := stranger.Contacts().Trust(alice.ID(), false); err != nil {
		t.Fatal(err)
	}
	info, err := connect(t, stranger, alice)
	if err != nil {
		t.Fatal(err)
	}
	if info.Trust != identity.StateTOFU {
		t.Fatalf("stranger sees alice as %s", info.Trust)
	}
	m := stranger.send(alice.ID(), "hello, you don't know me")
	got := alice.waitMessage(m)
	if got.Body != m.Body {
		t.Fatalf("alice got %q", got.Body)
	}
	stranger.waitDelivered(m)

	pi := alice.PeerInfo(stranger.ID())
	if pi.Trust != identity.StateUnknown || !pi.Online || pi.Name != "stranger" {
		t.Fatalf("alice's view of the stranger: %+v", pi)
	}
	if _, err := alice.Send(stranger.ID(), "reply"); !errors.Is(err, node.ErrNotTrusted) {
		t.Fatalf("reply before accepting: %v, want ErrNotTrusted", err)
	}
	if ob, _ := alice.Store().Outbox(stranger.ID()); len(ob) != 0 {
		t.Fatalf("a refused message was queued: %q", bodies(ob))
	}

	if err := alice.Contacts().Trust(stranger.ID(), false); err != nil {
		t.Fatal(err)
	}
	if pi := alice.PeerInfo(stranger.ID()); pi.Trust != identity.StateTOFU {
		t.Fatalf("after accepting: %s", pi.Trust)
	}
	r := alice.send(stranger.ID(), "reply")
	stranger.waitMessage(r)
	alice.waitDelivered(r)
}

// TestBlock: blocking closes the live session, refuses the peer's
// handshakes and messages both ways; trusting it again lets the queued
// message through.
func TestBlock(t *testing.T) {
	alice := startNode(t, newHome(t, "alice"), "/ip4/127.0.0.1/tcp/0")
	bob := startNode(t, newHome(t, "bob"), "/ip4/127.0.0.1/tcp/0")
	trustEachOther(t, alice, bob)
	m := bob.send(alice.ID(), "before")
	alice.waitMessage(m)
	bob.waitDelivered(m)
	if !alice.PeerInfo(bob.ID()).Online || !bob.PeerInfo(alice.ID()).Online {
		t.Fatal("no live session before blocking")
	}

	if err := alice.Contacts().Block(bob.ID()); err != nil {
		t.Fatal(err)
	}
	// Block closes the live session at once, on both sides.
	if alice.PeerInfo(bob.ID()).Online {
		// unregister runs when the read loop sees the close; give it a moment
		alice.waitPeer(bob.ID(), "bob's session closed at alice", func(p node.PeerInfo) bool { return !p.Online })
	}
	bob.waitPeer(alice.ID(), "the session closed at bob", func(p node.PeerInfo) bool { return !p.Online })
	if pi := alice.PeerInfo(bob.ID()); pi.Trust != identity.StateUntrusted {
		t.Fatalf("blocked peer shows as %s", pi.Trust)
	}
	if _, err := alice.Send(bob.ID(), "no"); !errors.Is(err, node.ErrBlocked) {
		t.Fatalf("send to a blocked peer: %v, want ErrBlocked", err)
	}

	// Bob keeps trying (his outbox retries every 500 ms here, and may
	// resume his TLS ticket): each handshake is refused, nothing arrives.
	late := bob.send(alice.ID(), "let me in")
	refused(t, bob, alice)
	alice.quiet(1500*time.Millisecond, "message from the blocked peer", func(e node.Event) bool {
		return e.Kind == node.EventMessage
	})
	if alice.PeerInfo(bob.ID()).Online {
		t.Fatal("a blocked peer has a live session")
	}
	if got, _ := bob.Store().Message(late.ID); got.Status == store.StatusDelivered {
		t.Fatal("a blocked peer's message was acknowledged")
	}
	if h := historyBodies(t, alice, bob.ID()); len(h) != 1 {
		t.Fatalf("alice's history with the blocked peer: %q", h)
	}

	// Trusting again lets the queued message through.
	if err := alice.Contacts().Trust(bob.ID(), false); err != nil {
		t.Fatal(err)
	}
	alice.waitMessage(late)
	bob.waitDelivered(late)
}

// TestChangedKey: bob is a contact; a new key also named bob arrives. It is
// held as changed, nothing goes to it, and accepting it replaces the old
// key, which is then refused.
func TestChangedKey(t *testing.T) {
	alice := startNode(t, newHome(t, "alice"), "/ip4/127.0.0.1/tcp/0")
	bob1 := startNode(t, newHome(t, "bob"), "/ip4/127.0.0.1/tcp/0")
	trustEachOther(t, alice, bob1)
	// A handshake, so alice knows the name in bob's certificate.
	hi := bob1.send(alice.ID(), "hi, I'm bob")
	alice.waitMessage(hi)
	bob1.waitDelivered(hi)
	if c, ok, _ := alice.Trust().Contact(bob1.ID()); !ok || c.CertName != "bob" {
		t.Fatalf("contact after the handshake: %+v", c)
	}

	bob2 := startNode(t, newHome(t, "bob"), "/ip4/127.0.0.1/tcp/0")
	if err := bob2.Contacts().Trust(alice.ID(), false); err != nil {
		t.Fatal(err)
	}
	refused(t, bob2, alice)
	pi := alice.waitPeer(bob2.ID(), "changed key", func(p node.PeerInfo) bool { return p.Trust == identity.StateChanged })
	pi = alice.PeerInfo(bob2.ID())
	if pi.Changed == nil || pi.Changed.Previous == nil || pi.Changed.Previous.PeerID != bob1.ID() {
		t.Fatalf("changed key info: %+v", pi.Changed)
	}
	if pi.Online {
		t.Fatal("the changed key has a live session")
	}
	if _, err := alice.Send(bob2.ID(), "to the new key"); !errors.Is(err, node.ErrKeyChanged) {
		t.Fatalf("send to a changed key: %v, want ErrKeyChanged", err)
	}
	// The new key's messages wait too.
	fromNew := bob2.send(alice.ID(), "it's me, new phone")
	alice.quiet(700*time.Millisecond, "message from the changed key", func(e node.Event) bool {
		return e.Kind == node.EventMessage && e.Message.Peer == bob2.ID()
	})
	// The old key still works meanwhile.
	if pi := alice.PeerInfo(bob1.ID()); pi.Trust != identity.StateTOFU {
		t.Fatalf("the old key shows as %s before the decision", pi.Trust)
	}

	// Alice accepts the new key.
	if err := alice.Contacts().Trust(bob2.ID(), false); err != nil {
		t.Fatal(err)
	}
	if pi := alice.PeerInfo(bob2.ID()); pi.Trust != identity.StateTOFU || pi.Changed != nil {
		t.Fatalf("the new key after accepting: %s %+v", pi.Trust, pi.Changed)
	}
	old, ok, _ := alice.Trust().Contact(bob1.ID())
	if !ok || old.State != identity.StateUntrusted || old.ReplacedBy != bob2.ID() {
		t.Fatalf("the old contact after accepting: %+v", old)
	}
	if pi := alice.PeerInfo(bob1.ID()); pi.Trust != identity.StateUntrusted {
		t.Fatalf("the old key shows as %s", pi.Trust)
	}
	if _, err := alice.Send(bob1.ID(), "old key"); !errors.Is(err, node.ErrBlocked) {
		t.Fatalf("send to the replaced key: %v, want ErrBlocked", err)
	}
	if c, err := alice.Trust().Resolve("bob"); err != nil || c.PeerID != bob2.ID() {
		t.Fatalf("the name bob resolves to %v, %v", c.PeerID, err)
	}
	// Messages flow with the new key, both ways.
	alice.waitMessage(fromNew)
	bob2.waitDelivered(fromNew)
	w := alice.send(bob2.ID(), "welcome back")
	bob2.waitMessage(w)
	alice.waitDelivered(w)

	// The replaced key's live session is closed, and it cannot come back.
	bob1.waitPeer(alice.ID(), "the replaced key's session closed", func(p node.PeerInfo) bool { return !p.Online })
	stale := bob1.send(alice.ID(), "from the old phone")
	refused(t, bob1, alice)
	alice.quiet(700*time.Millisecond, "message from the replaced key", func(e node.Event) bool {
		return e.Kind == node.EventMessage && e.Message.Peer == bob1.ID()
	})
	if got, _ := bob1.Store().Message(stale.ID); got.Status == store.StatusDelivered {
		t.Fatal("the replaced key's message was acknowledged")
	}
}

// Messages waiting for a key the user then replaces fail, saying why:
// nothing waits forever for a key that will never answer.
func TestReplacedKeyOutboxFails(t *testing.T) {
	alice := startNode(t, newHome(t, "alice"), "/ip4/127.0.0.1/tcp/0")
	oldHome := newHome(t, "bob")
	oldBob := mustID(t, oldHome) // never online
	if err := alice.Trust().Pin(oldBob, "bob", identity.StateTOFU, time.Now()); err != nil {
		t.Fatal(err)
	}
	stale, err := alice.Send(oldBob, "to the old phone")
	if err != nil {
		t.Fatal(err)
	}
	bob2 := startNode(t, newHome(t, "bob"), "/ip4/127.0.0.1/tcp/0")
	bob2.Contacts().Trust(alice.ID(), false)
	refused(t, bob2, alice)
	alice.waitPeer(bob2.ID(), "changed key", func(p node.PeerInfo) bool { return p.Trust == identity.StateChanged })
	if m, _ := alice.Store().Message(stale.ID); m.Status == store.StatusFailed {
		t.Fatal("failed before the user decided")
	}
	if err := alice.Contacts().Trust(bob2.ID(), false); err != nil {
		t.Fatal(err)
	}
	m, err := alice.Store().Message(stale.ID)
	if err != nil || m.Status != store.StatusFailed || !strings.Contains(m.Error, "replaced") {
		t.Fatalf("the message to the replaced key: %+v, %v", m, err)
	}
	if out, _ := alice.Store().Outbox(oldBob); len(out) != 0 {
		t.Fatalf("%d messages still wait for the replaced key", len(out))
	}
}

// Contacts.TrustNew (a first contact's Accept) never replaces a contact: a key
// whose certificate claims a contact's name is refused with ErrKeyChanged
// and nothing changes, whether the handshake flagged the key as changed
// or its certificate arrived before the contact was added.
func TestTrustNewPeerKeepsContacts(t *testing.T) {
	keptBob := func(t *testing.T, alice *testNode, bob, other peer.ID) {
		t.Helper()
		if err := alice.Contacts().TrustNew(other); !errors.Is(err, node.ErrKeyChanged) {
			t.Fatalf("accepting a key that claims a contact's name: %v, want ErrKeyChanged", err)
		}
		if c, err := alice.Trust().Resolve("bob"); err != nil || c.PeerID != bob {
			t.Fatalf("the name bob resolves to %v, %v", c.PeerID, err)
		}
		if _, ok, _ := alice.Trust().Contact(other); ok {
			t.Fatal("the refused key became a contact")
		}
	}

	t.Run("flagged by the handshake", func(t *testing.T) {
		alice := startNode(t, newHome(t, "alice"), "/ip4/127.0.0.1/tcp/0")
		oldBob := mustID(t, newHome(t, "bob")) // never online
		if err := alice.Trust().Pin(oldBob, "bob", identity.StateTOFU, time.Now()); err != nil {
			t.Fatal(err)
		}
		bob2 := startNode(t, newHome(t, "bob"), "/ip4/127.0.0.1/tcp/0")
		if err := bob2.Contacts().Trust(alice.ID(), false); err != nil {
			t.Fatal(err)
		}
		refused(t, bob2, alice)
		alice.waitPeer(bob2.ID(), "changed key", func(p node.PeerInfo) bool { return p.Trust == identity.StateChanged })
		keptBob(t, alice, oldBob, bob2.ID())
	})

	t.Run("certificate seen first", func(t *testing.T) {
		alice := startNode(t, newHome(t, "alice"), "/ip4/127.0.0.1/tcp/0")
		stranger := startNode(t, newHome(t, "bob"), "/ip4/127.0.0.1/tcp/0")
		if err := stranger.Contacts().Trust(alice.ID(), false); err != nil {
			t.Fatal(err)
		}
		m := stranger.send(alice.ID(), "hi, it's bob")
		if _, err := connect(t, stranger, alice); err != nil {
			t.Fatal(err)
		}
		alice.waitMessage(m)
		// Then alice adds her bob, whose key she got another way.
		bob := mustID(t, newHome(t, "bob"))
		if err := alice.Trust().Pin(bob, "bob", identity.StateTOFU, time.Now()); err != nil {
			t.Fatal(err)
		}
		keptBob(t, alice, bob, stranger.ID())
		// A stranger with a name of its own is accepted.
		carol := startNode(t, newHome(t, "carol"), "/ip4/127.0.0.1/tcp/0")
		if err := carol.Contacts().Trust(alice.ID(), false); err != nil {
			t.Fatal(err)
		}
		if _, err := connect(t, carol, alice); err != nil {
			t.Fatal(err)
		}
		alice.waitPeer(carol.ID(), "carol's certificate", func(p node.PeerInfo) bool { return p.Name == "carol" })
		if err := alice.Contacts().TrustNew(carol.ID()); err != nil {
			t.Fatalf("accepting a stranger: %v", err)
		}
	})
}

// TestRenameAndRemove: a contact takes a new label unless another
// contact's reads the same, and once removed nothing is sent to it; the
// subscribers hear of both.
func TestRenameAndRemove(t *testing.T) {
	alice := startNode(t, newHome(t, "alice"), "/ip4/127.0.0.1/tcp/0")
	bob := startNode(t, newHome(t, "bob"), "/ip4/127.0.0.1/tcp/0")
	carol := startNode(t, newHome(t, "carol"), "/ip4/127.0.0.1/tcp/0")
	for _, p := range []*testNode{bob, carol} {
		if err := alice.Contacts().Trust(p.ID(), false); err != nil {
			t.Fatal(err)
		}
	}
	if err := alice.Contacts().Rename(bob.ID(), "Robert"); err != nil {
		t.Fatal(err)
	}
	alice.waitPeer(bob.ID(), "bob renamed", func(p node.PeerInfo) bool { return p.Name == "Robert" && p.Contact })
	if err := alice.Contacts().Rename(carol.ID(), "ROBERT"); !errors.Is(err, identity.ErrNameTaken) {
		t.Fatalf("a name like another contact's: %v, want ErrNameTaken", err)
	}
	if err := alice.Contacts().Rename(alice.ID(), "me"); !errors.Is(err, node.ErrSelf) {
		t.Fatalf("renaming oneself: %v", err)
	}

	if err := alice.Contacts().Remove(bob.ID()); err != nil {
		t.Fatal(err)
	}
	alice.waitPeer(bob.ID(), "bob removed", func(p node.PeerInfo) bool { return !p.Contact && p.Trust == identity.StateUnknown })
	if _, err := alice.Send(bob.ID(), "still there?"); !errors.Is(err, node.ErrNotTrusted) {
		t.Fatalf("send to a removed contact: %v, want ErrNotTrusted", err)
	}
	if err := alice.Contacts().Remove(bob.ID()); !errors.Is(err, identity.ErrUnknownContact) {
		t.Fatalf("removing twice: %v", err)
	}
	if err := alice.Contacts().Rename(bob.ID(), "Bob"); !errors.Is(err, identity.ErrUnknownContact) {
		t.Fatalf("renaming a peer that is no contact: %v", err)
	}
}

// A group copy that waits for the user to accept its member goes out
// soon after the member is accepted in another process (`chat contacts
// add` beside a running daemon or window), not at the worker's next
// retry: with RetryMax an hour, it waited the hour (it slept RetryMax
// "until the user decides", and a change to trust.json made elsewhere
// woke nobody).
func TestAcceptedElsewhereSendsWhatWaits(t *testing.T) {
	alice := startNode(t, newHome(t, "alice"))
	bob := startNodeWith(t, newHome(t, "bob"), func(c *node.Config) { c.RetryMax = time.Hour })
	if err := alice.Contacts().Trust(bob.ID(), false); err != nil {
		t.Fatal(err)
	}
	if _, err := connect(t, alice, bob); err != nil {
		t.Fatal(err)
	}
	g, err := alice.Groups().Create("team", []peer.ID{bob.ID()})
	if err != nil {
		t.Fatal(err)
	}
	bob.waitGroup(g.ID, "the group alice made", func(node.GroupInfo) bool { return true })
	m := bob.groupSend(g.ID, "to a maker not yet accepted")
	time.Sleep(300 * time.Millisecond) // the copy's worker looks, and waits for the user
	if d, err := bob.Groups().Delivery(m.ID); err != nil || d.Delivered() != 0 {
		t.Fatalf("before alice is accepted: %+v %v", d, err)
	}
	other, err := identity.OpenTrustStore(bob.home.TrustPath()) // as another process would
	if err != nil {
		t.Fatal(err)
	}
	if err := other.PinUnique(alice.ID(), "alice", identity.StateTOFU, time.Now()); err != nil {
		t.Fatal(err)
	}
	alice.waitGroupMessage(m.ID)
}
