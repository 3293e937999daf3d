// Edge cases of the fold's rules (fold.go), each pinned by a test that
// a mutation of the rule's condition makes fail (found by mutation
// testing of fold.go, 2026-12-06): which admin changes count for
// seniority, which of a peer's admin changes ranks it, how an admin by
// succession ranks, changes beside a creator's removal that fails, and
// why a crossing removal that does not stand says it failed.

package group_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/certchat/certchat/group"
)

// juniorCannotRemove checks that junior, an admin, may not remove
// senior (ErrJuniorAdmin) and that senior may remove junior, on l's
// current membership.
func juniorCannotRemove(t *testing.T, l *group.Log, senior, junior person) {
	t.Helper()
	if _, err := l.Propose(junior.key, group.OpRemove, senior.id, "", t0); !errors.Is(err, group.ErrJuniorAdmin) {
		t.Errorf("%s's removal of %s: %v, want ErrJuniorAdmin (%s is the senior admin)", junior.name, senior.name, err, senior.name)
	}
	if _, err := l.Propose(senior.key, group.OpRemove, junior.id, "", t0); err != nil {
		t.Errorf("%s's removal of %s: %v, want it allowed (%s is the senior admin)", senior.name, junior.name, err, senior.name)
	}
}

// TestLaterLeaveDoesNotVoidEarlierGrant: ben, an admin, makes cat an
// admin before ann makes dan one, and then leaves. Only a leave (or a
// removal) concurrent with an admin change voids it for seniority: ben's
// later leave builds on his grant, so cat stays dan's senior. Were it
// voided, any admin who leaves would make every admin it named junior
// to all admins named after them.
func TestLaterLeaveDoesNotVoidEarlierGrant(t *testing.T) {
	p := people(t, "ann", "ben", "cat", "dan", "eve")
	_, l := newGroup(t, p["ann"], p["ben"], p["cat"], p["dan"], p["eve"])
	propose(t, l, p["ann"], group.OpAdmin, p["ben"], "")
	propose(t, l, p["ben"], group.OpAdmin, p["cat"], "")
	propose(t, l, p["ann"], group.OpAdmin, p["dan"], "")
	propose(t, l, p["ben"], group.OpLeave, person{}, "")
	propose(t, l, p["ann"], group.OpAdmin, p["eve"], "") // an admin change: the log folds again
	juniorCannotRemove(t, l, p["cat"], p["dan"])
}

// TestGrantBesideOthersEndCounts: ann, the creator, makes cat an admin
// concurrently with someone else's end (her removal of eve, or eve's
// leave), then makes dan an admin on both. Only the removal or leave of
// the grant's own author voids a grant for seniority: cat, named at a
// lesser depth, stays dan's senior. Were any concurrent end to void it,
// anybody's leave crossing a grant would reorder the admins.
func TestGrantBesideOthersEndCounts(t *testing.T) {
	for _, end := range []string{"removal of eve", "eve's leave"} {
		t.Run(end, func(t *testing.T) {
			p := people(t, "ann", "cat", "dan", "eve")
			_, l := newGroup(t, p["ann"], p["cat"], p["dan"], p["eve"])
			base := l.Heads()
			x := signAt(t, p["ann"], l.ID(), base, group.OpRemove, p["eve"], "", 1)
			if end == "eve's leave" {
				x = signAt(t, p["eve"], l.ID(), base, group.OpLeave, person{}, "", 1)
			}
			gc := signAt(t, p["ann"], l.ID(), base, group.OpAdmin, p["cat"], "", 2)
			for _, c := range []*group.Change{x, gc} {
				if err := l.Add(c); err != nil {
					t.Fatalf("add %s: %v", c.Op, err)
				}
			}
			propose(t, l, p["ann"], group.OpAdmin, p["dan"], "")
			if l.IsMember(p["eve"].id) {
				t.Fatalf("setup: eve is still a member after %s", end)
			}
			juniorCannotRemove(t, l, p["cat"], p["dan"])
		})
	}
}

// TestReaddedAdminKeepsEarliestRank: cat is made an admin before dan,
// leaves, is added back and made an admin again. A peer ranks by the
// earliest admin change naming it that counts, not the latest: cat stays
// dan's senior. (Ranking by the latest would let every re-grant reorder
// the admins.)
func TestReaddedAdminKeepsEarliestRank(t *testing.T) {
	p := people(t, "ann", "cat", "dan")
	_, l := newGroup(t, p["ann"], p["cat"], p["dan"])
	propose(t, l, p["ann"], group.OpAdmin, p["cat"], "")
	propose(t, l, p["ann"], group.OpAdmin, p["dan"], "")
	propose(t, l, p["cat"], group.OpLeave, person{}, "")
	propose(t, l, p["ann"], group.OpAdd, p["cat"], "")
	propose(t, l, p["ann"], group.OpAdmin, p["cat"], "")
	juniorCannotRemove(t, l, p["cat"], p["dan"])
}

