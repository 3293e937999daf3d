package node_test

import (
	"fmt"
	"testing"

	"github.com/certchat/certchat/node"
)

// A group whose log is longer than a group-change frame (PROTOCOL §14.5,
// "A log longer than a frame"): a member added to it must get every
// change, not only the create and the newest 255, or no change after the
// create connects and the member never learns it was added.
func TestGroupLongLogNewMember(t *testing.T) {
	alice := startNode(t, newHome(t, "alice"))
	bob := startNode(t, newHome(t, "bob"))
	carol := startNode(t, newHome(t, "carol"))
	trustEachOther(t, alice, bob, carol)

	gi, err := alice.Groups().Create("long", nil)
	if err != nil {
		t.Fatal(err)
	}
	id := gi.ID
	// 300 renames by alice alone: a log of 301 changes, two frames' worth.
	const renames = 300
	for i := range renames {
		if _, err := alice.Groups().Rename(id, fmt.Sprintf("long %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	name := fmt.Sprintf("long %d", renames-1)

	// bob, added, learns the whole log: he is a member, under the newest
	// name, at the version alice holds.
	if _, err := alice.Groups().Add(id, bob.ID()); err != nil {
		t.Fatal(err)
	}
	want, _ := alice.Groups().Get(id)
	got := bob.waitGroup(id, "the long group", func(g node.GroupInfo) bool { return g.Member })
	if got.Name != name || got.Version != want.Version || len(got.Members) != 2 {
		t.Fatalf("bob sees %q v%d %d members, want %q v%d 2 members", got.Name, got.Version, len(got.Members), name, want.Version)
	}
	// He can talk in it, and alice hears him.
	m := bob.groupSend(id, "hello from bob")
	alice.waitGroupMessage(m.ID)

	// carol, added by alice while bob is a member: she gets the whole log
	// too, and bob the change that adds her.
	if _, err := alice.Groups().Add(id, carol.ID()); err != nil {
		t.Fatal(err)
	}
	for _, tn := range []*testNode{bob, carol} {
		tn.waitGroup(id, "carol added", func(g node.GroupInfo) bool { return g.Member && len(g.Members) == 3 })
	}
	m2 := carol.groupSend(id, "hello from carol")
	alice.waitGroupMessage(m2.ID)
	bob.waitGroupMessage(m2.ID)
	if d := carol.waitGroupDelivered(m2); d.Delivered() != 2 {
		t.Fatalf("carol's message delivered to %d of 2", d.Delivered())
	}
}
