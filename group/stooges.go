package group

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Stooges (PROTOCOL §14.3, "A removed admin's changes"). A change signed
// beside its author's end (a leave by its author, or a removal of its
// author by the creator: besideLeave) takes no effect in the fold, and
// the log keeps it out unless a change that builds on it vouches for it.
// A removed admin could add keys of its own (stooges) on a version from
// before its removal: its adds take no effect, so no stooge is ever a
// member, and no change of theirs takes effect either; but each stooge's
// change vouched for what it built on, and a chain of them, or many keys
// each leaving, filled the log (TestStoogesCannotFillTheLog).
//
// So a change of the log stands if it is the create, or is not beside
// its author's end and its author is named (an add, or the create) by a
// change among its ancestors that stands, and, for an admin's change,
// made an admin by one (authorized). A change whose author no change
// among its ancestors that stands names, or an admin's change whose
// author only admin changes that do not stand made one, is a stooge's
// (stooge); the removed admin could as well make a member in league an
// admin, whose changes as one took no effect, vouched for that change
// (the create names the member) and filled the log. A stooge's change
// is kept out, as one beside its author's end is, unless a change that
// stands builds on it, and it vouches for nothing (vouches), so neither
// its maker's changes nor another stooge's come back for it.
// Which changes stand depends on the ancestors of each and on the ends
// among the changes seen (in the log or set aside), never on the order
// they came in; as more come, a change that stood may stop standing,
// never the reverse. Nothing here adds a change to the log or recurses:
// what is set aside comes back only as before (recall, release), and
// each function is a pass over the log, the changes held or the ends.

// standing caches namersOf for a revision of the log (rev) and the ends
// set aside (ends, as of Log.asideAt: aside).
type standing struct {
	rev, aside int
	folds      int // the fold the standing read (ousting)
	ends       []Hash
	namers     map[peer.ID][]int
	// admins are, for each peer, the indexes of the admin changes naming
	// it that stand; voidGrants, of those that do not (authorized).
	admins, voidGrants map[peer.ID][]int
	// void are the indexes of the changes that take no effect (markVoid);
	// poisoned, of those that build on more than MaxVouched of them
	// (poisonedOut).
	void, poisoned bitset
}

// endsAside are the ends set aside (leaves, removals by the creator), on
// which besideLeave, and so namersOf, depends, sorted: at most
// MaxPending of them. The set itself, not a digest of it: a change set
// aside is anyone's to sign, and a digest that two sets could share
// would let one pass for the other.
func endsAside(l *Log) []Hash {
	var out []Hash
	for h, a := range l.aside {
		if countsAside(a, l.state.Creator) && !l.uncounted[h] {
			out = append(out, h)
		}
	}
	slices.SortFunc(out, func(a, b Hash) int { return bytes.Compare(a[:], b[:]) })
	return out
}

// namersValid says whether namersOf's cache holds for the log as it is:
// at once if nothing was set aside or brought back since it was
// computed, else by the ends set aside (at most MaxPending read).
func namersValid(l *Log) bool {
	if l.stand.namers == nil || l.stand.rev != l.rev || l.stand.folds != l.folds {
		return false
	}
	if l.stand.aside != l.asideAt {
		if !slices.Equal(l.stand.ends, endsAside(l)) {
			return false
		}
		l.stand.aside = l.asideAt
	}
	return true
}

// endAt is an end (a leave, or a removal by the creator) in the log (idx
// its index) or set aside (idx -1), with its ancestors in the log (anc).
type endAt struct {
	idx   int
	anc   bitset
	leave bool
}

// endsOf are the ends in the log and set aside, by the peer each ends
// (a removal by the creator that lapsed ends nobody: lapsedRemovals):
// what besideLeave reads for a change that is no leave (asideAncestry
// once for each end set aside, at most MaxPending).
func endsOf(l *Log) map[peer.ID][]endAt {
	out := map[peer.ID][]endAt{}
	lapsed := lapsedRemovals(l)
	ended := func(c *Change) (peer.ID, bool) {
		switch {
		case c.Kind() == OpLeave:
			return c.Author, true
		case creatorRemoval(c, l.state.Creator) && !lapsed[c.hash]:
			return c.Peer, true
		}
		return "", false
	}
	for _, e := range l.order {
		if p, ok := ended(e.c); ok {
			out[p] = append(out[p], endAt{e.idx, e.anc, e.c.Kind() == OpLeave})
		} else if ousting(l, e.c) {
			// A removal by an admin that takes effect ends its target
			// here only: the changes its target signed crossing it are
			// void, not kept out (besideFlood). If it stops taking
			// effect, what was decided on it is lifted (lostLine).
			note(&l.ousters, e.c.hash)
			out[e.c.Peer] = append(out[e.c.Peer], endAt{e.idx, e.anc, false})
		}
	}
	for _, a := range l.aside {
		if p, ok := ended(a); ok && !l.uncounted[a.hash] {
			if _, anc, _, ok := l.asideAncestry(a); ok {
				out[p] = append(out[p], endAt{-1, anc, a.Kind() == OpLeave})
			}
		}
	}
	return out
}