// TestRankIsEarliestGrantWhateverTheOrder: ann makes cat an admin twice,
// concurrently: on the create (depth 2), and on a branch where she makes
// dan an admin first (cat's grant there at depth 4). A peer ranks by the
// earliest admin change naming it by depth, not by the first the log
// took: cat is dan's senior whichever grant of cat comes first. Ranking
// by arrival would make members who got the changes in different
// orders disagree on who may remove whom.
func TestRankIsEarliestGrantWhateverTheOrder(t *testing.T) {
	p := people(t, "ann", "cat", "dan")
	create, l := newGroup(t, p["ann"], p["cat"], p["dan"])
	base := l.Heads()
	rn := propose(t, l, p["ann"], group.OpRename, person{}, "one")
	gd := propose(t, l, p["ann"], group.OpAdmin, p["dan"], "")
	late := propose(t, l, p["ann"], group.OpAdmin, p["cat"], "")
	early := signAt(t, p["ann"], l.ID(), base, group.OpAdmin, p["cat"], "", 1)
	for _, order := range [][]*group.Change{{rn, gd, late, early}, {early, rn, gd, late}} {
		m := deal(t, create, order)
		if !m.Has(early.Hash()) || !m.Has(late.Hash()) {
			t.Fatalf("setup: early grant held %v, late grant held %v", m.Has(early.Hash()), m.Has(late.Hash()))
		}
		juniorCannotRemove(t, m, p["cat"], p["dan"])
	}
}

// TestSuccessorsGrantsGiveNoSeniority: ann, the creator and only admin,
// leaves; ben, the longest-standing member, is an admin by succession.
// His grants count for no seniority (he is neither the creator nor
// named by an admin change that counts), so the admins he makes rank by
// the order they became admins: cat, made an admin first, then again
// after leaving and being added back, is junior to dan. Were his grants
// to count, cat would rank by her first grant and outrank dan.
func TestSuccessorsGrantsGiveNoSeniority(t *testing.T) {
	p := people(t, "ann", "ben", "cat", "dan")
	_, l := newGroup(t, p["ann"], p["ben"], p["cat"], p["dan"])
	propose(t, l, p["ann"], group.OpLeave, person{}, "")
	if s := l.State(); len(s.Admins) != 1 || s.Admins[0] != p["ben"].id {
		t.Fatalf("setup: admins %v after ann's leave, want ben by succession", names(p, s.Admins))
	}
	propose(t, l, p["ben"], group.OpAdmin, p["cat"], "")
	propose(t, l, p["ben"], group.OpAdmin, p["dan"], "")
	propose(t, l, p["cat"], group.OpLeave, person{}, "")
	propose(t, l, p["ben"], group.OpAdd, p["cat"], "")
	propose(t, l, p["ben"], group.OpAdmin, p["cat"], "")
	juniorCannotRemove(t, l, p["dan"], p["cat"])
}

// TestSuccessorIsJuniorToNamedAdmins: ann, the creator and only admin,
// leaves; ben is an admin by succession, adds ann back and makes her an
// admin; ann makes cat one. An admin no counting admin change names
// (ben) is junior to the creator and to every admin one names (cat):
// ben may remove neither, and cat may remove ben.
func TestSuccessorIsJuniorToNamedAdmins(t *testing.T) {
	p := people(t, "ann", "ben", "cat")
	_, l := newGroup(t, p["ann"], p["ben"], p["cat"])
	propose(t, l, p["ann"], group.OpLeave, person{}, "")
	propose(t, l, p["ben"], group.OpAdd, p["ann"], "")
	propose(t, l, p["ben"], group.OpAdmin, p["ann"], "")
	propose(t, l, p["ann"], group.OpAdmin, p["cat"], "")
	juniorCannotRemove(t, l, p["ann"], p["ben"])
	juniorCannotRemove(t, l, p["cat"], p["ben"])
}

