package node

import (
	"slices"
	"testing"

	"github.com/certchat/certchat/group"
	"github.com/libp2p/go-libp2p/core/peer"
)

// opsOf is what MembershipChanges lists for group id on n, as "op by
// author on peer" rows of names.
func opsOf(t *testing.T, n *offNode, id group.ID, names map[peer.ID]string) []string {
	t.Helper()
	cs, err := MembershipChanges(n.Groups(), id)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range cs {
		if c.Time.IsZero() {
			t.Errorf("%s by %s has no time", c.Op, names[c.Author])
		}
		row := c.Op.String() + " by " + names[c.Author]
		if c.Peer != "" {
			row += " of " + names[c.Peer]
		}
		if c.Undone {
			row += ", undone"
		}
		out = append(out, row)
	}
	return out
}

// TestGroupMembershipChangesUndone, on real nodes: bob, an admin, removes
// carol, and alice's node lists the removal among the changes that take
// effect. Bob leaves, then his key signs a second leave on his log from
// before the removal, which carol sends to alice (TestGroupUndoneRemovalTold):
// it crosses the removal, which takes no effect any more, and alice's
// node lists it as undone, by its time before bob's leave; one leave of
// bob's is listed.
func TestGroupMembershipChangesUndone(t *testing.T) {
	alice, bob, carol, id := adminTrio(t)
	names := map[peer.ID]string{alice.ID(): "alice", bob.ID(): "bob", carol.ID(): "carol"}
	undoRemoval(t, alice, bob, carol, id, func() {
		want := []string{"create by alice", "admin by alice of bob", "remove by bob of carol"}
		if got := opsOf(t, alice, id, names); !slices.Equal(got, want) {
			t.Fatalf("before: %q, want %q", got, want)
		}
	})
	alice.offWait("carol back", groupEv(id, func(g GroupInfo) bool { return slices.Contains(g.Members, carol.ID()) }))
	want := []string{"create by alice", "admin by alice of bob", "remove by bob of carol, undone", "leave by bob"}
	if got := opsOf(t, alice, id, names); !slices.Equal(got, want) {
		t.Fatalf("after the crossing leave: %q, want %q (the removal undone)", got, want)
	}
}

// TestGroupRemoveOfOneselfLeaves: a member that removes itself leaves,
// signed as a leave, which every version reads as the end it is (before
// 2026-12-07 a removal of oneself was an end only where it took effect:
// group.Change.Kind, TestSelfRemovalIsALeave): bob, an admin, and carol,
// no admin (refused before, "not an admin"), each remove themselves, and
// alice's log holds a leave of each.
func TestGroupRemoveOfOneselfLeaves(t *testing.T) {
	alice, bob, carol, id := adminTrio(t)
	for _, n := range []*offNode{bob, carol} {
		if _, err := n.Groups().Remove(id, n.ID()); err != nil {
			t.Fatalf("%s removes itself: %v", n.ID(), err)
		}
	}
	alice.offWait("bob and carol gone", groupEv(id, func(g GroupInfo) bool { return len(g.Members) == 1 }))
	leaves := 0
	for _, raw := range logChanges(alice, id) {
		c, err := group.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if c.Author == bob.ID() || c.Author == carol.ID() {
			if c.Op != group.OpLeave {
				t.Errorf("%s by %s, want a leave", c.Op, c.Author)
			}
			leaves++
		}
	}
	if leaves != 2 {
		t.Errorf("%d changes by bob and carol, want their two leaves", leaves)
	}
}