// besideEnd is besideLeave for e, a change of the log that is no leave,
// with nothing held counted: one of ends (endsOf, those of its author)
// is concurrent with it, and e is of no later membership than that end
// (rejoined, by starts: startsOf, its author's). An end set aside is
// never e's ancestor.
func besideEnd(e *entry, ends []endAt, starts []int) bool {
	return slices.ContainsFunc(ends, func(x endAt) bool {
		if rejoined(starts, e.anc, x.anc) {
			return false
		}
		if x.idx < 0 {
			return !x.anc.has(e.idx) && (!x.leave || leavesUnder(leavesIn(ends, e.anc), x.anc))
		}
		return x.idx != e.idx && !e.anc.has(x.idx) && !x.anc.has(e.idx)
	})
}

// leavesIn are the indexes of the leaves in the log among ends (endsOf,
// an author's) that are among anc: besideLeave's leavesBefore.
func leavesIn(ends []endAt, anc bitset) []int {
	var out []int
	for _, y := range ends {
		if y.leave && y.idx >= 0 && anc.has(y.idx) {
			out = append(out, y.idx)
		}
	}
	return out
}

// namersOf is, for each peer, the indexes of the log's changes that name
// it (namesOf) and stand: the create, and each add not beside its
// author's end whose author such a change before it names, and which
// its author may make (authorized). It is computed in one pass over the
// log, parents before children (a change's namers are among its
// ancestors, so decided before it), each add or admin change read
// against its author's ends only (endsOf, besideEnd): O(n) for a log of
// n changes, plus the ends set aside, plus an add's author's ends for
// each add. It is kept until the log or the ends set aside change (a
// change taken in one step updates it: stepNamers).
func namersOf(l *Log) map[peer.ID][]int { return standingNow(l).namers }

// standingNow is the standing of the log's changes as it is now
// (namersOf), computed again if the cache does not hold.
func standingNow(l *Log) *standing {
	if namersValid(l) {
		return &l.stand
	}
	ends := endsOf(l)
	memo := map[peer.ID][]int{}
	starts := func(p peer.ID) []int {
		if len(ends[p]) == 0 {
			return nil // read only beside an end
		}
		s, ok := memo[p]
		if !ok {
			s = startsOf(l, p)
			memo[p] = s
		}
		return s
	}
	st := standing{namers: map[peer.ID][]int{}, admins: map[peer.ID][]int{}, voidGrants: map[peer.ID][]int{}}
	for _, e := range l.order {
		// The create stands; a change beside its author's end, a
		// stooge's, or one by an admin only by changes that do not
		// stand does not.
		stands := e.c.Op == OpCreate || (slices.ContainsFunc(st.namers[e.c.Author], e.anc.has) && !besideEnd(e, ends[e.c.Author], starts(e.c.Author)) && authorized(l, &st, e.c, e.anc, nil))
		markVoid(l, &st, e, !stands)
		names := namesOf(e.c)
		if len(names) == 0 && e.c.Op != OpAdmin {
			continue
		}
		if !stands {
			if e.c.Op == OpAdmin {
				st.voidGrants[e.c.Peer] = append(st.voidGrants[e.c.Peer], e.idx)
			}
			continue
		}
		for _, p := range names {
			st.namers[p] = append(st.namers[p], e.idx)
		}
		if e.c.Op == OpAdmin {
			st.admins[e.c.Peer] = append(st.admins[e.c.Peer], e.idx)
		}
	}
	st.rev, st.aside, st.ends, st.folds = l.rev, l.asideAt, endsAside(l), l.folds
	l.stand = st
	return &l.stand
}

