package group_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/certchat/certchat/group"
	"github.com/libp2p/go-libp2p/core/peer"
)

// canAct checks that the log lets who do what the fold says they may:
// each member leaves on the log's heads, and each admin renames there,
// on a copy of the log built from the same changes in order (a leave
// taken by m itself would end the next check).
func canAct(t *testing.T, create *group.Change, order []*group.Change, ps map[string]person) {
	t.Helper()
	s := deal(t, create, order).State()
	for n, who := range ps {
		if s.IsMember(who.id) {
			m := deal(t, create, order)
			lv := signAt(t, who, m.ID(), m.Heads(), group.OpLeave, person{}, "", 50)
			if err := m.Add(reparse(t, lv)); err != nil || m.IsMember(who.id) {
				t.Errorf("%s, a member, leaves on the heads: %v; still a member: %v", n, err, m.IsMember(who.id))
			}
		}
		if s.IsAdmin(who.id) {
			m := deal(t, create, order)
			rn, err := m.Propose(who.key, group.OpRename, "", n+" renamed", t0)
			if err != nil {
				t.Errorf("%s, an admin, cannot propose a rename: %v", n, err)
				continue
			}
			if err := m.Add(rn); err != nil || m.Name() != n+" renamed" {
				t.Errorf("Propose let %s, an admin, rename, but Add: %v; name %q", n, err, m.Name())
			}
		}
	}
}

// A removal by the creator signed beside the creator's own leave lapses:
// it ends nobody. ann (the creator) makes cat an admin; cat adds dan and
// renames the group; ann leaves on the add. ann's key then signs a
// removal of cat on the version before the add. Before (found
// 2026-12-06 by mutation testing), the removal, set aside, still counted:
// dan was a member the log called a stooge, who could never leave;
// cat's rename was kept out where the removal came before ann's leave;
// and every later change of cat's was kept out while the fold kept her
// the only admin (the group frozen). With ben's change on the removal
// (a member in league, or one who took it first), the removal stays in
// the log, and it voided cat's changes beside it in the fold. The same
// with ann's removal of herself for her leave (found 2026-12-07 by the
// converge sweep, seed 9562: it was no end here, TestSelfRemovalIsALeave).
func TestLapsedRemovalEndsNobody(t *testing.T) {
	for _, c := range []struct {
		onTop, self bool // a change on the removal; ann removes herself, not leaves
	}{{false, false}, {true, false}, {false, true}, {true, true}} {
		onTop := c.onTop
		t.Run(fmt.Sprintf("built on %v, self-removal %v", onTop, c.self), func(t *testing.T) {
			p := people(t, "ann", "ben", "cat", "dan")
			create, l := newGroup(t, p["ann"], p["ben"], p["cat"])
			adm := propose(t, l, p["ann"], group.OpAdmin, p["cat"], "")
			add := signAt(t, p["cat"], l.ID(), hashesOf(adm), group.OpAdd, p["dan"], "", 1)
			rn := signAt(t, p["cat"], l.ID(), hashesOf(add), group.OpRename, person{}, "cat's", 2)
			al := signAt(t, p["ann"], l.ID(), hashesOf(add), group.OpLeave, person{}, "", 3)
			if c.self { // found 2026-12-07 by the converge sweep, seed 9562
				al = signAt(t, p["ann"], l.ID(), hashesOf(add), group.OpRemove, p["ann"], "", 3)
			}
			rm := signAt(t, p["ann"], l.ID(), hashesOf(adm), group.OpRemove, p["cat"], "", 4)
			cs := []*group.Change{add, rn, al, rm}
			if onTop {
				cs = append(cs, signAt(t, p["ben"], l.ID(), hashesOf(rm), group.OpLeave, person{}, "", 5))
			}
			for _, o := range permutations(cs) {
				order := append([]*group.Change{adm}, o...)
				m := deal(t, create, order)
				redeal(t, m, order)
				s := m.State()
				if !s.IsMember(p["dan"].id) || !slices.Equal(s.Admins, []peer.ID{p["cat"].id}) || s.Name != "cat's" || !m.Has(rn.Hash()) {
					t.Fatalf("members %v, admins %v, name %q, cat's rename in the log %v; want dan in, cat the admin, %q",
						names(p, s.Members), names(p, s.Admins), s.Name, m.Has(rn.Hash()), "cat's")
				}
				if err := m.Effect(rm.Hash()); err == nil {
					t.Fatal("the removal took effect")
				}
				if err := m.CheckCoherentForTest(); err != nil {
					t.Fatal(err)
				}
			}
			canAct(t, create, append([]*group.Change{adm}, cs...), p)
		})
	}
}

