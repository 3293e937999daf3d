// Edge cases of the log's rules, each pinned by a test that a mutation
// of the rule's condition makes fail (found by mutation testing of
// log.go, 2026-12-06): which parents Missing names, TookEffect, Restore
// of old stored logs, leaves beside leaves, ends and re-adds, stale
// changes and strangers, and what Effect says.

package group_test

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/group"
	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p/core/peer"
)

// signAt signs a change by who, i seconds after t0, whatever Propose
// would say of it.
func signAt(t *testing.T, who person, id group.ID, parents []group.Hash, op group.Op, about person, name string, i int) *group.Change {
	t.Helper()
	c, err := group.SignForTest(who.key, id, parents, op, about.id, name, t0.Add(time.Duration(i)*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// hashesOf are the hashes of cs, as parents.
func hashesOf(cs ...*group.Change) []group.Hash {
	var out []group.Hash
	for _, c := range cs {
		out = append(out, c.Hash())
	}
	return out
}

// TestMissingNamesEachParentOnce: two held changes on one unseen change name it once.
func TestMissingNamesEachParentOnce(t *testing.T) {
	p := people(t, "ann", "ben")
	create, l := newGroup(t, p["ann"], p["ben"])
	c1 := propose(t, l, p["ann"], group.OpRename, person{}, "one")
	c2 := signAt(t, p["ben"], l.ID(), hashesOf(c1), group.OpLeave, person{}, "", 1)
	c3 := signAt(t, p["ann"], l.ID(), hashesOf(c1), group.OpRename, person{}, "two", 2)
	m, err := group.New(create)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*group.Change{c2, c3} {
		if err := m.Add(reparse(t, c)); !errors.Is(err, group.ErrMissingParents) {
			t.Fatalf("add %s: %v, want ErrMissingParents", c.Op, err)
		}
	}
	if got := m.Missing(); len(got) != 1 || got[0] != c1.Hash() {
		t.Fatalf("Missing() = %v, want just %v", got, c1.Hash())
	}
}

// TestTookEffect: TookEffect lists p's changes that take effect, and only
// those: ben's rename crossed by cat's removal of him is in the log
// without effect.
func TestTookEffect(t *testing.T) {
	p := people(t, "ann", "ben", "cat")
	_, l := newGroup(t, p["ann"], p["ben"], p["cat"])
	propose(t, l, p["ann"], group.OpAdmin, p["cat"], "") // cat is ben's senior
	propose(t, l, p["ann"], group.OpAdmin, p["ben"], "")
	heads := l.Heads()
	rm := signAt(t, p["cat"], l.ID(), heads, group.OpRemove, p["ben"], "", 1)
	rn := signAt(t, p["ben"], l.ID(), heads, group.OpRename, person{}, "ben's", 2)
	for _, c := range []*group.Change{rm, rn} {
		if err := l.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	if !l.Has(rn.Hash()) || l.Effect(rn.Hash()) == nil || l.Effect(rm.Hash()) != nil {
		t.Fatalf("setup: rename held %v, effect %v; removal effect %v", l.Has(rn.Hash()), l.Effect(rn.Hash()), l.Effect(rm.Hash()))
	}
	if got := l.TookEffect(by(p["ben"])); len(got) != 0 {
		t.Errorf("TookEffect(ben) has %d changes, want none", len(got))
	}
	if got := l.TookEffect(by(p["cat"])); len(got) != 1 || got[0].Hash() != rm.Hash() {
		t.Errorf("TookEffect(cat) = %d changes, want just the removal", len(got))
	}
}

// by matches the changes a signed.
func by(a person) func(*group.Change) bool {
	return func(c *group.Change) bool { return c.Author == a.id }
}

// TestRestorePoisonedChain: a stored log (from before changes beside a leave were
// dropped) holding a chain of more than MaxVouched renames beside their
// author's leave restores, without the chain.
func TestRestorePoisonedChain(t *testing.T) {
	p := people(t, "ann", "ben")
	create, l := newGroup(t, p["ann"], p["ben"])
	adm := propose(t, l, p["ann"], group.OpAdmin, p["ben"], "")
	leave := signAt(t, p["ben"], l.ID(), hashesOf(adm), group.OpLeave, person{}, "", 1)
	raws := [][]byte{create.Bytes(), adm.Bytes(), leave.Bytes()}
	last := adm
	var chain []*group.Change
	for i := range group.MaxVouched + 2 {
		last = signAt(t, p["ben"], l.ID(), hashesOf(last), group.OpRename, person{}, fmt.Sprint("ben's ", i), 10+i)
		chain = append(chain, last)
		raws = append(raws, last.Bytes())
	}
	r, err := group.Restore(raws)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if !r.Has(leave.Hash()) || slices.ContainsFunc(chain, func(c *group.Change) bool { return r.Has(c.Hash()) }) {
		t.Errorf("restored: leave held %v, some of the chain held", r.Has(leave.Hash()))
	}
}

// TestVouchedStaleReleasedAndRestored: a change refused as stale when it comes alone, vouched for
// by a change held on it (wanted), is taken; so is that change when it is
// released (its parent is old), and the log restores.
func TestVouchedStaleReleasedAndRestored(t *testing.T) {
	p := people(t, "ann", "cat")
	create, l := newGroup(t, p["ann"], p["cat"])
	old := signAt(t, p["ann"], l.ID(), hashesOf(create), group.OpRename, person{}, "old", 1)
	var cs []*group.Change
	for i := range group.StaleAfter + 4 {
		cs = append(cs, propose(t, l, p["ann"], group.OpRename, person{}, fmt.Sprint("new ", i)))
	}
	child := signAt(t, p["cat"], l.ID(), hashesOf(old), group.OpLeave, person{}, "", 2)
	m := deal(t, create, append(cs, child, old))
	if !m.Has(old.Hash()) || !m.Has(child.Hash()) {
		t.Fatalf("old rename held %v, cat's leave on it held %v; refused: %v", m.Has(old.Hash()), m.Has(child.Hash()), m.Refused())
	}
	r, err := group.Restore(m.Changes())
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if r.Revision() == 0 || !r.Has(child.Hash()) {
		t.Fatal("restored log lacks cat's leave")
	}
}

// TestLeaveAfterOwnRenameBesideEarlierLeave: cat, an admin, renames
// and leaves on the rename; a leave of hers on the version before the
// rename is earlier, and of the same membership (no leave of hers before
// either): the later leave is kept out.
func TestLeaveAfterOwnRenameBesideEarlierLeave(t *testing.T) {
	p := people(t, "ann", "cat")
	create, l := newGroup(t, p["ann"], p["cat"])
	adm := propose(t, l, p["ann"], group.OpAdmin, p["cat"], "")
	rn := signAt(t, p["cat"], l.ID(), hashesOf(adm), group.OpRename, person{}, "cat's", 1)
	late := signAt(t, p["cat"], l.ID(), hashesOf(rn), group.OpLeave, person{}, "", 2)
	early := signAt(t, p["cat"], l.ID(), hashesOf(adm), group.OpLeave, person{}, "", 3)
	for _, order := range [][]*group.Change{{adm, rn, late, early}, {adm, early, rn, late}, {adm, rn, early, late}} {
		m := deal(t, create, order)
		if !m.Has(early.Hash()) || m.Has(late.Hash()) || m.Has(rn.Hash()) {
			t.Errorf("early leave held %v, later leave held %v, rename held %v; want only the early", m.Has(early.Hash()), m.Has(late.Hash()), m.Has(rn.Hash()))
		}
	}
}

// TestLeaveAfterOthersLeaveBesideEarlierLeave: ben leaves; cat leaves
// on ben's leave, and on the version before it: the earlier of cat's
// leaves is kept, the later kept out (ben's leave is not cat's).
func TestLeaveAfterOthersLeaveBesideEarlierLeave(t *testing.T) {
	p := people(t, "ann", "ben", "cat")
	create, l := newGroup(t, p["ann"], p["ben"], p["cat"])
	base := l.Heads()
	bl := signAt(t, p["ben"], l.ID(), base, group.OpLeave, person{}, "", 1)
	late := signAt(t, p["cat"], l.ID(), hashesOf(bl), group.OpLeave, person{}, "", 2)
	early := signAt(t, p["cat"], l.ID(), base, group.OpLeave, person{}, "", 3)
	for _, order := range [][]*group.Change{{bl, late, early}, {early, bl, late}, {bl, early, late}} {
		m := deal(t, create, order)
		if !m.Has(early.Hash()) || m.Has(late.Hash()) || !m.Has(bl.Hash()) {
			t.Errorf("early leave held %v, later leave held %v, ben's %v; want the early and ben's", m.Has(early.Hash()), m.Has(late.Hash()), m.Has(bl.Hash()))
		}
	}
}

// TestChangeAfterOwnLeaveAndReadd: cat leaves, is added back and made an
// admin again, and renames; a concurrent rename by ann makes the log
// look at its heads (prune): cat's rename builds on her leave, and is
// not beside it.
func TestChangeAfterOwnLeaveAndReadd(t *testing.T) {
	p := people(t, "ann", "cat")
	create, l := newGroup(t, p["ann"], p["cat"])
	a1 := propose(t, l, p["ann"], group.OpAdmin, p["cat"], "")
	cl := propose(t, l, p["cat"], group.OpLeave, person{}, "")
	ra := propose(t, l, p["ann"], group.OpAdd, p["cat"], "")
	a2 := propose(t, l, p["ann"], group.OpAdmin, p["cat"], "")
	rn := signAt(t, p["cat"], l.ID(), hashesOf(a2), group.OpRename, person{}, "cat's", 1)
	x := signAt(t, p["ann"], l.ID(), hashesOf(a2), group.OpRename, person{}, "ann's", 2)
	m := deal(t, create, []*group.Change{a1, cl, ra, a2, rn, x})
	if !m.Has(rn.Hash()) || !m.Has(x.Hash()) {
		t.Errorf("cat's rename held %v, ann's %v; want both", m.Has(rn.Hash()), m.Has(x.Hash()))
	}
}

// TestLeaveAfterCreatorRemovalAndReadd: ann removes cat, adds her back, and cat
// leaves; ben leaves concurrently (prune): cat's leave builds on her
// removal, and is not beside it.
func TestLeaveAfterCreatorRemovalAndReadd(t *testing.T) {
	p := people(t, "ann", "ben", "cat")
	create, l := newGroup(t, p["ann"], p["ben"], p["cat"])
	rm := propose(t, l, p["ann"], group.OpRemove, p["cat"], "")
	ad := propose(t, l, p["ann"], group.OpAdd, p["cat"], "")
	cl := signAt(t, p["cat"], l.ID(), hashesOf(ad), group.OpLeave, person{}, "", 1)
	bl := signAt(t, p["ben"], l.ID(), hashesOf(ad), group.OpLeave, person{}, "", 2)
	m := deal(t, create, []*group.Change{rm, ad, cl, bl})
	if !m.Has(cl.Hash()) || m.IsMember(p["cat"].id) {
		t.Errorf("cat's leave held %v, cat a member %v", m.Has(cl.Hash()), m.IsMember(p["cat"].id))
	}
}

// TestChangeUnderADroppedCreatorRemoval: ben (an admin) renames;
// ann removes him on the rename, and leaves on the version before it:
// her removal, beside her own leave, goes; ben's rename, which it built
// on, stays.
func TestChangeUnderADroppedCreatorRemoval(t *testing.T) {
	p := people(t, "ann", "ben")
	create, l := newGroup(t, p["ann"], p["ben"])
	adm := propose(t, l, p["ann"], group.OpAdmin, p["ben"], "")
	c := signAt(t, p["ben"], l.ID(), hashesOf(adm), group.OpRename, person{}, "ben's", 1)
	r := signAt(t, p["ann"], l.ID(), hashesOf(c), group.OpRemove, p["ben"], "", 2)
	al := signAt(t, p["ann"], l.ID(), hashesOf(adm), group.OpLeave, person{}, "", 3)
	m := deal(t, create, []*group.Change{adm, c, r, al})
	if !m.Has(c.Hash()) || m.Has(r.Hash()) || !m.Has(al.Hash()) {
		t.Errorf("ben's rename held %v, ann's removal %v, ann's leave %v; want the rename and the leave", m.Has(c.Hash()), m.Has(r.Hash()), m.Has(al.Hash()))
	}
}

// TestStaleNotBroughtBackByStranger: a stale change refused first, then a
// change on it by a stranger: the stranger does not bring it back
// (TestStaleChangeNotVouchedByStranger has the stranger's first).
func TestStaleNotBroughtBackByStranger(t *testing.T) {
	s := newStaleCase(t)
	sybil := newPerson(t, "sybil")
	if err := s.l.Add(s.old); !errors.Is(err, group.ErrStale) {
		t.Fatal(err)
	}
	child := signAt(t, sybil, s.l.ID(), hashesOf(s.old), group.OpRename, person{}, "ours", 1)
	if err := s.l.Add(child); !errors.Is(err, group.ErrMissingParents) {
		t.Fatalf("the stranger's change: %v", err)
	}
	if s.l.Has(s.old.Hash()) {
		t.Error("a stranger's change brought back a stale one")
	}
}

// TestStaleNotBroughtBackThroughStranger: a stale change,
// then a stranger's change on it, then a member's on that: neither
// brings the stale one back (in the reverse order the stranger's does
// not vouch for it either: wanted).
func TestStaleNotBroughtBackThroughStranger(t *testing.T) {
	s := newStaleCase(t)
	sybil := newPerson(t, "sybil")
	child := signAt(t, sybil, s.l.ID(), hashesOf(s.old), group.OpRename, person{}, "ours", 1)
	grand := signAt(t, s.p["ann"], s.l.ID(), hashesOf(child), group.OpRename, person{}, "ann's", 2)
	for _, order := range [][]*group.Change{{s.old, child, grand}, {grand, child, s.old}} {
		m := replay(t, s.create, s.l.Changes0()[1:]...)
		for _, c := range order {
			_ = m.Add(c) // held, or refused as stale: what is checked is after
		}
		if m.Has(s.old.Hash()) {
			t.Errorf("a stranger's change, vouched for by a member's, brought back a stale one")
		}
	}
}

// TestStaleBroughtBackRefusesNothing: a stale change brought back by a change on it
// is no refusal.
func TestStaleBroughtBackRefusesNothing(t *testing.T) {
	s := newStaleCase(t)
	if err := s.l.Add(s.old); !errors.Is(err, group.ErrStale) {
		t.Fatal(err)
	}
	if err := s.l.Add(s.child); err != nil {
		t.Fatal(err)
	}
	if r := s.l.Refused(); len(r) != 0 {
		t.Errorf("Refused() = %v, want none", r)
	}
}

// TestOwnChangeOnAStaleOneTakenSince: a change refused as stale, taken later
// with a change that vouches for it (AddWith), stays among those refused
// as stale; a change by its author on it and on one not seen yet is
// held, and taken when that one comes.
func TestOwnChangeOnAStaleOneTakenSince(t *testing.T) {
	s := newStaleCase(t)
	l := s.l
	if err := l.Add(s.old); !errors.Is(err, group.ErrStale) {
		t.Fatal(err)
	}
	if err := l.AddWith(s.old, []*group.Change{s.child}); err != nil || !l.Has(s.old.Hash()) {
		t.Fatalf("the stale change with one vouching for it: %v", err)
	}
	y := signAt(t, s.p["ann"], l.ID(), l.Heads(), group.OpRename, person{}, "y", 1)
	c := signAt(t, s.p["ben"], l.ID(), hashesOf(s.old, y), group.OpRename, person{}, "ben's", 2)
	if err := l.Add(c); !errors.Is(err, group.ErrMissingParents) {
		t.Fatalf("ben's change on his own, taken, and one not seen: %v, want ErrMissingParents", err)
	}
	if err := l.Add(y); err != nil {
		t.Fatal(err)
	}
	if !l.Has(c.Hash()) {
		t.Errorf("ben's change was not taken once its parent came; refused: %v", l.Refused())
	}
}

// TestEffectSaysLeaveNotRemoval: a change kept out beside its author's
// leave says so, not that it was beside a removal by the creator (ann
// made ben an admin, and removed cat).
func TestEffectSaysLeaveNotRemoval(t *testing.T) {
	p := people(t, "ann", "ben", "cat")
	_, l := newGroup(t, p["ann"], p["ben"], p["cat"])
	adm := propose(t, l, p["ann"], group.OpAdmin, p["ben"], "")
	propose(t, l, p["ann"], group.OpRemove, p["cat"], "")
	propose(t, l, p["ben"], group.OpLeave, person{}, "")
	rn := signAt(t, p["ben"], l.ID(), hashesOf(adm), group.OpRename, person{}, "ben's", 1)
	if err := l.Add(rn); !errors.Is(err, group.ErrNotMember) {
		t.Fatalf("ben's rename beside his leave: %v, want ErrNotMember", err)
	}
	err := l.Effect(rn.Hash())
	if err == nil || !strings.HasSuffix(err.Error(), "signed beside its author's leave") {
		t.Errorf("Effect = %v, want one ending %q", err, "signed beside its author's leave")
	}
}

// TestLeaveBesideAnAdminChange: ann makes ben an admin while ben
// leaves: the admin change is no end of ben's, and his leave stays.
func TestLeaveBesideAnAdminChange(t *testing.T) {
	p := people(t, "ann", "ben", "cat")
	create, l := newGroup(t, p["ann"], p["ben"], p["cat"])
	base := l.Heads()
	ab := signAt(t, p["ann"], l.ID(), base, group.OpAdmin, p["ben"], "", 1)
	bl := signAt(t, p["ben"], l.ID(), base, group.OpLeave, person{}, "", 2)
	for _, order := range [][]*group.Change{{ab, bl}, {bl, ab}} {
		m := deal(t, create, order)
		if !m.Has(bl.Hash()) || m.IsMember(p["ben"].id) {
			t.Errorf("ben's leave held %v, ben a member %v", m.Has(bl.Hash()), m.IsMember(p["ben"].id))
		}
	}
}

// TestEarlierLeaveOnAChangeSetAside: ben (an
// admin) leaves on a version two renames newer; his rename on the older
// version is set aside beside that leave; a leave of his on the rename
// (earlier than the first leave, by depth) comes last: it brings the
// rename back, as it does when it comes before the first leave. The
// first leave stays in the log beside it (voidable): it voids the
// rename, which the earlier leave builds on, and the rename takes no
// effect. Before (2026-12-06), the first leave was set aside and the
// fold took the rename: a departed admin's change on an old version,
// with a leave on it, took effect (TestBackdatedAddBesideALeaveTakesNoEffect).
func TestEarlierLeaveOnAChangeSetAside(t *testing.T) {
	p := people(t, "ann", "ben")
	create, l := newGroup(t, p["ann"], p["ben"])
	adm := propose(t, l, p["ann"], group.OpAdmin, p["ben"], "")
	r1 := propose(t, l, p["ann"], group.OpRename, person{}, "one")
	r2 := propose(t, l, p["ann"], group.OpRename, person{}, "two")
	l1 := signAt(t, p["ben"], l.ID(), hashesOf(r2), group.OpLeave, person{}, "", 1)
	a := signAt(t, p["ben"], l.ID(), hashesOf(adm), group.OpRename, person{}, "ben's", 2)
	c := signAt(t, p["ben"], l.ID(), hashesOf(a), group.OpLeave, person{}, "", 3)
	for _, order := range [][]*group.Change{{adm, r1, r2, l1, a, c}, {adm, a, c, r1, r2, l1}, {adm, r1, r2, a, c, l1}} {
		m := deal(t, create, order)
		if !m.Has(c.Hash()) || !m.Has(a.Hash()) || !m.Has(l1.Hash()) || m.Effect(a.Hash()) == nil || m.Name() != "two" {
			t.Errorf("ben's later leave held %v, his rename %v (effect %v), his first leave %v, name %q; want all three, the rename without effect", m.Has(c.Hash()), m.Has(a.Hash()), m.Effect(a.Hash()), m.Has(l1.Hash()), m.Name())
		}
	}
}

// Named says a refusal of the user's own change with the user's names
// for the peers in it (node: "you", a contact's label), in place of the
// short peer IDs Error gives, keeping the rest of the text; an error
// with no refusal in it is said as Error says it.
func TestNamedRefusal(t *testing.T) {
	ps := people(t, "ann", "ben", "cat")
	ann, ben, cat := ps["ann"], ps["ben"], ps["cat"]
	_, l := newGroup(t, ann, ben)
	grant, err := l.Propose(ann.key, group.OpAdmin, ben.id, "", t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Add(grant); err != nil {
		t.Fatal(err)
	}
	name := func(p peer.ID) string {
		for n, q := range ps {
			if q.id == p {
				return n
			}
		}
		return "?"
	}
	for _, tc := range []struct {
		key  ed25519.PrivateKey
		op   group.Op
		p    peer.ID
		want string
		is   error
	}{
		{ben.key, group.OpRemove, ann.id, "only a more senior admin can remove an admin: ann is a more senior admin than ben", group.ErrJuniorAdmin},
		{ann.key, group.OpAdd, ben.id, "already a member of the group: ben", group.ErrAlreadyMember},
		{ann.key, group.OpRemove, cat.id, "not a member of the group: cannot remove cat", group.ErrNotMember},
	} {
		_, err := l.Propose(tc.key, tc.op, tc.p, "", t0)
		wrapped := fmt.Errorf("%s in group: %w", tc.op, err)
		got := group.Named(wrapped, name)
		if want := fmt.Sprintf("%s in group: %s", tc.op, tc.want); !errors.Is(err, tc.is) || got != want {
			t.Errorf("%s of %s: Named %q (Error %q), want %q", tc.op, name(tc.p), got, wrapped, want)
		}
		if strings.Contains(got, identity.ShortID(tc.p)) {
			t.Errorf("%s of %s: Named still says %s: %q", tc.op, name(tc.p), identity.ShortID(tc.p), got)
		}
	}
	plain := fmt.Errorf("store: %w", errors.New("disk full"))
	if got := group.Named(plain, name); got != plain.Error() {
		t.Errorf("Named of an error without a refusal: %q", got)
	}
}
