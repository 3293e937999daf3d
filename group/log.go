package group

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Limits of a log.
const (
	// StaleAfter is how many versions behind the newest a change may
	// build on: changes that cross in flight are merged, but an admin
	// cannot change a membership long gone.
	StaleAfter = 16
	// MaxChanges bounds a group's log; a group that reaches it must be
	// created anew.
	MaxChanges = 4096
	// MaxPending bounds the changes held for parents not yet seen.
	MaxPending = 256
	// MaxVouched is the most changes that take no effect one change may
	// bring into the log: a change that builds on more, through such
	// changes only, or on a change that does, is poisoned (poisonedOut)
	// and kept out with them. Else a member in league vouched, with one
	// leave, for a chain as long as a removed admin liked: it filled the
	// log, and past MaxPending members parted (TestVouchedChainIsBounded).
	MaxVouched = 16
)

// Log is one member's copy of a group's changes, and the membership they
// make. It is not safe for concurrent use.
type Log struct {
	id      ID
	nodes   map[Hash]*entry
	order   []*entry // parents before children
	heads   map[Hash]bool
	pending map[Hash]*Change
	heldAt  map[Hash]uint64  // when each pending change was held (hold)
	held    uint64           // changes held since New
	named   map[peer.ID]bool // namedIn(order) as of revision namedAt (Named)
	namedAt int
	stand   standing // the changes of the log that name each peer and stand (namersOf)
	asideAt int      // changes set aside or brought back since New (namersValid)
	aside   keptOut  // changes kept out as moot (besideLeave)
	poison  hashSet  // changes out of the log found poisoned (poisonedOut)
	// unvoided says a change counted void may stand now: a verdict in
	// poison may no longer hold (unsettled).
	unvoided bool
	// uncounted are the ends set aside found poisoned, which count
	// nowhere (settleEnds); a hash not set aside is read as not in it.
	uncounted hashSet
	endsSeen  endsVerdict // poisonedEnds, for a log and what is set aside
	lapsed    lapsedSet   // removals by the creator beside its leave (lapsedRemovals)
	flood     floods      // the lines of changes crossing an admin's removal (floodsNow)
	ousters   hashSet     // the ousting removals the log's rules read (lostLine)
	offBy     hashSet     // the changes on a line that kept a change out (lostLine)
	offSeen   int         // the fold at which offBy was last found on its lines (lostLine)
	// successors are the folds of changes' ancestors that successorAt
	// read, by change.
	successors map[Hash]successorFold
	// creatorEnds are the creator's leaves and removals in the log, and
	// naming the indexes of the changes of the log that name each peer
	// (namesOf), kept by insert: what lapsedRemovals and startsOf read.
	creatorEnds []*entry
	naming      map[peer.ID][]int
	stale       keptOut // changes refused as stale (checkFresh)
	bad         badSet  // changes refused where they were built, and those on them (refuseFor)
	state       State
	outcome     map[Hash]error   // why a change did not take effect in the fold
	refused     []*RefusedChange // held changes refused when their parents came
	rev         int              // changes taken in or dropped since New
	folds       int              // folds run (FoldsForTest)
	heldReads   int              // changes held that heldChild read (HeldReadsForTest)
	// admitted is the last change admissible took that makes no admin,
	// with the membership it and its ancestors describe: what a change
	// on it alone is checked against (admissible).
	admitted struct {
		hash  Hash
		state State
	}
}

// entry is a change in the graph.
type entry struct {
	c     *Change
	idx   int    // position in Log.order
	depth int    // 1 + the deepest parent's
	anc   bitset // indexes of every ancestor
}

// Create makes a new group's first change, signed with key: the author
// (key's peer) is its first admin and member, members its other members.
// ca, if not nil, is the SHA-256 of the SubjectPublicKeyInfo of the CA
// whose certificates members must hold.
func Create(key ed25519.PrivateKey, name string, members []peer.ID, ca []byte, now time.Time) (*Change, error) {
	author, err := identity.PeerIDFromKey(key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	c := &Change{Op: OpCreate, Author: author, Time: now, Name: name, Members: slices.Clone(members), CA: bytes.Clone(ca)}
	if _, err := rand.Read(c.Nonce[:]); err != nil {
		return nil, err
	}
	if err := c.sign(key); err != nil {
		return nil, err
	}
	return c, nil
}

// New starts a log from a group's create change.
func New(create *Change) (*Log, error) {
	if create.Op != OpCreate {
		return nil, fmt.Errorf("%w: a group starts with a create, not %s", ErrMalformed, create.Op)
	}
	l := &Log{id: ID(create.hash), nodes: map[Hash]*entry{}, heads: map[Hash]bool{}, pending: map[Hash]*Change{}, heldAt: map[Hash]uint64{}, aside: keptOut{}, poison: hashSet{}, uncounted: hashSet{}, stale: keptOut{}, bad: badSet{}}
	l.insert(create)
	l.refold()
	return l, nil
}

// Restore rebuilds a log from changes a member stored (Changes): the
// create first, each change after its parents. Stored changes are checked
// again, but not for staleness.
func Restore(raws [][]byte) (*Log, error) {
	if len(raws) == 0 {
		return nil, fmt.Errorf("%w: no changes", ErrMalformed)
	}
	cs := make([]*Change, len(raws))
	for i, raw := range raws {
		c, err := Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("stored group change %d: %w", i, err)
		}
		cs[i] = c
	}
	l, err := New(cs[0])
	if err != nil {
		return nil, err
	}
	for i, c := range cs[1:] {
		if err := l.add(c, false, false, nil); err != nil {
			return nil, fmt.Errorf("stored group change %d: %w", i+1, err)
		}
	}
	// A log stored before changes beside their author's leave were
	// dropped may hold some; the stored order (a parent before its
	// children, any order else) must not decide which, so they are
	// dropped once all are in.
	l.prune()
	return l, nil
}

// ID is the group's ID.
func (l *Log) ID() ID { return l.id }

// State is the membership every member with the same changes computes.
func (l *Log) State() State { return l.state.clone() }

// IsMember says whether p is a member in State, without copying it.
func (l *Log) IsMember(p peer.ID) bool { return l.state.IsMember(p) }

// Name is State's name, without copying it.
func (l *Log) Name() string { return l.state.Name }

// Creator is the peer that made the group (signed its create).
func (l *Log) Creator() peer.ID { return l.state.Creator }

// Heads are the changes no other change builds on yet, sorted.
func (l *Log) Heads() []Hash {
	hs := make([]Hash, 0, len(l.heads))
	for h := range l.heads {
		hs = append(hs, h)
	}
	slices.SortFunc(hs, func(a, b Hash) int { return bytes.Compare(a[:], b[:]) })
	return hs
}

// Changes are the log's changes' encodings, each after its parents: what
// a member stores, and what a new member is sent. Among them, each after
// the newest change of the log it builds on, come the changes kept out
// that the removals UndoneRemovals names rest on (undoneChanges), which a
// log restored or sent keeps out again.
func (l *Log) Changes() [][]byte {
	carry := undoneChanges(l)
	after := make(map[int][][]byte, len(carry))
	for _, c := range carry {
		after[c.after] = append(after[c.after], c.c.raw)
	}
	out := make([][]byte, 0, len(l.order)+len(carry))
	for _, e := range l.order {
		out = append(append(out, e.c.raw), after[e.idx]...)
	}
	return out
}

// Revision counts the changes the log took in or dropped since New (or
// Restore): a log whose Revision did not move holds what it held.
func (l *Log) Revision() int { return l.rev }

// Has says whether the log holds the change.
func (l *Log) Has(h Hash) bool { return l.nodes[h] != nil }

