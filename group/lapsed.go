package group

import (
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Lapsed removals and later memberships (PROTOCOL §14.3, "Lapsed
// removals, later memberships"; §14.4, "Nothing beside one's removal by
// the creator").
//
// A removal by the creator concurrent with a leave by the creator in the
// log was signed beside the creator's own leave: an honest client names
// its own last change among the parents of its next, so the creator
// signed it after leaving, on a version from before, or left on a
// version from before it. It takes no effect (the fold refuses it as
// beside its author's leave), and it lapses: it ends nobody, so it
// voids none of its target's changes, in the fold (folding.ousted), in
// which changes stand (endsOf) and in what the log keeps out
// (besideRemoval, keptOutChild). Before (found 2026-12-06 by mutation
// testing), it still ended its target, set aside or not: a creator who
// had left could sign a removal of an admin on a version from before
// the leave, and every later change of that admin's was kept out of the
// log while the fold kept it the admin (the group frozen); a member it
// had added was a stooge the fold counted in, who could never leave;
// and with a member's change on the removal, the fold voided the
// admin's changes since (TestLapsedRemovalEndsNobody). Which removals
// lapse depends on the leaves in the log only, which a member that
// restores or is sent the log has too; a leave that makes removals
// lapse lifts what they kept out (settle).
//
// An end (a leave, or a removal by the creator that has not lapsed) of
// a peer's ends the membership it was signed in, not a later one: a
// change of the peer's that builds on an add of it, or on a removal of
// it by the creator, that the end does not build on is of a later
// membership (rejoined), and the end does not void it.

// lapsedSet caches lapsedRemovals for a revision of the log (rev) and
// of the changes set aside (aside, as of Log.asideAt).
type lapsedSet struct {
	rev, aside int
	set        map[Hash]bool
	valid      bool
}

// lapsedRemovals are the hashes of the removals by the creator, in the
// log or set aside, that a leave by the creator in the log is
// concurrent with: one set aside counts with its ancestry known only
// (asideAncestry), as an end set aside does.
func lapsedRemovals(l *Log) map[Hash]bool {
	if c := &l.lapsed; c.valid && c.rev == l.rev && c.aside == l.asideAt {
		return c.set
	}
	creator := l.state.Creator
	var leaves, removals []*entry
	for _, e := range l.creatorEnds {
		switch {
		case e.c.Kind() == OpLeave && e.c.Author == creator:
			leaves = append(leaves, e)
		case creatorRemoval(e.c, creator):
			removals = append(removals, e)
		}
	}
	set := map[Hash]bool{}
	if len(leaves) > 0 {
		for _, r := range removals {
			if slices.ContainsFunc(leaves, func(lv *entry) bool { return concurrent(r, lv) }) {
				set[r.c.hash] = true
			}
		}
		for _, a := range l.aside {
			if !creatorRemoval(a, creator) {
				continue
			}
			if _, anc, _, ok := l.asideAncestry(a); ok && slices.ContainsFunc(leaves, func(lv *entry) bool { return !anc.has(lv.idx) }) {
				set[a.hash] = true
			}
		}
	}
	l.lapsed = lapsedSet{rev: l.rev, aside: l.asideAt, set: set, valid: true}
	return set
}

// ending says whether c keeps p's changes beside it out of the log
// (besideLeave): a leave by p, or a removal of p by the creator that has
// not lapsed (ousts).
func ending(l *Log, c *Change, p peer.ID) bool {
	return (c.Kind() == OpLeave && c.Author == p && !uncounted(l, c.hash)) || ousts(l, c, p)
}

// uncounted says whether h is an end set aside found poisoned, which
// counts nowhere (settleEnds).
func uncounted(l *Log, h Hash) bool {
	return l.uncounted[h] && l.aside[h] != nil
}

// ousts says whether c is a removal of p by the creator that has not
// lapsed: one that keeps p's changes beside it out (besideRemoval).
func ousts(l *Log, c *Change, p peer.ID) bool {
	return creatorRemoval(c, l.state.Creator) && c.Peer == p && !lapsedRemovals(l)[c.hash] && !uncounted(l, c.hash)
}

// rejoined says whether a change with ancestors anc in the log is of a
// later membership of its author than an end of its author's with
// ancestors endAnc in the log: one of starts (startsOf, the author's)
// is among anc and not among endAnc. The end ends the author's
// membership before that, not the one the change was made in. Before
// (found 2026-12-06 by the converge sweep's check that every member can
// leave), a member removed and added again was held to a leave it
// signed in its first membership on a version from before its removal:
// its leaves, and its changes as an admin again, were kept out of the
// log for ever (TestMemberAddedAgainIsNotHeldToAnOldLeave).
func rejoined(starts []int, anc, endAnc bitset) bool {
	return slices.ContainsFunc(starts, func(i int) bool { return anc.has(i) && !endAnc.has(i) })
}

// startsOf are the indexes of the changes of the log a later membership
// of p's starts from (rejoined): those that name it (namesOf), and the
// creator's removals of it that have not lapsed.
func startsOf(l *Log, p peer.ID) []int {
	out := l.naming[p]
	var lapsed map[Hash]bool
	for _, e := range l.creatorEnds {
		if e.c.Kind() != OpRemove || e.c.Peer != p {
			continue
		}
		if lapsed == nil {
			lapsed = lapsedRemovals(l)
			out = slices.Clone(out)
		}
		if !lapsed[e.c.hash] {
			out = append(out, e.idx)
		}
	}
	return out
}