// TestChangeBesideFailedCreatorRemovalIsVoid: ann, the creator, removes
// ben (an admin) twice: once on a version before ben's add of dan
// (rm2), once on that add (rm1). Only one removal of ben can take
// effect; the hashes are chosen so that the fold meets rm1 first, and
// rm2, meeting ben gone, fails and does not stand. ben's add, signed
// beside rm2, is void all the same: a change beside its author's removal
// by the creator takes no effect whether that removal stands or not (the
// log may keep such a change out, and the fold must agree with it).
func TestChangeBesideFailedCreatorRemovalIsVoid(t *testing.T) {
	p := people(t, "ann", "ben", "cat", "dan")
	create, l := newGroup(t, p["ann"], p["ben"], p["cat"])
	g := propose(t, l, p["ann"], group.OpAdmin, p["ben"], "")
	add := signAt(t, p["ben"], l.ID(), hashesOf(g), group.OpAdd, p["dan"], "", 1)
	rm1 := signAt(t, p["ann"], l.ID(), hashesOf(add), group.OpRemove, p["ben"], "", 2)
	var rm2 *group.Change
	for i := 3; rm2 == nil || !hashBefore(add, rm2) || !hashBefore(rm1, rm2); i++ {
		rm2 = signAt(t, p["ann"], l.ID(), hashesOf(g), group.OpRemove, p["ben"], "", i)
	}
	cs := []*group.Change{g, add, rm1, rm2}
	for _, order := range [][]*group.Change{cs, {g, rm2, add, rm1}} {
		m := deal(t, create, order)
		redeal(t, m, cs)
		if !m.Has(rm1.Hash()) || !m.Has(rm2.Hash()) {
			t.Fatalf("setup: rm1 held %v, rm2 held %v", m.Has(rm1.Hash()), m.Has(rm2.Hash()))
		}
		if m.IsMember(p["dan"].id) || m.IsMember(p["ben"].id) {
			t.Errorf("dan a member %v, ben a member %v: want neither (ben's add of dan is beside his removal by the creator)", m.IsMember(p["dan"].id), m.IsMember(p["ben"].id))
		}
		if m.Has(add.Hash()) {
			if err := m.Effect(add.Hash()); !errors.Is(err, group.ErrNotMember) {
				t.Errorf("effect of ben's add: %v, want ErrNotMember", err)
			}
		}
		if err := m.CheckFoldForTest(); err != nil {
			t.Error(err)
		}
	}
}

// hashBefore says whether a's hash sorts before b's: the fold meets
// changes ready together in that order.
func hashBefore(a, b *group.Change) bool {
	h, k := a.Hash(), b.Hash()
	return bytes.Compare(h[:], k[:]) < 0
}

// TestRemovalByRemovedAdminSaysNoAdmin: ben removes cat while cat
// removes dan; ben is the senior, so his removal stands, and the fold
// (the hashes chosen so) meets it before cat's. Cat's removal is set
// aside without a run of its own, and says why: its author is no admin
// where the fold meets it (ErrNotAdmin), not that it crossed a removal.
func TestRemovalByRemovedAdminSaysNoAdmin(t *testing.T) {
	p := people(t, "ann", "ben", "cat", "dan")
	_, l := newGroup(t, p["ann"], p["ben"], p["cat"], p["dan"])
	propose(t, l, p["ann"], group.OpAdmin, p["ben"], "")
	propose(t, l, p["ann"], group.OpAdmin, p["cat"], "")
	base := l.Heads()
	rb := signAt(t, p["ben"], l.ID(), base, group.OpRemove, p["cat"], "", 1)
	var rc *group.Change
	for i := 2; rc == nil || !hashBefore(rb, rc); i++ {
		rc = signAt(t, p["cat"], l.ID(), base, group.OpRemove, p["dan"], "", i)
	}
	for _, c := range []*group.Change{rb, rc} {
		if err := l.Add(c); err != nil {
			t.Fatalf("add %s: %v", c.Op, err)
		}
	}
	if l.IsMember(p["cat"].id) || !l.IsMember(p["dan"].id) {
		t.Fatalf("cat a member %v, dan %v: want dan only", l.IsMember(p["cat"].id), l.IsMember(p["dan"].id))
	}
	if err := l.Effect(rc.Hash()); !errors.Is(err, group.ErrNotAdmin) {
		t.Errorf("effect of cat's removal of dan: %v, want ErrNotAdmin (cat is no admin where the fold meets it)", err)
	}
}

// TestCrossingRemovalSaysWhyItFailed: cat removes dan, both admins, cat
// the senior on her version; ann's grant of dan on the create, which
// cat's removal crosses, names dan earlier (the hashes chosen so), and
// makes dan cat's senior. Cat's removal is tried, fails, and says why:
// a junior admin's removal of a senior (ErrJuniorAdmin), not that it
// crossed a removal.
func TestCrossingRemovalSaysWhyItFailed(t *testing.T) {
	p := people(t, "ann", "cat", "dan")
	create, l := newGroup(t, p["ann"], p["cat"], p["dan"])
	gc := propose(t, l, p["ann"], group.OpAdmin, p["cat"], "")
	propose(t, l, p["ann"], group.OpAdmin, p["dan"], "")
	rc := propose(t, l, p["cat"], group.OpRemove, p["dan"], "")
	var gd *group.Change
	for i := 1; gd == nil || !hashBefore(gd, gc); i++ {
		gd = signAt(t, p["ann"], l.ID(), hashesOf(create), group.OpAdmin, p["dan"], "", i)
	}
	if err := l.Add(gd); !dealt(err) {
		t.Fatalf("add ann's early grant of dan: %v", err)
	}
	if !l.Has(rc.Hash()) || !l.Has(gd.Hash()) || !l.IsMember(p["dan"].id) {
		t.Fatalf("setup: cat's removal held %v, early grant held %v, dan a member %v", l.Has(rc.Hash()), l.Has(gd.Hash()), l.IsMember(p["dan"].id))
	}
	if err := l.Effect(rc.Hash()); !errors.Is(err, group.ErrJuniorAdmin) {
		t.Errorf("effect of cat's removal of dan: %v, want ErrJuniorAdmin (dan is the senior)", err)
	}
}

