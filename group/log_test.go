package group_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/certchat/certchat/group"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestMembershipChanges(t *testing.T) {
	p := people(t, "ann", "ben", "cat", "dan")
	create, l := newGroup(t, p["ann"], p["ben"], p["cat"])
	if l.ID() != group.ID(create.Hash()) {
		t.Fatal("a group's ID is not its create's hash")
	}
	propose(t, l, p["ann"], group.OpAdmin, p["ben"], "")
	propose(t, l, p["ben"], group.OpAdd, p["dan"], "")
	propose(t, l, p["ben"], group.OpRemove, p["cat"], "")
	propose(t, l, p["ann"], group.OpRename, person{}, "new name")
	propose(t, l, p["ann"], group.OpLeave, person{}, "")
	s := l.State()
	if got, want := names(p, s.Members), []string{"ben", "dan"}; !slices.Equal(got, want) {
		t.Errorf("members %v, want %v", got, want)
	}
	if got, want := names(p, s.Admins), []string{"ben"}; !slices.Equal(got, want) {
		t.Errorf("admins %v, want %v", got, want)
	}
	if s.Name != "new name" || s.Version != 6 {
		t.Errorf("name %q version %d, want \"new name\" 6", s.Name, s.Version)
	}
	// The last admin leaving hands the group to the longest-standing member.
	propose(t, l, p["ben"], group.OpLeave, person{}, "")
	if got := names(p, l.State().Admins); !slices.Equal(got, []string{"dan"}) {
		t.Errorf("after the last admin left, admins %v, want [dan]", got)
	}
}

// TestRefused: each change a member must refuse, and the reason it gives.
func TestRefused(t *testing.T) {
	p := people(t, "ann", "ben", "cat", "eve")
	_, l := newGroup(t, p["ann"], p["ben"], p["cat"])
	propose(t, l, p["ann"], group.OpRemove, p["cat"], "")

	// Changes signed against the current version by the wrong people,
	// built by hand because Propose refuses them.
	sign := func(who person, op group.Op, about person, name string) *group.Change {
		t.Helper()
		c, err := group.SignForTest(who.key, l.ID(), l.Heads(), op, about.id, name, t0)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	other, _ := newGroup(t, p["eve"], p["ben"])
	otherLog, _ := group.New(other)
	foreign, err := otherLog.Propose(p["eve"].key, group.OpAdd, p["cat"].id, "", t0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		c    *group.Change
		want error
	}{
		{"a member who is not an admin adds", sign(p["ben"], group.OpAdd, p["eve"], ""), group.ErrNotAdmin},
		{"a stranger adds herself", sign(p["eve"], group.OpAdd, p["eve"], ""), group.ErrNotAdmin},
		{"a removed member renames", sign(p["cat"], group.OpRename, person{}, "cat's"), group.ErrNotAdmin},
		{"a removed member leaves again", sign(p["cat"], group.OpLeave, person{}, ""), group.ErrNotMember},
		{"an admin adds a member twice", sign(p["ann"], group.OpAdd, p["ben"], ""), group.ErrAlreadyMember},
		{"an admin removes a stranger", sign(p["ann"], group.OpRemove, p["eve"], ""), group.ErrNotMember},
		{"another group's change", foreign, group.ErrWrongGroup},
		{"another group's create", other, group.ErrWrongGroup},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := l.State()
			err := l.Add(reparse(t, tc.c))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Add = %v, want %v", err, tc.want)
			}
			if after := l.State(); after.Version != before.Version || !slices.Equal(after.Members, before.Members) {
				t.Errorf("a refused change moved the group from %+v to %+v", before, after)
			}
		})
	}
}

