package group

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// SignForTest signs a change that Propose would refuse: what an attacker
// with a key can always do (Sign).
var SignForTest = Sign

// CreateSeededForTest is Create with the nonce given, not drawn: a
// game that draws everything else from a seed (the converge sweep)
// then plays the same changes, hashes included, when run again.
func CreateSeededForTest(key ed25519.PrivateKey, name string, members []peer.ID, nonce [16]byte, now time.Time) (*Change, error) {
	c, err := Create(key, name, members, nil, now)
	if err != nil {
		return nil, err
	}
	c.Nonce = nonce
	return c, c.sign(key)
}

// CheckAdmittedForTest says how the membership admissible checks c
// against without a fold (c on the last change it checked alone)
// differs from the fold of c's ancestors, or nil, also when c is no
// such change.
func (l *Log) CheckAdmittedForTest(c *Change) error {
	m, ok := admittedFor(l, c)
	if !ok || !l.parentsKnown(c) {
		return nil
	}
	anc := l.ancestors(c)
	s, _ := l.fold(func(e *entry) bool { return anc.has(e.idx) })
	sameRank := maps.EqualFunc(s.rank, m.rank, func(a, b *entry) bool { return a == b || (a != nil && b != nil && a.c.hash == b.c.hash) })
	if !slices.Equal(s.Members, m.Members) || !slices.Equal(s.Admins, m.Admins) || s.Name != m.Name || s.Version != m.Version || !sameRank {
		return fmt.Errorf("admissible checks %s by %s against %+v; the fold of its ancestors is %+v", c.Op, c.Author, m, s)
	}
	return nil
}

// Changes0 returns the log's changes as values, in order.
func (l *Log) Changes0() []*Change {
	out := make([]*Change, len(l.order))
	for i, e := range l.order {
		out[i] = e.c
	}
	return out
}

// CheckFoldForTest says how the log's membership and outcomes differ
// from a fold of all its changes (nil if they do not): what Add keeps
// up to date one change at a time (extendsAll) must be what the fold
// computes.
func (l *Log) CheckFoldForTest() error {
	s, outcome := foldAll(l)
	if !slices.Equal(s.Members, l.state.Members) || !slices.Equal(s.Admins, l.state.Admins) || s.Name != l.state.Name ||
		s.Version != l.state.Version || s.Creator != l.state.Creator || !bytes.Equal(s.CA, l.state.CA) || s.ID != l.state.ID {
		return fmt.Errorf("the log holds %+v, the fold computes %+v", l.state, s)
	}
	if len(outcome) != len(l.outcome) {
		return fmt.Errorf("%d outcomes held, %d computed", len(l.outcome), len(outcome))
	}
	for h, err := range outcome {
		if got, ok := l.outcome[h]; !ok || got.Error() != err.Error() {
			return fmt.Errorf("outcome of %x: %v held, %v computed", h[:4], got, err)
		}
	}
	return l.checkStandingForTest()
}

// checkStandingForTest says how the standing cache, if it holds (kept
// one step at a time: stepNamers), differs from the standing computed
// anew. If it does not hold, it computes it, so that the changes taken
// in one step until the next check keep it.
func (l *Log) checkStandingForTest() error {
	if !namersValid(l) {
		standingNow(l)
		return nil
	}
	held := l.stand
	l.stand.namers = nil
	fresh := standingNow(l)
	same := func(a, b map[peer.ID][]int) bool {
		return maps.EqualFunc(a, b, func(x, y []int) bool { return slices.Equal(x, y) })
	}
	if !same(held.namers, fresh.namers) || !same(held.admins, fresh.admins) || !same(held.voidGrants, fresh.voidGrants) {
		return fmt.Errorf("the standing cache holds %v %v %v, computed anew %v %v %v", held.namers, held.admins, held.voidGrants, fresh.namers, fresh.admins, fresh.voidGrants)
	}
	for _, e := range l.order {
		if held.void.has(e.idx) != fresh.void.has(e.idx) || held.poisoned.has(e.idx) != fresh.poisoned.has(e.idx) {
			return fmt.Errorf("the standing cache says change %d void %v, poisoned %v; computed anew %v, %v", e.idx,
				held.void.has(e.idx), held.poisoned.has(e.idx), fresh.void.has(e.idx), fresh.poisoned.has(e.idx))
		}
	}
	return nil
}

// SetStepForTest turns the one-step add (extendsAll) off, for the
// benchmark that measures it against the fold.
func SetStepForTest(on bool) { stepOff = !on }

// FoldsForTest is how many folds of its changes the log has run: the
// CPU a flood costs, counted rather than timed.
func (l *Log) FoldsForTest() int { return l.folds }

// HeldForTest is how many changes l holds for parents not yet seen (a
// free function: Log is at its method limit).
func HeldForTest(l *Log) int { return len(l.pending) }

// HeldReadsForTest is how many changes held heldChild has read, over
// all its calls: the CPU that held changes cost, counted rather than
// timed (a free function, as HeldForTest).
func HeldReadsForTest(l *Log) int { return l.heldReads }

// CheckCoherentForTest says how the log contradicts its own fold (nil
// if it does not): every member the fold keeps can leave on the log's
// heads, and every admin it keeps can rename there, as Propose lets
// them (each made up on the heads and put to the rules Add applies); a
// member who cannot is a stooge to the log while the fold counts it in,
// and a group whose admins cannot change it is frozen.
func (l *Log) CheckCoherentForTest() error {
	heads := l.Heads()
	anc := bitset{}
	for _, e := range l.order {
		anc.set(e.idx)
	}
	try := func(p peer.ID, op Op) error {
		c := &Change{Group: l.id, Author: p, Op: op, Parents: heads}
		if op == OpRename {
			c.Name = "coherent"
		}
		c.hash = Hash{0xff, 0xfe, 0xfd}
		if l.asideEndOf(p) || !l.extendsAll(c) {
			if err := l.besideLeave(c, anc, -1, false); err != nil {
				return err
			}
			if stooge(l, c, anc, nil) {
				return fmt.Errorf("%s by %s: %s", op, p, stoogeWhy(l, c, anc))
			}
			return nil
		}
		if stoogeStep(l, c) {
			return fmt.Errorf("%s by %s: a stooge's", op, p)
		}
		return nil
	}
	for _, p := range l.state.Members {
		if err := try(p, OpLeave); err != nil {
			return fmt.Errorf("member %s cannot leave: %w", p, err)
		}
	}
	for _, p := range l.state.Admins {
		if err := try(p, OpRename); err != nil {
			return fmt.Errorf("admin %s cannot rename: %w", p, err)
		}
	}
	return nil
}

// StatusForTest says where the log keeps the change h: in the log, set
// aside, held, found poisoned, refused as stale or where it was built,
// or nowhere (for a sweep's report of where two logs part).
func (l *Log) StatusForTest(h Hash) string {
	switch {
	case l.nodes[h] != nil:
		return "log"
	case l.aside[h] != nil:
		return "aside"
	case l.pending[h] != nil:
		return "held"
	case l.poison[h]:
		return "poisoned"
	case l.stale[h] != nil:
		return "stale"
	}
	if _, ok := l.bad[h]; ok {
		return "refused"
	}
	return "unknown"
}
