package group

import (
	"fmt"
	"slices"

	"github.com/certchat/certchat/identity"
)

// Floods of a removed admin (PROTOCOL §14.3, "A removal by another admin").
// A removal by an admin other than the creator takes effect or not as
// the fold decides (a senior's removal of the remover, crossing it, makes
// it fail), so the changes its target signed crossing it stay in the
// log, and take no effect while it does. A removed admin could sign any
// number of them on the version before its removal (a chain of renames,
// each on the last, or siblings, each on that version) and a member in
// league relay them: the log filled (TestAdminRemovalFloodIsBounded).
//
// So while such a removal takes effect (ousting), it is its target's end
// in the standing (endsOf): the changes its target signed crossing it
// are void, and one on more than MaxVouched of them poisoned, as beside
// a leave. And of those changes, the log keeps one line (floodLine):
// taken by depth, then hash, a change is on it if the last one on it
// before is its ancestor and none off it is. An honest client names its
// own last change among the parents of its next, so its changes are one
// line; the others are kept out unless a change by another author
// builds on them (besideFlood), as changes beside a leave are, with
// their author's changes on them (keptOutChild).
//
// Which changes are on the line does not depend on the order they came
// in: a change kept out is crossed by one on the line before it (or
// builds on one that is), and a change's ancestors come before it. When
// a removal read as taking effect stops taking effect, or the change on
// a line that kept another out leaves it, what was decided on them may
// no longer hold: everything set aside is lifted (lostLine, settle).

// floods are the lines of the log's changes crossing an ousting
// removal, for a revision of the log and of its fold.
type floods struct {
	rev, folds int
	valid      bool
	lines      []floodLine
}

// floodLine is a removal that takes effect and the line of the changes
// its target signed crossing it that the log keeps: each an ancestor of
// the next, by depth then hash.
type floodLine struct {
	removal *entry
	on      []*entry
	off     map[int]Hash // those off it, by index: the change on it that keeps each off
}

// ousting says whether c, a change of the log, is a removal by an admin
// other than the creator that took effect in the log's fold. (The
// creator's removals are ends whether or not they take effect: nobody
// removes the creator.)
func ousting(l *Log, c *Change) bool {
	if c.Kind() != OpRemove || c.Author == l.state.Creator || l.nodes[c.hash] == nil {
		return false
	}
	_, failed := l.outcome[c.hash]
	return !failed
}

// floodsNow are the lines of the log as it is and as it folds.
func floodsNow(l *Log) *floods {
	if l.flood.valid && l.flood.rev == l.rev && l.flood.folds == l.folds {
		return &l.flood
	}
	f := floods{rev: l.rev, folds: l.folds, valid: true}
	for _, r := range l.order {
		if !ousting(l, r.c) {
			continue
		}
		note(&l.ousters, r.c.hash)
		line := floodLine{removal: r, off: map[int]Hash{}}
		for _, e := range crossers(l, r) {
			if by, off := line.keepsOff(e.anc, len(line.on)); off {
				line.off[e.idx] = by
			} else {
				line.on = append(line.on, e)
			}
		}
		f.lines = append(f.lines, line)
	}
	l.flood = f
	return &l.flood
}

// crossers are the changes of the log that r's target signed crossing
// r, no leave (a leave is decided by the rules of leaves) and of no
// later membership (rejoined), by depth then hash.
func crossers(l *Log, r *entry) []*entry {
	var out []*entry
	var starts []int
	read := false
	for _, e := range l.order {
		if e.c.Author != r.c.Peer || e.c.Kind() == OpLeave || !concurrent(r, e) {
			continue
		}
		if !read {
			starts, read = startsOf(l, r.c.Peer), true
		}
		if !rejoined(starts, e.anc, r.anc) {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b *entry) int {
		if earlier(a, b) {
			return -1
		}
		return 1 // no two changes share a hash
	})
	return out
}

