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
// later memberships", "What one change brings back is bounded" and "A
// removal by another admin"): settle.

// settle looks again at what was decided on the changes set aside once
// the caller's change came (before: the removals by the creator that had
// lapsed before it): while a removal by the creator lapsed since
// (lapsedSince), or a verdict on what is set aside may no longer hold
// (unsettled), every change set aside is added again, parents first
// (liftAside), and what it brings back may make more. came itself, a
// removal that came lapsed, kept nothing out: a creator who left and
// signs removals on old versions makes no work. A lapse lifts at most
// once for each removal; the rest, at most maxRelifts times for one
// change.
func settle(l *Log, before map[Hash]bool, came Hash) {
	before[came] = true
	others := 0
	for {
		lift := lapsedSince(l, before)
		if !lift && others < maxRelifts {
			lift = unsettled(l)
			if lift {
				others++
			}
		}
		if !lift {
			return
		}
		liftAside(l)
	}
}

// lapsedSince says whether a removal by the creator has lapsed that had
// not in before, and adds those that have to it: what it kept out may
// stand now (lapsedRemovals).
func lapsedSince(l *Log, before map[Hash]bool) bool {
	grew := false
	for h := range lapsedRemovals(l) {
		grew = grew || !before[h]
		before[h] = true
	}
	return grew
}

// liftAside forgets the poison found and adds every change set aside
// again, parents first. The ends set aside that are poisoned are found
// first (settleEnds): one not yet added again would count, and keep out
// a change added before it (converge sweep, seed 1370).
func liftAside(l *Log) {
	clear(l.poison)
	clear(l.uncounted)
	clear(l.offBy) // noted again as what they decide is added again
	clear(l.ousters)
	l.endsSeen.settled = false
	l.asideAt++
	l.stand.namers = nil // changes of the log may stand again
	settleEnds(l)
	for _, a := range asideByDepth(l) {
		if l.aside[a.hash] == nil || l.nodes[a.hash] != nil {
			continue // brought back with another meanwhile
		}
		unsetAside(l, a.hash)
		if err := l.add(a, false, true, nil); err != nil && !errors.Is(err, ErrMissingParents) && !errors.Is(err, ErrNotMember) {
			l.refused = append(l.refused, &RefusedChange{a.hash, err})
		}
	}
	l.refold()
}

// unsettled says whether a verdict on what is set aside or held may no
// longer hold: a removal by another admin read as taking effect no
// longer does, or a change on its line that kept another out left it
// (lostLine); the ends set aside found poisoned, which count nowhere
// (poisonedEnds), are not those the log holds as such (Log.uncounted);
// or something counted void may stand now (unvoided: a change of the
// log dropped, one set aside brought back) and a verdict on a change set
// aside or held found poisoned no longer holds (stalePoison). Before
// (found 2026-12-06), a verdict was kept for ever: a leave kept in the
// log by voidable made changes void while it was there, and a change on
// them, held, was found poisoned; once an earlier leave made that one
// unneeded, the change was no longer poisoned in a log that had the
// earlier leave first, and the logs disagreed (converge sweep, seed
// 1898).
func unsettled(l *Log) bool {
	lift := lostLine(l)
	lift = settleEnds(l) || lift
	if l.unvoided {
		l.unvoided = false
		lift = stalePoison(l) || lift
	}
	return lift
}

// settleEnds makes the ends set aside that count nowhere
// (Log.uncounted) those poisonedEnds finds, and says whether they
// changed. One that is poisoned now is kept poisoned (Log.poison); one
// that no longer is needs a lift, which forgets the poison found.
func settleEnds(l *Log) (changed bool) {
	now := poisonedEnds(l)
	if l.endsSeen.settled {
		return false // Log.uncounted holds them already
	}
	l.endsSeen.settled = true
	for h := range l.uncounted {
		if l.aside[h] == nil {
			delete(l.uncounted, h)
		}
	}
	if maps.Equal(now, l.uncounted) {
		return false
	}
	l.uncounted = maps.Clone(now)
	for h := range now {
		l.poison.keep(h)
	}
	l.asideAt++ // the ends that count changed (namersValid)
	l.endsSeen.aside = l.asideAt
	return true
}