// needsAdmin says whether a change of op is an admin's to make.
func needsAdmin(op Op) bool {
	return op == OpAdd || op == OpRemove || op == OpRename || op == OpAdmin
}

// authorized says whether c, with ancestors anc in the log and out of it
// (out: set aside, asideAncestry), is one its author may make as far as
// the changes that stand say: anything but an admin's change; and an
// admin's change if its author is the creator, or an admin change among
// its ancestors that stands names its author, or none at all does (an
// admin by succession: the creator, whom nobody removes, has left, and
// rule 5, checked where c was built, decided), or only admin changes
// that took no effect where c was built do (an admin by succession all
// the same, successorAt). A removed admin could
// otherwise make a member in league an admin on a version from before
// its removal: the admin change is kept out (beside its author's end),
// but the member, whom the create names, is no stooge, and each change
// it signed as an admin on top took no effect, vouched for the admin
// change and stayed (TestStoogesCannotFillTheLog).
func authorized(l *Log, st *standing, c *Change, anc bitset, out map[Hash]bool) bool {
	if !needsAdmin(c.Kind()) || c.Author == l.state.Creator || slices.ContainsFunc(st.admins[c.Author], anc.has) {
		return true
	}
	granted := slices.ContainsFunc(st.voidGrants[c.Author], anc.has)
	for h := range out {
		if a := l.aside[h]; a != nil && a.Op == OpAdmin && a.Peer == c.Author {
			granted = true
		}
	}
	return !granted || successorAt(l, st, c, anc, len(out) == 0)
}

// stooge says whether c, whose ancestors in the log are anc and out of
// it out (set aside, asideAncestry; nil if all are in the log), is by a
// stooge: no change among them that stands names its author (namersOf),
// or it is an admin's change by an author only changes that do not stand
// made an admin (authorized). Those set aside never stand: each was kept
// out as beside its author's end, or as a stooge's. The create names its
// author and members, and stands.
func stooge(l *Log, c *Change, anc bitset, out map[Hash]bool) bool {
	if c.Op == OpCreate {
		return false
	}
	st := standingNow(l)
	return !slices.ContainsFunc(st.namers[c.Author], anc.has) || !authorized(l, st, c, anc, out)
}

// stoogeStep is stooge for c that builds on every change of the log
// (extendsAll): every namer of its author in the log is its ancestor,
// and so is every admin change.
func stoogeStep(l *Log, c *Change) bool {
	return c.Op != OpCreate && stoogeOnAll(l, standingNow(l), c)
}

// stoogeOnAll is stoogeStep by st, the standing of the log's changes;
// an admin by succession is told by the log's own fold (successorOnAll).
func stoogeOnAll(l *Log, st *standing, c *Change) bool {
	if len(st.namers[c.Author]) == 0 {
		return true
	}
	return needsAdmin(c.Kind()) && c.Author != l.state.Creator && len(st.admins[c.Author]) == 0 && len(st.voidGrants[c.Author]) > 0 && !successorOnAll(l, st, c.Author)
}

// stepNamers keeps namersOf's cache, valid before c was taken in one
// step (extendsAll), valid after it: c stands if its author is named in
// the log, has no end set aside (it builds on every end in the log) and
// may make it (stoogeOnAll), and then names its peers, is not void, and
// is poisoned if it builds on too many void changes (markVoid). An admin change
// is never taken in one step (seniority), so the admins are as they
// were. Otherwise (Restore, which checks neither) the cache is left to
// be computed again when asked.
func stepNamers(l *Log, c *Change, valid bool) {
	if !valid {
		return
	}
	// The cache as it was before c (l.rev moved with it). A leave is
	// never void (markVoid). A leave by the creator may make removals
	// set aside lapse (lapsedRemovals), and changes of the log stand
	// again: the cache is computed again.
	if c.Kind() != OpLeave && (stoogeOnAll(l, &l.stand, c) || l.asideEndOf(c.Author)) {
		return
	}
	if c.Kind() == OpLeave && c.Author == l.state.Creator {
		return
	}
	e := l.nodes[c.hash]
	for _, p := range namesOf(c) {
		l.stand.namers[p] = append(l.stand.namers[p], e.idx)
	}
	markVoid(l, &l.stand, e, false)
	l.stand.rev = l.rev
}

