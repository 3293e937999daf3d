package group_test

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/certchat/certchat/group"
)

// TestRemovedAdminCannotUndoRemovalByCounterRemoval: ann (the creator)
// removes admin ben, then removes mal and adds dan. Ben, out, signs a
// removal of ann built on his copy from before his removal, as if the
// two removals had crossed in flight. Whatever the order the changes
// arrive in, ben stays out and ann's later changes stand: a counter
// removal signed after the fact (indistinguishable from one that crossed)
// must not undo a removal by a more senior admin.
func TestRemovedAdminCannotUndoRemovalByCounterRemoval(t *testing.T) {
	p := people(t, "ann", "ben", "cat", "dan", "mal")
	create, l := newGroup(t, p["ann"], p["ben"], p["cat"], p["mal"])
	admin := propose(t, l, p["ann"], group.OpAdmin, p["ben"], "")
	before := replay(t, create, admin) // ben's copy before his removal
	remove := propose(t, l, p["ann"], group.OpRemove, p["ben"], "")
	removeMal := propose(t, l, p["ann"], group.OpRemove, p["mal"], "")
	addDan := propose(t, l, p["ann"], group.OpAdd, p["dan"], "")
	counter, err := before.Propose(p["ben"].key, group.OpRemove, p["ann"].id, "", t0)
	if err != nil {
		t.Fatal(err)
	}
	for _, order := range [][]*group.Change{
		{admin, remove, removeMal, addDan, counter},
		{admin, counter, remove, removeMal, addDan},
	} {
		m := replay(t, create, order...)
		s := m.State()
		if got, want := names(p, s.Members), []string{"ann", "cat", "dan"}; !slices.Equal(got, want) {
			t.Errorf("members %v, want %v: the removed admin's counter-removal undid changes", got, want)
		}
		if got, want := names(p, s.Admins), []string{"ann"}; !slices.Equal(got, want) {
			t.Errorf("admins %v, want %v", got, want)
		}
	}
}

