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
)

// floodShape is how a removed admin lays out its changes on the version
// before its removal: each on the last (a chain), each on that version
// (siblings), or pairs of siblings each on the last pair's first (a
// fork at every step).
type floodShape int

const (
	floodChain floodShape = iota
	floodSiblings
	floodForks
)

func (s floodShape) String() string {
	return [...]string{"chain", "siblings", "forks"}[s]
}

// floodCase is newAdminRemovalFlood's game, with its people and the
// version cat's renames build on.
type floodCase struct {
	p                 map[string]person
	create, rm, danRm *group.Change
	cs                []*group.Change
	base              []group.Hash
}

// newAdminRemovalFlood: ann creates the group; dan, ben and then cat are
// made admins; ben removes cat; cat, removed, signs n renames on the
// version before its removal, laid out as shape. With senior, dan removes
// ben on that version too: ben's removal of cat then takes no effect, and
// cat's renames are an admin's. cs are the changes before ben's removal
// followed by cat's renames.
func newAdminRemovalFlood(t testing.TB, shape floodShape, n int, senior bool) floodCase {
	t.Helper()
	p := people(t, "ann", "ben", "cat", "dan")
	create, l := newGroup(t, p["ann"], p["ben"], p["cat"], p["dan"])
	cs := []*group.Change{
		propose(t, l, p["ann"], group.OpAdmin, p["dan"], ""),
		propose(t, l, p["ann"], group.OpAdmin, p["ben"], ""),
		propose(t, l, p["ann"], group.OpAdmin, p["cat"], ""),
	}
	base := l.Heads()
	rm := propose(t, l, p["ben"], group.OpRemove, p["cat"], "")
	var danRm *group.Change
	if senior {
		var err error
		if danRm, err = group.SignForTest(p["dan"].key, l.ID(), base, group.OpRemove, p["ben"].id, "", t0.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	cs = append(cs, floodRenames(t, p["cat"].key, l.ID(), base, shape, n, t0.Add(10*time.Millisecond))...)
	return floodCase{p, create, rm, danRm, cs, base}
}

// floodRenames are n renames signed by key on heads, laid out as shape,
// from at on.
func floodRenames(t testing.TB, key ed25519.PrivateKey, id group.ID, heads []group.Hash, shape floodShape, n int, at time.Time) []*group.Change {
	t.Helper()
	var out []*group.Change
	for i := range n {
		c, err := group.SignForTest(key, id, heads, group.OpRename, "", fmt.Sprint("flood ", at.UnixNano(), " ", i), at.Add(time.Duration(i)*time.Microsecond))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
		switch {
		case shape == floodChain, shape == floodForks && i%2 == 1:
			heads = []group.Hash{c.Hash()}
		}
	}
	return out
}

// TestAdminRemovalFloodIsBounded: an admin removed by another admin (not
// the creator) signs hundreds of renames on the version before its
// removal, and a member in league relays them. Each crossed the removal
// and took no effect, and every one stayed in the log: a removed admin
// filled it (from 5 changes to 205 here; to MaxChanges, and the group
// had to be made anew). The log now keeps at most MaxVouched of them
// (a chain; siblings and forks, which an honest client never signs,
// one), whatever order they come in.
func TestAdminRemovalFloodIsBounded(t *testing.T) {
	for _, shape := range []floodShape{floodChain, floodSiblings, floodForks} {
		t.Run(shape.String(), func(t *testing.T) {
			// 200: more than MaxPending would be held for the version
			// they build on in some orders, and some forgotten.
			f := newAdminRemovalFlood(t, shape, 200, false)
			create, rm, cs := f.create, f.rm, f.cs
			first := append(append(slices.Clone(cs[:3]), rm), cs[3:]...)
			last := append(slices.Clone(cs), rm)
			var want []group.Hash
			check := func(m *group.Log) {
				t.Helper()
				if got := len(m.Changes()); got > 6+group.MaxVouched {
					t.Fatalf("the log holds %d changes: the removed admin's flood stayed", got)
				}
				if m.Name() != "team" || m.IsMember(cs[3].Author) {
					t.Fatalf("name %q, cat a member %v: a change of the flood took effect", m.Name(), m.IsMember(cs[3].Author))
				}
				if want == nil {
					want = m.Heads()
				} else if !slices.Equal(m.Heads(), want) {
					t.Fatalf("heads %x, another order had %x", m.Heads(), want)
				}
			}
			m := deal(t, create, first)
			check(m)
			// A change kept out says why.
			why := "crossed its author's removal beside another change of its author's"
			if shape == floodChain {
				why = "builds on more than" // past MaxVouched: poisoned
			}
			out := cs[slices.IndexFunc(cs, func(c *group.Change) bool { return !m.Has(c.Hash()) })]
			if err := m.Effect(out.Hash()); err == nil || !strings.Contains(err.Error(), why) {
				t.Fatalf("a change of the flood kept out: %v, want %q", err, why)
			}
			check(deal(t, create, last))
			eachOrder(t, create, append(cs, rm), 5, 11, check)
		})
	}
}

// TestAdminFloodStandsWhenItsRemovalFails: as TestAdminRemovalFloodIsBounded,
// with dan, ben's senior, removing ben on the same version: ben's removal
// of cat takes no effect, cat is an admin still, and its renames (40
// siblings, 30 in forks, a chain of 14: none of them more than
// StaleAfter deep, or dan's removal, dealt after them, would be refused
// as stale) stand in every order, wherever dan's removal comes.
func TestAdminFloodStandsWhenItsRemovalFails(t *testing.T) {
	for shape, n := range map[floodShape]int{floodChain: 14, floodSiblings: 40, floodForks: 30} {
		t.Run(shape.String(), func(t *testing.T) {
			f := newAdminRemovalFlood(t, shape, n, true)
			create, rm, danRm, cs := f.create, f.rm, f.danRm, f.cs
			all := append(append(slices.Clone(cs), rm), danRm)
			check := func(m *group.Log) {
				t.Helper()
				if got := len(m.Changes()); got != 1+len(all) {
					t.Fatalf("the log holds %d changes, want %d", got, 1+len(all))
				}
				s := m.State()
				if s.IsAdmin(rm.Author) || !s.IsAdmin(cs[3].Author) {
					t.Fatalf("ben an admin %v, cat %v", s.IsAdmin(rm.Author), s.IsAdmin(cs[3].Author))
				}
			}
			check(deal(t, create, all))
			last := append(append(slices.Clone(cs), rm), danRm)
			slices.Reverse(last[3:])
			check(deal(t, create, last))
			eachOrder(t, create, all, 5, 12, check)
		})
	}
}

// TestCrossingAddStandsOnceItsRemovalFails: cat removes ben, and ben,
// crossing it, adds eve, who leaves on that add. While cat's removal
// takes effect, ben's add is void, eve a stooge, and her leave kept out;
// once dan, cat's senior, removes cat crossing it, cat's removal fails,
// ben's add stands, and eve's leave comes back: in every order, the log
// holds every change (a change kept out on a removal that no longer
// takes effect is looked at again: lostLine).
func TestCrossingAddStandsOnceItsRemovalFails(t *testing.T) {
	p := people(t, "ann", "ben", "cat", "dan", "eve")
	create, l := newGroup(t, p["ann"], p["ben"], p["cat"], p["dan"])
	cs := []*group.Change{
		propose(t, l, p["ann"], group.OpAdmin, p["dan"], ""),
		propose(t, l, p["ann"], group.OpAdmin, p["cat"], ""),
		propose(t, l, p["ann"], group.OpAdmin, p["ben"], ""),
	}
	base := l.Heads()
	add := signAt(t, p["ben"], l.ID(), base, group.OpAdd, p["eve"], "", 1)
	cs = append(cs,
		signAt(t, p["cat"], l.ID(), base, group.OpRemove, p["ben"], "", 2),
		add,
		signAt(t, p["eve"], l.ID(), hashesOf(add), group.OpLeave, person{}, "", 3),
		signAt(t, p["dan"], l.ID(), base, group.OpRemove, p["cat"], "", 4),
	)
	var want []group.Hash
	eachOrder(t, create, cs, 60, 13, func(m *group.Log) {
		if len(m.Changes()) != 1+len(cs) || !m.IsMember(p["ben"].id) || m.IsMember(p["cat"].id) || m.IsMember(p["eve"].id) {
			t.Fatalf("%d changes (want %d), ben a member %v, cat %v, eve %v", len(m.Changes()), 1+len(cs), m.IsMember(p["ben"].id), m.IsMember(p["cat"].id), m.IsMember(p["eve"].id))
		}
		if want == nil {
			want = m.Heads()
		} else if !slices.Equal(m.Heads(), want) {
			t.Fatalf("heads %x, another order had %x", m.Heads(), want)
		}
	})
}

// TestRemovedAdminsFloodAgesNothing: dan, an admin, renames the group
// on the version before ben's removal of cat, and cat, removed, signs
// a chain of 40 renames there. The chain takes no effect; before, the
// 17 renames of it the log keeps made dan's rename, where it came after
// them, more than StaleAfter behind the newest change: refused as stale
// there, taken where it came first (the converge sweep, seed 518, once
// its game had floods). Changes that take no effect age nothing now:
// dan's rename is taken in every order.
func TestRemovedAdminsFloodAgesNothing(t *testing.T) {
	f := newAdminRemovalFlood(t, floodChain, 40, false)
	l := replay(t, f.create, f.cs[:3]...)
	rn, err := group.SignForTest(f.p["dan"].key, l.ID(), f.base, group.OpRename, "", "dan's", t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for name, order := range map[string][]*group.Change{
		"rename first": append(append(slices.Clone(f.cs[:3]), f.rm, rn), f.cs[3:]...),
		"rename last":  append(append(slices.Clone(f.cs), f.rm), rn),
	} {
		m := deal(t, f.create, order)
		if !m.Has(rn.Hash()) || m.Name() != "dan's" {
			t.Errorf("%s: dan's rename in the log %v (%v), name %q", name, m.Has(rn.Hash()), m.Effect(rn.Hash()), m.Name())
		}
	}
}

// BenchmarkAdminRemovalFlood: an admin removed by another admin signs
// 1,000 renames on the version before its removal, laid out as shape,
// and a member in league relays them after the removal. What each costs
// a member, signatures left out (the changes are parsed before), and
// the changes the log holds after.
//
//	go test -run '^$' -bench AdminRemovalFlood -benchtime 3x ./group/
func BenchmarkAdminRemovalFlood(b *testing.B) {
	for _, shape := range []floodShape{floodChain, floodSiblings, floodForks} {
		b.Run("shape="+shape.String(), func(b *testing.B) {
			f := newAdminRemovalFlood(b, shape, 1000, false)
			create, rm, cs := f.create, f.rm, f.cs
			for i, c := range cs {
				cs[i] = reparse(b, c)
			}
			var held int
			for b.Loop() {
				b.StopTimer()
				m := replay(b, create, append(slices.Clone(cs[:3]), rm)...)
				b.StartTimer()
				for _, c := range cs[3:] {
					if err := m.Add(c); err != nil && !errors.Is(err, group.ErrNotMember) {
						b.Fatal(err)
					}
				}
				held = len(m.Changes())
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*(len(cs)-3)), "µs/change")
			b.ReportMetric(float64(held), "changes")
		})
	}
}

// TestRestoreDropsAnAdminFlood: a log stored before the flood's bounds,
// holding a removed admin's 200 renames crossing its removal (a chain,
// siblings or forks), restores without them but for its line.
func TestRestoreDropsAnAdminFlood(t *testing.T) {
	for _, shape := range []floodShape{floodChain, floodSiblings, floodForks} {
		f := newAdminRemovalFlood(t, shape, 200, false)
		raws := [][]byte{f.create.Bytes()}
		for _, c := range append(append(slices.Clone(f.cs[:3]), f.rm), f.cs[3:]...) {
			raws = append(raws, c.Bytes())
		}
		r, err := group.Restore(raws)
		if err != nil {
			t.Fatalf("%s: %v", shape, err)
		}
		want := deal(t, f.create, append(append(slices.Clone(f.cs[:3]), f.rm), f.cs[3:]...))
		if !slices.Equal(r.Heads(), want.Heads()) || len(r.Changes()) != len(want.Changes()) || len(r.Changes()) > 6+group.MaxVouched {
			t.Fatalf("%s: restored %d changes, %d heads; dealt, %d and %d", shape, len(r.Changes()), len(r.Heads()), len(want.Changes()), len(want.Heads()))
		}
	}
}
