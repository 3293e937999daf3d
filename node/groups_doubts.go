package node

import (
	"fmt"
	"slices"
	"sync"

	"github.com/certchat/certchat/group"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Doubts: removals undone by their removers' own leaves (SECURITY.md,
// finding 7; PROTOCOL §14.4, "A removal its remover's leave undid").
//
// A departed admin's key can undo its own last removal with a second
// leave signed on a version from before it, and nothing in the graph
// tells that from a removal the key signed after leaving (group.Undone).
// The membership keeps the target; the node keeps the doubt, so that
// nothing is written to the target unawares: sending to the group waits
// (ErrRemovalUndone) until an admin removes the target again or the user
// keeps them (Keep). The doubts are stored with the group, with the
// user's decision on each, so a restart keeps them; one whose target is
// no member any more is decided.

// doubts is the part of Groups that keeps the groups' doubts with the
// store, and knows which groups have any, so that a message to a group
// with none reads no record. mu guards has; it is taken under
// Groups.mu and takes no other lock.
type doubts struct {
	st  *store.Store
	mu  sync.Mutex
	has map[group.ID]bool
}

func newDoubts(st *store.Store) *doubts { return &doubts{st: st, has: map[group.ID]bool{}} }

// load notes which of the groups read at the start have doubts.
func (d *doubts) load(gs []store.Group) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, g := range gs {
		d.has[group.ID(g.ID)] = len(g.Doubts) > 0
	}
}

// note stores l's undone removals (group.UndoneRemovals) with the
// group's doubts (mergeDoubts), writing only when they change, and says
// whether they did. Called with Groups.mu held, on a group the store
// has.
func (d *doubts) note(l *group.Log) (changed bool, err error) {
	s, undone, id := l.State(), group.UndoneRemovals(l), l.ID()
	d.mu.Lock()
	has := d.has[id]
	d.mu.Unlock()
	if !has && len(undone) == 0 {
		return false, nil // nothing stored, nothing new: no record read
	}
	holds := func(h group.Hash) bool { return group.Holds(l, h) }
	sg, _, err := d.st.Groups().Get(store.GroupID(id))
	if err == nil {
		ds, would := mergeDoubts(slices.Clone(sg.Doubts), undone, s, holds)
		if would {
			err = d.st.Groups().UpdateGroupDoubts(store.GroupID(id), func(stored []store.GroupDoubt) ([]store.GroupDoubt, bool) {
				ds, changed = mergeDoubts(stored, undone, s, holds)
				return ds, changed
			})
		}
		d.mu.Lock()
		d.has[id] = len(ds) > 0
		d.mu.Unlock()
	}
	if err != nil {
		return false, fmt.Errorf("note the undone removals of group %q: %w", s.Name, err)
	}
	return changed, nil
}

// mergeDoubts adds to ds, the doubts stored, the removals undone of a
// log whose membership is s, one a member at most (a departed key may
// sign any number of them, and the decision is about the member), and
// drops those decided: the
// target is no member of s (removed again, or gone), or the log holds
// the removal and undone no longer names it (its target removed and
// added again since).
func mergeDoubts(ds []store.GroupDoubt, undone []group.Undone, s group.State, holds func(group.Hash) bool) ([]store.GroupDoubt, bool) {
	n := len(ds)
	ds = slices.DeleteFunc(ds, func(d store.GroupDoubt) bool {
		if len(d.Removal) != len(group.Hash{}) || !s.IsMember(d.Target) {
			return true // no removal's hash: no doubt a log can name
		}
		h := group.Hash(d.Removal)
		return holds(h) && !slices.ContainsFunc(undone, func(u group.Undone) bool { return u.Removal == h })
	})
	changed := len(ds) != n
	for _, u := range undone {
		if !slices.ContainsFunc(ds, func(d store.GroupDoubt) bool { return d.Target == u.Target }) {
			ds = append(ds, store.GroupDoubt{Removal: u.Removal[:], Target: u.Target, Author: u.Author})
			changed = true
		}
	}
	return ds, changed
}

// pending are the doubts of ds that sending to the group waits on: not
// kept, about a member of s other than self (writing to the group writes
// to the others).
func pending(ds []store.GroupDoubt, s group.State, self peer.ID) []group.Undone {
	var out []group.Undone
	for _, d := range ds {
		if !d.Kept && d.Target != self && s.IsMember(d.Target) && len(d.Removal) == len(group.Hash{}) {
			out = append(out, group.Undone{Removal: group.Hash(d.Removal), Target: d.Target, Author: d.Author})
		}
	}
	return out
}

// keep records the user's decision to write to p in group id despite
// the doubts about p, and says whether one was waiting for it.
func (d *doubts) keep(id group.ID, p peer.ID) (kept bool, err error) {
	err = d.st.Groups().UpdateGroupDoubts(store.GroupID(id), func(ds []store.GroupDoubt) ([]store.GroupDoubt, bool) {
		for i := range ds {
			if ds[i].Target == p && !ds[i].Kept {
				ds[i].Kept, kept = true, true
			}
		}
		return ds, kept
	})
	return kept, err
}

// undecided says why nothing may be sent to the group of state s now: a
// doubt not decided (ErrRemovalUndone), or a store that cannot say.
func (d *doubts) undecided(s group.State, self peer.ID) error {
	d.mu.Lock()
	has := d.has[s.ID]
	d.mu.Unlock()
	if !has {
		return nil
	}
	sg, _, err := d.st.Groups().Get(store.GroupID(s.ID))
	if err != nil {
		return err
	}
	if u := pending(sg.Doubts, s, self); len(u) > 0 {
		return fmt.Errorf("%s was removed by %s: %w", identity.ShortID(u[0].Target), identity.ShortID(u[0].Author), ErrRemovalUndone)
	}
	return nil
}

// Keep keeps writing to p in group id although p's removal was undone
// by a leave its remover's key signed beside it (GroupInfo.Undone):
// sending to the group no longer waits for that decision. The decision
// is this node's; the membership is the group's (an admin removes p
// again with Remove).
func (g *Groups) Keep(id group.ID, p peer.ID) (GroupInfo, error) {
	s, ok := g.state(id)
	if !ok {
		return GroupInfo{}, fmt.Errorf("%w %s", ErrUnknownGroup, id.Short())
	}
	kept, err := g.doubts.keep(id, p)
	switch {
	case err != nil:
		return GroupInfo{}, fmt.Errorf("keep %s in %q: %w", identity.ShortID(p), s.Name, err)
	case !kept:
		return GroupInfo{}, fmt.Errorf("keep %s in %q: %w", identity.ShortID(p), s.Name, ErrNothingUndone)
	}
	gi := g.info(s)
	g.emitGroup(gi)
	return gi, nil
}
