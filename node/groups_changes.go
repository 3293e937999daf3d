package node

import (
	"fmt"
	"slices"
	"time"

	"github.com/certchat/certchat/group"
	"github.com/libp2p/go-libp2p/core/peer"
)

// MembershipChange is a change to a group that takes effect in the
// membership the node holds: who made it, when by the author's clock,
// and what it did. Names are the group's, untrusted text to sanitize.
type MembershipChange struct {
	Op      group.Op // as the group's rules read it (group.Change.Kind): a removal of oneself is a leave
	Author  peer.ID
	Peer    peer.ID   // add, remove, admin: whom it is about
	Name    string    // create, rename: the group's name
	Members []peer.ID // create: the first members besides the author
	Time    time.Time // the author's clock when it signed the change: shown, never trusted for order
	// Undone: a removal a leave of its author's key undid, which took no
	// effect (group.UndoneRemovals, SECURITY.md finding 7), listed after
	// the changes that took effect no later than it by their times.
	Undone bool
}

// MembershipChanges lists the changes to group id that take effect, in
// the order every member's fold applies them (group.Applied): a change
// that a change crossing it undid is not among them. A removal its
// author's leave undid, which the node asks its user about (doubts), is
// listed too, marked Undone. It is a function, not a method: Groups has
// as many methods as a type may (architecture_test.go, TestMethodCount).
func MembershipChanges(g *Groups, id group.ID) ([]MembershipChange, error) {
	g.mu.Lock()
	l, ok := g.logs[id]
	var applied []*group.Change
	var undone []group.Undone
	if ok {
		applied, undone = group.Applied(l), group.UndoneRemovals(l)
	}
	g.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w %s", ErrUnknownGroup, id.Short())
	}
	out := make([]MembershipChange, len(applied), len(applied)+len(undone))
	for i, c := range applied {
		out[i] = MembershipChange{Op: c.Kind(), Author: c.Author, Peer: c.Peer, Name: c.Name, Members: slices.Clone(c.Members), Time: c.Time}
	}
	for _, u := range undone {
		at := len(out)
		for at > 0 && out[at-1].Time.After(u.Time) {
			at--
		}
		out = slices.Insert(out, at, MembershipChange{Op: group.OpRemove, Author: u.Author, Peer: u.Target, Time: u.Time, Undone: true})
	}
	return out, nil
}
