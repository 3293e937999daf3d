package node

import (
	"testing"
	"time"

	"github.com/certchat/certchat/e2e/ratchet"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Confidentiality over time in groups (PROTOCOL §14.5): the properties
// come from the pairwise ratchets every copy rides.

// sealCopyFor seals a copy of the group message m for member p, as the
// sender's outbox would.
func sealCopyFor(t *testing.T, from *offNode, m store.GroupMessage, p peer.ID) []byte {
	t.Helper()
	c := m.AsMessage()
	c.Peer, c.Group = p, m.Group
	env, err := from.rk.sealText(c)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// A member added later holds no key that opens what was sent before it
// joined: its whole ratchet state (with the sender) opens no copy sealed
// for the members of then.
func TestGroupLaterMemberCannotReadBefore(t *testing.T) {
	alice := offNewNode(t, "alice", nil, true)
	bob := offNewNode(t, "bob", nil, true)
	dave := offNewNode(t, "dave", nil, true)
	offLink(t, alice, bob)
	offLink(t, alice, dave)
	id := offGroup(t, alice, bob)
	before, err := alice.Groups().Send(id, "before dave")
	if err != nil {
		t.Fatal(err)
	}
	bob.offWait("bob's copy", offIsMessage(before.ID))
	env := sealCopyFor(t, alice, before, bob.ID())

	if _, err := alice.Groups().Add(id, dave.ID()); err != nil {
		t.Fatal(err)
	}
	dave.offWait("being added", groupEv(id, func(g GroupInfo) bool { return g.Member }))
	if _, err := dave.rk.open(alice.ID(), env); err == nil {
		t.Fatal("a member added later opened a copy sealed before it joined")
	}
	if d, _ := alice.Groups().Delivery(before.ID); len(d.Members) != 1 || d.Members[0].Peer != bob.ID() {
		t.Fatalf("the message from before was queued for %+v", d.Members)
	}
	if got := groupBodiesOf(t, dave, id); len(got) != 0 {
		t.Fatalf("dave's store holds %q from before he joined", got)
	}
}

// A member's ratchet state stolen at one moment (what a thief of its
// disk holds: the session set with the sender and its local keys) opens
// the group's copies until the next round trip of messages, and none
// after it: the pairwise Double Ratchet's DH step heals the compromise.
func TestGroupCompromiseHeals(t *testing.T) {
	alice := offNewNode(t, "alice", nil, true)
	bob := offNewNode(t, "bob", nil, true)
	carol := offNewNode(t, "carol", nil, true)
	offLink(t, alice, bob)
	offLink(t, alice, carol)
	offLink(t, bob, carol)
	id := offGroup(t, alice, bob, carol)

	// The theft: bob's stored state with alice, and his local keys.
	data, err := bob.store.Ratchets().SessionSet(alice.ID())
	if err != nil {
		t.Fatal(err)
	}
	stolen, err := ratchet.UnmarshalSessionSet(data)
	if err != nil {
		t.Fatal(err)
	}
	bob.rk.mu.Lock()
	stolenLocal := bob.rk.local
	bob.rk.mu.Unlock()

	// Before any round trip, the thief reads alice's next copy for bob.
	m1, err := alice.Groups().Send(id, "still readable by the thief")
	if err != nil {
		t.Fatal(err)
	}
	bob.offWait("m1", offIsMessage(m1.ID))
	if _, err := stolen.Open(stolenLocal, sealCopyFor(t, alice, m1, bob.ID()), time.Now()); err != nil {
		t.Fatalf("the stolen state does not open a copy sealed before the round trip (the test would prove nothing): %v", err)
	}

	// Round trips in the group: bob writes, alice writes again. The thief
	// holds bob's current ratchet key, so the first answer still rides a
	// key it has; the DH step bob makes on alice's reply does not.
	readable := true
	for round := 1; round <= 3; round++ {
		mb, err := bob.Groups().Send(id, "bob answers")
		if err != nil {
			t.Fatal(err)
		}
		alice.offWait("bob's answer", offIsMessage(mb.ID))
		m, err := alice.Groups().Send(id, "after a round trip")
		if err != nil {
			t.Fatal(err)
		}
		bob.offWait("alice's reply", offIsMessage(m.ID))
		_, err = stolen.Open(stolenLocal, sealCopyFor(t, alice, m, bob.ID()), time.Now())
		t.Logf("round trip %d: the stolen state opens alice's next copy: %v", round, err == nil)
		if err == nil && !readable {
			t.Fatalf("round trip %d: the stolen state opened a copy again after it had healed", round)
		}
		readable = err == nil
		if round == 2 && readable {
			t.Fatal("the stolen state still opens copies after two round trips: no healing")
		}
	}
}
