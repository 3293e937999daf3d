package group

import (
	"bytes"
	"container/heap"
	"slices"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
)

// fold computes the membership from the changes in (a set closed under
// ancestors): topological order, ties broken by hash; a change takes
// effect if its author may make it at that point and no standing
// removal concurrent with it removes its author (folding.standing).
func (l *Log) fold(in func(*entry) bool) (State, map[Hash]error) {
	l.folds++
	r := newFolding(l, in, nil).standing()
	return r.state, r.outcome
}

// foldAll is the fold of every change of the log (Log.state), with the
// removals that lapsed as the log's other rules read them
// (lapsedRemovals).
func foldAll(l *Log) (State, map[Hash]error) {
	l.folds++
	r := newFolding(l, func(*entry) bool { return true }, lapsedRemovals(l)).standing()
	return r.state, r.outcome
}

// folding is a fold of one set of changes: the set, and its graph as the
// runs of the fold walk it (one run, or more when removals cross).
type folding struct {
	set      []*entry // the changes, parents before children
	removals []*entry
	leaves   []*entry
	children map[int][]*entry // by the parent's index in the log
	parents  map[int]int      // how many parents each change has
	crossing map[*entry]bool  // removals some change of the set is concurrent with
	rank     seniorityOf      // the admins' seniority in the set
	creator  peer.ID
	ousted   map[peer.ID][]*entry // the creator's removals that have not lapsed, by whom they remove
	starts   map[peer.ID][]int    // the removals of the set a later membership of each peer starts from (startsOf)
	naming   map[peer.ID][]int    // the changes of the log that name each peer (Log.naming)
}

// lapsed are the removals by the creator that lapsed (lapsedRemovals),
// or nil for a fold of some of the log's changes (the ancestors of one,
// admissible), where a removal lapses if a leave by the creator among
// them is concurrent with it: where a change was built decides the
// same in every log.
func newFolding(l *Log, in func(*entry) bool, lapsed map[Hash]bool) *folding {
	f := &folding{children: map[int][]*entry{}, parents: map[int]int{}, crossing: map[*entry]bool{}, starts: map[peer.ID][]int{}, naming: l.naming}
	for _, e := range l.order {
		if !in(e) {
			continue
		}
		f.set = append(f.set, e)
		switch e.c.Kind() {
		case OpCreate:
			f.creator = e.c.Author
		case OpRemove:
			f.removals = append(f.removals, e)
		case OpLeave:
			f.leaves = append(f.leaves, e)
		}
		link(l, e, f.parents, f.children)
	}
	f.ousted = map[peer.ID][]*entry{}
	for _, r := range f.removals {
		f.crossing[r] = slices.ContainsFunc(f.set, func(e *entry) bool { return concurrent(r, e) })
		if creatorRemoval(r.c, f.creator) && !f.lapsed(r, lapsed) {
			f.ousted[r.c.Peer] = append(f.ousted[r.c.Peer], r)
			f.starts[r.c.Peer] = append(f.starts[r.c.Peer], r.idx)
		}
	}
	f.rank = f.seniority()
	return f
}

// rejoined says whether e is of a later membership of its author's than
// end (rejoined): a change that names the author (the log's, which
// among e's ancestors are the set's) or a removal of it by the creator
// that has not lapsed in the set starts it.
func (f *folding) rejoined(e, end *entry) bool {
	return rejoined(f.naming[e.c.Author], e.anc, end.anc) || rejoined(f.starts[e.c.Author], e.anc, end.anc)
}

// lapsed says whether r, a removal by the creator, lapsed: it is among
// lapsed, or with lapsed nil, a leave by the creator among the fold's
// changes is concurrent with it.
func (f *folding) lapsed(r *entry, lapsed map[Hash]bool) bool {
	if lapsed != nil {
		return lapsed[r.c.hash]
	}
	return slices.ContainsFunc(f.leaves, func(lv *entry) bool { return lv.c.Author == f.creator && concurrent(r, lv) })
}

// foldRun is what a run of the fold computed: the membership, why each
// change that took no effect did not, and for each removal neither
// standing nor set aside, whether its author was an admin where the run
// met it.
type foldRun struct {
	state   State
	outcome map[Hash]error
	adminAt map[*entry]bool
}