// besideFlood says why c, as besideLeave reads it (self: its index, -1
// if it is not in the log, and depth), with ancestors anc in the log and
// starts its author's later memberships, is kept out as off the line of
// the changes its author signed crossing its removal by an admin
// (floodLine), or nil: for a change of the log, as the lines say; for
// another, if the last change on a line before it (depth, then hash) is
// not its ancestor, or one off the line is. What keeps it out is noted
// (Log.offBy, lostLine).
func besideFlood(l *Log, self *entry, anc bitset, starts []int) error {
	c := self.c
	if c.Kind() == OpLeave {
		return nil
	}
	for _, line := range floodsNow(l).lines {
		by, off := line.off[self.idx]
		if self.idx < 0 {
			by, off = offLine(&line, self, anc, starts)
		}
		if off {
			note(&l.offBy, by)
			return fmt.Errorf("%w: %s by %s crossed its author's removal beside another change of its author's that crossed it", ErrNotMember, c.Op, identity.ShortID(c.Author))
		}
	}
	return nil
}

// offLine says whether self, a change not in the log with ancestors anc
// (starts: its author's later memberships), crossing line's removal, is
// off the line, and which change on it keeps it off (keepsOff, over the
// changes on it before self).
func offLine(line *floodLine, self *entry, anc bitset, starts []int) (Hash, bool) {
	r := line.removal
	if self.c.Author != r.c.Peer || anc.has(r.idx) || rejoined(starts, anc, r.anc) {
		return Hash{}, false
	}
	n, _ := slices.BinarySearchFunc(line.on, self, func(e, t *entry) int {
		if earlier(e, t) {
			return -1
		}
		return 1
	})
	return line.keepsOff(anc, n)
}

// keepsOff says whether a change crossing line's removal, with
// ancestors anc, after the first n changes on the line (line.on, by
// depth then hash), is off it, and which change on it keeps it off: it
// is off if the last of those is not among its ancestors, or one off the
// line is (that one's keeper).
func (line *floodLine) keepsOff(anc bitset, n int) (Hash, bool) {
	if n > 0 && !anc.has(line.on[n-1].idx) {
		return line.on[n-1].c.hash, true
	}
	for i, by := range line.off {
		if anc.has(i) {
			return by, true
		}
	}
	return Hash{}, false
}

// note adds h to the set *s, made if it must be.
func note(s *hashSet, h Hash) {
	if *s == nil {
		*s = hashSet{}
	}
	(*s)[h] = true
}

// lostLine says whether a removal noted as taking effect when the log's
// rules read it (Log.ousters: what counts void, endsOf, and what is off
// a line, besideFlood) no longer does, or a change on a line that kept
// a change out (Log.offBy) is on none: what was kept out may stand now
// (a stooge, a change off its line), and what was found poisoned may be
// no longer (settle). Such a removal stops taking effect at most once:
// when a removal of its author by a senior that crosses it comes.
func lostLine(l *Log) bool {
	for h := range l.ousters {
		if e := l.nodes[h]; e == nil || !ousting(l, e.c) {
			return true
		}
	}
	// A change taken in one step (extendsAll) crosses nothing and moves
	// no line: only a fold may (every other change, and a drop, folds).
	if len(l.offBy) == 0 || l.offSeen == l.folds {
		return false
	}
	l.offSeen = l.folds
	on := hashSet{}
	for _, line := range floodsNow(l).lines {
		for _, e := range line.on {
			on[e.c.hash] = true
		}
	}
	for h := range l.offBy {
		if !on[h] {
			return true
		}
	}
	return false
}

// crossesOusting says whether c, no leave, with ancestors anc in the
// log, crosses a removal of its author that takes effect (ousting): why
// it was kept out, if it was set aside for nothing else (Log.Effect).
func crossesOusting(l *Log, c *Change, anc bitset) bool {
	if c.Kind() == OpLeave {
		return false
	}
	return slices.ContainsFunc(floodsNow(l).lines, func(line floodLine) bool {
		return line.removal.c.Peer == c.Author && !anc.has(line.removal.idx)
	})
}
