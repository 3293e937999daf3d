// Edge cases of lapsed removals and later memberships (lapsed.go), each
// pinned by a test that a mutation of the rule's condition makes fail
// (found by mutation testing of lapsed.go, 2026-12-07).

package group_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/certchat/certchat/group"
)

// Only removals by the creator lapse (lapsedRemovals): a change of
// another kind set aside is no lapse when the creator leaves, and the
// leave costs no second look at the changes set aside (found by
// mutation testing of lapsed.go, 2026-12-07). ann, the creator, makes
// ben an admin and removes him; ben's renames on the version before his
// removal are set aside as they come. ann's leave then lapses nothing:
// no change set aside is added again (liftAside), which cost a fold each.
func TestCreatorsLeaveLapsesNoOtherChangeSetAside(t *testing.T) {
	p := people(t, "ann", "ben", "cat")
	create, l := newGroup(t, p["ann"], p["ben"], p["cat"])
	adm := propose(t, l, p["ann"], group.OpAdmin, p["ben"], "")
	rm := propose(t, l, p["ann"], group.OpRemove, p["ben"], "")
	al := propose(t, l, p["ann"], group.OpLeave, person{}, "")
	m := deal(t, create, []*group.Change{adm, rm})
	for i := range 40 {
		rn := signAt(t, p["ben"], l.ID(), hashesOf(adm), group.OpRename, person{}, fmt.Sprint("ben ", i), 10+i)
		if err := m.Add(reparse(t, rn)); err == nil || m.Has(rn.Hash()) {
			t.Fatalf("ben's rename beside his removal: %v, in the log %v", err, m.Has(rn.Hash()))
		}
	}
	before := m.FoldsForTest()
	if err := m.Add(reparse(t, al)); err != nil {
		t.Fatal(err)
	}
	if n := m.FoldsForTest() - before; n > 2 {
		t.Errorf("ann's leave, with 40 renames set aside, cost %d folds, want at most 2: it lapses none of them", n)
	}
	if m.IsMember(p["ben"].id) || m.IsMember(p["ann"].id) || len(m.Changes()) != 4 {
		t.Errorf("ben a member %v, ann %v, %d changes in the log; want neither, 4", m.IsMember(p["ben"].id), m.IsMember(p["ann"].id), len(m.Changes()))
	}
}

// A removal by the creator set aside as poisoned counts nowhere: it keeps
// none of its target's changes out (ousts, uncounted; found by mutation
// testing of lapsed.go, 2026-12-07), as a poisoned leave ends nobody
// (TestPoisonedLeaveCountsOnceItsAncestryIsKnown). ann makes cat an admin
// and removes her; cat signs MaxVouched+1 renames on the version from
// before; ann's key signs a removal of dan on their tip, which is set
// aside poisoned. ann renames the group, and dan leaves on the rename,
// beside that removal: his leave is in the log and he has left, in every
// order dealt.
func TestPoisonedCreatorRemovalOustsNobody(t *testing.T) {
	v := newVouchedChain(t, group.MaxVouched+1)
	l := replay(t, v.create, v.admin, v.removal)
	rd, err := group.SignForTest(v.p["ann"].key, l.ID(), hashesOf(v.chain[len(v.chain)-1]), group.OpRemove, v.p["dan"].id, "", t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	rn := propose(t, l, v.p["ann"], group.OpRename, person{}, "ann's")
	dl := propose(t, l, v.p["dan"], group.OpLeave, person{}, "")
	main := []*group.Change{v.admin, v.removal, rn, dl}
	beside := append(slices.Clone(v.chain), rd)
	for name, order := range map[string][]*group.Change{
		"main first":   append(slices.Clone(main), beside...),
		"beside first": append(append([]*group.Change{v.admin}, beside...), main[1:]...),
		"reversed":     reversed(append(slices.Clone(main), beside...)),
	} {
		m, missing := dealPasses(t, v.create, order, 4)
		if len(missing) > 0 || !m.Has(dl.Hash()) || m.IsMember(v.p["dan"].id) || m.Has(rd.Hash()) || m.Name() != "ann's" {
			t.Errorf("%s: %d missing; dan's leave in the log %v, dan a member %v, ann's removal of him in the log %v, name %q",
				name, len(missing), m.Has(dl.Hash()), m.IsMember(v.p["dan"].id), m.Has(rd.Hash()), m.Name())
		}
	}
}

// Only a removal of its own by the creator, one that has not lapsed,
// starts a later membership of a peer's in the log's rules (startsOf;
// found by mutation testing of lapsed.go, 2026-12-07). ann (the creator)
// makes dan an admin; dan leaves. dan's key then signs a rename beside
// his leave, on a removal by ann: of ben ("another's"), or of dan
// himself, signed beside ann's own leave, which it lapses ("lapsed";
// the rename builds on both). Neither starts a later membership of
// dan's: the rename is kept out of the log, in every order.
func TestOnlyAnOustingRemovalStartsALaterMembership(t *testing.T) {
	for _, which := range []string{"another's", "lapsed"} {
		t.Run(which, func(t *testing.T) {
			p := people(t, "ann", "ben", "cat", "dan")
			create, l := newGroup(t, p["ann"], p["ben"], p["cat"], p["dan"])
			adm := propose(t, l, p["ann"], group.OpAdmin, p["dan"], "")
			lv := signAt(t, p["dan"], l.ID(), hashesOf(adm), group.OpLeave, person{}, "", 1)
			cs := []*group.Change{lv}
			var rn *group.Change
			if which == "another's" {
				rm := signAt(t, p["ann"], l.ID(), hashesOf(adm), group.OpRemove, p["ben"], "", 2)
				rn = signAt(t, p["dan"], l.ID(), hashesOf(rm), group.OpRename, person{}, "dan's", 3)
				cs = append(cs, rm, rn)
			} else {
				al := signAt(t, p["ann"], l.ID(), hashesOf(adm), group.OpLeave, person{}, "", 2)
				rm := signAt(t, p["ann"], l.ID(), hashesOf(adm), group.OpRemove, p["dan"], "", 3)
				rn = signAt(t, p["dan"], l.ID(), hashesOf(al, rm), group.OpRename, person{}, "dan's", 4)
				cs = append(cs, al, rm, rn)
			}
			for _, o := range permutations(cs) {
				order := append([]*group.Change{adm}, o...)
				m := deal(t, create, order)
				redeal(t, m, order)
				if !m.Has(lv.Hash()) || m.Has(rn.Hash()) || m.IsMember(p["dan"].id) || m.Name() != "team" {
					t.Fatalf("dan's leave in the log %v, his rename beside it %v; dan a member %v, name %q; want the leave only, dan gone, %q",
						m.Has(lv.Hash()), m.Has(rn.Hash()), m.IsMember(p["dan"].id), m.Name(), "team")
				}
				if err := m.CheckCoherentForTest(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
