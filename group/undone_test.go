package group_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/certchat/certchat/group"
)

// TestUndoneRemovals: a removal that a leave of its own author's undid
// (the author's key signed a leave beside it) is named in the state
// while its target is a member by the membership the removal ended, in
// whatever order the changes come; a removal undone otherwise, or
// resolved since, is not (SECURITY.md finding 7).
func TestUndoneRemovals(t *testing.T) {
	p := people(t, "ann", "ben", "cat", "dan")
	create, l := newGroup(t, p["ann"], p["ben"], p["cat"], p["dan"])
	adm := propose(t, l, p["ann"], group.OpAdmin, p["ben"], "")
	id := l.ID()
	// ben removes cat and leaves; his key then signs a second leave on
	// the version before the removal.
	rm := signAt(t, p["ben"], id, hashesOf(adm), group.OpRemove, p["cat"], "", 1)
	left := signAt(t, p["ben"], id, hashesOf(rm), group.OpLeave, person{}, "", 2)
	again := signAt(t, p["ben"], id, hashesOf(adm), group.OpLeave, person{}, "", 3)
	// ben removes cat, renames the group, then leaves: his second leave
	// undoes both.
	rn := signAt(t, p["ben"], id, hashesOf(rm), group.OpRename, person{}, "ben's", 12)
	leftAfterRename := signAt(t, p["ben"], id, hashesOf(rn), group.OpLeave, person{}, "", 13)
	// The same shape the other way round: ben left, then his key signs a
	// removal of dan on the version before, and a leave on it. Nothing
	// tells the two apart: both are named.
	plainLeave := signAt(t, p["ben"], id, hashesOf(adm), group.OpLeave, person{}, "", 3)
	late := signAt(t, p["ben"], id, hashesOf(adm), group.OpRemove, p["dan"], "", 4)
	lateLeave := signAt(t, p["ben"], id, hashesOf(late), group.OpLeave, person{}, "", 5)
	// ann, senior, removes ben as he removes cat: his removal crossed
	// his own removal, no leave of his.
	annRm := signAt(t, p["ann"], id, hashesOf(adm), group.OpRemove, p["ben"], "", 6)
	// Resolved: ann removes cat again, and adds her again.
	annAgain := signAt(t, p["ann"], id, hashesOf(left, again), group.OpRemove, p["cat"], "", 7)
	annAdd := signAt(t, p["ann"], id, hashesOf(annAgain), group.OpAdd, p["cat"], "", 8)
	// The creator's own: ann (with ben an admin still) removes dan and
	// leaves; her key signs a second leave before the removal.
	annRmDan := signAt(t, p["ann"], id, hashesOf(adm), group.OpRemove, p["dan"], "", 9)
	annLeft := signAt(t, p["ann"], id, hashesOf(annRmDan), group.OpLeave, person{}, "", 10)
	annAgainLeave := signAt(t, p["ann"], id, hashesOf(adm), group.OpLeave, person{}, "", 11)

	for _, tc := range []struct {
		name    string
		changes []*group.Change
		want    []group.Undone
	}{
		{"removal, leave", []*group.Change{rm, left}, nil},
		{"a removal signed beside the leave, alone", []*group.Change{plainLeave, late}, nil},
		{"removal, leave, a second leave before the removal", []*group.Change{rm, left, again},
			[]group.Undone{{Removal: rm.Hash(), Target: p["cat"].id, Author: p["ben"].id, Time: rm.Time}}},
		{"the second leave first", []*group.Change{again, rm, left},
			[]group.Undone{{Removal: rm.Hash(), Target: p["cat"].id, Author: p["ben"].id, Time: rm.Time}}},
		{"removal, rename, leave, a second leave before them", []*group.Change{rm, rn, leftAfterRename, again},
			[]group.Undone{{Removal: rm.Hash(), Target: p["cat"].id, Author: p["ben"].id, Time: rm.Time}}},
		{"a removal signed beside the leave, with a leave on it", []*group.Change{plainLeave, late, lateLeave},
			[]group.Undone{{Removal: late.Hash(), Target: p["dan"].id, Author: p["ben"].id, Time: late.Time}}},
		{"the remover removed by a senior as it removed", []*group.Change{rm, annRm}, nil},
		{"removed again since", []*group.Change{rm, left, again, annAgain}, nil},
		{"removed again and added again since", []*group.Change{rm, left, again, annAgain, annAdd}, nil},
		{"the creator's removal, leave, second leave", []*group.Change{annRmDan, annLeft, annAgainLeave},
			[]group.Undone{{Removal: annRmDan.Hash(), Target: p["dan"].id, Author: p["ann"].id, Time: annRmDan.Time}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// In every order the changes can come in.
			for _, order := range permutations(tc.changes) {
				l := deal(t, create, append([]*group.Change{adm}, order...))
				s, undone := l.State(), group.UndoneRemovals(l)
				if !slices.Equal(undone, tc.want) {
					t.Fatalf("in the order %v: UndoneRemovals = %v, want %v (members %v)", opsOf(order), undone, tc.want, names(p, s.Members))
				}
				for _, u := range undone {
					if !s.IsMember(u.Target) {
						t.Errorf("%v is named undone, but its target is no member", u)
					}
				}
				// Restored from its changes, or sent them having only
				// the second leave, a log names the same.
				r, err := group.Restore(l.Changes())
				if err != nil {
					t.Fatal(err)
				}
				sent := deal(t, create, []*group.Change{adm, again})
				for _, raw := range l.Changes() {
					if c, err := group.Parse(raw); err != nil || !dealt(sent.Add(c)) {
						t.Fatalf("send %v: %v", c, err)
					}
				}
				if got := group.UndoneRemovals(r); !slices.Equal(got, tc.want) {
					t.Fatalf("in the order %v, restored: UndoneRemovals = %v, want %v", opsOf(order), got, tc.want)
				}
				if got := group.UndoneRemovals(sent); !slices.Equal(got, tc.want) && slices.Contains(tc.changes, again) {
					t.Fatalf("in the order %v, sent to a log with the second leave: UndoneRemovals = %v, want %v", opsOf(order), got, tc.want)
				}
			}
		})
	}
}

