package group_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/certchat/certchat/group"
)

// endBy signs who's end of its membership on parents, i seconds after
// t0: a leave, or a removal of itself.
type endBy func(who person, parents []group.Hash, i int) *group.Change

// outcome says what a log made of a game: the membership, the name, and
// which of the game's changes it holds.
func outcome(l *group.Log, ps map[string]person, game []*group.Change) string {
	s := l.State()
	var held []string
	for i, c := range game {
		if l.Has(c.Hash()) {
			held = append(held, fmt.Sprint(i))
		}
	}
	return fmt.Sprintf("members %v, admins %v, name %q, holds %s",
		names(ps, s.Members), names(ps, s.Admins), s.Name, strings.Join(held, " "))
}

// positions are the places in game of the changes of order.
func positions(game, order []*group.Change) []int {
	var out []int
	for _, c := range order {
		out = append(out, slices.Index(game, c))
	}
	return out
}

// play gives the changes to a fresh log in order, as deal does, but
// takes any refusal as part of the game: a change refused is one the log
// does not hold.
func play(t *testing.T, create *group.Change, order []*group.Change) *group.Log {
	t.Helper()
	l, err := group.New(create)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // twice: a change held for its parents is asked for again
		for _, c := range order {
			if !l.Has(c.Hash()) {
				_ = l.Add(reparse(t, c)) // a refusal shows in outcome
			}
		}
	}
	return l
}

