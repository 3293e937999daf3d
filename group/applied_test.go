package group_test

import (
	"testing"

	"github.com/certchat/certchat/group"
	"github.com/certchat/certchat/identity"
)

// Applied lists the changes that take effect, each after its parents,
// the same whatever order a member got them in, and leaves out a change
// that a change crossing it undid: bob's add, signed crossing his
// removal by alice, his senior.
func TestApplied(t *testing.T) {
	ps := people(t, "alice", "bob", "carol", "dave")
	alice, bob := ps["alice"], ps["bob"]
	create, l := newGroup(t, alice, bob, ps["carol"])
	admin := propose(t, l, alice, group.OpAdmin, bob, "")
	bobs := replay(t, create, admin)
	kick := propose(t, l, alice, group.OpRemove, bob, "")
	rename := propose(t, l, alice, group.OpRename, person{}, "crew")
	add := propose(t, bobs, bob, group.OpAdd, ps["dave"], "")
	want := []*group.Change{create, admin, kick, rename}
	for _, order := range [][]*group.Change{{admin, kick, rename, add}, {admin, add, kick, rename}} {
		m := deal(t, create, order)
		got := group.Applied(m)
		if len(got) != len(want) {
			t.Fatalf("applied %d changes, want %d", len(got), len(want))
		}
		for i, c := range got {
			if c.Hash() != want[i].Hash() {
				t.Errorf("change %d: %s by %s, want %s", i, c.Op, identity.ShortID(c.Author), want[i].Op)
			}
		}
		if m.Effect(add.Hash()) == nil {
			t.Error("bob's add, crossing his removal, takes effect")
		}
	}
}