// run is one run of the fold, with the removals that stand (live) and
// those set aside, with the reason (failed).
func (f *folding) run(live map[*entry]bool, failed map[*entry]error) foldRun {
	s := State{rank: f.rank}
	outcome, adminAt := map[Hash]error{}, map[*entry]bool{}
	walk(f.set, f.parents, f.children, func(e *entry) {
		if err := failed[e]; err != nil {
			outcome[e.c.hash] = err
			return
		}
		if e.c.Kind() == OpRemove && !live[e] {
			adminAt[e] = s.IsAdmin(e.c.Author)
		}
		if err := f.step(&s, e, live); err != nil {
			outcome[e.c.hash] = err
		}
	})
	return foldRun{s, outcome, adminAt}
}

// walk meets the changes of set in the fold's order: each after its
// parents (how many each has, by its index in the log), the ready ones
// by hash, and a change's children (by its index) made ready once their
// parents have all been met. The order depends on the graph only, not
// on the order the changes came in.
func walk(set []*entry, parents map[int]int, children map[int][]*entry, visit func(*entry)) {
	waiting := make(map[int]int, len(parents))
	ready := &entryHeap{}
	for _, e := range set {
		waiting[e.idx] = parents[e.idx]
		if len(e.c.Parents) == 0 {
			heap.Push(ready, e)
		}
	}
	for ready.Len() > 0 {
		e := heap.Pop(ready).(*entry)
		for _, ch := range children[e.idx] {
			if waiting[ch.idx]--; waiting[ch.idx] == 0 {
				heap.Push(ready, ch)
			}
		}
		visit(e)
	}
}

// link notes e in the graph walk reads: how many parents it has, and
// that it is a child of each (by their indexes in l).
func link(l *Log, e *entry, parents map[int]int, children map[int][]*entry) {
	parents[e.idx] = len(e.c.Parents)
	for _, p := range e.c.Parents {
		pi := l.nodes[p].idx
		children[pi] = append(children[pi], e)
	}
}

// Applied lists the changes of l that take effect in its membership, in
// the order its fold applies them (walk): the same order on every member
// that holds the same changes. A change that a change crossing it undid
// is not among them.
func Applied(l *Log) []*Change {
	parents, children := make(map[int]int, len(l.order)), map[int][]*entry{}
	for _, e := range l.order {
		link(l, e, parents, children)
	}
	var out []*Change
	walk(l.order, parents, children, func(e *entry) {
		if l.outcome[e.c.hash] == nil {
			out = append(out, e.c)
		}
	})
	return out
}

// step applies one change in the fold. live holds the removals that
// stand (standing): a removal not among them does not take effect, and
// no other change whose author a concurrent standing removal removes.
// Nor does a change concurrent with a leave of its author: an honest
// client names its own last change among the parents of its next, so
// such a change was signed after the leave on an old version. Nor one
// concurrent with a removal of its author by the creator, standing or
// not: nobody can remove the creator, so such a removal fails only
// where the fold meets its target gone already, and so the log may keep
// out such a change no change builds on (Log.besideRemoval), as it does
// one beside its author's leave, without changing any membership. A
// removal the creator signed beside its own leave lapses and voids
// nothing (lapsedRemovals), and no end voids a change of a later
// membership of its author's (rejoined).
func (f *folding) step(s *State, e *entry, live map[*entry]bool) error {
	crossed := e.c.Kind() == OpRemove && !live[e]
	for r := range live {
		if crossed {
			break
		}
		crossed = r.c.Peer == e.c.Author && concurrent(r, e)
	}
	if crossed {
		return crossedRemoval(e.c)
	}
	for _, lv := range f.leaves {
		if e.c.Kind() != OpLeave && lv.c.Author == e.c.Author && concurrent(lv, e) && !f.rejoined(e, lv) {
			return besideLeave(e.c, "was signed")
		}
	}
	for _, r := range f.ousted[e.c.Author] {
		if concurrent(r, e) && !f.rejoined(e, r) {
			return refused(ErrNotMember, "%s by %s was signed beside its removal by the creator", e.c.Op, short(e.c.Author))
		}
	}
	return s.apply(e.c) // which leaves s as it was if it refuses
}

// crossedRemoval is why c took no effect: a removal of its author that
// stands is concurrent with it.
func crossedRemoval(c *Change) error {
	return refused(ErrNotMember, "%s by %s crossed its author's removal", c.Op, short(c.Author))
}