// TestSelfRemovalIsALeave: a removal of its own author is its author's
// leave, in every rule: which changes are admitted, what the fold makes
// of them, and what the log keeps out. Each game is played in every order
// with the end signed as a leave and as a removal of oneself, and must
// come out the same, as the table says. Before (found 2026-12-07 by the
// converge sweep, seed 9562), a removal of oneself took effect as its
// author's end and was no end anywhere else: the creator's rename beside
// it stayed in the log, the only admin could not remove herself where she
// could leave, a member no admin could not at all, and (the attack,
// TestLapsedRemovalEndsNobody) a creator that removed itself kept its key's
// removals beside it from lapsing.
func TestSelfRemovalIsALeave(t *testing.T) {
	leave := func(t *testing.T, id group.ID) endBy {
		return func(who person, parents []group.Hash, i int) *group.Change {
			return signAt(t, who, id, parents, group.OpLeave, person{}, "", i)
		}
	}
	removeSelf := func(t *testing.T, id group.ID) endBy {
		return func(who person, parents []group.Hash, i int) *group.Change {
			return signAt(t, who, id, parents, group.OpRemove, who, "", i)
		}
	}
	for _, tc := range []struct {
		name string
		// game signs the changes on l, its first ones proposed there
		// (fixed), the rest (dealt in every order) with end.
		game func(t *testing.T, p map[string]person, l *group.Log, end endBy) (fixed, dealt []*group.Change)
		want string // for the changes fixed then dealt, numbered from 0
	}{
		{"the creator renames beside her end", func(t *testing.T, p map[string]person, l *group.Log, end endBy) ([]*group.Change, []*group.Change) {
			adm := propose(t, l, p["ann"], group.OpAdmin, p["ben"], "")
			return []*group.Change{adm}, []*group.Change{
				end(p["ann"], hashesOf(adm), 1),
				signAt(t, p["ann"], l.ID(), hashesOf(adm), group.OpRename, person{}, "ann's", 2),
			}
		}, `members [ben cat], admins [ben], name "team", holds 0 1`},
		{"the only admin ends, members left", func(t *testing.T, p map[string]person, l *group.Log, end endBy) ([]*group.Change, []*group.Change) {
			rn := propose(t, l, p["ann"], group.OpRename, person{}, "ann's")
			return []*group.Change{rn}, []*group.Change{end(p["ann"], hashesOf(rn), 1)}
		}, `members [ben cat], admins [ben], name "ann's", holds 0 1`},
		{"a member who is no admin ends", func(t *testing.T, p map[string]person, l *group.Log, end endBy) ([]*group.Change, []*group.Change) {
			return nil, []*group.Change{end(p["cat"], l.Heads(), 1)}
		}, `members [ann ben], admins [ann], name "team", holds 0`},
		{"an admin ends crossing her removal and renames beside both", func(t *testing.T, p map[string]person, l *group.Log, end endBy) ([]*group.Change, []*group.Change) {
			adm := propose(t, l, p["ann"], group.OpAdmin, p["ben"], "")
			return []*group.Change{adm}, []*group.Change{
				signAt(t, p["ann"], l.ID(), hashesOf(adm), group.OpRemove, p["ben"], "", 1),
				end(p["ben"], hashesOf(adm), 2),
				signAt(t, p["ben"], l.ID(), hashesOf(adm), group.OpRename, person{}, "ben's", 3),
			}
		}, `members [ann cat], admins [ann], name "team", holds 0 1`},
		{"an admin ends crossing her removal by another admin, and renames beside both", func(t *testing.T, p map[string]person, l *group.Log, end endBy) ([]*group.Change, []*group.Change) {
			adm := propose(t, l, p["ann"], group.OpAdmin, p["ben"], "")
			adm2 := propose(t, l, p["ben"], group.OpAdmin, p["cat"], "")
			e := end(p["cat"], hashesOf(adm2), 2)
			return []*group.Change{adm, adm2}, []*group.Change{
				signAt(t, p["ben"], l.ID(), hashesOf(adm2), group.OpRemove, p["cat"], "", 1),
				e,
				signAt(t, p["cat"], l.ID(), hashesOf(adm2), group.OpRename, person{}, "cat's", 3),
			}
		}, `members [ann ben], admins [ann ben], name "team", holds 0 1 2 3`},
		{"an admin removed by another admin ends on a change beside another crossing it", func(t *testing.T, p map[string]person, l *group.Log, end endBy) ([]*group.Change, []*group.Change) {
			adm := propose(t, l, p["ann"], group.OpAdmin, p["ben"], "")
			adm2 := propose(t, l, p["ben"], group.OpAdmin, p["cat"], "")
			rn := propose(t, l, p["ann"], group.OpRename, person{}, "ann's")
			x := signAt(t, p["cat"], l.ID(), hashesOf(rn), group.OpRename, person{}, "cat's x", 3)
			return []*group.Change{adm, adm2, rn}, []*group.Change{
				signAt(t, p["ben"], l.ID(), hashesOf(adm2), group.OpRemove, p["cat"], "", 1),
				signAt(t, p["cat"], l.ID(), hashesOf(adm2), group.OpRename, person{}, "cat's y", 2),
				x,
				end(p["cat"], hashesOf(x), 4),
			}
		}, `members [ann ben], admins [ann ben], name "ann's", holds 0 1 2 3 5 6`},
		{"the creator ends, then her key removes an admin on the version before", func(t *testing.T, p map[string]person, l *group.Log, end endBy) ([]*group.Change, []*group.Change) {
			adm := propose(t, l, p["ann"], group.OpAdmin, p["ben"], "")
			rn := propose(t, l, p["ben"], group.OpRename, person{}, "ben's")
			return []*group.Change{adm, rn}, []*group.Change{
				end(p["ann"], hashesOf(rn), 1),
				signAt(t, p["ann"], l.ID(), hashesOf(adm), group.OpRemove, p["ben"], "", 2),
			}
		}, `members [ben cat], admins [ben], name "ben's", holds 0 1 2`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := people(t, "ann", "ben", "cat")
			for _, form := range []struct {
				name string
				end  func(*testing.T, group.ID) endBy
			}{{"leave", leave}, {"removal of oneself", removeSelf}} {
				create, l := newGroup(t, p["ann"], p["ben"], p["cat"])
				fixed, dealt := tc.game(t, p, l, form.end(t, l.ID()))
				game := append(slices.Clone(fixed), dealt...)
				for _, o := range permutations(dealt) {
					m := play(t, create, append(slices.Clone(fixed), o...))
					if out := outcome(m, p, game); out != tc.want {
						t.Errorf("as a %s, dealt in order %v: %s; want %s", form.name, positions(game, o), out, tc.want)
					}
					if err := m.CheckCoherentForTest(); err != nil {
						t.Errorf("as a %s: %v", form.name, err)
					}
				}
			}
		})
	}
}
