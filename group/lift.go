package group

import (
	"bytes"
	"cmp"
	"errors"
	"maps"
	"slices"
)

// Lifting what is set aside. Whether a change is kept out of the log
// depends on what else stands; when something that counted void may
// stand again (a removal that lapses, a change of the log dropped, one
// set aside brought back), what was decided on it is looked at again:
// every change set aside is added again, parents first, and the changes
// found poisoned are looked at anew (PROTOCOL §14.3, "Lapsed removals,
// later memberships", and "What one change brings back is bounded").

// liftLapsed brings back what removals that lapsed since before (the
// lapsed removals before the caller's change, came) kept out: every
// change set aside is added again, parents first, and those found
// poisoned are looked at again (a change that builds on one that stood
// again may be poisoned no more). came itself, a removal that came
// lapsed, kept nothing out: a creator who left and signs removals on
// old versions makes no work. It runs again while what it brings back
// makes another removal lapse, so at most once for each.
func liftLapsed(l *Log, before map[Hash]bool, came Hash) {
	before[came] = true
	for {
		grew := false
		for h := range lapsedRemovals(l) {
			grew = grew || !before[h]
			before[h] = true
		}
		if !grew {
			return
		}
		liftAside(l)
	}
}

// liftAside forgets the poison found and adds every change set aside
// again, parents first.
func liftAside(l *Log) {
	clear(l.poison)
	l.stand.namers = nil // changes of the log may stand again
	for _, a := range asideByDepth(l) {
		if l.aside[a.hash] == nil || l.nodes[a.hash] != nil {
			continue // brought back with another meanwhile
		}
		unsetAside(l, a.hash)
		if err := l.add(a, false, true, nil); err != nil && !errors.Is(err, ErrMissingParents) && !errors.Is(err, ErrNotMember) {
			l.refused = append(l.refused, err)
		}
	}
	l.refold()
}

// repoison looks again at the verdicts on changes set aside or held
// found poisoned, once something counted void may stand now (unvoided):
// a change of the log dropped, one set aside brought back, an end found
// poisoned (which counts nowhere since). One that no longer holds has
// every change set aside lifted (liftAside), as liftLapsed does. Before
// (found 2026-12-06), a verdict was kept for ever: a leave kept in the
// log by voidable made changes void while it was there, and a change on
// them, held, was found poisoned; once an earlier leave made that one
// unneeded, the change was no longer poisoned in a log that had the
// earlier leave first, and the logs disagreed (converge sweep, seed
// 1898). Each lift may unvoid more; at most maxRelifts run for a change.
func repoison(l *Log) {
	for range maxRelifts {
		if !l.unvoided {
			return
		}
		l.unvoided = false
		if !stalePoison(l) {
			return
		}
		liftAside(l)
	}
}

// maxRelifts bounds the lifts repoison runs for one change taken.
const maxRelifts = 8

// stalePoison says whether a change set aside or held that was found
// poisoned, and none of whose parents was, is poisoned no more.
func stalePoison(l *Log) bool {
	st := standingNow(l)
	for _, h := range slices.Collect(maps.Keys(l.poison)) {
		c := l.aside[h]
		if c == nil {
			c = l.pending[h]
		}
		if c == nil || slices.ContainsFunc(c.Parents, func(p Hash) bool { return l.poison[p] }) {
			continue
		}
		if !poisonedBy(l, st, c.Parents, nil) {
			return true
		}
	}
	return false
}

// asideByDepth are the changes set aside, parents before children (by
// depth, then hash), those whose ancestry is not known last.
func asideByDepth(l *Log) []*Change {
	type at struct {
		c     *Change
		depth int
	}
	var out []at
	for _, a := range l.aside {
		d, _, _, ok := l.asideAncestry(a)
		if !ok {
			d = MaxChanges + MaxPending
		}
		out = append(out, at{a, d})
	}
	slices.SortFunc(out, func(a, b at) int {
		return cmp.Or(cmp.Compare(a.depth, b.depth), bytes.Compare(a.c.hash[:], b.c.hash[:]))
	})
	cs := make([]*Change, len(out))
	for i, a := range out {
		cs[i] = a.c
	}
	return cs
}
