// Edge cases of the removals in doubt (undone.go), each pinned by a test
// that a mutation of the rule's condition makes fail (found by mutation
// testing of undone.go, 2026-12-07): only removals, with a leave on them,
// one a target, in hash order.

package group_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/certchat/certchat/group"
)

// UndoneRemovals names removals only: a change of another kind that
// names a member, which a second leave of its author's undid in the same
// shape, is no removal in doubt (found by mutation testing of undone.go,
// 2026-12-07). ben, an admin, makes cat an admin and leaves; his key then
// signs a second leave on the version before the admin change, which
// stays in the log where ann renames on it, and takes no effect.
func TestUndoneRemovalsNamesNoOtherChange(t *testing.T) {
	// With ann's rename on it, ben's admin change stays in the log; without
	// it (nothing of another's builds on it), it is kept out, and
	// UndoneRemovals looks at removals only among the changes kept out too.
	for _, renamed := range []bool{true, false} {
		p := people(t, "ann", "ben", "cat")
		create, l := newGroup(t, p["ann"], p["ben"], p["cat"])
		adm := propose(t, l, p["ann"], group.OpAdmin, p["ben"], "")
		g := signAt(t, p["ben"], l.ID(), hashesOf(adm), group.OpAdmin, p["cat"], "", 1)
		left := signAt(t, p["ben"], l.ID(), hashesOf(g), group.OpLeave, person{}, "", 2)
		again := signAt(t, p["ben"], l.ID(), hashesOf(adm), group.OpLeave, person{}, "", 3)
		cs := []*group.Change{g, left, again}
		if renamed {
			cs = append(cs, signAt(t, p["ann"], l.ID(), hashesOf(g), group.OpRename, person{}, "ann's", 4))
		}
		for _, o := range permutations(cs) {
			order := append([]*group.Change{adm}, o...)
			m := deal(t, create, order)
			redeal(t, m, order)
			if renamed && (!m.Has(g.Hash()) || !errors.Is(m.Effect(g.Hash()), group.ErrBesideLeave)) {
				t.Fatalf("ben's admin change in the log %v, effect %v; want it in, beside his leave", m.Has(g.Hash()), m.Effect(g.Hash()))
			}
			if u := group.UndoneRemovals(m); len(u) != 0 {
				t.Fatalf("renamed %v: UndoneRemovals names %d changes, want none: %+v", renamed, len(u), u)
			}
		}
	}
}

// Only a leave of its author's on a removal kept out makes it a removal
// in doubt; another change of the author's on it does not (ancestries'
// leavesOn; found by mutation testing of undone.go, 2026-12-07). ben, an
// admin, leaves; his key then signs a removal of dan on the version
// before, and a rename on it: no removal is in doubt.
func TestUndoneRemovalsNeedALeaveOnTheRemoval(t *testing.T) {
	p := people(t, "ann", "ben", "cat", "dan")
	create, l := newGroup(t, p["ann"], p["ben"], p["cat"], p["dan"])
	adm := propose(t, l, p["ann"], group.OpAdmin, p["ben"], "")
	left := signAt(t, p["ben"], l.ID(), hashesOf(adm), group.OpLeave, person{}, "", 1)
	late := signAt(t, p["ben"], l.ID(), hashesOf(adm), group.OpRemove, p["dan"], "", 2)
	rn := signAt(t, p["ben"], l.ID(), hashesOf(late), group.OpRename, person{}, "ben's", 3)
	for _, o := range permutations([]*group.Change{left, late, rn}) {
		order := append([]*group.Change{adm}, o...)
		m := deal(t, create, order)
		redeal(t, m, order)
		if u := group.UndoneRemovals(m); len(u) != 0 || !m.IsMember(p["dan"].id) {
			t.Fatalf("UndoneRemovals names %d removals, want none: %+v; dan a member %v", len(u), u, m.IsMember(p["dan"].id))
		}
	}
}

// UndoneRemovals lists the removals in doubt in the order of their
// hashes, one a target, the first by hash (found by mutation testing of
// undone.go, 2026-12-07). ben, an admin, removes cat twice and dan, on
// one version, and leaves on all three; his key then signs a second
// leave on the version before them.
func TestUndoneRemovalsInHashOrderOneATarget(t *testing.T) {
	p := people(t, "ann", "ben", "cat", "dan")
	create, l := newGroup(t, p["ann"], p["ben"], p["cat"], p["dan"])
	adm := propose(t, l, p["ann"], group.OpAdmin, p["ben"], "")
	c1 := signAt(t, p["ben"], l.ID(), hashesOf(adm), group.OpRemove, p["cat"], "", 1)
	c2 := signAt(t, p["ben"], l.ID(), hashesOf(adm), group.OpRemove, p["cat"], "", 2)
	d := signAt(t, p["ben"], l.ID(), hashesOf(adm), group.OpRemove, p["dan"], "", 3)
	left := signAt(t, p["ben"], l.ID(), hashesOf(c1, c2, d), group.OpLeave, person{}, "", 4)
	again := signAt(t, p["ben"], l.ID(), hashesOf(adm), group.OpLeave, person{}, "", 5)
	cat := c1
	if h1, h2 := c1.Hash(), c2.Hash(); bytes.Compare(h2[:], h1[:]) < 0 {
		cat = c2
	}
	want := []group.Hash{cat.Hash(), d.Hash()}
	if h, hd := cat.Hash(), d.Hash(); bytes.Compare(hd[:], h[:]) < 0 {
		want = []group.Hash{d.Hash(), cat.Hash()}
	}
	for _, o := range permutations([]*group.Change{c1, c2, d, left, again}) {
		order := append([]*group.Change{adm}, o...)
		m := deal(t, create, order)
		redeal(t, m, order)
		u := group.UndoneRemovals(m)
		if len(u) != 2 || u[0].Removal != want[0] || u[1].Removal != want[1] {
			t.Fatalf("UndoneRemovals: %+v; want the removal of cat first by hash and dan's, by hash", u)
		}
	}
}