// standing decides which removals of the set stand, and why the others
// do not. Removal wins: a change concurrent with a standing removal of
// its author does not take effect.
//
// Only a removal that takes effect may void others. Otherwise a removal
// that fails (its author no admin where the fold puts it) would still
// void its target's concurrent changes: a removed admin could make a
// stooge an admin on a version from before its removal and have the
// stooge remove its remover, voiding the removal and every change the
// remover made since (TestRemovedAdminStoogeCannotUndoRemoval). And
// between removals this needs an order, or a removed admin could undo
// its removal after the fact by signing a removal of its remover built
// on a version from before it, which nobody can tell from one that
// crossed it in flight.
//
// A removal that no change of the set is concurrent with voids nothing
// and is voided by nothing: it stands, and takes effect or not where the
// fold puts it (it comes after every change it could depend on). The
// others (crossing removals) are decided by their authors' seniority,
// the most senior first, each author's against the decisions before
// (decide). Each decision rests on earlier ones, so the set of changes
// decides it whatever the order they came in, and a change that builds
// on every other one (Log.extendsAll) is folded in one step. It runs the
// fold once for each author of crossing removals, more only when
// removals fail. It returns the run with the removals that stand: the
// fold's result.
func (f *folding) standing() foldRun {
	live, failed := map[*entry]bool{}, map[*entry]error{}
	var crossing []*entry
	for _, r := range f.removals {
		if f.crossing[r] {
			crossing = append(crossing, r)
		} else {
			live[r] = true
		}
	}
	base := f.run(live, failed) // with the removals standing so far, and no crossing one
	slices.SortStableFunc(crossing, func(a, b *entry) int { return decisionOrder(&base.state, a.c.Author, b.c.Author) })
	for len(crossing) > 0 {
		n := 1
		for n < len(crossing) && crossing[n].c.Author == crossing[0].c.Author {
			n++
		}
		// A removal whose author is no admin where the fold meets it,
		// with the removals standing so far, is set aside without a run:
		// the author's own removals only void changes, which makes
		// nobody an admin (short of a succession they bring about, which
		// this sets aside too; the set decides it either way). A removed
		// admin's stooges (made admins on versions from before the
		// removal) are each an author; without this each would cost
		// every fold a run (BenchmarkStoogeFlood).
		cand := slices.DeleteFunc(slices.Clone(crossing[:n]), func(r *entry) bool {
			if base.adminAt[r] {
				return false
			}
			failed[r] = refused(ErrNotAdmin, "remove of %s by %s, who is no admin there", short(r.c.Peer), short(r.c.Author))
			return true
		})
		if run, ok := f.decide(cand, live, failed); ok {
			base = run
		}
		crossing = crossing[n:]
	}
	// base is the run with every removal that stands; those set aside
	// since did not take effect in it either (not standing), and say why.
	for r, err := range failed {
		base.outcome[r.c.hash] = err
	}
	return base
}

// decide tries one author's crossing removals (cand) against those
// standing (live): it adds those that stand to live and says why the
// others do not in failed. They stand if, with them and those standing
// already (and no junior's), each of them and each standing removal
// takes effect. Those that fail are set aside (a removal that fails
// never counts as undoing another) and the rest tried again; if a
// standing crossing removal fails with them, those concurrent with it
// are set aside, or all of them if none is: a junior's removal never
// undoes a senior's (two admins who remove each other concurrently: the
// senior stays).
func (f *folding) decide(cand []*entry, live map[*entry]bool, failed map[*entry]error) (foldRun, bool) {
	try := slices.Clone(cand)
	for len(try) > 0 {
		for _, r := range try {
			live[r] = true
		}
		run := f.run(live, failed)
		for _, r := range try {
			delete(live, r)
		}
		n := len(try)
		try = slices.DeleteFunc(try, func(r *entry) bool {
			if err := run.outcome[r.c.hash]; err != nil {
				failed[r] = err
				return true
			}
			return false
		})
		if len(try) < n {
			continue
		}
		var broke []*entry // standing crossing removals that fail with try
		for r := range live {
			if run.outcome[r.c.hash] != nil && f.crossing[r] {
				broke = append(broke, r)
			}
		}
		if len(broke) == 0 {
			for _, r := range try {
				live[r] = true
			}
			return run, true
		}
		undo := func(r *entry) bool {
			return slices.ContainsFunc(broke, func(b *entry) bool { return concurrent(r, b) })
		}
		if !slices.ContainsFunc(try, undo) {
			undo = func(*entry) bool { return true }
		}
		try = slices.DeleteFunc(try, func(r *entry) bool {
			if !undo(r) {
				return false
			}
			failed[r] = refused(ErrNotMember, "remove of %s by %s would undo a removal by a senior admin", short(r.c.Peer), short(r.c.Author))
			return true
		})
	}
	return foldRun{}, false
}