// A member removed and added again is not held to a leave it signed in
// its first membership on a version from before its removal (kept out,
// beside the removal). Before (found 2026-12-06 by the converge sweep's
// check that every member can leave), that leave still counted: ben,
// back in the group, could never leave, and no change of his as an
// admin again was taken.
func TestMemberAddedAgainIsNotHeldToAnOldLeave(t *testing.T) {
	p := people(t, "ann", "ben", "cat")
	create, l := newGroup(t, p["ann"], p["ben"], p["cat"])
	before := l.Heads()
	rm := propose(t, l, p["ann"], group.OpRemove, p["ben"], "")
	again := propose(t, l, p["ann"], group.OpAdd, p["ben"], "")
	adm := propose(t, l, p["ann"], group.OpAdmin, p["ben"], "")
	old := signAt(t, p["ben"], l.ID(), before, group.OpLeave, person{}, "", 1)
	for _, o := range permutations([]*group.Change{rm, again, adm, old}) {
		m := deal(t, create, o)
		redeal(t, m, o)
		if !m.IsMember(p["ben"].id) || m.Has(old.Hash()) {
			t.Fatalf("ben a member %v, his old leave in the log %v; want a member, the leave kept out", m.IsMember(p["ben"].id), m.Has(old.Hash()))
		}
		if err := m.CheckCoherentForTest(); err != nil {
			t.Fatal(err)
		}
	}
	canAct(t, create, []*group.Change{rm, again, adm, old}, p)
}

// A removal that comes lapsed kept nothing out: it costs no second look
// at the changes set aside. ann, the creator, removes ben, then leaves;
// ben's renames on the version before his removal are set aside. ann's
// key then signs removals on old versions, each beside her leave: each
// would have had every change set aside added again.
func TestLapsedOnArrivalCostsNoLift(t *testing.T) {
	p := people(t, "ann", "ben", "cat", "dan")
	create, l := newGroup(t, p["ann"], p["ben"], p["cat"], p["dan"])
	adm := propose(t, l, p["ann"], group.OpAdmin, p["ben"], "")
	rm := propose(t, l, p["ann"], group.OpRemove, p["ben"], "")
	al := propose(t, l, p["ann"], group.OpLeave, person{}, "")
	m := deal(t, create, []*group.Change{adm, rm, al})
	prev := hashesOf(adm)
	for i := range 40 {
		rn := signAt(t, p["ben"], l.ID(), prev, group.OpRename, person{}, fmt.Sprint("ben ", i), 10+i)
		if err := m.Add(reparse(t, rn)); err == nil || m.Has(rn.Hash()) {
			t.Fatalf("ben's rename beside his removal: %v, in the log %v", err, m.Has(rn.Hash()))
		}
		prev = hashesOf(rn)
	}
	before := m.FoldsForTest()
	for i := range 20 {
		late := signAt(t, p["ann"], l.ID(), hashesOf(adm), group.OpRemove, []person{p["cat"], p["dan"]}[i%2], "", 100+i)
		if err := m.Add(reparse(t, late)); err == nil || m.Has(late.Hash()) {
			t.Fatalf("a removal beside ann's leave: %v, in the log %v", err, m.Has(late.Hash()))
		}
	}
	if n := m.FoldsForTest() - before; n > 20 {
		t.Errorf("20 removals that came lapsed cost %d folds, want at most one each", n)
	}
}