// vouches says whether d, a change held that builds on c, brings c back
// when c is kept out of the log: d is c's author's leave, which
// besideLeave decides by rules of its own between an author's leaves,
// with what it builds on in the log; or d is by another author who is no
// stooge where d was built (stooge; while some ancestor of d is neither
// in the log nor set aside that is not known yet, and d vouches). memo,
// if not nil, keeps the answer for d's author, for calls over the same
// changes (heldIndex): each held change's ancestry is read once.
func vouches(l *Log, d, c *Change, memo map[Hash]bool) bool {
	if v, ok := memo[d.hash]; ok && d.Author != c.Author {
		return v
	}
	if poisonedOut(l, d, nil) {
		return false // it vouches for nothing (MaxVouched)
	}
	if d.Author == c.Author {
		return d.Kind() == OpLeave
	}
	_, anc, out, ok := l.asideAncestry(d)
	v := !ok || !stooge(l, d, anc, out)
	if memo != nil {
		memo[d.hash] = v
	}
	return v
}

// peel is what prune drops from the log at once: each head that
// besideLeave keeps out, or that is a stooge's, unless a change held
// vouches for it (held), and then each change whose children in the log
// were all dropped, read as a head in turn. Whether a head is dropped
// depends on the changes seen and those held, not on which others were
// dropped (a change dropped is set aside, and still counts), so this is
// what dropping heads and looking again would drop, without rebuilding
// the log for each: each change is read once, a change's parents once
// for each of its parents, and namersOf once.
func peel(l *Log, held heldIndex) map[*entry]bool {
	// How many children in the log each change has, counted only once a
	// head is dropped: most prunes drop none, and the count reads the
	// whole log (in a log of 3,000 it was most of a prune's time).
	var kids map[*entry]int
	countKids := func() {
		kids = map[*entry]int{}
		for _, e := range l.order {
			for _, p := range e.c.Parents {
				kids[l.nodes[p]]++
			}
		}
	}
	var heads []*entry
	for h := range l.heads {
		heads = append(heads, l.nodes[h])
	}
	out := map[*entry]bool{}
	st := standingNow(l) // peel drops nothing until it returns
	for len(heads) > 0 {
		e := heads[len(heads)-1]
		heads = heads[:len(heads)-1]
		// A poisoned head goes whatever vouches for it (MaxVouched).
		poisoned := st.poisoned.has(e.idx)
		protected := !poisoned && held.protects(e.c)
		if !poisoned && l.besideLeave(e.c, e.anc, e.idx, protected) == nil && (protected || !stooge(l, e.c, e.anc, nil)) {
			continue
		}
		if poisoned {
			l.poison.keep(e.c.hash)
		}
		out[e] = true
		if kids == nil {
			countKids()
		}
		for _, p := range e.c.Parents {
			pe := l.nodes[p]
			if kids[pe]--; kids[pe] == 0 {
				heads = append(heads, pe)
			}
		}
	}
	return out
}

// stoogeWhy says why stooge holds for c, for an error.
func stoogeWhy(l *Log, c *Change, anc bitset) string {
	if slices.ContainsFunc(namersOf(l)[c.Author], anc.has) {
		return "its author made an admin only by changes kept out"
	}
	return "its author named only by changes kept out"
}

// markVoid notes in st whether e, a change of the log whose ancestors st
// has read already, is void (it does not stand, and is no leave: a leave
// takes effect or is decided between its author's leaves, never a stooge
// by itself) and whether it is poisoned: a parent is, or it builds on
// more than MaxVouched void changes through void changes only
// (voidRegion). Both depend on e's ancestors and the ends seen only.
func markVoid(l *Log, st *standing, e *entry, notStanding bool) {
	if notStanding && e.c.Kind() != OpLeave {
		st.void.set(e.idx)
	}
	if poisonedIn(l, st, e.c.Parents) {
		st.poisoned.set(e.idx)
	}
}

// poisonedIn says whether a change on parents, all in the log, is
// poisoned by st: a parent is, or it builds on more than MaxVouched void
// changes through void changes only. It walks the void changes only
// when a parent is one.
func poisonedIn(l *Log, st *standing, parents []Hash) bool {
	return poisonedBy(l, st, parents, nil)
}

