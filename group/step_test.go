package group_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/certchat/certchat/group"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestOneStepAddIsTheFold: a change that builds on every head is added in
// one step (Log.Add's extendsAll), not by folding the whole log again;
// after each change, the membership and every change's outcome must be
// what the fold of all the changes computes. Random changes by random
// people (most refused at Propose and left out), admins made now and
// then, and every few changes two admins' changes that cross (the second
// does not build on every head, so it is folded), on a log and on a
// member who gets the changes in the order of the log and in reverse.
func TestOneStepAddIsTheFold(t *testing.T) {
	p := people(t, "ann", "ben", "cat", "dan", "eve", "fay")
	all := []person{p["ann"], p["ben"], p["cat"], p["dan"], p["eve"], p["fay"]}
	create, l := newGroup(t, p["ann"], p["ben"], p["cat"])
	rng := rand.New(rand.NewPCG(3, 4))
	ops := []group.Op{group.OpAdd, group.OpRemove, group.OpRename, group.OpAdmin, group.OpLeave}
	check := func(l *group.Log, what string) {
		t.Helper()
		if err := l.CheckFoldForTest(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	added, crossed := 0, 0
	for i := 0; added < 180; i++ {
		who, target, op := all[rng.IntN(len(all))], all[rng.IntN(len(all))], ops[rng.IntN(len(ops))]
		if op == group.OpLeave && rng.IntN(4) != 0 {
			continue // a group that keeps its members keeps changing
		}
		c, err := l.Propose(who.key, op, target.id, fmt.Sprint("name ", i), t0.Add(time.Duration(i)*time.Millisecond))
		if op == group.OpRename || op == group.OpLeave {
			c, err = l.Propose(who.key, op, "", fmt.Sprint("name ", i), t0.Add(time.Duration(i)*time.Millisecond))
		}
		if err != nil {
			continue
		}
		if i%7 == 0 { // an admin's change crossing c
			s := l.State()
			other := s.Admins[rng.IntN(len(s.Admins))]
			var key person
			for _, q := range all {
				if q.id == other {
					key = q
				}
			}
			x, err := l.Propose(key.key, group.OpRename, "", fmt.Sprint("crossing ", i), t0.Add(time.Duration(i)*time.Millisecond+1))
			if err == nil {
				if err := l.Add(c); err != nil {
					t.Fatal(err)
				}
				check(l, fmt.Sprint("change ", i))
				c = x
				crossed++
			}
		}
		if err := l.Add(c); err != nil {
			t.Fatal(err)
		}
		added++
		check(l, fmt.Sprint("change ", i))
		if len(l.State().Members) < 3 {
			for _, q := range all[1:] {
				if c, err := l.Propose(p["ann"].key, group.OpAdd, q.id, "", t0.Add(time.Duration(i)*time.Millisecond)); err == nil {
					if err := l.Add(c); err != nil {
						t.Fatal(err)
					}
					check(l, "an add to keep the group going")
				}
			}
		}
	}
	if crossed == 0 {
		t.Fatal("no changes crossed")
	}
	cs := l.Changes0()[1:]
	for _, order := range []string{"in the log's order", "in reverse"} {
		m, err := group.New(create)
		if err != nil {
			t.Fatal(err)
		}
		for i := range cs {
			c := cs[i]
			if order == "in reverse" {
				c = cs[len(cs)-1-i]
			}
			if err := m.Add(reparse(t, c)); err != nil && !errors.Is(err, group.ErrMissingParents) {
				t.Fatalf("%s: %v", order, err)
			}
			check(m, order)
		}
		if s, want := m.State(), l.State(); s.Version != want.Version || s.Name != want.Name || len(s.Members) != len(want.Members) {
			t.Fatalf("%s: v%d %q %d members, want v%d %q %d", order, s.Version, s.Name, len(s.Members), want.Version, want.Name, len(want.Members))
		}
	}
	t.Logf("%d changes, %d crossing; v%d, %d members, %d admins", len(cs), crossed, l.State().Version, len(l.State().Members), len(l.State().Admins))
}

// BenchmarkRestore: restoring a log of MaxChanges changes that never
// crossed (an admin renaming the group), as a node does for each group
// at start and a new member does with the frames of a long log; with
// the one-step add and without it (each change folds the whole log).
//
//	go test -run '^$' -bench Restore -benchtime 1x ./group/
func BenchmarkRestore(b *testing.B) {
	p := people(b, "ann", "ben")
	_, l := newGroup(b, p["ann"], p["ben"])
	for i := range group.MaxChanges - 1 {
		c, err := l.Propose(p["ann"].key, group.OpRename, "", fmt.Sprint("name ", i), t0.Add(time.Duration(i)*time.Millisecond))
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Add(c); err != nil {
			b.Fatal(err)
		}
	}
	raws := l.Changes()
	for _, step := range []bool{true, false} {
		b.Run(fmt.Sprint("step=", step), func(b *testing.B) {
			group.SetStepForTest(step)
			defer group.SetStepForTest(true)
			for b.Loop() {
				if _, err := group.Restore(raws); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkStoogeFlood: an admin removed by another admin builds, on
// its copy from before the removal, stooges: k times an add of a key of
// its, an admin change making it an admin, its removal of a member and
// an add of that member back, each on the last, as a member in league
// would relay them. Until December 2026 the log took all 4k (none takes
// effect, each folded the log; each stooge was an author of a crossing
// removal: deciding each with a run of the fold of its own would have
// made every fold cost k runs). Now the removed admin's adds are void
// while its removal takes effect (PROTOCOL §14.3, "A removal by another
// admin"), so each key is a stooge whose removal is kept out, and its
// maker's changes off the line with it: what refusing them costs.
func BenchmarkStoogeFlood(b *testing.B) {
	for _, k := range []int{50, 200} {
		b.Run(fmt.Sprint("stooges=", k), func(b *testing.B) {
			p := people(b, "ann", "ben", "cat", "dan")
			create, l := newGroup(b, p["ann"], p["ben"], p["cat"], p["dan"])
			admin := []*group.Change{propose(b, l, p["ann"], group.OpAdmin, p["dan"], ""), propose(b, l, p["ann"], group.OpAdmin, p["ben"], "")}
			before := replay(b, create, admin...)
			// Removed by dan, not the creator: changes beside a removal
			// by the creator are kept out of the log (Log.besideRemoval).
			remove := propose(b, l, p["dan"], group.OpRemove, p["ben"], "")
			var chain []*group.Change
			for i := range k {
				x := newPerson(b, fmt.Sprint("x", i))
				chain = append(chain,
					propose(b, before, p["ben"], group.OpAdd, x, ""),
					propose(b, before, p["ben"], group.OpAdmin, x, ""),
					propose(b, before, x, group.OpRemove, p["cat"], ""),
					propose(b, before, p["ben"], group.OpAdd, p["cat"], ""))
			}
			b.ResetTimer()
			for range b.N {
				m := replay(b, create, append(slices.Clone(admin), remove)...)
				for _, c := range chain {
					if err := m.Add(c); err != nil && !errors.Is(err, group.ErrNotMember) {
						b.Fatal(err)
					}
				}
				if n := len(m.Changes()); n > 4+group.MaxVouched+1 {
					b.Fatalf("the log holds %d changes", n)
				}
				if s := m.State(); s.IsMember(p["ben"].id) || !s.IsMember(p["cat"].id) {
					b.Fatalf("members %v", names(p, s.Members))
				}
			}
		})
	}
}

// BenchmarkHeldFloodOnAHead: a member (or one in league) sends changes
// on the head of a log of 3,000 and on a change nobody has, 1,000 of
// them, one author: past MaxPending held, each pushes out the author's
// oldest (giveWay), which built on the head and may have vouched for it,
// so the log looks at its heads again (prune). What a flood costs a
// change, signature checks left out (the changes are parsed before).
//
//	go test -run '^$' -bench HeldFloodOnAHead -benchtime 3x ./group/
func BenchmarkHeldFloodOnAHead(b *testing.B) {
	p := people(b, "ann", "dan")
	create, l := newGroup(b, p["ann"], p["dan"])
	for i := range 3000 {
		propose(b, l, p["ann"], group.OpRename, person{}, fmt.Sprint("name ", i))
	}
	base := l.Changes0()[1:]
	root, err := group.SignForTest(p["dan"].key, l.ID(), []group.Hash{{0xee}}, group.OpRename, "", "root", t0)
	if err != nil {
		b.Fatal(err)
	}
	var flood []*group.Change
	for i := range 1000 {
		c, err := group.SignForTest(p["dan"].key, l.ID(), []group.Hash{root.Hash(), l.Heads()[0]}, group.OpRename, "", fmt.Sprint("flood ", i), t0)
		if err != nil {
			b.Fatal(err)
		}
		flood = append(flood, reparse(b, c))
	}
	for b.Loop() {
		b.StopTimer()
		m := replay(b, create, base...)
		_ = m.Add(reparse(b, root)) // held for ever
		b.StartTimer()
		for _, c := range flood {
			_ = m.Add(c) // held, or ErrFull once it gives way itself
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(flood)), "µs/change")
}

// BenchmarkChainCrossingARemoval: an admin removed by another admin
// (not the creator) signs a chain of changes on a version from before
// its removal, each on the last, which a member in league relays
// (PROTOCOL §14.3, "A removal by another admin"): renames, or an add
// and a removal of the same key by turns. The first MaxVouched+1 are
// checked against the membership their ancestors describe
// (admissible), cross the removal, which stands, and stay; the rest are
// poisoned and kept out. What a change of a chain of 1,000 costs a
// member, signatures left out (the changes are parsed before).
//
//	go test -run '^$' -bench ChainCrossingARemoval -benchtime 3x ./group/
func BenchmarkChainCrossingARemoval(b *testing.B) {
	for _, op := range []group.Op{group.OpRename, group.OpAdd} {
		b.Run(fmt.Sprint("op=", op), func(b *testing.B) {
			p := people(b, "ann", "ben", "cat", "dan", "key")
			create, l := newGroup(b, p["ann"], p["ben"], p["cat"], p["dan"])
			propose(b, l, p["ann"], group.OpAdmin, p["ben"], "")
			propose(b, l, p["ben"], group.OpAdmin, p["cat"], "")
			before := l.Heads()
			propose(b, l, p["ben"], group.OpRemove, p["cat"], "")
			base := l.Changes0()[1:]
			var chain []*group.Change
			tip := before
			for i := range 1000 {
				op, about, name := op, peer.ID(""), fmt.Sprint("cat's ", i)
				switch {
				case op == group.OpRename:
					about = ""
				case i%2 == 0:
					about, name = p["key"].id, ""
				default:
					op, about, name = group.OpRemove, p["key"].id, ""
				}
				c, err := group.SignForTest(p["cat"].key, l.ID(), tip, op, about, name, t0.Add(time.Duration(i)*time.Millisecond))
				if err != nil {
					b.Fatal(err)
				}
				tip = []group.Hash{c.Hash()}
				chain = append(chain, reparse(b, c))
			}
			for b.Loop() {
				b.StopTimer()
				m := replay(b, create, base...)
				b.StartTimer()
				for _, c := range chain {
					// Past MaxVouched the chain is poisoned, and kept out
					// (TestAdminRemovalFloodIsBounded).
					if err := m.Add(c); err != nil && !errors.Is(err, group.ErrNotMember) {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(chain)), "µs/change")
		})
	}
}

// BenchmarkPoisonedAside: ann makes cat an admin and removes her; cat
// signs 17 renames, each on the last, on the version before (void: more
// than MaxVouched); then k changes are set aside: dan's leaves on their
// tip, each poisoned ("poisoned"), or eve's leaves on the head, each
// beside the first by hash ("leaves"). What each of 300 renames of
// ann's then costs: the log looks at the verdicts found again once a
// change was dropped or brought back (unsettled).
//
//	go test -run '^$' -bench PoisonedAside -benchtime 3x ./group/
func BenchmarkPoisonedAside(b *testing.B) {
	for _, bc := range []struct {
		kind string
		k    int
	}{{"poisoned", 0}, {"poisoned", 200}, {"leaves", 200}} {
		b.Run(fmt.Sprint(bc.kind, "=", bc.k), func(b *testing.B) {
			p := people(b, "ann", "ben", "cat", "dan", "eve")
			create, l := newGroup(b, p["ann"], p["ben"], p["cat"], p["dan"], p["eve"])
			admin := propose(b, l, p["ann"], group.OpAdmin, p["cat"], "")
			tip := l.Heads()
			removal := propose(b, l, p["ann"], group.OpRemove, p["cat"], "")
			var flood []*group.Change
			sign := func(who person, heads []group.Hash, op group.Op, name string, i int) *group.Change {
				c, err := group.SignForTest(who.key, l.ID(), heads, op, "", name, t0.Add(time.Duration(i+1)*time.Second))
				if err != nil {
					b.Fatal(err)
				}
				flood = append(flood, reparse(b, c))
				return c
			}
			for i := range group.MaxVouched + 1 {
				tip = []group.Hash{sign(p["cat"], tip, group.OpRename, fmt.Sprint("cat ", i), i).Hash()}
			}
			for i := range bc.k {
				if bc.kind == "poisoned" {
					sign(p["dan"], tip, group.OpLeave, "", 100+i)
				} else {
					sign(p["eve"], l.Heads(), group.OpLeave, "", 100+i)
				}
			}
			var renames []*group.Change
			for i := range 300 {
				renames = append(renames, reparse(b, propose(b, l, p["ann"], group.OpRename, person{}, fmt.Sprint("ann ", i))))
			}
			for b.Loop() {
				b.StopTimer()
				m := replay(b, create, admin, removal)
				for _, c := range flood {
					_ = m.Add(c) // kept out: void, poisoned, or beside a leave
				}
				b.StartTimer()
				for _, c := range renames {
					if err := m.Add(c); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(renames)), "µs/change")
		})
	}
}