// seniorityOf ranks a peer among the admins: the creator first, then
// the peers some admin change of the set names that counts, by the
// earliest such change (its depth in the graph, then its hash), then
// everyone else (an admin by succession, §14.3, and those it makes),
// whom compare orders by peer ID and rule 5 (State.seniorTo) and the
// order of decisions (decisionOrder) by the order they became admins.
// It depends on the set of changes only, never on the order they came in.
//
// An admin change counts if nothing voids it for its author (no removal
// of its author, and no leave by it, is concurrent with it) and its
// author is the creator or named by a change that counts before it
// (among its ancestors). Otherwise a removed admin could sign, on a
// version from before its removal, a change making a member in league an
// admin: it takes no effect, but named the member at a lesser depth than
// the admins made since, and made it their senior, to win removals that
// cross (TestCrossedAdminChangeGivesNoSeniority); and a stooge it made an
// admin so could pass that on.
type seniorityOf map[peer.ID]*entry // the earliest admin change naming the peer that counts; nil for the creator

func (f *folding) seniority() seniorityOf {
	rank := seniorityOf{}
	var counted []*entry // admin changes that count, parents before children
	for _, e := range f.set {
		switch e.c.Op {
		case OpCreate:
			rank[e.c.Author] = nil
		case OpAdmin:
			if !f.counts(e, rank, counted) {
				continue
			}
			counted = append(counted, e)
			if o, ok := rank[e.c.Peer]; !ok || (o != nil && earlier(e, o)) {
				rank[e.c.Peer] = e
			}
		}
	}
	return rank
}

// counts says whether admin change e counts for seniority, given the
// changes before it that count.
func (f *folding) counts(e *entry, rank seniorityOf, counted []*entry) bool {
	voided := func(o *entry) bool {
		return concurrent(o, e) && ((o.c.Kind() == OpRemove && o.c.Peer == e.c.Author) || (o.c.Kind() == OpLeave && o.c.Author == e.c.Author))
	}
	if slices.ContainsFunc(f.removals, voided) || slices.ContainsFunc(f.leaves, voided) {
		return false
	}
	if by, ok := rank[e.c.Author]; ok && by == nil {
		return true // the creator
	}
	return slices.ContainsFunc(counted, func(a *entry) bool { return a.c.Peer == e.c.Author && e.anc.has(a.idx) })
}

func earlier(a, b *entry) bool {
	if a.depth != b.depth {
		return a.depth < b.depth
	}
	return bytes.Compare(a.c.hash[:], b.c.hash[:]) < 0
}

// compare orders a before b (negative) if a is the senior.
func (r seniorityOf) compare(a, b peer.ID) int {
	ea, oka := r[a]
	eb, okb := r[b]
	switch {
	case a == b:
		return 0
	case oka && ea == nil:
		return -1
	case okb && eb == nil:
		return 1
	case oka && okb:
		if earlier(ea, eb) {
			return -1
		}
		return 1
	case oka:
		return -1
	case okb:
		return 1
	}
	return strings.Compare(string(a), string(b))
}

// decisionOrder orders the authors of crossing removals, the senior
// first, as rule 5 does (State.seniorTo): by rank, and two admins no
// change that counts names (an admin by succession, those it makes) by
// the order they became admins in s, the fold with no crossing removal;
// by peer ID only among those it leaves no admin. Before (found
// 2026-12-06 by mutation testing), the fold decided such admins' removals
// by peer ID alone: a junior (cat, made an admin by ben, an admin by
// succession) whose peer ID sorted first, removed by ben while it
// removed someone on the same version, or on an earlier one signed
// after the fact, stood, and ben's removal of it was set aside as one
// that "would undo a removal by a senior admin", though rule 5 refused
// cat's removal of ben as a junior's (TestGranteeCannotOutrankItsGranter).
func decisionOrder(s *State, a, b peer.ID) int {
	_, ra := s.rank[a]
	_, rb := s.rank[b]
	if !ra && !rb {
		ia, ib := slices.Index(s.Admins, a), slices.Index(s.Admins, b)
		switch {
		case ia >= 0 && ib >= 0:
			return ia - ib
		case ia >= 0:
			return -1
		case ib >= 0:
			return 1
		}
	}
	return s.rank.compare(a, b)
}

// concurrent says whether neither of a and b is an ancestor of the
// other.
func concurrent(a, b *entry) bool {
	return a != b && !a.anc.has(b.idx) && !b.anc.has(a.idx)
}

// entryHeap orders ready changes by hash.
type entryHeap []*entry

func (h entryHeap) Len() int { return len(h) }
func (h entryHeap) Less(i, j int) bool {
	return bytes.Compare(h[i].c.hash[:], h[j].c.hash[:]) < 0
}
func (h entryHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *entryHeap) Push(x any)   { *h = append(*h, x.(*entry)) }
func (h *entryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
