// Edge cases of the rules on who stands (stooges.go), each pinned by a
// test that a mutation of the rule's condition makes fail (found by
// mutation testing, 2026-12-06): re-added members, stooges' adds, admin
// changes by admins only by a grant that does not stand.

package group_test

import (
	"slices"
	"testing"

	"github.com/certchat/certchat/group"
)

// TestReaddedMemberAddsStand: a member who left and was added back (and
// made an admin) builds on its own leave; that leave is no end beside its
// later changes, so its add of a newcomer stands, the newcomer is a
// member, and the newcomer's own leave is taken into the log in every
// order the changes arrive.
func TestReaddedMemberAddsStand(t *testing.T) {
	p := people(t, "ann", "ben", "cat")
	create, l := newGroup(t, p["ann"], p["ben"])
	leave := propose(t, l, p["ben"], group.OpLeave, person{}, "")
	back := propose(t, l, p["ann"], group.OpAdd, p["ben"], "")
	admin := propose(t, l, p["ann"], group.OpAdmin, p["ben"], "")
	addCat := propose(t, l, p["ben"], group.OpAdd, p["cat"], "")
	catLeave := propose(t, l, p["cat"], group.OpLeave, person{}, "")
	cs := []*group.Change{leave, back, admin, addCat, catLeave}
	for _, o := range [][]*group.Change{cs, reversed(cs)} {
		m := deal(t, create, o)
		redeal(t, m, o)
		if err := m.CheckFoldForTest(); err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if !m.Has(c.Hash()) {
				t.Fatalf("%s kept out of the log", c.Op)
			}
		}
	}
}

// removedAdminSetup: ann creates the group with ben, cat and dan, makes cat
// an admin, then removes cat; it returns the create, those two changes,
// the heads from before the removal (where cat's late changes are signed)
// and the group's state after the removal.
func removedAdminSetup(t *testing.T, p map[string]person) (*group.Change, []*group.Change, []group.Hash, group.ID, group.State) {
	t.Helper()
	create, l := newGroup(t, p["ann"], p["ben"], p["cat"], p["dan"])
	admin := propose(t, l, p["ann"], group.OpAdmin, p["cat"], "")
	base := l.Heads()
	removal := propose(t, l, p["ann"], group.OpRemove, p["cat"], "")
	return create, []*group.Change{admin, removal}, base, l.ID(), l.State()
}

// dealBothOrders deals first and then late, in late's order and in the
// reverse, each to a fresh log that asks again for what it lacks
// (redeal), checks that each log is its fold, and returns the two logs.
func dealBothOrders(t *testing.T, create *group.Change, first, late []*group.Change) []*group.Log {
	t.Helper()
	var out []*group.Log
	for _, o := range [][]*group.Change{late, reversed(late)} {
		cs := append(slices.Clone(first), o...)
		m := deal(t, create, cs)
		redeal(t, m, cs)
		if err := m.CheckFoldForTest(); err != nil {
			t.Error(err)
		}
		out = append(out, m)
	}
	return out
}

// TestAdminChangeByVoidAdminVouchesForNothing: a removed admin makes a
// member (ben) an admin on a version from before its removal (that grant
// takes no effect); ben's removal of another member, or ben's grant of
// admin to another member, signed on the grant, is an admin's change by
// an admin only by a grant that does not stand, so it vouches for
// nothing: neither the grant nor ben's change enters the log, and the
// membership is what the creator's removal left, in every order.
func TestAdminChangeByVoidAdminVouchesForNothing(t *testing.T) {
	for _, op := range []group.Op{group.OpRemove, group.OpAdmin} {
		p := people(t, "ann", "ben", "cat", "dan")
		create, first, base, id, want := removedAdminSetup(t, p)
		grant := signAt(t, p["cat"], id, base, group.OpAdmin, p["ben"], "", 1)
		bens := signAt(t, p["ben"], id, hashesOf(grant), op, p["dan"], "", 2)
		for _, m := range dealBothOrders(t, create, first, []*group.Change{grant, bens}) {
			if m.Has(grant.Hash()) || m.Has(bens.Hash()) {
				t.Errorf("%s: log holds the void grant %v, ben's change on it %v; want neither", op, m.Has(grant.Hash()), m.Has(bens.Hash()))
			}
			if got := m.State(); !slices.Equal(got.Members, want.Members) || !slices.Equal(got.Admins, want.Admins) {
				t.Errorf("%s: members %v admins %v, want %v %v", op, names(p, got.Members), names(p, got.Admins), names(p, want.Members), names(p, want.Admins))
			}
		}
	}
}

