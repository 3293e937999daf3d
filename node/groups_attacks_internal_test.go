package node

import (
	"slices"
	"testing"
	"time"

	"github.com/certchat/certchat/group"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestGroupRemovedAdminCounterRemoval, on real nodes: alice (the
// creator) removes bob, an admin she made. Bob's modified client then
// signs a removal of alice built on his log from before his removal, as
// if it had crossed hers in flight, and sends it to the members. Carol
// and alice take it (it was valid where it was built) but bob stays out
// and alice stays in: a counter-removal after the fact does not undo a
// removal by a senior admin (group.TestRemovedAdminCannotUndoRemovalByCounterRemoval).
func TestGroupRemovedAdminCounterRemoval(t *testing.T) {
	alice, bob, carol, id := offTrio(t)
	offLink(t, bob, carol)
	if _, err := alice.Groups().Admin(id, bob.ID()); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*offNode{bob, carol} {
		n.offWait("bob an admin", groupEv(id, func(g GroupInfo) bool { return len(g.Admins) == 2 }))
	}
	bob.groups.mu.Lock()
	old := bob.groups.logs[id].Changes()
	bob.groups.mu.Unlock()
	if _, err := alice.Groups().Remove(id, bob.ID()); err != nil {
		t.Fatal(err)
	}
	bob.offWait("his removal", groupEv(id, func(g GroupInfo) bool { return !g.Member }))
	carol.offWait("bob's removal", groupEv(id, func(g GroupInfo) bool { return len(g.Members) == 2 }))

	before, err := group.Restore(old)
	if err != nil {
		t.Fatal(err)
	}
	counter, err := before.Propose(bob.id.Signer(), group.OpRemove, alice.ID(), "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	bob.groups.mu.Lock()
	changes := append(bob.groups.logs[id].Changes(), counter.Bytes())
	bob.groups.mu.Unlock()
	if err := bob.groups.distribute(id, changes, []peer.ID{alice.ID(), carol.ID()}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*offNode{alice, carol} {
		deadline := time.Now().Add(15 * time.Second)
		for {
			n.groups.mu.Lock()
			has := n.groups.logs[id].Has(counter.Hash())
			n.groups.mu.Unlock()
			if has {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never took bob's counter-removal", n.ID())
			}
			time.Sleep(10 * time.Millisecond)
		}
		g, _ := n.Groups().Get(id)
		if want := []peer.ID{alice.ID(), carol.ID()}; !slices.Equal(g.Members, want) || !slices.Equal(g.Admins, []peer.ID{alice.ID()}) {
			t.Errorf("%s: members %v admins %v: bob's counter-removal undid his removal", n.ID(), g.Members, g.Admins)
		}
	}
}
