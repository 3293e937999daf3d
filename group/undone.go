package group

import (
	"bytes"
	"errors"
	"slices"

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
// State.Undone names the removal, on every member that holds the same
// changes: a member's client asks its user before writing to the target
// again (node.ErrRemovalUndone).

// Undone is a removal that took no effect because its author's key
// signed a leave beside it, while its target is still a member by the
// membership the removal would have ended.
type Undone struct {
	Removal Hash
	Target  peer.ID
	Author  peer.ID
}

// undoneRemovals lists the removals, in l or kept out of it, that a
// leave of their own author's voided (ErrBesideLeave) while another
// leave of the author's builds on them, and whose target is a member by
// a membership that began before them: a member removed and added again
// since is not in doubt. A removal beside the author's leave with no
// leave on it is no doubt either: it is not the author's last word on
// either branch. By hash, the same on every member.
func undoneRemovals(l *Log) []Undone {
	var out []Undone
	consider := func(c *Change, idx int, anc bitset) {
		if !errors.Is(l.Effect(c.hash), ErrBesideLeave) || !l.state.IsMember(c.Peer) || rejoinedSince(l, c.Peer, anc) || !endsInLeave(l, c, idx) {
			return
		}
		out = append(out, Undone{Removal: c.hash, Target: c.Peer, Author: c.Author})
	}
	for _, e := range l.order {
		if e.c.Op == OpRemove {
			consider(e.c, e.idx, e.anc)
		}
	}
	for _, a := range l.aside {
		if a.Op != OpRemove || l.nodes[a.hash] != nil {
			continue
		}
		if _, anc, _, ok := l.asideAncestry(a); ok {
			consider(a, -1, anc)
		}
	}
	slices.SortFunc(out, func(a, b Undone) int { return bytes.Compare(a.Removal[:], b.Removal[:]) })
	return out
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
// out of it, builds on c (at idx in the log's order, or -1: kept out).
func endsInLeave(l *Log, c *Change, idx int) bool {
	for _, e := range l.order {
		if idx >= 0 && e.c.Op == OpLeave && e.c.Author == c.Author && e.anc.has(idx) {
			return true
		}
	}
	for _, a := range l.aside {
		if a.Op != OpLeave || a.Author != c.Author || l.nodes[a.hash] != nil {
			continue
		}
		if _, anc, out, ok := l.asideAncestry(a); ok && ((idx >= 0 && anc.has(idx)) || out[c.hash]) {
			return true
		}
	}
	return false
}

// Holds says whether l holds the change of hash h, in the log or kept
// out of it: whether State.Undone, which names the removals undone among
// them, can say if h is one.
func Holds(l *Log, h Hash) bool { return l.nodes[h] != nil || l.aside[h] != nil }

// undoneChanges are the changes kept out of l that State.Undone rests
// on, for Changes to carry: each removal it names that is kept out, the
// first of each target's (by hash), then the leaves of its author's
// kept out that build on it and on nothing else kept out (a removal in
// the log has its own carried too). A member restored from them, or
// sent them, holds the removal in doubt as l does; without them, a
// member that was away while the second leave came would never see the
// removal, and write to its target.
func undoneChanges(l *Log) [][]byte {
	var (
		out    [][]byte
		leaves []*Change // kept out, by hash
		seen   = map[peer.ID]bool{}
	)
	for _, u := range undoneRemovals(l) {
		if seen[u.Target] {
			continue
		}
		seen[u.Target] = true
		if leaves == nil {
			leaves = asideLeaves(l)
		}
		e := l.nodes[u.Removal]
		if e == nil {
			out = append(out, l.aside[u.Removal].raw)
		}
		for _, a := range leaves {
			if a.Author != u.Author {
				continue
			}
			_, anc, above, ok := l.asideAncestry(a)
			if ok && (e == nil && len(above) == 1 && above[u.Removal] || e != nil && len(above) == 0 && anc.has(e.idx)) {
				out = append(out, a.raw)
			}
		}
	}
	return out
}

// asideLeaves are the leaves kept out of l, by hash.
func asideLeaves(l *Log) []*Change {
	out := []*Change{}
	for _, a := range l.aside {
		if a.Op == OpLeave && l.nodes[a.hash] == nil {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b *Change) int { return bytes.Compare(a.hash[:], b.hash[:]) })
	return out
}

// InDoubt says whether h is one of the changes kept out of l that carry
// a removal State.Undone names (undoneChanges): refused by the log, as
// every member that holds them refuses them, and told as a doubt.
func InDoubt(l *Log, h Hash) bool {
	for _, raw := range undoneChanges(l) {
		if HashOf(raw) == h {
			return true
		}
	}
	return false
}
