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
	Op      group.Op
	Author  peer.ID
	Peer    peer.ID   // add, remove, admin: whom it is about
	Name    string    // create, rename: the group's name
	Members []peer.ID // create: the first members besides the author
	Time    time.Time // the author's clock when it signed the change: shown, never trusted for order
}

// MembershipChanges lists the changes to group id that take effect, in
// the order every member's fold applies them (group.Applied): a change
// that a change crossing it undid is not among them. It is a function,
// not a method: Groups has as many methods as a type may
// (architecture_test.go, TestMethodCount).
func MembershipChanges(g *Groups, id group.ID) ([]MembershipChange, error) {
	g.mu.Lock()
	l, ok := g.logs[id]
	var applied []*group.Change
	if ok {
		applied = group.Applied(l)
	}
	g.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w %s", ErrUnknownGroup, id.Short())
	}
	out := make([]MembershipChange, len(applied))
	for i, c := range applied {
		out[i] = MembershipChange{Op: c.Op, Author: c.Author, Peer: c.Peer, Name: c.Name, Members: slices.Clone(c.Members), Time: c.Time}
	}
	return out, nil
}
