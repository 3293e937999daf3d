package group_test

import (
	"bytes"
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