// TestAdminWhoLeftCannotChangeAfterwards: ben, an admin, leaves; then
// signs an add of mal built on his copy from before his leave, with a
// time chosen so that the add's hash orders it before the leave where
// the fold breaks ties. An honest client never signs a change that is
// concurrent with one of its own (each change names the heads, its own
// last change among them), so the add can only be back-dated: it must
// not take effect, whatever its hash and the order of arrival.
func TestAdminWhoLeftCannotChangeAfterwards(t *testing.T) {
	p := people(t, "ann", "ben", "cat", "mal")
	create, l := newGroup(t, p["ann"], p["ben"], p["cat"])
	admin := propose(t, l, p["ann"], group.OpAdmin, p["ben"], "")
	before := replay(t, create, admin) // ben's copy before his leave
	leave := propose(t, l, p["ben"], group.OpLeave, person{}, "")
	var late *group.Change
	for i := 0; late == nil || bytes.Compare(hashBytes(late), hashBytes(leave)) >= 0; i++ {
		c, err := before.Propose(p["ben"].key, group.OpAdd, p["mal"].id, "", t0.Add(time.Duration(i)*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		late = c
	}
	for _, order := range [][]*group.Change{{admin, leave, late}, {admin, late, leave}} {
		s := replay(t, create, order...).State()
		if s.IsMember(p["mal"].id) || s.IsMember(p["ben"].id) {
			t.Errorf("members %v: the add ben signed after leaving took effect", names(p, s.Members))
		}
	}
}

func hashBytes(c *group.Change) []byte { h := c.Hash(); return h[:] }

// TestFormerMemberCannotFillTheLog: cat, a plain member, leaves, then
// signs changes nobody could ever apply: more leaves beside the first,
// each with its own time, as many as a log may hold (MaxChanges). They
// change nothing, but a log that holds them is full: the admins could
// never change the group again (ErrFull), and every one of them is a
// head, so the group's log never comes back to one head. A change that
// would change nothing, by a peer who is not a member, is not taken into
// the log: the admin's next change is accepted, and the log keeps one
// head.
//
// OPEN at the log's level (found in review): the node no longer takes
// such changes from the peer that signs them once it is not a member
// (node TestGroupFormerMemberFloodRefused), but a log still takes them
// if a member relays them. Without the skip, the admin's add fails with ErrFull
// after the flood, which costs the receiver about a minute of CPU. Keeping
// such changes out of the log must not cost the members' agreement on
// the membership: a change moot at one member may be in the log of
// another (it crossed a removal there) and be built on; a first attempt
// (set aside, brought in when a member's change builds on it) broke
// TestRandomOrdersConverge on other seeds, and was left out. Remove the
// skip with the fix.
func TestFormerMemberCannotFillTheLog(t *testing.T) {
	t.Skip("open finding: a former member fills the log with moot changes (see the comment)")
	p := people(t, "ann", "ben", "cat", "dan")
	create, l := newGroup(t, p["ann"], p["ben"], p["cat"])
	base := l.Heads()
	leave := propose(t, l, p["cat"], group.OpLeave, person{}, "")
	for i := range group.MaxChanges {
		c, err := group.SignForTest(p["cat"].key, l.ID(), base, group.OpLeave, "", "", t0.Add(time.Duration(i+1)*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Add(reparse(t, c)); err != nil && !errors.Is(err, group.ErrFull) {
			t.Fatalf("junk leave %d: %v", i, err)
		}
	}
	add, err := l.Propose(p["ann"].key, group.OpAdd, p["dan"].id, "", t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Add(add); err != nil {
		t.Fatalf("the admin's add after the flood: %v", err)
	}
	if n := len(l.Heads()); n != 1 {
		t.Errorf("%d heads after the admin's change, want 1", n)
	}
	// A member who got the log's changes children first agrees.
	cs := l.Changes0()[1:]
	slices.Reverse(cs)
	m, err := group.New(create)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if err := m.Add(reparse(t, c)); err != nil && !errors.Is(err, group.ErrMissingParents) {
			t.Fatal(err)
		}
	}
	if s, want := m.State(), l.State(); !slices.Equal(s.Members, want.Members) || s.Version != want.Version || !m.Has(add.Hash()) || !m.Has(leave.Hash()) {
		t.Errorf("members %v v%d, want %v v%d", names(p, s.Members), s.Version, names(p, want.Members), want.Version)
	}
}

// TestStaleChangeNotVouchedByStranger: a change built on a version more
// than StaleAfter behind is refused, unless a newer change held for it
// builds on it (a member had it in time: TestStale). Ann, removed long
// ago by ben, signs a removal of ben on a version from before, and a
// change on top of it with a throwaway key, sent first: that change
// must not vouch for hers. The vouching change's author must be one the
// group's changes name, and not the stale change's own.
func TestStaleChangeNotVouchedByStranger(t *testing.T) {
	p := people(t, "ann", "ben", "cat", "sybil")
	_, l := newGroup(t, p["ann"], p["ben"], p["cat"])
	propose(t, l, p["ann"], group.OpAdmin, p["ben"], "")
	before := l.Heads()
	propose(t, l, p["ben"], group.OpRemove, p["ann"], "")
	for i := range group.StaleAfter + 1 {
		propose(t, l, p["ben"], group.OpRename, person{}, string(rune('a'+i)))
	}
	counter, err := group.SignForTest(p["ann"].key, l.ID(), before, group.OpRemove, p["ben"].id, "", t0)
	if err != nil {
		t.Fatal(err)
	}
	for _, who := range []person{p["sybil"], p["ann"]} {
		child, err := group.SignForTest(who.key, l.ID(), []group.Hash{counter.Hash()}, group.OpRename, "", "ours", t0)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Add(child); !errors.Is(err, group.ErrMissingParents) {
			t.Fatalf("%s's change on the stale one: %v, want ErrMissingParents", who.name, err)
		}
	}
	if err := l.Add(counter); !errors.Is(err, group.ErrStale) {
		t.Errorf("the stale counter-removal vouched for by a stranger and its own author: %v, want ErrStale", err)
	}
	if s := l.State(); s.IsMember(p["ann"].id) || !s.IsAdmin(p["ben"].id) {
		t.Errorf("members %v admins %v: ann came back", names(p, s.Members), names(p, s.Admins))
	}
}