// TestConcurrentRenamesLastByHashWins: ann renames the group twice,
// concurrently. The fold meets changes ready together in the order of
// their hashes, the least first, so the rename with the greater hash is
// met last and names the group, in both orders the renames arrive. Every
// member must break such ties the same way.
func TestConcurrentRenamesLastByHashWins(t *testing.T) {
	p := people(t, "ann", "ben")
	create, l := newGroup(t, p["ann"], p["ben"])
	base := l.Heads()
	a := signAt(t, p["ann"], l.ID(), base, group.OpRename, person{}, "one", 1)
	b := signAt(t, p["ann"], l.ID(), base, group.OpRename, person{}, "two", 2)
	want := b.Name
	if hashBefore(b, a) {
		want = a.Name
	}
	for _, order := range [][]*group.Change{{a, b}, {b, a}} {
		if got := deal(t, create, order).Name(); got != want {
			t.Errorf("name %q, want %q (the rename with the greater hash, met last)", got, want)
		}
	}
}

// TestGranteeCannotOutrankItsGranter: ann, the creator and only admin,
// leaves; ben is an admin by succession and makes cat an admin. Rule 5
// ranks the two by the order they became admins: cat may not remove
// ben. On one version ben removes cat and cat removes dan (as cat would
// sign after the fact, on the version before ben's removal, to keep
// her place). Whichever of their peer IDs sorts first, and in both
// orders of arrival, ben's removal stands: cat is out, her removal of
// dan is void, dan stays. Before (found 2026-12-06 by mutation testing
// of fold.go), the fold decided the crossing removals of admins no
// counting change names by peer ID: when cat's sorted first, her
// removal was decided first and ben's was set aside as one that "would
// undo a removal by a senior admin", and cat stayed (in 8 of 12 key
// draws).
func TestGranteeCannotOutrankItsGranter(t *testing.T) {
	seen := map[bool]bool{} // by whether cat's peer ID sorts before ben's
	for draw := 0; draw < 64 && len(seen) < 2; draw++ {
		p := people(t, "ann", "ben", "cat", "dan")
		catFirst := p["cat"].id < p["ben"].id
		if seen[catFirst] {
			continue
		}
		seen[catFirst] = true
		for _, catsFirst := range []bool{false, true} {
			_, l := newGroup(t, p["ann"], p["ben"], p["cat"], p["dan"])
			propose(t, l, p["ann"], group.OpLeave, person{}, "")
			propose(t, l, p["ben"], group.OpAdmin, p["cat"], "")
			if _, err := l.Propose(p["cat"].key, group.OpRemove, p["ben"].id, "", t0); !errors.Is(err, group.ErrJuniorAdmin) {
				t.Fatalf("cat's removal of ben, her senior: %v", err)
			}
			base := l.Heads()
			byBen := signAt(t, p["ben"], l.ID(), base, group.OpRemove, p["cat"], "", 1)
			byCat := signAt(t, p["cat"], l.ID(), base, group.OpRemove, p["dan"], "", 2)
			order := []*group.Change{byBen, byCat}
			if catsFirst {
				order = []*group.Change{byCat, byBen}
			}
			for _, c := range order {
				if err := l.Add(c); err != nil {
					t.Fatal(err)
				}
			}
			if l.IsMember(p["cat"].id) || !l.IsMember(p["dan"].id) || l.Effect(byBen.Hash()) != nil || l.Effect(byCat.Hash()) == nil {
				t.Errorf("cat's peer ID first %v, cat's removal dealt first %v: cat member %v, dan member %v; ben's removal: %v; cat's: %v",
					catFirst, catsFirst, l.IsMember(p["cat"].id), l.IsMember(p["dan"].id), l.Effect(byBen.Hash()), l.Effect(byCat.Hash()))
			}
		}
	}
	if len(seen) < 2 {
		t.Fatal("64 key draws never put both peer-ID orders")
	}
}