// opsOf names the changes' operations, in order.
func opsOf(cs []*group.Change) []group.Op {
	var out []group.Op
	for _, c := range cs {
		out = append(out, c.Op)
	}
	return out
}

// BenchmarkUndoneFlood: a departed admin's key signs 128 removals of
// members, each on the version before its leave with a leave of its own
// on it (every one a removal in doubt, by UndoneRemovals' rule): what
// UndoneRemovals and Changes cost on that log, which the node reads with each
// frame.
func BenchmarkUndoneFlood(b *testing.B) {
	p := people(b, "ann", "ben", "cat", "dan")
	_, l := newGroup(b, p["ann"], p["ben"], p["cat"], p["dan"])
	adm := propose(b, l, p["ann"], group.OpAdmin, p["ben"], "")
	propose(b, l, p["ben"], group.OpLeave, person{}, "")
	for i := range 128 {
		target := p["cat"]
		if i%2 == 1 {
			target = p["dan"]
		}
		rm, err := group.SignForTest(p["ben"].key, l.ID(), hashesOf(adm), group.OpRemove, target.id, "", t0.Add(time.Duration(i)*time.Second))
		if err != nil {
			b.Fatal(err)
		}
		lv, err := group.SignForTest(p["ben"].key, l.ID(), hashesOf(rm), group.OpLeave, "", "", t0.Add(time.Duration(i)*time.Second))
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range []*group.Change{rm, lv} {
			if err := l.Add(c); err != nil && !errors.Is(err, group.ErrNotMember) {
				b.Fatal(err)
			}
		}
	}
	if u := group.UndoneRemovals(l); len(u) == 0 {
		b.Fatal("no removal in doubt")
	}
	b.ResetTimer()
	for range b.N {
		_ = group.UndoneRemovals(l)
		_ = l.Changes()
	}
	b.ReportMetric(float64(len(group.UndoneRemovals(l))), "undone")
	b.ReportMetric(float64(len(l.Changes())), "changes")
}