// TestLeaveOnVoidGrantTakesEffect: a member (ben) whom a removed admin
// made an admin by a grant that takes no effect can still leave: a leave
// is no admin's change, so ben's leave on that grant is no stooge's, it
// enters the log (bringing the grant with it) and ben is no longer a
// member, in every order.
func TestLeaveOnVoidGrantTakesEffect(t *testing.T) {
	p := people(t, "ann", "ben", "cat", "dan")
	create, first, base, id, _ := removedAdminSetup(t, p)
	grant := signAt(t, p["cat"], id, base, group.OpAdmin, p["ben"], "", 1)
	leave := signAt(t, p["ben"], id, append(hashesOf(grant), first[1].Hash()), group.OpLeave, person{}, "", 2)
	for _, m := range dealBothOrders(t, create, first, []*group.Change{grant, leave}) {
		if !m.Has(leave.Hash()) {
			t.Errorf("ben's leave kept out of the log")
		}
		if got := m.State(); slices.Contains(got.Members, p["ben"].id) {
			t.Errorf("ben is still a member: %v", names(p, got.Members))
		}
	}
}

// TestStoogeAddNamesNobody: a removed admin adds a stooge (kay) on a
// version from before its removal; the creator, building on that add (not
// on the removal), makes kay an admin (a grant that stands); kay adds jim,
// and a member (ben) builds on kay's add, which brings it into the log.
// kay is named
// by no change that stands, so kay's add of jim names nobody either,
// though kay is an admin by a grant that stands: jim is a stooge too, and
// jim's change on top is kept out of the log.
func TestStoogeAddNamesNobody(t *testing.T) {
	p := people(t, "ann", "ben", "cat", "dan", "kay", "jim")
	create, first, base, id, _ := removedAdminSetup(t, p)
	addKay := signAt(t, p["cat"], id, base, group.OpAdd, p["kay"], "", 1)
	kayAdmin := signAt(t, p["ann"], id, hashesOf(addKay), group.OpAdmin, p["kay"], "", 2)
	addJim := signAt(t, p["kay"], id, hashesOf(kayAdmin), group.OpAdd, p["jim"], "", 2)
	onIt := signAt(t, p["ben"], id, hashesOf(addJim), group.OpLeave, person{}, "", 3)
	jims := signAt(t, p["jim"], id, hashesOf(onIt), group.OpLeave, person{}, "", 4)
	cs := append(slices.Clone(first), addKay, kayAdmin, addJim, onIt, jims)
	m := deal(t, create, cs)
	redeal(t, m, cs)
	if m.Has(jims.Hash()) {
		t.Errorf("jim's leave, by a stooge's stooge, is in the log")
	}
	if err := m.CheckFoldForTest(); err != nil {
		t.Error(err)
	}
}

// TestStandingGrantOutweighsVoidGrant: ben is made an admin twice, by a
// removed admin on a version from before its removal (a grant that takes
// no effect) and by the creator after the removal (a grant that stands);
// ben's removal of dan, signed on both, is an admin's change its author
// may make: it enters the log and dan is no longer a member, in every
// order.
func TestStandingGrantOutweighsVoidGrant(t *testing.T) {
	p := people(t, "ann", "ben", "cat", "dan")
	create, first, base, id, _ := removedAdminSetup(t, p)
	void := signAt(t, p["cat"], id, base, group.OpAdmin, p["ben"], "", 1)
	grant := signAt(t, p["ann"], id, hashesOf(first[1]), group.OpAdmin, p["ben"], "", 2)
	rm := signAt(t, p["ben"], id, hashesOf(void, grant), group.OpRemove, p["dan"], "", 3)
	for _, m := range dealBothOrders(t, create, first, []*group.Change{void, grant, rm}) {
		if !m.Has(rm.Hash()) {
			t.Errorf("ben's removal of dan kept out of the log")
		}
		if got := m.State(); slices.Contains(got.Members, p["dan"].id) {
			t.Errorf("dan is still a member: %v", names(p, got.Members))
		}
	}
}
