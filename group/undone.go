package group

import (
	"bytes"
	"errors"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Removals undone by their author's own leave (PROTOCOL §14.4, "A
// removal its author's leave undid"; SECURITY.md, finding 7).
//
// An honest client names its own last change among the parents of its
// next, so it never signs a change beside (concurrent with) its own
// leave, and such a change takes no effect (folding.step) or is kept out
// of the log (Log.besideLeave): that keeps a departed admin's key from
// adding or removing anyone with a change and a leave signed on an old
// version. A removal beside its author's leave has the same shape as the
// last removal of an admin who left, undone afterwards by a second leave
// its key signed on a version from before it; nothing in the graph
// tells which branch was signed first. The fold keeps the target, and
// UndoneRemovals names the removal, on every member that holds the same
// changes: a member's client asks its user before writing to the target
// again (node.ErrRemovalUndone).

// Undone is a removal that took no effect because its author's key
// signed a leave beside it, while its target is still a member by the
// membership the removal would have ended.
type Undone struct {
	Removal Hash
	Target  peer.ID
	Author  peer.ID
	Time    time.Time // the removal's, as its author signed it: shown, never trusted for order (zero in a node's stored doubts)
}

// UndoneRemovals lists the removals, in l or kept out of it, that a
// leave of their own author's voided (ErrBesideLeave) while another
// leave of the author's builds on them, and whose target is a member by
// a membership that began before them: a member removed and added again
// since is not in doubt. A removal beside the author's leave with no
// leave on it is no doubt either: it is not the author's last word on
// either branch. One a target, the first by hash (the doubt is about
// the member; departed keys may sign any number), in the order of their
// hashes: the same on every member.
func UndoneRemovals(l *Log) []Undone { return undoneIn(l, newAncestries()) }

// undoneIn is UndoneRemovals, reading the ancestry of each change kept
// out once (anc).
func undoneIn(l *Log, anc *ancestries) []Undone {
	var out []Undone
	consider := func(c *Change, idx int, ancs bitset) {
		if !l.state.IsMember(c.Peer) || !errors.Is(l.Effect(c.hash), ErrBesideLeave) || rejoinedSince(l, c.Peer, ancs) || !endsInLeave(l, c, idx, anc) {
			return
		}
		out = append(out, Undone{Removal: c.hash, Target: c.Peer, Author: c.Author, Time: c.Time})
	}
	for _, e := range l.order {
		if e.c.Kind() == OpRemove {
			consider(e.c, e.idx, e.anc)
		}
	}
	for _, a := range l.aside {
		if a.Kind() != OpRemove || l.nodes[a.hash] != nil || !l.state.IsMember(a.Peer) {
			continue
		}
		if x := anc.of(l, a); x.ok {
			consider(a, -1, x.anc)
		}
	}
	slices.SortFunc(out, func(a, b Undone) int { return bytes.Compare(a.Removal[:], b.Removal[:]) })
	targets := map[peer.ID]bool{}
	return slices.DeleteFunc(out, func(u Undone) bool {
		first := !targets[u.Target]
		targets[u.Target] = true
		return !first
	})
}

// ancestries holds the ancestry of changes kept out (Log.asideAncestry)
// for one read of the log, and which of them a leave kept out builds on:
// a flood of removals and leaves kept out would have each leave's read
// again for each removal.
type ancestries struct {
	read map[Hash]ancestry
	on   map[Hash]bool // nil: not read yet
}

func newAncestries() *ancestries { return &ancestries{read: map[Hash]ancestry{}} }

type ancestry struct {
	anc   bitset        // ancestors in the log
	above map[Hash]bool // ancestors out of it
	ok    bool          // every ancestor known
}

// leavesOn are the changes kept out of l that a leave of their author's,
// kept out too, builds on (a leave in the log builds on none), read once.
func (m *ancestries) leavesOn(l *Log) map[Hash]bool {
	if m.on != nil {
		return m.on
	}
	on := map[Hash]bool{}
	for _, a := range l.aside {
		if a.Kind() != OpLeave || l.nodes[a.hash] != nil {
			continue
		}
		x := m.of(l, a)
		for h := range x.above {
			if b := l.aside[h]; x.ok && b != nil && b.Author == a.Author {
				on[h] = true
			}
		}
	}
	m.on = on
	return on
}

// leaveOn says whether a, a leave kept out of l, is a leave of c's
// author's built on c (at idx in l.order, or -1: kept out too).
func (m *ancestries) leaveOn(l *Log, a, c *Change, idx int) bool {
	if a.Author != c.Author {
		return false
	}
	x := m.of(l, a)
	return x.ok && (idx < 0 && x.above[c.hash] || idx >= 0 && x.anc.has(idx))
}

// of is a's ancestry, a change kept out of l, read once.
func (m *ancestries) of(l *Log, a *Change) ancestry {
	x, seen := m.read[a.hash]
	if !seen {
		_, x.anc, x.above, x.ok = l.asideAncestry(a)
		m.read[a.hash] = x
	}
	return x
}

// rejoinedSince says whether p's membership began with an add that took
// effect and is not among anc, the ancestors of a removal of p's: an add
// built on the removal, or beside it.
func rejoinedSince(l *Log, p peer.ID, anc bitset) bool {
	for _, e := range l.order {
		if e.c.Op == OpAdd && e.c.Peer == p && l.outcome[e.c.hash] == nil && !anc.has(e.idx) {
			return true
		}
	}
	return false
}

// endsInLeave says whether a leave of c's author's, in the log or kept
// out of it, builds on c (at idx in the log's order, or -1: kept out);
// anc holds the ancestries read.
func endsInLeave(l *Log, c *Change, idx int, anc *ancestries) bool {
	if idx < 0 {
		return anc.leavesOn(l)[c.hash]
	}
	for _, e := range l.order {
		if e.c.Kind() == OpLeave && e.c.Author == c.Author && e.anc.has(idx) {
			return true
		}
	}
	for _, a := range l.aside {
		if a.Kind() == OpLeave && l.nodes[a.hash] == nil && anc.leaveOn(l, a, c, idx) {
			return true
		}
	}
	return false
}

// Holds says whether l holds the change of hash h, in the log or kept
// out of it: whether UndoneRemovals, which names the removals undone among
// them, can say if h is one.
func Holds(l *Log, h Hash) bool { return l.nodes[h] != nil || l.aside[h] != nil }

// undoneChanges are the changes kept out of l that UndoneRemovals rests
// on, for Changes to carry: for each removal it names, the leaves of its author's kept out that build on
// it, and what they and it build on that is kept out (the author's other
// changes beside the second leave, say), each after its parents. A
// member restored from them, or sent them, holds the removal in doubt as
// l does; without them, a member that was away while the second leave
// came would never see the removal, and write to its target. They are
// changes kept out, at most MaxPending. Each comes with its anchor: the
// index in l.order of the latest change of the log it builds on, after
// which Changes places it (so a long log's newest frame still carries
// the log's newest changes).
func undoneChanges(l *Log) []carried {
	anc := newAncestries()
	undone := undoneIn(l, anc)
	if len(undone) == 0 {
		return nil
	}
	var (
		out    []carried
		anchor = map[Hash]int{} // of the changes emitted
	)
	var emit func(c *Change)
	emit = func(c *Change) { // c kept out, after its parents kept out
		if _, done := anchor[c.hash]; done {
			return
		}
		at := 0
		for _, p := range c.Parents {
			if e := l.nodes[p]; e != nil {
				at = max(at, e.idx)
			} else if a := l.aside[p]; a != nil {
				emit(a)
				at = max(at, anchor[p])
			}
		}
		anchor[c.hash] = at
		out = append(out, carried{at, c})
	}
	leaves := asideLeaves(l)
	for _, u := range undone {
		r, idx := l.aside[u.Removal], -1
		if e := l.nodes[u.Removal]; e != nil {
			r, idx = e.c, e.idx
		} else {
			emit(r)
		}
		for _, a := range leaves {
			if anc.leaveOn(l, a, r, idx) {
				emit(a)
			}
		}
	}
	return out
}

// carried is a change kept out that Changes carries, after the change
// of the log at index after.
type carried struct {
	after int
	c     *Change
}

// asideLeaves are the leaves kept out of l, by hash.
func asideLeaves(l *Log) []*Change {
	out := []*Change{}
	for _, a := range l.aside {
		if a.Kind() == OpLeave && l.nodes[a.hash] == nil {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b *Change) int { return bytes.Compare(a.hash[:], b.hash[:]) })
	return out
}

// InDoubt are the hashes of the changes kept out of l that carry the
// removals UndoneRemovals names (undoneChanges): refused by the log, as
// every member that holds them refuses them, and told as a doubt.
func InDoubt(l *Log) map[Hash]bool {
	out := map[Hash]bool{}
	for _, c := range undoneChanges(l) {
		out[c.c.hash] = true
	}
	return out
}