// voidRegion counts the void changes reached from parents through void
// changes only, up to MaxVouched+1 (what poisoned needs to know): in the
// log, those st marks void; out of it, those set aside but leaves. Every
// change set aside is void, a leave, or poisoned (setAside's callers),
// and a change that builds on a poisoned one through void ones is
// poisoned whatever it counts. A change held is not counted: whether it
// is void is not known until its parents come.
func voidRegion(l *Log, st *standing, parents []Hash) int {
	seen := map[Hash]bool{}
	next := slices.Clone(parents)
	n := 0
	for len(next) > 0 && n <= MaxVouched {
		h := next[len(next)-1]
		next = next[:len(next)-1]
		if seen[h] {
			continue
		}
		seen[h] = true
		if e := l.nodes[h]; e != nil {
			if st.void.has(e.idx) {
				n++
				next = append(next, e.c.Parents...)
			}
		} else if a := l.aside[h]; a != nil && a.Kind() != OpLeave {
			n++
			next = append(next, a.Parents...)
		}
	}
	return n
}

// poisonedOut says whether c, a change not in the log (arriving, held or
// set aside), is poisoned as far as the changes known prove it: a parent
// is (in the log, by the standing; out of it, found so before, or in
// turn), or it builds on more than MaxVouched void changes through void
// changes only (voidRegion). A change poisoned takes no effect, is kept
// out of the log whatever builds on it, and vouches for nothing: so no
// change ever brings back more than MaxVouched changes that take no
// effect, and a log never needs more than MaxPending set aside to decide
// it. As more changes come, one may become poisoned, never the reverse,
// so what is found is kept (Log.poison). clean are the changes out of
// the log found not poisoned during this call (nil at first).
func poisonedOut(l *Log, c *Change, clean map[Hash]bool) bool {
	if l.poison[c.hash] {
		return true
	}
	return poisonedBy(l, standingNow(l), c.Parents, clean) && markPoisoned(l, c)
}

// poisonedBy says whether a change on parents is poisoned: a parent is
// (in the log, by st; out of it, found so before, or in turn: poisonedOut
// with clean), or it builds on more than MaxVouched void changes through
// void changes only (voidRegion), which it walks only when a parent is
// void. For a change of the log (poisonedIn) every parent is in it.
func poisonedBy(l *Log, st *standing, parents []Hash, clean map[Hash]bool) bool {
	onVoid := false
	for _, p := range parents {
		if e := l.nodes[p]; e != nil {
			if st.poisoned.has(e.idx) {
				return true
			}
			onVoid = onVoid || st.void.has(e.idx)
			continue
		}
		if l.poison[p] {
			return true
		}
		a := l.aside[p]
		onVoid = onVoid || (a != nil && a.Kind() != OpLeave)
		if a == nil {
			a = l.pending[p]
		}
		if a == nil || clean[p] {
			continue
		}
		if clean == nil {
			clean = map[Hash]bool{}
		}
		clean[p] = true
		if poisonedOut(l, a, clean) {
			return true
		}
	}
	return onVoid && voidRegion(l, st, parents) > MaxVouched
}

// poisonSettled says whether c, found poisoned, is set aside now: at
// once, unless it is an end (a leave, a removal by the creator), which
// counts set aside only with every ancestor known (asideAncestry): set
// aside before, it would count in a log that came to know them and not
// in one that had them first. Until then it waits, held, and vouches
// for nothing. An end whose ancestors found poisoned are forgotten (a
// chain longer than MaxPending) waits for ever, and counts in no log.
func poisonSettled(l *Log, c *Change) bool {
	if !countsAside(c, l.state.Creator) || l.parentsKnown(c) {
		return true
	}
	_, _, _, ok := l.asideAncestry(c)
	return ok
}

// markPoisoned keeps c among the changes found poisoned, and says so.
func markPoisoned(l *Log, c *Change) bool {
	l.poison.keep(c.hash)
	return true
}

// poisonedErr says why c, poisoned, was kept out of the log.
func poisonedErr(c *Change) error {
	return keptOutPoisoned(fmt.Sprintf("%s by %s", c.Op, identity.ShortID(c.Author)))
}

// keptOutPoisoned says why a poisoned change, what, was kept out of the
// log (poisonedErr; Effect of one known by its hash only).
func keptOutPoisoned(what string) error {
	return fmt.Errorf("%w: %s was kept out of the log: it builds on more than %d changes that take no effect (a former member's, or a stooge's)", ErrNotMember, what, MaxVouched)
}
