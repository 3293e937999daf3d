package group

import (
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Admins by succession (PROTOCOL §14.3, "An admin by succession"). When
// the last admin leaves, the fold makes a member the admin (§14.4); no
// change names it one. An admin change naming that member may be in
// the log and not stand (signed beside its author's end): the standing
// then read the member as made an admin only by changes that do not
// stand (authorized), and kept its every admin's change out while the
// fold and Propose took it for the admin. Before (found 2026-12-06 by
// the converge sweep's check, seed 1434), the group could no longer
// change. An author with such a grant among a change's ancestors, and
// none that stands, may make the change if the fold of its ancestors
// makes it an admin and none of those grants took effect there: it was
// an admin by succession where the change was built. A member in league
// whom a removed admin made an admin on a version from before the
// removal is not: the grant takes effect in the fold of what the
// member's change builds on, which the removal is not among.

// successorFold is what the fold of a change's ancestors says of its
// author: whether it is an admin there, and the admin changes naming it
// that took effect there.
type successorFold struct {
	admin bool
	took  map[Hash]bool
}

// successorAt says whether c's author, whom the void admin changes st
// names among c's ancestors anc (all in the log) name and none that
// stands does, was an admin by succession where c was built. The fold
// of c's ancestors depends on them alone: it is run once for each
// change (Log.successors).
func successorAt(l *Log, st *standing, c *Change, anc bitset, memo bool) bool {
	f, ok := l.successors[c.hash]
	if !ok || !memo {
		s, outcome := l.fold(func(e *entry) bool { return anc.has(e.idx) })
		f = successorFold{admin: s.IsAdmin(c.Author), took: map[Hash]bool{}}
		for _, e := range l.order {
			if anc.has(e.idx) && e.c.Op == OpAdmin && e.c.Peer == c.Author && outcome[e.c.hash] == nil {
				f.took[e.c.hash] = true
			}
		}
		if memo {
			if l.successors == nil || len(l.successors) >= MaxChanges {
				l.successors = map[Hash]successorFold{}
			}
			l.successors[c.hash] = f
		}
	}
	return f.admin && !slices.ContainsFunc(st.voidGrants[c.Author], func(i int) bool {
		return anc.has(i) && f.took[l.order[i].c.hash]
	})
}

// successorOnAll is successorAt for a change of p's on every change of
// the log (stoogeOnAll): the fold of its ancestors is the log's.
func successorOnAll(l *Log, st *standing, p peer.ID) bool {
	return l.state.IsAdmin(p) && !slices.ContainsFunc(st.voidGrants[p], func(i int) bool {
		return l.outcome[l.order[i].c.hash] == nil
	})
}
