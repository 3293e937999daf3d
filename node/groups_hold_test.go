package node_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// cut makes a and b unreachable to each other: no addresses, no
// connection (no relays in these tests, so no mailbox either).
func cut(a, b *testNode) {
	a.Host().Peerstore().ClearAddrs(b.ID())
	b.Host().Peerstore().ClearAddrs(a.ID())
	a.Host().Network().ClosePeer(b.ID())
	b.Host().Network().ClosePeer(a.ID())
}

// mend makes them reachable again.
func mend(a, b *testNode) {
	a.Host().Peerstore().AddAddrs(b.ID(), b.Host().Addrs(), time.Hour)
	b.Host().Peerstore().AddAddrs(a.ID(), a.Host().Addrs(), time.Hour)
}

// Members just added write before their adds reach another member: the
// messages are held (not shown, and not acknowledged: the senders keep
// bob's copies, so a crash of bob's loses nothing), and stored and
// acknowledged once the adds arrive, over real hosts whose changes are
// delayed.
func TestGroupHeldUntilAdd(t *testing.T) {
	alice := startNode(t, newHome(t, "alice"))
	bob := startNodeWith(t, newHome(t, "bob"), func(c *node.Config) { c.GroupHoldTTL = 20 * time.Second })
	dave := startNode(t, newHome(t, "dave"))
	erin := startNode(t, newHome(t, "erin"))
	trustEachOther(t, alice, bob, dave, erin)

	gi, err := alice.Groups().Create("team", []peer.ID{bob.ID()})
	if err != nil {
		t.Fatal(err)
	}
	id := gi.ID
	bob.waitGroup(id, "the new group", func(g node.GroupInfo) bool { return g.Member })

	// Alice's changes cannot reach bob for now; dave and erin are added.
	cut(alice, bob)
	if _, err := alice.Groups().Add(id, dave.ID()); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Groups().Add(id, erin.ID()); err != nil {
		t.Fatal(err)
	}
	dave.waitGroup(id, "being added", func(g node.GroupInfo) bool { return len(g.Members) == 4 })
	erin.waitGroup(id, "being added", func(g node.GroupInfo) bool { return len(g.Members) == 4 })

	// Each writes to the group: bob holds both (not shown, not
	// acknowledged: bob's copy stays in the sender's outbox).
	md := dave.groupSend(id, "hi, dave here")
	me := erin.groupSend(id, "hi, erin here")
	eventually(t, "bob holds both", func() bool { return bob.HeldForTest() == 2 })
	for _, s := range []struct {
		tn *testNode
		m  store.GroupMessage
	}{{dave, md}, {erin, me}} {
		eventually(t, "the others have it", func() bool {
			d, err := s.tn.Groups().Delivery(s.m.ID)
			return err == nil && d.Delivered() == len(d.Members)-1
		})
		time.Sleep(300 * time.Millisecond) // a receipt from bob would be here by now
		d, err := s.tn.Groups().Delivery(s.m.ID)
		if err != nil {
			t.Fatal(err)
		}
		if d.Delivered() != len(d.Members)-1 {
			t.Fatalf("%q: delivered to %d of %d while bob only holds it", s.m.Body, d.Delivered(), len(d.Members))
		}
	}
	if got := groupBodies(t, bob, id); len(got) != 0 {
		t.Fatalf("bob shows %q before the adds", got)
	}

	// Alice reaches bob again: the adds arrive, the messages are shown.
	mend(alice, bob)
	got := map[e2e.MessageID]store.Message{}
	bob.waitFor("both held messages", func(e node.Event) bool {
		if e.Kind == node.EventMessage {
			got[e.Message.ID] = *e.Message
		}
		return len(got) == 2
	})
	if d, e := got[md.ID], got[me.ID]; d.Peer != dave.ID() || d.Body != md.Body || e.Peer != erin.ID() || e.Group != store.GroupID(id) {
		t.Fatalf("bob got %+v", got)
	}
	if n := bob.HeldForTest(); n != 0 {
		t.Fatalf("%d still held", n)
	}
	dave.waitGroupDelivered(md) // acknowledged once stored
	erin.waitGroupDelivered(me)
	if got := groupBodies(t, bob, id); len(got) != 2 || !slices.Contains(got, "hi, dave here") || !slices.Contains(got, "hi, erin here") {
		t.Fatalf("bob's history: %q", got)
	}
}

// A message from a peer no change names waits for the hold time, then
// is dropped with the reason.
func TestGroupHoldExpires(t *testing.T) {
	alice := startNodeWith(t, newHome(t, "alice"), func(c *node.Config) { c.GroupHoldTTL = time.Second })
	bob := startNode(t, newHome(t, "bob"))
	mallory := startNode(t, newHome(t, "mallory"))
	trustEachOther(t, alice, bob, mallory)
	gi, err := alice.Groups().Create("team", []peer.ID{bob.ID()})
	if err != nil {
		t.Fatal(err)
	}
	mallory.waitDelivered(mallory.send(alice.ID(), "hi alice"))
	fake := store.Message{ID: e2e.NewMessageID(), Peer: alice.ID(), SentAt: time.Now(), Body: "I am in the team", Group: store.GroupID(gi.ID)}
	if err := mallory.WriteTextForTest(fake); err != nil {
		t.Fatal(err)
	}
	eventually(t, "alice holds it", func() bool { return alice.HeldForTest() == 1 })
	e := alice.waitFor("the stranger's message dropped", func(e node.Event) bool {
		return e.Kind == node.EventError && e.PeerID == mallory.ID()
	})
	if !strings.Contains(e.Err, "not a member") || !strings.Contains(e.Err, "within 1s") || !strings.Contains(e.Err, identity.ShortID(mallory.ID())) {
		t.Fatalf("reason: %s", e.Err)
	}
	if n := alice.HeldForTest(); n != 0 {
		t.Fatalf("%d still held", n)
	}
	if got := groupBodies(t, alice, gi.ID); len(got) != 0 {
		t.Fatalf("alice's history: %q", got)
	}
}