// Missing lists the changes that held changes build on and this log has
// not seen: what to ask the sender for.
func (l *Log) Missing() []Hash {
	var out []Hash
	for _, c := range l.pending {
		for _, p := range c.Parents {
			// One found poisoned never comes back (poisonedOut), and
			// one refused as stale is held already (its child vouches
			// for nothing). None held builds on one refused where it
			// was built: refuseFor refuses those with it.
			if l.nodes[p] == nil && l.pending[p] == nil && !l.poison[p] && l.stale[p] == nil && !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

// Effect says whether an accepted change took effect in the membership,
// and if not, why (a concurrent removal of its author, or a change that
// crossed it and made it moot; or, for one kept out of the log since,
// what it was signed beside).
func (l *Log) Effect(h Hash) error {
	if l.poison[h] && l.nodes[h] == nil {
		if a := l.aside[h]; a != nil {
			return poisonedErr(a)
		}
		return keptOutPoisoned("group change " + h.String())
	}
	if a := l.aside[h]; a != nil && l.nodes[h] == nil {
		_, anc, out, ok := l.asideAncestry(a)
		if ok && stooge(l, a, anc, out) {
			return fmt.Errorf("%w: %s by %s was kept out of the log, %s", ErrNotMember, a.Op, identity.ShortID(a.Author), stoogeWhy(l, a, anc))
		}
		switch {
		case creatorRemoved(l, a.Author):
			return fmt.Errorf("%w: %s by %s was kept out of the log, signed beside its author's removal by the creator", ErrNotMember, a.Op, identity.ShortID(a.Author))
		case ok && crossesOusting(l, a, anc):
			return fmt.Errorf("%w: %s by %s was kept out of the log: it crossed its author's removal beside another change of its author's that crossed it", ErrNotMember, a.Op, identity.ShortID(a.Author))
		}
		return besideLeave(a, "was kept out of the log, signed")
	}
	if l.nodes[h] == nil {
		return fmt.Errorf("group change %s is not in the log", h)
	}
	return l.outcome[h]
}

// TookEffect lists the changes that match and take effect in the
// membership: what a node notes before it takes a frame, to tell which
// of them a change that crossed them undid (Effect, after).
func (l *Log) TookEffect(match func(*Change) bool) []*Change {
	var out []*Change
	for _, e := range l.order {
		if l.outcome[e.c.hash] == nil && match(e.c) {
			out = append(out, e.c)
		}
	}
	return out
}

// Refused returns, and forgets, why held changes were refused once their
// parents arrived: Add had answered ErrMissingParents for them.
func (l *Log) Refused() []error {
	r := make([]error, len(l.refused))
	for i, rc := range l.refused {
		r[i] = rc
	}
	l.refused = nil
	return r
}

// Propose makes and signs a change by key's peer to the current version:
// op with peer p (add, remove, admin) or name (rename), or a leave. It is
// refused, with the reason, if it would not take effect now. The caller
// adds it to the log (Add) and sends it to the members.
func (l *Log) Propose(key ed25519.PrivateKey, op Op, p peer.ID, name string, now time.Time) (*Change, error) {
	author, err := identity.PeerIDFromKey(key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	c := &Change{Group: l.id, Parents: l.Heads(), Op: op, Author: author, Time: now, Peer: p, Name: name}
	if len(c.Parents) > MaxParents {
		c.Parents = c.Parents[:MaxParents]
	}
	if err := c.sign(key); err != nil {
		return nil, err
	}
	s := l.state.clone()
	if err := s.apply(c); err != nil {
		return nil, err
	}
	return c, nil
}

// Add checks a change from a member and, if it is allowed, adds it and
// computes the membership again. A change already held is accepted
// again without effect. A change whose parents are missing is held
// (ErrMissingParents; Missing names them) and added when they arrive.
func (l *Log) Add(c *Change) error {
	return addLifting(l, c, nil)
}

// AddWith is Add for a change that came with others (a frame of a
// member's log, each change after its parents; rest are those after c): a
// change that one of them builds on, by another author the log names, is
// vouched for as a held change's parent is (wanted), and needed whatever
// its age. Without this, a member sent a log in order would refuse as
// stale a change its sender took late (its child was held first), and
// lack both.
func (l *Log) AddWith(c *Change, rest []*Change) error {
	return addLifting(l, c, rest)
}

// addLifting is add with every check, then looks again at what was
// decided on the changes set aside (settle).
func addLifting(l *Log, c *Change, rest []*Change) error {
	before := maps.Clone(lapsedRemovals(l))
	err := l.add(c, true, true, rest)
	settle(l, before, c.hash)
	return err
}

// add adds c; checkStale and checkBeside turn the checks of checkFresh
// and besideLeave on (Restore turns both off, and prunes once all are
// in); rest are the changes that came after c with it (AddWith).
func (l *Log) add(c *Change, checkStale, checkBeside bool, rest []*Change) error {
	if c.Op == OpCreate {
		if ID(c.hash) == l.id {
			return nil
		}
		return fmt.Errorf("%w: a create of another group", ErrWrongGroup)
	}
	if c.Group != l.id {
		return fmt.Errorf("%w: %s", ErrWrongGroup, c.Group.Short())
	}
	if l.nodes[c.hash] != nil {
		return nil
	}
	if err := badParent(l, c); err != nil {
		return err
	}
	if checkBeside && poisonedOut(l, c, nil) && poisonSettled(l, c) {
		l.setAside(c)
		return poisonedErr(c)
	}
	if !l.parentsKnown(c) {
		if l.pending[c.hash] != nil {
			// Held already: what it vouches for was brought back when it
			// came, and one to keep out is set aside as things change
			// (settleHeld). Looked at again, a frame of n held changes
			// sent again cost n³ reads of the changes held once a change
			// was set aside: 5.8 s for 255 (SECURITY.md).
			return fmt.Errorf("%w: %s", ErrMissingParents, c.hash)
		}
		if l.keptOutChild(c, indexHeld(l)) {
			l.setAside(c)
			return fmt.Errorf("%w: %s by %s builds on changes kept out of the log and vouches for none of them", ErrNotMember, c.Op, identity.ShortID(c.Author))
		}
		if err := l.hold(c); !errors.Is(err, ErrMissingParents) {
			return err
		}
		return l.recall(c)
	}
	// A change that a held one builds on was vouched for by a newer one:
	// it is needed whatever its age.
	if checkStale && !l.wanted(c) && !l.vouched(c, rest) {
		if err := l.checkFresh(c); err != nil {
			refuseStale(l, c, false)
			return err
		}
	}
	// A change that builds on every change of the log is beside none of
	// its leaves, but may be beside one set aside, and its author may be
	// a stooge (named by no change of the log that stands).
	if l.extendsAll(c) && !(checkBeside && (l.asideEndOf(c.Author) || stoogeStep(l, c))) {
		// Every change of the log is an ancestor of c, and none is
		// concurrent with it: the fold of the log with c is the fold
		// without it, then c; and c's parents describe the membership
		// the log holds.
		next := l.state.clone()
		if err := next.apply(c); err != nil {
			return refuseFor(l, c, refusal(c, err))
		}
		if err := logRoom(l); err != nil {
			return err
		}
		valid := namersValid(l)
		l.insert(c)
		stepNamers(l, c, valid)
		l.state = next
		l.release()
		recallNamed(l, c)
		// A change held for c, with other parents set aside, may be
		// one to set aside now (keptOutChild): it waited for c only.
		if heldOn(l, c) && l.settleHeld(nil) {
			l.prune()
		}
		return nil
	}
	if err := l.admissible(c); err != nil {
		return refuseFor(l, c, err)
	}
	// c does not build on every change of the log, so a leave by its
	// author may be concurrent with it (never for an honest author).
	if checkBeside {
		anc, protected := l.ancestors(c), l.heldChild(c)
		if err := l.besideLeave(c, anc, -1, protected); err != nil {
			l.setAside(c)
			return err
		}
		if !protected && stooge(l, c, anc, nil) {
			l.setAside(c)
			return fmt.Errorf("%w: %s by %s was kept out of the log, %s", ErrNotMember, c.Op, identity.ShortID(c.Author), stoogeWhy(l, c, anc))
		}
	}
	if err := logRoom(l); err != nil {
		return err
	}
	l.insert(c)
	if !crossedStep(l, c) {
		l.refold()
	}
	l.release()
	recallNamed(l, c)
	if checkBeside {
		// c, or a change released after it, may have made changes of
		// the log moot (a leave beside them, a leave built on), or a
		// change held on one of them may have been refused.
		l.prune()
	}
	return nil
}

// logRoom refuses a change to a log that holds MaxChanges already
// (ErrLogFull), whether it would take it in one step or by a fold.
func logRoom(l *Log) error {
	if len(l.order) >= MaxChanges {
		return fmt.Errorf("%w (%d)", ErrLogFull, len(l.order))
	}
	return nil
}

// besideLeave says why c (whose ancestors in the log are anc, its index
// in the log idx, -1 if it is not in it) is kept out of the log, or nil.
// It is kept out when no change builds on it (protected: a change of the
// log, or one held for it) and it was signed beside a leave by its own
// author (neither is an ancestor of the other) that this log holds or
// set aside, if that leave builds on every leave of the author's
// before c (leavesUnder): any change but a leave, and a leave if the
// other is earlier (depth, then hash) and of the same membership (an
// author who left, was added again and left again keeps its second
// leave). An honest client names
// its own last change among the parents of its next, so it never signs
// such a change; a former member could sign any number of them on old
// versions where it was a member (more leaves, each with its own time),
// each admissible where it was built and of no effect in the fold (a
// change beside its author's leave does not take effect, §14.4; of two
// leaves, one at most), and fill the log (MaxChanges).
//
// Whether c is kept out depends on the changes the log holds or set
// aside, never on which are kept out (a change set aside still counts
// as a leave beside others), and a change that builds on c brings it
// back: so which changes the log keeps is the same whatever order they
// came in (TestRandomOrdersConvergeSweep).
func (l *Log) besideLeave(c *Change, anc bitset, idx int, protected bool) error {
	if protected {
		return nil
	}
	self := &entry{c: c, idx: idx, depth: depthOf(l, c)}
	// The author's leaves before c, each of which a leave beside c must
	// come after too (leavesUnder), read once a leave of the author's is
	// found: most changes are beside none.
	var before []int
	read := false
	starts := startsOf(l, c.Author)
	voidsUnder := voidsUnderOf(l, c, anc, idx)
	beside := func(lv *entry, lvAnc bitset) bool {
		if !read {
			before, read = leavesBefore(l, c.Author, anc), true
		}
		if rejoined(starts, anc, lvAnc) || !leavesUnder(before, lvAnc) {
			return false
		}
		return c.Kind() != OpLeave || (earlier(lv, self) && !voidsUnder(lvAnc))
	}
	for _, lv := range l.order {
		if lv.c.Kind() != OpLeave || lv.c.Author != c.Author || lv.idx == idx || anc.has(lv.idx) || (idx >= 0 && lv.anc.has(idx)) {
			continue
		}
		if beside(lv, lv.anc) {
			return fmt.Errorf("%w: %s by %s was signed beside its author's leave", ErrNotMember, c.Op, identity.ShortID(c.Author))
		}
	}
	for h, a := range l.aside {
		if a.Kind() != OpLeave || a.Author != c.Author || h == c.hash || l.uncounted[h] {
			continue
		}
		// A change set aside is no ancestor of c (c's are in the log);
		// c may be one of its.
		d, ancs, above, ok := l.asideAncestry(a)
		if !ok || (idx >= 0 && ancs.has(idx)) || above[c.hash] {
			continue
		}
		if beside(&entry{c: a, depth: d}, ancs) {
			return fmt.Errorf("%w: %s by %s was signed beside its author's leave", ErrNotMember, c.Op, identity.ShortID(c.Author))
		}
	}
	return l.besideRemoval(self, anc, starts, voidsUnder)
}

// leavesBefore are the indexes of the leaves by p among anc, the
// ancestors of a change of p's in the log (besideLeave).
func leavesBefore(l *Log, p peer.ID, anc bitset) []int {
	var out []int
	for _, e := range l.order {
		if e.c.Kind() == OpLeave && e.c.Author == p && anc.has(e.idx) {
			out = append(out, e.idx)
		}
	}
	return out
}

// leavesUnder says whether every one of before (leavesBefore: the leaves
// of a change's author among its ancestors) is among an end's ancestors
// endAnc: only then does that end, a leave of the author's concurrent
// with the change, keep the change out of the log (besideLeave), and,
// set aside, count against it (besideEnd). Such a leave is beside the
// one the change builds on, and kept out of the log as its duplicate,
// so the fold never sees it; counted against a change that builds on
// the other, it kept out a change the fold takes when that leave took
// no effect (it crossed its author's removal by an admin, and an add
// concurrent with the removal made the author a member again: found
// 2026-12-06 by the converge sweep, seed 4590;
// TestLeaveBesideAVoidLeaveKeepsNoMemberOut). Read for a leave in the
// log too, as it may be dropped as such a duplicate once its earlier
// leave comes, and what it kept out would stay out. An author whose
// leave took effect is no member on it, and signs no change there that
// the log takes (admissible).
func leavesUnder(before []int, endAnc bitset) bool {
	for _, b := range before {
		if !endAnc.has(b) {
			return false
		}
	}
	return true
}

// voidable are the indexes of the changes of the log by c's author,
// no leave, that c, a leave with ancestors anc in the log (idx its
// index, -1 if it is not in it), is concurrent with: what it voids. A
// leave beside an earlier leave of its author's stays in the log if the
// earlier one builds on one of them (besideLeave), for the fold to
// void it: before (found 2026-12-06), an admin who had left signed an
// add on a version from before its last changes, and a leave on it
// earlier than its real one; the real leave, which nothing built on
// yet, was set aside as beside the earlier, and the fold, which no
// longer saw it, took the add (TestBackdatedAddBesideALeaveTakesNoEffect).
// A flood of leaves on one version voids nothing more than the earliest
// of them, and stays out. It reads the log once.
func voidable(l *Log, c *Change, anc bitset, idx int) []int {
	out := []int{}
	for _, x := range l.order {
		if x.c.Author == c.Author && x.c.Kind() != OpLeave && !anc.has(x.idx) && x.idx != idx && !(idx >= 0 && x.anc.has(idx)) {
			out = append(out, x.idx)
		}
	}
	return out
}

// voidsUnderOf says, for an end with ancestors endAnc beside c (a
// change with ancestors anc in the log, idx its index or -1), whether c
// is a leave that voids a change of its author's that the end builds on
// (voidable, read once, when first asked): such a leave stays in the log
// beside an earlier leave, or a removal by the creator, for the fold to
// void that change.
func voidsUnderOf(l *Log, c *Change, anc bitset, idx int) func(endAnc bitset) bool {
	var voids []int
	return func(endAnc bitset) bool {
		if c.Kind() != OpLeave {
			return false
		}
		if voids == nil {
			voids = voidable(l, c, anc, idx)
		}
		return slices.ContainsFunc(voids, endAnc.has)
	}
}

// besideRemoval is besideLeave's rule for a removal of c's author by
// the creator (and, at its end, besideFlood's for one by another admin):
// c, which no change builds on, was signed beside one that
// this log holds or set aside. Nobody can remove the creator, so no
// removal voids such a removal, and the fold voids every change of the
// removed peer's beside it, whether or not it takes effect (§14.4):
// keeping c out changes no membership, unless c is a leave that voids
// a change of its author's that the removal builds on (voidable): that
// leave stays, for the fold to void the change, as the rules of which
// changes stand do (before, found 2026-12-06, the fold took such a
// grant while those rules kept its grantee's admin changes out:
// TestLeaveBesideARemovalOnItsAuthorsGrant). A removed admin could otherwise
// sign any number of changes on versions from before its removal (a
// chain of renames, each on the last, is never stale), and a member in
// league relay them, to fill the log. Like leaves, removals set aside
// count; one the creator signed beside its own leave lapses, and counts
// nowhere (lapsedRemovals); and neither counts against a change of a
// later membership of c's author (rejoined). self is c as besideLeave
// reads it (its index and depth), starts its author's later memberships
// and voidsUnder what c voids, read there once for both rules.
func (l *Log) besideRemoval(self *entry, anc bitset, starts []int, voidsUnder func(bitset) bool) error {
	c, idx := self.c, self.idx
	beside := slices.ContainsFunc(l.order, func(r *entry) bool {
		return ousts(l, r.c, c.Author) && !anc.has(r.idx) && !(idx >= 0 && r.anc.has(idx)) && !rejoined(starts, anc, r.anc) && !voidsUnder(r.anc)
	})
	for h, a := range l.aside {
		if beside {
			break
		}
		if !ousts(l, a, c.Author) || h == c.hash {
			continue
		}
		_, ancs, above, ok := l.asideAncestry(a)
		beside = ok && !(idx >= 0 && ancs.has(idx)) && !above[c.hash] && !rejoined(starts, anc, ancs) && !voidsUnder(ancs) && !voidsAside(l, c, idx, above)
	}
	if beside {
		return fmt.Errorf("%w: %s by %s was signed beside its removal by the creator", ErrNotMember, c.Op, identity.ShortID(c.Author))
	}
	return besideFlood(l, self, anc, starts)
}

// depthOf is the depth c has, or would have, in the log: 1 + its
// deepest parent's (all in the log).
func depthOf(l *Log, c *Change) int {
	depth := 1
	for _, p := range c.Parents {
		depth = max(depth, l.nodes[p].depth+1)
	}
	return depth
}

// voidsAside says whether c, a leave (index idx in the log, -1 if it is
// not in it), voids a change of its author's, no leave, among above: the
// ancestors set aside of an end set aside beside c. voidsUnderOf reads
// the end's ancestors in the log only; one set aside with the end (the
// removal vouched for it, and is set aside itself) comes into the log
// with it, and the fold then voids it only with c. Before (found
// 2026-12-06 by the converge sweep, seed 1265, once its game had
// floods), the creator removed an admin on the admin's grant, concurrent
// with the admin's leave: a log that judged the leave while the removal
// and the grant were set aside kept the leave out for good, one that
// had them in the log kept it.
func voidsAside(l *Log, c *Change, idx int, above map[Hash]bool) bool {
	if c.Kind() != OpLeave {
		return false
	}
	for h := range above {
		x := l.aside[h]
		if x == nil || x.Author != c.Author || x.Kind() == OpLeave {
			continue
		}
		if _, xanc, xabove, ok := l.asideAncestry(x); ok && !(idx >= 0 && xanc.has(idx)) && !xabove[c.hash] {
			return true
		}
	}
	return false
}

// asideAncestry is what a change set aside builds on: its depth, its
// ancestors in the log, and those out of it (set aside, or not held).
// ok is false if an ancestor is neither in the log nor set aside.
func (l *Log) asideAncestry(a *Change) (depth int, anc bitset, out map[Hash]bool, ok bool) {
	out = map[Hash]bool{}
	depths := map[Hash]int{}
	var walk func(c *Change) (int, bool)
	walk = func(c *Change) (int, bool) {
		d := 1
		for _, p := range c.Parents {
			if e := l.nodes[p]; e != nil {
				anc.or(e.anc)
				anc.set(e.idx)
				d = max(d, e.depth+1)
				continue
			}
			pd, seen := depths[p]
			if !seen {
				pa := l.aside[p]
				out[p] = true
				if pa == nil {
					return 0, false
				}
				var ok bool
				if pd, ok = walk(pa); !ok {
					return 0, false
				}
				depths[p] = pd
			}
			d = max(d, pd+1)
		}
		return d, true
	}
	depth, ok = walk(a)
	return depth, anc, out, ok
}

// keptOut holds changes kept out of the log for now, for a change that
// builds on one to bring it back (recall), so that which changes the log
// holds does not depend on whether a change came before or after the
// one built on it: those set aside as moot (besideLeave: Log.aside) and
// those refused as stale (checkFresh: Log.stale, which a change on top
// vouches for as it would had it come first, wanted). At most
// MaxPending; past that, one is forgotten, and comes back only when
// asked for (group-want, §14.5).
type keptOut map[Hash]*Change

// keep adds c, making room if it must (not if c is kept already: a
// change dealt again pushed out another at random).
func (k keptOut) keep(c *Change) {
	makeRoom(k, c.hash, MaxPending)
	k[c.hash] = c
}

// hashSet holds the hashes of changes found poisoned (poisonedOut), at
// most MaxChanges (32 bytes each); past that, one is forgotten, and is
// found poisoned again if its parents are known.
type hashSet map[Hash]bool

// keep adds h, making room if it must.
func (k hashSet) keep(h Hash) {
	makeRoom(k, h, MaxChanges)
	k[h] = true
}

// badSet holds the changes refused where they were built (rule 5 of
// §14.3 against the fold of their ancestors: the same refusal in every
// log, whatever else it holds), and those that build on one, each with
// why: at most MaxChanges; past that, one is forgotten, and is refused
// again when it comes.
type badSet map[Hash]error

// keep adds h, refused for err, making room if it must.
func (k badSet) keep(h Hash, err error) {
	makeRoom(k, h, MaxChanges)
	k[h] = err
}

// refuseFor records that c is refused where it was built, for err, and
// refuses the changes held that build on it, and on those: none can ever
// be placed, and the log would ask for c for ever, and be sent the whole
// log each time (TestChangeOnARefusedOneIsDropped). A change so refused
// may have vouched for a head while it was held: the log looks at the
// heads again (TestLeaveVouchedByAChangeOnARefusedOneGoes). It returns
// err.
func refuseFor(l *Log, c *Change, err error) error {
	if dropOnBad(l, c, err) {
		l.prune()
	}
	return err
}

// dropOnBad records c as refused for err, and drops the changes held on
// it, and on those, reporting each (Refused); it says whether one of
// them built on a head of the log.
func dropOnBad(l *Log, c *Change, err error) (onHead bool) {
	l.bad.keep(c.hash, err)
	return unholdOn(l, c, nil, func(p *Change) bool {
		why := onBad(p, err)
		l.refused = append(l.refused, &RefusedChange{p.hash, why})
		return dropOnBad(l, p, why)
	})
}

// unholdOn takes out of the changes held each that builds on c (and
// that also, if not nil, accepts), and hands it to then, which drops
// the changes held on it in turn; it says whether one of them, or of
// those then dropped, built on a head of the log or on a change held
// (unhold), and so may have vouched for a head.
func unholdOn(l *Log, c *Change, also, then func(p *Change) bool) (onHead bool) {
	for h, p := range l.pending {
		if slices.Contains(p.Parents, c.hash) && (also == nil || also(p)) {
			vouched := unhold(l, h)
			onHead = then(p) || vouched || onHead
		}
	}
	return onHead
}

// badParent refuses c if it builds on a change refused where it was
// built (refuseFor), or was refused so itself.
func badParent(l *Log, c *Change) error {
	if err := l.bad[c.hash]; err != nil {
		return err
	}
	for _, p := range c.Parents {
		if err := l.bad[p]; err != nil {
			return refuseFor(l, c, onBad(c, err))
		}
	}
	return nil
}

// onBad is why c, which builds on a change refused for err, is refused.
func onBad(c *Change, err error) error {
	return fmt.Errorf("%s by %s builds on a change that is refused: %w", c.Op, identity.ShortID(c.Author), err)
}

// makeRoom makes room in m, which holds at most limit, for h: if m is
// full and does not hold h, one entry, any, goes.
func makeRoom[V any](m map[Hash]V, h Hash, limit int) {
	if _, ok := m[h]; ok || len(m) < limit {
		return
	}
	for old := range m {
		delete(m, old)
		return
	}
}

// recall brings back the changes set aside that c, just held, builds on,
// and says what became of c: nil if it is in the log now, else why not.
func (l *Log) recall(c *Change) error {
	bringBack(l, c, false, map[Hash]bool{})
	switch {
	case l.nodes[c.hash] != nil:
		return nil
	case l.pending[c.hash] != nil && onOwnStale(l, c):
		// Held, c may have vouched for a head meanwhile (a change
		// set aside it brought back): the log looks again.
		refuseStale(l, c, unhold(l, c.hash))
		return fmt.Errorf("%w: %s by %s builds on a change by the same author for an old version", ErrStale, c.Op, identity.ShortID(c.Author))
	case l.pending[c.hash] != nil:
		return fmt.Errorf("%w: %s", ErrMissingParents, c.hash)
	case l.bad[c.hash] != nil:
		// A change it brought back was refused, and c with it
		// (refuseFor): said here, not among the held changes refused.
		err := l.bad[c.hash]
		l.refused = slices.DeleteFunc(l.refused, func(rc *RefusedChange) bool { return rc.Err == err })
		return err
	}
	return fmt.Errorf("%w: %s by %s builds on changes kept out of the log", ErrNotMember, c.Op, identity.ShortID(c.Author))
}

// bringBack brings back the changes refused as stale or set aside that
// c, held, builds on and vouches for, or that a change held on c
// vouches for through it (protected, if known: heldChild). A change held
// that c vouches for is protected now, and so is every change held
// under a protected one that is not poisoned (heldChild): what they
// build on comes back too, as it would have had it come last. Before
// (found 2026-12-05), a change of cat's held on her later leave, and
// dan's on hers, kept the leave only if the leave came after dan's:
// else the log set it aside, kept it out and asked for it
// (TestLeaveVouchedThroughAHeldChange).
func bringBack(l *Log, c *Change, protected bool, seen map[Hash]bool) {
	known := protected
	isProtected := func() bool {
		if !known {
			protected, known = l.heldChild(c), true
		}
		return protected
	}
	for _, p := range c.Parents {
		if s := l.stale[p]; s != nil && l.nodes[p] == nil && ((s.Author != c.Author && l.Named(c.Author)) || (s.Author == c.Author && l.wanted(c))) {
			// Vouched for by c, or by what vouches for c, its author's,
			// as a held change's parent is (wanted), whichever came
			// first.
			delete(l.stale, p)
			if err := l.add(s, false, true, nil); err != nil && !errors.Is(err, ErrMissingParents) && !errors.Is(err, ErrNotMember) {
				l.refused = append(l.refused, &RefusedChange{s.hash, err})
			}
		}
		if a := l.aside[p]; a != nil && l.nodes[p] == nil && (vouches(l, c, a, nil) || isProtected()) {
			unsetAside(l, p)
			// Moot again (set aside again) or held for its own parents
			// is what may become of it; anything else is news.
			if err := l.add(a, false, true, nil); err != nil && !errors.Is(err, ErrMissingParents) && !errors.Is(err, ErrNotMember) {
				l.refused = append(l.refused, &RefusedChange{a.hash, err})
			}
		}
		if h := l.pending[p]; h != nil && !seen[p] && (vouches(l, c, h, nil) || (isProtected() && !poisonedOut(l, c, nil))) {
			seen[p] = true
			bringBack(l, h, true, seen)
		}
	}
}

// recallNamed brings back the changes refused as stale that a change
// held by a peer c names (an add's) builds on: held, it vouched for
// none of them while no change of the log named its author, and now
// does (bringBack), as it would have had c come first. Before (found
// 2026-12-05), a log that had xen's leave on ben's stale rename before
// ann's add of xen refused the rename, held the leave for ever and kept
// xen, while one that had the add first took both
// (TestStaleVouchedByOneNamedLater).
func recallNamed(l *Log, c *Change) {
	var by []*Change
	for _, p := range namesOf(c) {
		for _, h := range l.pending {
			if h.Author == p && slices.ContainsFunc(h.Parents, func(x Hash) bool { return l.stale[x] != nil }) {
				by = append(by, h)
			}
		}
	}
	for _, h := range by {
		if l.pending[h.hash] != nil { // not taken or refused meanwhile
			bringBack(l, h, false, map[Hash]bool{})
		}
	}
}

// onOwnStale says whether c builds on a change by its own author
// refused as stale (refuseStale).
func onOwnStale(l *Log, c *Change) bool {
	return slices.ContainsFunc(c.Parents, func(p Hash) bool {
		s := l.stale[p]
		return s != nil && l.nodes[p] == nil && s.Author == c.Author
	})
}

// asideEndOf says whether a leave by p, or a removal of p by the
// creator that has not lapsed, is set aside: either may keep p's
// changes out (besideLeave).
func (l *Log) asideEndOf(p peer.ID) bool {
	for _, a := range l.aside {
		if ending(l, a, p) {
			return true
		}
	}
	return false
}

// creatorRemoved says whether the log holds or set aside a removal of p
// by the creator (one set aside counts as one held: besideRemoval).
func creatorRemoved(l *Log, p peer.ID) bool {
	if slices.ContainsFunc(l.order, func(e *entry) bool { return ousts(l, e.c, p) }) {
		return true
	}
	for _, a := range l.aside {
		if ousts(l, a, p) {
			return true
		}
	}
	return false
}

// creatorRemoval says whether c is a removal by creator of someone
// else: one that counts set aside (besideRemoval).
func creatorRemoval(c *Change, creator peer.ID) bool {
	return c.Kind() == OpRemove && c.Author == creator
}

// setAside keeps c out of the log (Log.aside), and with it the changes
// held for it that keptOutChild keeps out now: its author's, on it,
// that nothing vouches for, and stooges'. Otherwise they would wait for
// it for ever, where a log that had them first kept them out. It prunes
// the log when c counts beside the log's changes set aside (an end). A
// change held that vouched for heads of the log while its ancestry was
// not all known (vouches) is set aside, if at all, when its last parent
// comes: after a fold, whose add prunes; or in one step, whose change
// builds on those heads and vouches for them itself
// (TestStoogeHeldFirstLetsItsParentsGo).
func (l *Log) setAside(c *Change) {
	keepAside(l, c)
	if l.settleHeld(nil) || countsAside(c, l.state.Creator) {
		l.prune() // set aside, it counts beside the log's changes
	}
}

// keepAside sets c aside (Log.aside), and unsetAside takes h back out:
// each moves Log.asideAt, which tells namersOf's cache to look at the
// ends set aside again (namersValid). When MaxPending are set aside, a
// change found poisoned that is no end makes room first: what builds
// on it is known poisoned by its hash (Log.poison), and it never comes
// back; else a chain longer than MaxPending pushed out, at random, the
// changes that may. It is kept while there is room: an end set aside
// counts only with its ancestors known (asideAncestry).
func keepAside(l *Log, c *Change) {
	if len(l.aside) >= MaxPending && l.aside[c.hash] == nil {
		for h, a := range l.aside {
			if l.poison[h] && !countsAside(a, l.state.Creator) {
				delete(l.aside, h)
				break
			}
		}
	}
	l.aside.keep(c)
	l.asideAt++
}

func unsetAside(l *Log, h Hash) {
	delete(l.aside, h)
	l.asideAt++
	l.unvoided = true
}

// heldOn says whether a change held names c among its parents.
func heldOn(l *Log, c *Change) bool {
	for _, p := range l.pending {
		if slices.Contains(p.Parents, c.hash) {
			return true
		}
	}
	return false
}

// unhold takes h out of the changes held (Log.pending) and their order
// (Log.heldAt), and says whether it may have vouched for a head of the
// log while it was held (heldChild): it builds on one, or on a change
// held, through which it may have vouched for one. A change that leaves
// so without entering the log (refused, set aside, pushed out) vouches
// no more, and the log must look at its heads again (prune), as one
// that never held it would: else a leave beside another of its
// author's stayed in one log and not in another
// (TestLeaveVouchedByAHeldChangeGoesWithIt and the tests after it).
func unhold(l *Log, h Hash) (vouched bool) {
	c := l.pending[h]
	delete(l.pending, h)
	delete(l.heldAt, h)
	return c != nil && slices.ContainsFunc(c.Parents, func(q Hash) bool { return l.heads[q] || l.pending[q] != nil })
}

// countsAside says whether c, set aside, still counts beside the
// changes of the log: a leave, or a removal by creator (besideLeave).
func countsAside(c *Change, creator peer.ID) bool {
	return c.Kind() == OpLeave || creatorRemoval(c, creator)
}

// settleHeld sets aside the changes held that keptOutChild keeps out,
// and says whether one of them counts beside the log's changes, or is
// poisoned, or builds on a head (what it vouched for may have to go).
// held is the changes held indexed, if the caller has them (prune), or
// nil.
func (l *Log) settleHeld(held *heldIndex) (counted bool) {
	for moved := true; moved; {
		moved = false
		if held == nil {
			idx := indexHeld(l)
			held = &idx
		}
		for h, p := range l.pending {
			if l.keptOutChild(p, *held) {
				vouched := unhold(l, h)
				keepAside(l, p)
				// A change held that builds on a head of the log, or
				// found poisoned since it was held, may have vouched for
				// heads until then (heldChild): they are looked at again
				// too. Else a leave beside another of its author's,
				// taken while a change held on it vouched, stayed once
				// that change was set aside, and not in a log that had
				// both later (TestLeaveVouchedByAHeldChangeGoesWithIt).
				moved, counted = true, counted || countsAside(p, l.state.Creator) || l.poison[h] || vouched
				held = nil
				break // what is held changed: index it again
			}
		}
	}
	return counted
}

// keptOutChild says whether c, whose parents are not all in the log,
// builds on a change that the log keeps out (besideLeave, stooge) and
// is kept out too, without a fold: nothing held vouches for it
// (heldChild), and either c is a stooge's (stooge: it vouches for
// nothing, so what it builds on never comes back for it), or it builds
// on a change of its own author's and was signed beside a removal of its
// author by the creator, or (c no leave) beside a leave of its author's,
// in the log or set aside, for the same reason as that change. Only a
// change by another author who is no stooge, or a leave, brings a change
// kept out back (recall, vouches), with what it builds on. Before, each
// change of a chain beside its author's leave, each on the last, was
// held, brought back every one before it, and the log dropped them all
// again: a fold per change of the chain for every new one (3 s of CPU
// for 400).
func (l *Log) keptOutChild(c *Change, held heldIndex) bool {
	onAside := func(own bool) bool {
		return slices.ContainsFunc(c.Parents, func(p Hash) bool {
			a := l.aside[p]
			return a != nil && l.nodes[p] == nil && (!own || a.Author == c.Author)
		})
	}
	// A poisoned change is kept out whatever vouches for it.
	if poisonedOut(l, c, nil) {
		return poisonSettled(l, c)
	}
	if !onAside(false) || held.protects(c) {
		return false
	}
	_, anc, out, ok := l.asideAncestry(c)
	if !ok {
		return false // it waits for a parent neither held nor set aside
	}
	// A stooge's change vouches for none it builds on (vouches).
	if stooge(l, c, anc, out) {
		return true
	}
	if !onAside(true) {
		return false
	}
	// A leave beside a leave of its author's is kept out or not by
	// besideLeave's rules between them: it comes in to be decided. A
	// change crossing its author's removal by an admin that takes effect
	// (ousting), on one of its own set aside, is off the line of such
	// changes or void on one that is (besideFlood).
	keeps := func(e *Change) bool {
		if c.Kind() != OpLeave && e.Peer == c.Author && ousting(l, e) {
			return true
		}
		return ending(l, e, c.Author) && !(e.Kind() == OpLeave && c.Kind() == OpLeave)
	}
	starts := startsOf(l, c.Author)
	for _, e := range l.order {
		if keeps(e.c) && !anc.has(e.idx) && !rejoined(starts, anc, e.anc) {
			return true
		}
	}
	for h, a := range l.aside {
		if !keeps(a) || out[h] {
			continue
		}
		if _, aanc, _, ok := l.asideAncestry(a); !ok || !rejoined(starts, anc, aanc) {
			return true
		}
	}
	return false
}

// heldChild says whether a change held for missing parents vouches for
// c (vouches), or builds on c by c's own author and is vouched for so in
// turn: what keeps c in the log though nothing in it builds on c. A
// change of c's author's alone does not: a chain of changes beside its
// author's leave or removal stays out whole (keptOutChild).
func (l *Log) heldChild(c *Change) bool {
	return indexHeld(l).protects(c)
}

// heldIndex is the changes held, by the parents they name (children),
// of the log l: heldChild asked of many changes at once (prune,
// settleHeld) reads one. vouchers keeps what vouches found of each.
type heldIndex struct {
	l        *Log
	children map[Hash][]*Change
	vouchers map[Hash]bool
}

// indexHeld indexes the changes l holds by the parents they name.
func indexHeld(l *Log) heldIndex {
	idx := heldIndex{l: l, children: map[Hash][]*Change{}, vouchers: map[Hash]bool{}}
	for _, p := range l.pending {
		for _, h := range p.Parents {
			idx.children[h] = append(idx.children[h], p)
		}
	}
	return idx
}

// protects is heldChild over idx.
func (idx heldIndex) protects(c *Change) bool {
	if len(idx.children) == 0 {
		return false
	}
	seen := map[Hash]bool{}
	// What poisonedOut found not poisoned on the way: each change held
	// above c asks of the chain under it, and without this a chain of n
	// held changes cost n² reads here, for each change held again
	// (SECURITY.md: a frame of held changes sent again, with a change set
	// aside, cost 5.8 s for 255).
	clean := map[Hash]bool{}
	var walk func(c *Change) bool
	walk = func(c *Change) bool {
		if seen[c.hash] {
			return false // met on another path, and answered there
		}
		seen[c.hash] = true
		idx.l.heldReads++
		// A poisoned change held vouches for nothing, and what builds
		// on it is poisoned too.
		return slices.ContainsFunc(idx.children[c.hash], func(p *Change) bool {
			return vouches(idx.l, p, c, idx.vouchers) || (!poisonedOut(idx.l, p, clean) && walk(p))
		})
	}
	return walk(c)
}

// ancestors are the indexes of every change of the log c builds on.
func (l *Log) ancestors(c *Change) bitset {
	var anc bitset
	for _, p := range c.Parents {
		e := l.nodes[p]
		anc.or(e.anc)
		anc.set(e.idx)
	}
	return anc
}

// prune drops the heads of the log that besideLeave keeps out, or that
// are a stooge's (stooge), until none is left (dropping a head makes its
// parents heads: peel), and folds again if it dropped any.
func (l *Log) prune() {
	for {
		held := indexHeld(l)
		out := peel(l, held)
		if len(out) == 0 {
			// Nothing dropped: what is held is as peel indexed it.
			if l.settleHeld(&held) {
				continue // a leave it set aside counts: look again
			}
			break
		}
		l.unvoided = true
		old := l.order
		l.nodes, l.heads, l.order = map[Hash]*entry{}, map[Hash]bool{}, nil
		l.creatorEnds, l.naming = nil, nil
		for _, e := range old {
			if !out[e] {
				l.insert(e.c)
			} else {
				keepAside(l, e.c)
			}
		}
		l.rev += len(out)
		// Which removals take effect, and so which changes count void
		// (ousting), is the fold's: peel reads it again.
		l.refold()
	}
}

// extendsAll says whether c builds on every head of the log, and so on
// every change it holds, and whether the fold can take it in one step:
// it can unless c makes an admin, which may reorder the seniority that
// decides between removals (folding.standing) made before it. In a group
// whose changes do not cross, that is every change but those: adding
// one costs a step, not a fold of the whole log, and a log of MaxChanges
// restores in linear time (BENCHMARKS, "A log of 4,096 changes").
func (l *Log) extendsAll(c *Change) bool {
	if stepOff || c.Op == OpAdmin || len(c.Parents) != len(l.heads) {
		return false
	}
	for i, p := range c.Parents {
		if !l.heads[p] || slices.Contains(c.Parents[:i], p) {
			return false
		}
	}
	return true
}

// stepOff turns extendsAll off: for tests only (SetStepForTest), to
// measure it against the fold.
var stepOff bool

// refusal is why c does not take effect where its parents put it.
func refusal(c *Change, err error) error {
	return fmt.Errorf("refused %s by %s: %w", c.Op, identity.ShortID(c.Author), err)
}

func (l *Log) parentsKnown(c *Change) bool {
	for _, p := range c.Parents {
		if l.nodes[p] == nil {
			return false
		}
	}
	return true
}

// hold keeps c until its parents come. Nothing but its signature has
// been checked (its author's rights are decided where its parents put
// it), so anyone who can send a member a frame of the group can have it
// hold changes on parents nobody has, which wait for ever. When
// MaxPending are held, the author whose held changes weigh most gives
// way (giveWay), c's author included: a flood, with one key or many,
// pushes out its own, not an honest change that came before its parent
// (TestHeldFloodGivesWay). What is dropped comes again with the next
// frame that carries it, as a change that came too early always did;
// until then it vouches for nothing, so the heads it built on are
// looked at again (TestLeaveVouchedByAHeldChangeThatGivesWay).
func (l *Log) hold(c *Change) error {
	l.pending[c.hash] = c
	l.held++
	l.heldAt[c.hash] = l.held
	if len(l.pending) > MaxPending {
		out := giveWay(l.pending, l.heldAt, l.Named)
		if unhold(l, out) && out != c.hash {
			// Forgotten, it vouches no more (a change that gives way
			// as it comes never did: nothing looked at the heads while
			// it was held).
			l.prune()
		}
		if out == c.hash {
			return fmt.Errorf("%w: %d changes wait for earlier ones, and those of %s give way first (a key the group does not name, or the one with the most)", ErrFull, len(l.pending), identity.ShortID(c.Author))
		}
	}
	return fmt.Errorf("%w: %s", ErrMissingParents, c.hash)
}

// giveWay picks the held change that makes room for another: the oldest
// held (at: the order they were held in) of the author whose held
// changes weigh most. An author no change of the log names (a key made
// for the purpose) weighs more than any it names; among those, the one
// holding the most weighs most.
func giveWay(pending map[Hash]*Change, at map[Hash]uint64, named func(peer.ID) bool) Hash {
	count := map[peer.ID]int{}
	for _, c := range pending {
		count[c.Author]++
	}
	weight := func(p peer.ID) int {
		if !named(p) {
			return count[p] + MaxPending + 1
		}
		return count[p]
	}
	var out Hash
	most, oldest := -1, uint64(0)
	for h, c := range pending {
		if w := weight(c.Author); w > most || (w == most && at[h] < oldest) {
			out, most, oldest = h, w, at[h]
		}
	}
	return out
}

// namedIn is the set of peers the changes of order name (Named).
func namedIn(order []*entry) map[peer.ID]bool {
	out := map[peer.ID]bool{}
	for _, e := range order {
		for _, p := range namesOf(e.c) {
			out[p] = true
		}
	}
	return out
}

// namesOf are the peers c makes members, whether or not it takes
// effect: a create's author and members, an add's peer.
func namesOf(c *Change) []peer.ID {
	switch c.Kind() {
	case OpCreate:
		return append([]peer.ID{c.Author}, c.Members...)
	case OpAdd:
		return []peer.ID{c.Peer}
	}
	return nil
}

// wanted says whether a held change builds on c, by an author some
// change of the log names (not a throwaway key: anyone can sign a change
// that is held) and other than c's (whose author would vouch for
// itself), or through held changes by c's author, each on the last: a
// change that vouches for the tip of an author's chain vouches for the
// chain, which the tip needs (TestStaleChainVouchedAtItsTip).
func (l *Log) wanted(c *Change) bool {
	var seen map[Hash]bool // the author's held changes looked at
	var on func(h Hash) bool
	on = func(h Hash) bool {
		for _, p := range l.pending {
			switch {
			case !slices.Contains(p.Parents, h):
			case p.Author != c.Author:
				if l.Named(p.Author) {
					return true
				}
			case !seen[p.hash]:
				if seen == nil {
					seen = map[Hash]bool{}
				}
				seen[p.hash] = true
				if on(p.hash) {
					return true
				}
			}
		}
		return false
	}
	return on(c.hash)
}

// vouched says whether a change of rest builds on c, by an author the
// log names other than c's, or through changes of rest by c's author
// (as wanted, for changes that came with c).
func (l *Log) vouched(c *Change, rest []*Change) bool {
	var memo map[Hash]bool // the author's changes of rest looked at
	var by func(c *Change, rest []*Change) bool
	by = func(c *Change, rest []*Change) bool {
		for i, d := range rest {
			if d == nil || !slices.Contains(d.Parents, c.hash) {
				continue
			}
			if d.Author != c.Author {
				if l.Named(d.Author) {
					return true
				}
				continue
			}
			v, ok := memo[d.hash]
			if !ok {
				if memo == nil {
					memo = map[Hash]bool{}
				}
				memo[d.hash] = false // a change is no ancestor of itself
				v = by(d, rest[i+1:])
				memo[d.hash] = v
			}
			if v {
				return true
			}
		}
		return false
	}
	return by(c, rest)
}

// refuseStale keeps c, refused as stale, with the changes held that
// build on it by its author, and those by it on them (staleHeldOn):
// each needs c, and none vouches for it (wanted would have), so the log
// would ask for c for ever and refuse it each time. A change that
// vouches for one of them later brings them all back (recall). One of
// them, or c if it was held and unhold said so (vouched), may have
// vouched for a head while it was held: the log looks at the heads
// again (refuseFor).
func refuseStale(l *Log, c *Change, vouched bool) {
	l.stale.keep(c)
	if staleHeldOn(l, c) || vouched {
		l.prune()
	}
}

// staleHeldOn refuses as stale the changes held on c by its author, and
// on those (refuseStale), and says whether one of them built on a head.
func staleHeldOn(l *Log, c *Change) (onHead bool) {
	byAuthor := func(p *Change) bool { return p.Author == c.Author }
	return unholdOn(l, c, byAuthor, func(p *Change) bool {
		l.stale.keep(p)
		return staleHeldOn(l, p)
	})
}

// release adds held changes whose parents have all arrived. A held
// change that is refused now is dropped: it will not become allowed.
func (l *Log) release() {
	for progress := true; progress; {
		progress = false
		for h, c := range l.pending {
			if !l.parentsKnown(c) {
				continue
			}
			unhold(l, h)
			progress = true
			if err := l.add(c, false, true, nil); err != nil && !errors.Is(err, ErrMissingParents) {
				l.refused = append(l.refused, &RefusedChange{c.hash, err})
			}
		}
	}
}

// checkFresh refuses a change built on a version more than StaleAfter
// behind the newest. A change that took no effect in the log's fold
// makes no version, and ages nothing: a removed admin's chain of renames
// on the version before its removal made changes concurrent with the
// removal stale where they came after it (TestRemovedAdminsFloodAgesNothing). For a removal, the newest leaves out the changes
// its target signed crossing it, and those built on them
// (crossingTarget): else the target, signing changes faster than its
// removal travels (a chain is never stale), or a member in league with
// one change on top of them, had members that saw them first refuse the
// removal as stale and keep it, while those that had the removal first
// removed it (TestRemovalNotMadeStaleByItsTarget).
func (l *Log) checkFresh(c *Change) error {
	newest, base := 0, 0
	skip := crossingTarget(l, c)
	for _, e := range l.order {
		_, failed := l.outcome[e.c.hash]
		if !skip.has(e.idx) && !failed {
			newest = max(newest, e.depth)
		}
	}
	for _, p := range c.Parents {
		base = max(base, l.nodes[p].depth)
	}
	if base+StaleAfter < newest {
		return fmt.Errorf("%w: %s by %s builds on a change %d behind the newest", ErrStale, c.Op, identity.ShortID(c.Author), newest-base)
	}
	return nil
}

// crossingTarget is, for a removal c whose parents the log holds, the
// indexes of the changes of the log its target signed that c does not
// build on, and of every change built on one of them; for a leave, the
// same of its author's (a departed admin's key signed changes on the
// version its leave builds on faster than the leave travelled, and
// members who had them first refused the leave as stale and kept the
// admin: TestLeaveNotMadeStaleByItsAuthor); nil for any other change.
// One pass over the log, parents first.
func crossingTarget(l *Log, c *Change) bitset {
	target := c.Peer
	switch c.Kind() {
	case OpRemove:
	case OpLeave:
		target = c.Author
	default:
		return nil
	}
	anc := l.ancestors(c)
	var out bitset
	for _, e := range l.order {
		if (e.c.Author == target && !anc.has(e.idx)) || e.anc.intersects(out) {
			out.set(e.idx)
		}
	}
	return out
}

// admissible checks c against the membership its parents describe: its
// author must have had the right to make it there, and it must have made
// sense there.
//
// A change on the last one it took alone (a chain, each on the last) is
// checked in one step against the membership that one and its
// ancestors describe, not a fold of its ancestry: a change is
// concurrent with none of its own ancestors, so the fold of them and it
// is the fold of them, then it (as for a change that builds on every
// head, extendsAll), unless it makes an admin (seniority).
func (l *Log) admissible(c *Change) error {
	s, ok := admittedFor(l, c)
	if !ok {
		anc := l.ancestors(c)
		s, _ = l.fold(func(e *entry) bool { return anc.has(e.idx) })
	}
	if err := s.apply(c); err != nil {
		return refusal(c, err)
	}
	if c.Op != OpAdmin {
		l.admitted.hash, l.admitted.state = c.hash, s
	}
	return nil
}

func (l *Log) insert(c *Change) {
	e := &entry{c: c, idx: len(l.order), depth: 1}
	for _, p := range c.Parents {
		pe := l.nodes[p]
		e.anc.or(pe.anc)
		e.anc.set(pe.idx)
		e.depth = max(e.depth, pe.depth+1)
		delete(l.heads, p)
	}
	l.nodes[c.hash] = e
	l.order = append(l.order, e)
	if (c.Kind() == OpLeave && c.Author == l.state.Creator) || creatorRemoval(c, l.state.Creator) {
		l.creatorEnds = append(l.creatorEnds, e)
	}
	for _, p := range namesOf(c) {
		if l.naming == nil {
			l.naming = map[peer.ID][]int{}
		}
		l.naming[p] = append(l.naming[p], e.idx)
	}
	l.heads[c.hash] = true
	l.rev++
	insertedEnds(l, c)
}

// admittedFor is the membership admissible checks c against without a
// fold, if c builds on the last change it took alone, and whether it
// does.
func admittedFor(l *Log, c *Change) (State, bool) {
	if stepOff || len(c.Parents) != 1 || l.admitted.state.Version == 0 || l.admitted.hash != c.Parents[0] {
		return State{}, false
	}
	return l.admitted.state.clone(), true
}

// crossedStep takes c, just inserted, into the fold in one step if the
// fold of the log with it is the fold without it, c taking no effect:
// c is a rename, a removal of its author that took effect (and so
// stands) is concurrent with it, and every removal c is concurrent with
// is concurrent with one of c's parents too, and so crossed another
// change already. A rename makes nobody a member or an admin, so no
// run of the fold decides a removal differently with it, and it is met
// after its parents without moving any other change. It says whether
// it did. A removed admin's chain of renames on a version from before
// its removal, each on the last, which a member in league relays
// (PROTOCOL §14.3, "Still open"), cost two folds of the whole log a
// change: 630 µs a change of a chain of 1,000, 30 µs now
// (BenchmarkChainCrossingARemoval).
func crossedStep(l *Log, c *Change) bool {
	if stepOff || c.Op != OpRename {
		return false
	}
	e := l.nodes[c.hash]
	removed, crossedBefore := false, true
	for _, r := range l.order {
		if r.c.Kind() != OpRemove || e.anc.has(r.idx) {
			continue
		}
		if r.c.Peer == c.Author && l.outcome[r.c.hash] == nil {
			removed = true
		}
		crossedBefore = crossedBefore && slices.ContainsFunc(c.Parents, func(p Hash) bool { return concurrent(r, l.nodes[p]) })
	}
	if !removed || !crossedBefore {
		return false
	}
	l.outcome[c.hash] = crossedRemoval(c)
	return true
}

func (l *Log) refold() {
	l.state, l.outcome = foldAll(l)
}

// bitset is a set of small non-negative integers.
type bitset []uint64

func (b *bitset) set(i int) {
	for len(*b) <= i/64 {
		*b = append(*b, 0)
	}
	(*b)[i/64] |= 1 << (i % 64)
}

func (b bitset) has(i int) bool { return i/64 < len(b) && b[i/64]&(1<<(i%64)) != 0 }

// intersects says whether b and c have a member in common.
func (b bitset) intersects(c bitset) bool {
	for i := range min(len(b), len(c)) {
		if b[i]&c[i] != 0 {
			return true
		}
	}
	return false
}

func (b *bitset) or(c bitset) {
	for len(*b) < len(c) {
		*b = append(*b, 0)
	}
	for i, w := range c {
		(*b)[i] |= w
	}
}

// Named says whether a change of the log makes p a member (the create's
// members, an add), whether or not it took effect: a peer never named is
// a stranger to the group, one named and not a member now was removed or
// left (or its add lost to a concurrent change).
func (l *Log) Named(p peer.ID) bool {
	if l.named == nil || l.namedAt != l.rev {
		// Read once per change of the log: asked of every held change
		// (wanted, vouched, giveWay), not a scan of the log each.
		l.named, l.namedAt = namedIn(l.order), l.rev
	}
	return l.named[p]
}
