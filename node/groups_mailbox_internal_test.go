package node

import (
	"slices"
	"testing"
	"time"

	"github.com/certchat/certchat/group"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// groupEv matches a group event about id that satisfies ok.
func groupEv(id group.ID, ok func(GroupInfo) bool) func(Event) bool {
	return func(e Event) bool { return e.Kind == EventGroup && e.Group.ID == id && ok(*e.Group) }
}

func groupBodiesOf(t *testing.T, on *offNode, id group.ID) []string {
	t.Helper()
	h, err := on.store.Groups().GroupHistory(store.GroupID(id), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range h {
		out = append(out, m.Body)
	}
	return out
}

// A member who is offline gets the group's messages through its relay
// mailbox when it comes back; the others get them live. The sender sees
// "queued" for the absent member's copy, then every member delivered.
// Then a removed member: its keys open no envelope sent to the others
// after its removal, and its store never receives those messages.
func TestGroupMailboxAndRemovedKeys(t *testing.T) {
	relayAddr, _ := offRelay(t)
	alice := offNewNode(t, "alice", []string{relayAddr}, true)
	carol := offNewNode(t, "carol", []string{relayAddr}, true)
	bobHome, bobID := offHome(t, "bob")
	bob := offNodeAt(t, bobHome, bobID, []string{relayAddr}, true)
	for _, n := range []*offNode{alice, bob, carol} {
		n.offRegistered()
	}
	offLink(t, alice, bob)
	offLink(t, alice, carol)
	offLink(t, bob, carol)

	id := offGroup(t, alice, bob, carol)

	bob.Close()
	m, err := alice.Groups().Send(id, "while bob is away")
	if err != nil {
		t.Fatal(err)
	}
	alice.offWait("bob's copy at the relay", func(e Event) bool {
		return e.Kind == EventStatus && e.Message.ID == m.ID && e.Message.Peer == bob.ID() && e.Message.Status == store.StatusQueued
	})
	carol.offWait("carol's copy, live", offIsMessage(m.ID))
	// Carol's receipt is recorded by alice a moment after carol stored it.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		d, err := alice.Groups().Delivery(m.ID)
		if err == nil && d.Delivered() == 1 && slices.Equal(d.Waiting(), []peer.ID{bob.ID()}) {
			break
		}
		if err != nil || d.Delivered() > 1 || time.Now().After(deadline) {
			t.Fatalf("delivered to 1 of 2, bob missing: %+v, %v", d, err)
		}
	}

	bob = offNodeAt(t, bobHome, bobID, []string{relayAddr}, true)
	bob.offWait("bob's copy from the mailbox", offIsMessage(m.ID))
	deadline := time.Now().Add(20 * time.Second)
	for {
		d, err := alice.Groups().Delivery(m.ID)
		if err == nil && d.Delivered() == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not delivered to both: %+v, %v", d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Carol is removed. The next message is sealed for bob alone: carol's
	// whole ratchet state (what a thief of her keys would hold) does not
	// open bob's copy, and her store never gets the message.
	if _, err := alice.Groups().Remove(id, carol.ID()); err != nil {
		t.Fatal(err)
	}
	carol.offWait("her removal", groupEv(id, func(g GroupInfo) bool { return !g.Member }))
	after, err := alice.Groups().Send(id, "after carol's removal")
	if err != nil {
		t.Fatal(err)
	}
	bob.offWait("bob's copy", offIsMessage(after.ID))
	copyForBob := after.AsMessage()
	copyForBob.Peer, copyForBob.Group = bob.ID(), after.Group
	env, err := alice.rk.sealText(copyForBob)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := carol.rk.open(alice.ID(), env); err == nil {
		t.Fatal("the removed member's keys opened a copy sealed for another member")
	}
	if got := groupBodiesOf(t, carol, id); slices.Contains(got, "after carol's removal") {
		t.Fatalf("carol's store holds a message sent after her removal: %q", got)
	}
	if d, _ := alice.Groups().Delivery(after.ID); len(d.Members) != 1 || d.Members[0].Peer != bob.ID() {
		t.Fatalf("a message after the removal was queued for %+v", d.Members)
	}
}

// Two admins change the group at the same time, each before the other's
// change arrived: every member ends with the same membership.
func TestGroupConcurrentAdmins(t *testing.T) {
	var nodes []*offNode
	for _, name := range []string{"alice", "bob", "carol", "dave", "erin"} {
		nodes = append(nodes, offNewNode(t, name, nil, true))
	}
	alice, bob, carol, dave, erin := nodes[0], nodes[1], nodes[2], nodes[3], nodes[4]
	for i, a := range nodes {
		for _, b := range nodes[i+1:] {
			offLink(t, a, b)
		}
	}
	gi, err := alice.Groups().Create("team", []peer.ID{bob.ID(), carol.ID()})
	if err != nil {
		t.Fatal(err)
	}
	id := gi.ID
	if _, err := alice.Groups().Admin(id, bob.ID()); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*offNode{bob, carol} {
		n.offWait("bob an admin", groupEv(id, func(g GroupInfo) bool { return len(g.Admins) == 2 }))
	}
	// Crossing in flight: each admin's change is made on the version both
	// hold now, while the other's is not delivered (the logs are the
	// same before both).
	ca, err := alice.groups.propose(id, group.OpAdd, dave.ID())
	if err != nil {
		t.Fatal(err)
	}
	cb, err := bob.groups.propose(id, group.OpAdd, erin.ID())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ca.Parents, cb.Parents) {
		t.Fatal("the two changes do not cross: one builds on the other")
	}
	alice.groups.commit(id, ca)
	bob.groups.commit(id, cb)
	want := func(g GroupInfo) bool {
		return len(g.Members) == 5 && g.Version == 4
	}
	for _, n := range nodes {
		n.offWait("both changes", groupEv(id, want))
	}
	var first GroupInfo
	for i, n := range nodes {
		g, ok := n.Groups().Get(id)
		if !ok {
			t.Fatalf("%s does not hold the group", n.ID())
		}
		if i == 0 {
			first = g
			continue
		}
		if !slices.Equal(g.Members, first.Members) || !slices.Equal(g.Admins, first.Admins) || g.Version != first.Version {
			t.Fatalf("%s: %+v; alice: %+v", n.ID(), g, first)
		}
	}
}

// offTrio is alice, who made a group of the three, and bob and carol,
// each linked to her (not to each other).
func offTrio(t *testing.T) (alice, bob, carol *offNode, id group.ID) {
	t.Helper()
	alice = offNewNode(t, "alice", nil, true)
	bob = offNewNode(t, "bob", nil, true)
	carol = offNewNode(t, "carol", nil, true)
	offLink(t, alice, bob)
	offLink(t, alice, carol)
	return alice, bob, carol, offGroup(t, alice, bob, carol)
}

// offGroup has admin create the group "team" with members and waits until
// each member holds it.
func offGroup(t *testing.T, admin *offNode, members ...*offNode) group.ID {
	t.Helper()
	return offNamedGroup(t, "team", admin, members...)
}

// offNamedGroup is offGroup with the group's name.
func offNamedGroup(t *testing.T, name string, admin *offNode, members ...*offNode) group.ID {
	t.Helper()
	ids := make([]peer.ID, len(members))
	for i, m := range members {
		ids[i] = m.ID()
	}
	gi, err := admin.Groups().Create(name, ids)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range members {
		m.offWait("the group", groupEv(gi.ID, func(g GroupInfo) bool { return g.Member }))
	}
	return gi.ID
}