// poisonedEnds are the ends set aside (leaves, removals by the creator),
// their ancestry known, that are poisoned by the standing in which no
// end set aside counts, and no poison found before: a function of the
// log and the changes set aside alone. The fold never sees such an end,
// so it counts nowhere (SECURITY.md's finding 6: before, it counted, and
// a member whose leave in league was poisoned had every later change of
// hers kept out while the fold kept her a member). Judged by the
// standing as it is, whether one end was poisoned depended on whether
// another counted: marking each as it was found made a log's heads
// depend on the order a map was read in (converge sweep, seed 4076), and
// marking them together or earliest first, on the order the ends came
// in (seed 5666). What it returns is kept (Log.endsSeen): the caller
// does not change it.
func poisonedEnds(l *Log) hashSet {
	if v := &l.endsSeen; v.valid && v.rev == l.rev && v.aside == l.asideAt {
		return v.set
	}
	var ends hashSet
	for h, a := range l.aside {
		if countsAside(a, l.state.Creator) {
			if ends == nil {
				ends = hashSet{}
			}
			ends.keep(h)
		}
	}
	var out hashSet
	if ends != nil {
		// The standing without the ends set aside is computed apart, and
		// the one as it is kept as it was: the ends set aside, and what
		// counts of them, are the same after.
		uncounted, poison, stand := l.uncounted, l.poison, l.stand
		l.uncounted, l.poison, l.stand.namers = ends, hashSet{}, nil
		st := standingNow(l)
		clean := map[Hash]bool{}
		for h := range ends {
			a := l.aside[h]
			if _, _, _, ok := l.asideAncestry(a); ok && poisonedBy(l, st, a.Parents, clean) {
				if out == nil {
					out = hashSet{}
				}
				out.keep(h)
			}
		}
		l.uncounted, l.poison, l.stand = uncounted, poison, stand
	}
	l.endsSeen = endsVerdict{rev: l.rev, aside: l.asideAt, set: out, valid: true}
	return out
}

// endsVerdict keeps what poisonedEnds found for a revision of the log
// (rev) and the changes set aside (aside, as of Log.asideAt): after
// each change taken it is asked again, and each end's verdict walks its
// region (200 poisoned leaves set aside made a rename cost 3.8 ms).
type endsVerdict struct {
	rev, aside int
	set        hashSet
	valid      bool
	// settled says Log.uncounted is set: nothing to compare until the
	// verdicts are found again, or a lift clears it.
	settled bool
}

// insertedEnds keeps poisonedEnds' verdicts, valid before c was
// inserted in the log, valid after it, unless c is an end (a leave, a
// removal by the creator: the changes concurrent with it may be void
// now). c is the ancestor of no change of the log or set aside, so it
// changes neither which of them stand nor the region under an end set
// aside; a change that leaves the changes set aside moves Log.asideAt.
func insertedEnds(l *Log, c *Change) {
	v := &l.endsSeen
	if v.valid && v.rev == l.rev-1 && v.aside == l.asideAt && !countsAside(c, l.state.Creator) {
		v.rev = l.rev
	}
}

// maxRelifts bounds the lifts settle runs for one change taken, but for
// lapses.
const maxRelifts = 8

// stalePoison says whether a change set aside or held that was found
// poisoned, and none of whose parents was, is poisoned no more. The
// ends that count nowhere are settleEnds' to judge.
func stalePoison(l *Log) bool {
	st := standingNow(l)
	for _, h := range slices.Collect(maps.Keys(l.poison)) {
		c := l.aside[h]
		if c == nil {
			c = l.pending[h]
		}
		if c == nil || l.uncounted[h] || slices.ContainsFunc(c.Parents, func(p Hash) bool { return l.poison[p] }) {
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