func TestTamperedChange(t *testing.T) {
	p := people(t, "ann", "ben", "eve")
	_, l := newGroup(t, p["ann"], p["ben"])
	c, err := l.Propose(p["ann"].key, group.OpAdd, p["eve"].id, "", t0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range c.Bytes() {
		b := slices.Clone(c.Bytes())
		b[i] ^= 0x01
		if _, err := group.Parse(b); err == nil {
			t.Fatalf("byte %d flipped: the change still parses and verifies", i)
		}
	}
	// Another admin's signature over the same change does not pass as ann's.
	forged := slices.Clone(c.Bytes())
	copy(forged[len(forged)-64:], ed25519Sign(p["eve"], c.Bytes()))
	if _, err := group.Parse(forged); !errors.Is(err, group.ErrBadSignature) {
		t.Errorf("eve's signature on ann's change: %v, want ErrBadSignature", err)
	}
}

// TestChangeNamesNoBogusPeer: text can decode as a peer ID that embeds
// no key (the end of a real one, "16i23e", is an identity multihash of
// two bytes). A change naming one is refused where it is made, as every
// other member's Parse refuses it: the log that took it would part
// from all the others for good, and Restore would not load it.
func TestChangeNamesNoBogusPeer(t *testing.T) {
	p := people(t, "ann", "ben")
	_, l := newGroup(t, p["ann"], p["ben"])
	propose(t, l, p["ann"], group.OpAdmin, p["ben"], "")
	bogus, err := peer.Decode("16i23e")
	if err != nil {
		t.Fatalf("the premise: %v", err)
	}
	before := l.Changes()
	for _, op := range []group.Op{group.OpAdd, group.OpRemove, group.OpAdmin} {
		if c, err := l.Propose(p["ann"].key, op, bogus, "", t0); !errors.Is(err, group.ErrMalformed) {
			t.Errorf("%s of %s: Propose = %v, want ErrMalformed", op, bogus, err)
			if err == nil {
				t.Logf("Add = %v; another member's Parse = %v", l.Add(c), parseErr(c))
			}
		}
		if _, err := group.SignForTest(p["ann"].key, l.ID(), l.Heads(), op, bogus, "", t0); !errors.Is(err, group.ErrMalformed) {
			t.Errorf("%s of %s: Sign = %v, want ErrMalformed", op, bogus, err)
		}
	}
	if _, err := group.Create(p["ann"].key, "team", []peer.ID{p["ben"].id, bogus}, nil, t0); !errors.Is(err, group.ErrMalformed) {
		t.Errorf("a create naming %s: %v, want ErrMalformed", bogus, err)
	}
	if _, err := group.Restore(l.Changes()); err != nil || len(l.Changes()) != len(before) {
		t.Errorf("the log after: %d changes (was %d), Restore: %v", len(l.Changes()), len(before), err)
	}
}

func parseErr(c *group.Change) error {
	_, err := group.Parse(c.Bytes())
	return err
}

// staleCase: ben, an admin, adds cat on a version that ann's renames
// then leave more than StaleAfter behind in l, which has not taken the
// add (old); m, a member that had it in time, took it, and ann's next
// change there (child) builds on it.
type staleCase struct {
	p          map[string]person
	create     *group.Change
	l, m       *group.Log
	old, child *group.Change
}

func newStaleCase(t *testing.T) staleCase {
	t.Helper()
	p := people(t, "ann", "ben", "cat")
	create, l := newGroup(t, p["ann"], p["ben"])
	propose(t, l, p["ann"], group.OpAdmin, p["ben"], "")
	old, err := l.Propose(p["ben"].key, group.OpAdd, p["cat"].id, "", t0)
	if err != nil {
		t.Fatal(err)
	}
	var later []*group.Change
	for i := range group.StaleAfter + 1 {
		later = append(later, propose(t, l, p["ann"], group.OpRename, person{}, string(rune('a'+i))))
	}
	m := replay(t, create, append([]*group.Change{l.Changes0()[1], old}, later...)...)
	child, err := m.Propose(p["ann"].key, group.OpRename, peer.ID(""), "after", t0)
	if err != nil {
		t.Fatal(err)
	}
	return staleCase{p: p, create: create, l: l, m: m, old: old, child: child}
}

// TestStale: a change built on a version more than StaleAfter old is
// refused, unless a newer change by another named author builds on it,
// whichever of the two comes first: the one refused is kept, and the
// change on top of it brings it back; a change by its own author does
// not.
func TestStale(t *testing.T) {
	for _, childFirst := range []bool{true, false} {
		s := newStaleCase(t)
		l, old, child, m := s.l, s.old, s.child, s.m
		if childFirst {
			if err := l.Add(child); !errors.Is(err, group.ErrMissingParents) {
				t.Fatalf("a change on top of one this log lacks: %v, want ErrMissingParents", err)
			}
			if err := l.Add(old); err != nil {
				t.Fatalf("the missing parent, asked for: %v", err)
			}
		} else {
			if err := l.Add(old); !errors.Is(err, group.ErrStale) {
				t.Fatalf("a change %d versions old: %v, want ErrStale", group.StaleAfter+1, err)
			}
			if err := l.Add(child); err != nil {
				t.Fatalf("a change on top of one this log refused as stale: %v", err)
			}
		}
		if !l.Has(old.Hash()) || !l.Has(child.Hash()) || !slices.Equal(l.State().Members, m.State().Members) || l.State().Name != "after" {
			t.Errorf("child first %v: members %v name %q, want %v %q", childFirst, l.State().Members, l.State().Name, m.State().Members, "after")
		}
	}
	// ben builds on his own stale change: it vouches for nothing.
	s := newStaleCase(t)
	if err := s.l.Add(s.old); !errors.Is(err, group.ErrStale) {
		t.Fatal(err)
	}
	own, err := s.m.Propose(s.p["ben"].key, group.OpRename, peer.ID(""), "ben's", t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.l.Add(own); err == nil || s.l.Has(s.old.Hash()) {
		t.Fatalf("a stale change vouched for by its own author: %v, taken %v", err, s.l.Has(s.old.Hash()))
	}
}

// TestStaleSentInOrder: a log that took a stale change because a change
// on top of it came first (TestStale) is sent to a new member in its
// order, parents first, as a frame is: the stale change comes before
// the change that vouches for it. Taken with the changes after it
// (AddWith), the member agrees with the log and nothing is refused;
// taken one by one (Add, or with the two in different frames), it agrees
// too, the stale change refused first and brought back by its child.
func TestStaleSentInOrder(t *testing.T) {
	s := newStaleCase(t)
	p, create, l, old, child := s.p, s.create, s.l, s.old, s.child
	if err := l.Add(child); !errors.Is(err, group.ErrMissingParents) {
		t.Fatal(err)
	}
	if err := l.Add(old); err != nil {
		t.Fatal(err)
	}
	frame := l.Changes0()[1:]
	for _, with := range []bool{true, false} {
		n, err := group.New(create)
		if err != nil {
			t.Fatal(err)
		}
		var refused []error
		for i, c := range frame {
			add := n.Add
			if with {
				add = func(c *group.Change) error { return n.AddWith(c, frame[i+1:]) }
			}
			if err := add(reparse(t, c)); err != nil {
				refused = append(refused, err)
			}
		}
		agrees := n.Has(old.Hash()) && n.Has(child.Hash()) && slices.Equal(n.State().Members, l.State().Members) && n.State().Name == l.State().Name
		switch {
		case !agrees:
			t.Fatalf("with the frame %v: refused %v; members %v name %q, want %v %q", with, refused, names(p, n.State().Members), n.State().Name, names(p, l.State().Members), l.State().Name)
		case with && len(refused) > 0:
			t.Fatalf("with the frame: refused %v", refused)
		case !with && (len(refused) != 1 || !errors.Is(refused[0], group.ErrStale)):
			t.Fatalf("one by one: refused %v, want the stale change refused first", refused)
		}
	}
}

// TestStaleChainVouchedAtItsTip: ben, an admin, signs three changes,
// each on the last, on a version that ann's renames then leave more than
// StaleAfter behind in l; m had them in time, and ann's next change there
// (tip) builds on ben's last only. The first is stale in l and the others
// build on it, by the same author: none vouches, but ann's change on top
// vouches for all three, as it would for one (TestStale). In every order,
// one by one, or as a frame in m's order (then with nothing refused), l
// ends where m is, nothing missing. Before, ann's change brought back
// none: the second waited for the first, refused as stale each time it
// came, and l asked for it for ever. Without ann's change the chain
// stays out, and l does not ask for any of it.
func TestStaleChainVouchedAtItsTip(t *testing.T) {
	p := people(t, "ann", "ben", "cat")
	create, l := newGroup(t, p["ann"], p["ben"])
	propose(t, l, p["ann"], group.OpAdmin, p["ben"], "")
	m := replay(t, create, l.Changes0()[1:]...)
	chain := []*group.Change{
		propose(t, m, p["ben"], group.OpAdd, p["cat"], ""),
		propose(t, m, p["ben"], group.OpRename, person{}, "ben's"),
		propose(t, m, p["ben"], group.OpRename, person{}, "ben's again"),
	}
	for i := range group.StaleAfter + 1 {
		c := propose(t, l, p["ann"], group.OpRename, person{}, string(rune('a'+i)))
		if err := m.Add(reparse(t, c)); err != nil {
			t.Fatal(err)
		}
	}
	tip, err := group.SignForTest(p["ann"].key, l.ID(), []group.Hash{chain[2].Hash()}, group.OpRename, "", "after", t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Add(tip); err != nil {
		t.Fatal(err)
	}
	base := l.Changes0()[1:]
	all := append(slices.Clone(chain), tip)
	label := func(order []*group.Change) []int {
		var out []int
		for _, c := range order {
			out = append(out, slices.Index(all, c))
		}
		return out
	}
	for _, order := range permutations(all) {
		for _, frame := range []bool{false, true} {
			if frame && !slices.Equal(order, all) {
				continue
			}
			n := replay(t, create, base...)
			var refused []error
			for i, c := range order {
				add := n.Add
				if frame {
					add = func(c *group.Change) error { return n.AddWith(c, order[i+1:]) }
				}
				if err := add(reparse(t, c)); err != nil {
					refused = append(refused, err)
				}
			}
			which := fmt.Sprintf("order %v (3 is ann's), frame %v", label(order), frame)
			if miss := n.Missing(); len(miss) > 0 || slices.ContainsFunc(all, func(c *group.Change) bool { return !n.Has(c.Hash()) }) {
				t.Errorf("%s: missing %d, lacks some of the four (refused %v)", which, len(miss), refused)
				continue
			}
			if frame && len(refused) > 0 {
				t.Errorf("%s: refused %v", which, refused)
			}
			if !slices.Equal(n.State().Members, m.State().Members) || n.State().Name != m.State().Name {
				t.Errorf("%s: members %v name %q, want %v %q", which, names(p, n.State().Members), n.State().Name, names(p, m.State().Members), m.State().Name)
			}
		}
	}
	// Without ann's change, ben's chain stays out, and nothing is asked for.
	for _, order := range permutations(chain) {
		n := replay(t, create, base...)
		for _, c := range order {
			if err := n.Add(reparse(t, c)); err == nil {
				t.Errorf("order %v: ben's stale change taken", label(order))
			}
		}
		if slices.ContainsFunc(chain, func(c *group.Change) bool { return n.Has(c.Hash()) }) || len(n.Missing()) > 0 {
			t.Errorf("order %v: took some of ben's chain, or asks for %d changes; want neither", label(order), len(n.Missing()))
		}
	}
}

// TestStaleVouchedByOneNamedLater: ben's rename is built on a version
// ann's renames left more than StaleAfter behind; xen, whom ann adds
// after them, leaves on ben's rename and on her add. xen's leave vouches
// for ben's rename (a change by another author the log names builds on
// it), and in every order the log ends with both, xen gone, nothing held
// or asked for. Before (found 2026-12-05), a log that had the leave and
// the rename before the add refused the rename as stale (xen was named
// by no change yet, so her leave vouched for nothing), held the leave
// for ever, and kept xen a member: the same changes, two memberships.
func TestStaleVouchedByOneNamedLater(t *testing.T) {
	p := people(t, "ann", "ben", "cat", "xen")
	create, l := newGroup(t, p["ann"], p["ben"], p["cat"])
	propose(t, l, p["ann"], group.OpAdmin, p["ben"], "")
	old := l.Heads()
	for i := range group.StaleAfter + 1 {
		propose(t, l, p["ann"], group.OpRename, person{}, string(rune('a'+i)))
	}
	base := l.Changes0()[1:]
	late, err := group.SignForTest(p["ben"].key, l.ID(), old, group.OpRename, "", "ben's late", t0)
	if err != nil {
		t.Fatal(err)
	}
	add := propose(t, l, p["ann"], group.OpAdd, p["xen"], "")
	leave, err := group.SignForTest(p["xen"].key, l.ID(), []group.Hash{late.Hash(), add.Hash()}, group.OpLeave, "", "", t0)
	if err != nil {
		t.Fatal(err)
	}
	all := []*group.Change{add, leave, late}
	for _, order := range permutations(all) {
		n := replay(t, create, base...)
		for _, c := range order {
			_ = n.Add(reparse(t, c)) // held, or stale until vouched for
		}
		var which []int
		for _, c := range order {
			which = append(which, slices.Index(all, c))
		}
		if !n.Has(late.Hash()) || !n.Has(leave.Hash()) || group.HeldForTest(n) != 0 || len(n.Missing()) != 0 {
			t.Errorf("order %v (0 add, 1 leave, 2 ben's): has ben's %v, xen's leave %v, holds %d, asks for %d; want both, none held or asked for",
				which, n.Has(late.Hash()), n.Has(leave.Hash()), group.HeldForTest(n), len(n.Missing()))
		}
		if s := n.State(); s.IsMember(p["xen"].id) {
			t.Errorf("order %v: xen still a member", which)
		}
		if err := n.CheckFoldForTest(); err != nil {
			t.Errorf("order %v: %v", which, err)
		}
	}
}

// permutations are the orders of cs.
func permutations(cs []*group.Change) [][]*group.Change {
	if len(cs) <= 1 {
		return [][]*group.Change{slices.Clone(cs)}
	}
	var out [][]*group.Change
	for i, c := range cs {
		rest := append(slices.Clone(cs[:i]), cs[i+1:]...)
		for _, p := range permutations(rest) {
			out = append(out, append([]*group.Change{c}, p...))
		}
	}
	return out
}

// TestConcurrentChangesConverge: two admins' changes cross in flight;
// every member reaches the same membership whatever the order.
func TestConcurrentChangesConverge(t *testing.T) {
	p := people(t, "ann", "ben", "cat", "dan", "eve")
	for _, tc := range []struct {
		name    string
		a, b    func(l *group.Log) (person, group.Op, person, string)
		members []string
		admins  []string
	}{
		{
			"ann adds dan, ben adds eve",
			func(*group.Log) (person, group.Op, person, string) { return p["ann"], group.OpAdd, p["dan"], "" },
			func(*group.Log) (person, group.Op, person, string) { return p["ben"], group.OpAdd, p["eve"], "" },
			nil, nil,
		},
		{
			"both add dan",
			func(*group.Log) (person, group.Op, person, string) { return p["ann"], group.OpAdd, p["dan"], "" },
			func(*group.Log) (person, group.Op, person, string) { return p["ben"], group.OpAdd, p["dan"], "" },
			[]string{"ann", "ben", "cat", "dan"}, []string{"ann", "ben"},
		},
		{
			"ann removes ben while ben adds eve: removal wins",
			func(*group.Log) (person, group.Op, person, string) { return p["ann"], group.OpRemove, p["ben"], "" },
			func(*group.Log) (person, group.Op, person, string) { return p["ben"], group.OpAdd, p["eve"], "" },
			[]string{"ann", "cat"}, []string{"ann"},
		},
		{
			// Ben cannot remove ann, his senior (TestJuniorAdminCannotRemoveSenior),
			// so two admins never remove each other.
			"ann removes ben while ben removes cat: removal wins",
			func(*group.Log) (person, group.Op, person, string) { return p["ann"], group.OpRemove, p["ben"], "" },
			func(*group.Log) (person, group.Op, person, string) { return p["ben"], group.OpRemove, p["cat"], "" },
			[]string{"ann", "cat"}, []string{"ann"},
		},
		{
			"both rename",
			func(*group.Log) (person, group.Op, person, string) {
				return p["ann"], group.OpRename, person{}, "ann's"
			},
			func(*group.Log) (person, group.Op, person, string) {
				return p["ben"], group.OpRename, person{}, "ben's"
			},
			nil, nil,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			create, l := newGroup(t, p["ann"], p["ben"], p["cat"])
			admin := propose(t, l, p["ann"], group.OpAdmin, p["ben"], "")
			// Both admins propose against the same version, each on
			// their own copy.
			mk := func(f func(*group.Log) (person, group.Op, person, string)) *group.Change {
				own := replay(t, create, admin)
				who, op, about, name := f(own)
				return propose(t, own, who, op, about, name)
			}
			ca, cb := mk(tc.a), mk(tc.b)
			// deal: a change beside its author's removal by the creator
			// is kept out of the log (Log.besideRemoval).
			ab := deal(t, create, []*group.Change{admin, ca, cb})
			ba := deal(t, create, []*group.Change{admin, cb, ca})
			sa, sb := ab.State(), ba.State()
			if !slices.Equal(sa.Members, sb.Members) || !slices.Equal(sa.Admins, sb.Admins) || sa.Name != sb.Name || sa.Version != sb.Version {
				t.Fatalf("orders disagree:\n a then b: %v admins %v %q v%d\n b then a: %v admins %v %q v%d",
					names(p, sa.Members), names(p, sa.Admins), sa.Name, sa.Version, names(p, sb.Members), names(p, sb.Admins), sb.Name, sb.Version)
			}
			if tc.members != nil && !slices.Equal(names(p, sa.Members), tc.members) {
				t.Errorf("members %v, want %v", names(p, sa.Members), tc.members)
			}
			if tc.admins != nil && !slices.Equal(names(p, sa.Admins), tc.admins) {
				t.Errorf("admins %v, want %v", names(p, sa.Admins), tc.admins)
			}
			// The next change builds on both, and every member takes it.
			next := propose(t, ab, p["ann"], group.OpRename, person{}, "merged")
			if err := ba.Add(reparse(t, next)); err != nil {
				t.Fatalf("the merge on the other member: %v", err)
			}
			if ab.State().Version != ba.State().Version {
				t.Errorf("after the merge: v%d and v%d", ab.State().Version, ba.State().Version)
			}
		})
	}
}

// TestBackdatedChangeByRemovedAdmin: an admin who was removed signs a
// change built on a version from before the removal. Members who know of
// the removal and members who do not yet both end without its effect.
func TestBackdatedChangeByRemovedAdmin(t *testing.T) {
	p := people(t, "ann", "ben", "cat", "mal")
	create, l := newGroup(t, p["ann"], p["ben"], p["cat"])
	admin := propose(t, l, p["ann"], group.OpAdmin, p["ben"], "")
	before := replay(t, create, admin) // ben's copy before his removal
	remove := propose(t, l, p["ann"], group.OpRemove, p["ben"], "")
	backdated, err := before.Propose(p["ben"].key, group.OpAdd, p["mal"].id, "", t0)
	if err != nil {
		t.Fatal(err)
	}
	for _, order := range [][]*group.Change{{admin, remove, backdated}, {admin, backdated, remove}} {
		m := deal(t, create, order)
		s := m.State()
		if s.IsMember(p["mal"].id) || s.IsMember(p["ben"].id) {
			t.Errorf("order %v: members %v: the removed admin's back-dated add took effect", order, names(p, s.Members))
		}
		// Beside his removal by the creator, and built on by nothing,
		// it is not even kept (Log.besideRemoval), whichever came first.
		if m.Has(backdated.Hash()) || len(m.Heads()) != 1 {
			t.Errorf("order %v: the log holds the back-dated add (%d heads)", order, len(m.Heads()))
		}
	}
	// After the removal, anything ben builds on the new version is refused.
	late, err := group.SignForTest(p["ben"].key, l.ID(), l.Heads(), group.OpAdd, p["mal"].id, "", t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Add(late); !errors.Is(err, group.ErrNotAdmin) {
		t.Errorf("the removed admin's change on the current version: %v, want ErrNotAdmin", err)
	}
}

// TestRandomOrdersConverge delivers the changes of several admins,
// forking and merging, in random orders, parents sometimes after their
// children: every order gives the same membership.
func TestRandomOrdersConverge(t *testing.T) {
	p := people(t, "ann", "ben", "cat", "dan", "eve", "fay")
	all := []person{p["ann"], p["ben"], p["cat"], p["dan"], p["eve"], p["fay"]}
	create, l := newGroup(t, p["ann"], p["ben"], p["cat"])
	cs := []*group.Change{propose(t, l, p["ann"], group.OpAdmin, p["ben"], ""), propose(t, l, p["ann"], group.OpAdmin, p["cat"], "")}
	rng := rand.New(rand.NewPCG(1, 2))
	// Three admins' copies; each round, each makes a change on its own
	// copy, then they sync some of the time.
	copies := []*group.Log{replay(t, create, cs...), replay(t, create, cs...), replay(t, create, cs...)}
	admins := []person{p["ann"], p["ben"], p["cat"]}
	for round := range 12 {
		for i, c := range copies {
			who := admins[i]
			target := all[rng.IntN(len(all))]
			for _, op := range []group.Op{group.OpAdd, group.OpRemove, group.OpRename} {
				ch, err := c.Propose(who.key, op, target.id, "", t0)
				if op == group.OpRename {
					ch, err = c.Propose(who.key, op, "", who.name+string(rune('0'+round)), t0)
				}
				if err == nil {
					if err := c.Add(ch); err != nil {
						t.Fatal(err)
					}
					cs = append(cs, ch)
					break
				}
			}
		}
		if round%3 == 2 {
			for _, c := range copies {
				for _, ch := range cs {
					_ = c.Add(ch) // refusals are part of the game
				}
			}
		}
	}
	want := replay(t, create).State()
	for trial := range 20 {
		order := slices.Clone(cs)
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		m, _ := group.New(create)
		for _, c := range order {
			_ = m.Add(reparse(t, c))
		}
		if len(m.Missing()) != 0 {
			t.Fatalf("trial %d: still missing %v", trial, m.Missing())
		}
		s := m.State()
		if trial == 0 {
			want = s
			continue
		}
		if !slices.Equal(s.Members, want.Members) || !slices.Equal(s.Admins, want.Admins) || s.Name != want.Name || s.Version != want.Version {
			t.Fatalf("trial %d disagrees: %v %v %q v%d, want %v %v %q v%d", trial,
				names(p, s.Members), names(p, s.Admins), s.Name, s.Version, names(p, want.Members), names(p, want.Admins), want.Name, want.Version)
		}
	}
	t.Logf("%d changes; the group ends at v%d with %v", len(cs), want.Version, names(p, want.Members))
}

func TestRestore(t *testing.T) {
	p := people(t, "ann", "ben", "cat")
	_, l := newGroup(t, p["ann"], p["ben"])
	propose(t, l, p["ann"], group.OpAdd, p["cat"], "")
	propose(t, l, p["ann"], group.OpRemove, p["ben"], "")
	r, err := group.Restore(l.Changes())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.State().Members, l.State().Members) || r.State().Version != l.State().Version || !slices.Equal(r.Heads(), l.Heads()) {
		t.Errorf("restored %+v, want %+v", r.State(), l.State())
	}
	bad := l.Changes()
	bad[1], bad[2] = bad[2], bad[1]
	if _, err := group.Restore(bad); err == nil {
		t.Error("a stored log out of order restored without an error")
	}
}

// Named tells a stranger from a peer some change made a member: the
// creator and first members, an added member, and one removed since.
func TestLogNamed(t *testing.T) {
	ps := people(t, "alice", "bob", "carol", "dave", "eve")
	_, l := newGroup(t, ps["alice"], ps["bob"])
	propose(t, l, ps["alice"], group.OpAdd, ps["carol"], "")
	propose(t, l, ps["alice"], group.OpAdd, ps["dave"], "")
	propose(t, l, ps["alice"], group.OpRemove, ps["dave"], "")
	for n, want := range map[string]bool{"alice": true, "bob": true, "carol": true, "dave": true, "eve": false} {
		if got := l.Named(ps[n].id); got != want {
			t.Errorf("Named(%s) = %v, want %v", n, got, want)
		}
	}
}

// TestLogFull: a log of MaxChanges takes no more changes, on every head
// or crossing, and says so with ErrLogFull (an ErrFull), which the
// window turns into what to do; the membership is as it was.
func TestLogFull(t *testing.T) {
	p := people(t, "ann", "ben")
	_, l := newGroup(t, p["ann"], p["ben"])
	var old []group.Hash
	for i := range group.MaxChanges - 1 {
		if i == group.MaxChanges-3 {
			old = l.Heads()
		}
		propose(t, l, p["ann"], group.OpRename, person{}, fmt.Sprint("name ", i))
	}
	if n := len(l.Changes()); n != group.MaxChanges {
		t.Fatalf("%d changes, want %d", n, group.MaxChanges)
	}
	onAll, err := l.Propose(p["ann"].key, group.OpRename, "", "one more", t0)
	if err != nil {
		t.Fatal(err)
	}
	crossing, err := group.SignForTest(p["ann"].key, l.ID(), old, group.OpRename, "", "one beside", t0)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*group.Change{onAll, crossing} {
		err := l.Add(c)
		if !errors.Is(err, group.ErrLogFull) || !errors.Is(err, group.ErrFull) {
			t.Errorf("%s: %v, want ErrLogFull", c.Op, err)
		}
	}
	if s := l.State(); s.Name != fmt.Sprint("name ", group.MaxChanges-2) || len(l.Changes()) != group.MaxChanges {
		t.Errorf("after: %q, %d changes", s.Name, len(l.Changes()))
	}
}

// A frame of held changes that comes again (its sender wrote it again:
// a resend, or a copy from a mailbox and one live) holds them again at
// little cost: a change held already is not looked at again. Before
// (found 2026-12-06), each held again read those held on it, each back
// to the missing parent: a long log's newest frame, 255 changes, cost
// about n³/6 steps, seconds of CPU on a session's read loop
// (TestGroupWantThroughMailboxes in package node timed out under load).
// A first fix, bringing nothing back when nothing is refused as stale
// or set aside, mended the first case only; with one change set aside
// (ben's rename beside his own leave: any former admin can make one),
// the frame sent again still cost 5.8 s here, a member's way to keep
// another's CPU busy. Not looking at a held change again mends both, and
// the first fix went. Counted, not timed.
func TestHeldFrameAgainIsCheap(t *testing.T) {
	for _, aside := range []bool{false, true} {
		t.Run(fmt.Sprint("aside=", aside), func(t *testing.T) {
			p := people(t, "ann", "ben")
			create, l := newGroup(t, p["ann"], p["ben"])
			ad := propose(t, l, p["ann"], group.OpAdmin, p["ben"], "")
			base := l.Heads()
			lv := propose(t, l, p["ben"], group.OpLeave, person{}, "")
			moot := signAt(t, p["ben"], l.ID(), base, group.OpRename, person{}, "ben's", 5)
			var cs []*group.Change
			for i := range 300 {
				cs = append(cs, propose(t, l, p["ann"], group.OpRename, person{}, fmt.Sprint("r", i)))
			}
			frame := cs[len(cs)-255:] // the newest, as newestFrame sends them
			b := replay(t, create, ad, lv)
			if aside {
				if err := b.Add(reparse(t, moot)); !errors.Is(err, group.ErrNotMember) {
					t.Fatalf("ben's rename beside his leave: %v, want it set aside", err)
				}
			}
			give := func() {
				for i, c := range frame {
					if err := b.AddWith(reparse(t, c), frame[i+1:]); !errors.Is(err, group.ErrMissingParents) {
						t.Fatalf("change %d of the frame: %v, want it held", i, err)
					}
				}
			}
			give()
			before := group.HeldReadsForTest(b)
			give()
			if n := group.HeldReadsForTest(b) - before; n > len(frame) {
				t.Errorf("the frame of %d held changes, given again, read %d held changes, want at most one each", len(frame), n)
			}
			if group.HeldForTest(b) != len(frame) {
				t.Fatalf("%d held, want %d", group.HeldForTest(b), len(frame))
			}
			for i, c := range cs[:len(cs)-len(frame)] {
				if err := b.AddWith(reparse(t, c), cs[i+1:]); err != nil {
					t.Fatalf("change %d, the last missing: %v", i, err)
				}
			}
			if !b.Has(cs[len(cs)-1].Hash()) || group.HeldForTest(b) != 0 || b.Name() != "r299" {
				t.Fatalf("after the missing changes: has the newest %v, %d held, name %q", b.Has(cs[len(cs)-1].Hash()), group.HeldForTest(b), b.Name())
			}
		})
	}
}
