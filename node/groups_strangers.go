package node

import (
	"errors"
	"fmt"
	"sync"

	"github.com/certchat/certchat/group"
	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Groups made by strangers (docs/PROTOCOL.md §14.5, docs/SECURITY.md).
// Anyone may write to us, so anyone may put us in a group by sending its
// create, and each group so made is kept: its log, a record in the
// store, a line in the window. Unbounded, one stranger, or as many keys
// as an attacker cares to make, could fill the store and the group list.
// So a group new to us whose creator we may not message (not a contact,
// nor vouched for by a CA we trust) is kept only while we are a member of
// fewer than perCreator groups made by that creator, and of fewer than
// total groups made by strangers in all; past either it is refused with
// the reason (and acknowledged: its sender's outbox must not try it
// forever). Accepting the creator lifts the bound (its groups count no
// more), and leaving a group frees its place; a group refused comes back
// with its next change, which carries its log.

const (
	// maxGroupsPerStranger is the most groups made by one stranger that
	// we are a member of.
	maxGroupsPerStranger = 8
	// maxStrangerGroups is the most groups made by strangers, all of
	// them together, that we are a member of.
	maxStrangerGroups = 64
)

// ErrStrangerGroups: a group new to us, made by a peer who is not a
// contact, is not kept: we are in too many such groups.
var ErrStrangerGroups = errors.New("too many groups made by peers who are not your contacts")

// strangerGroups bounds the groups made by strangers that we are in. mu
// makes counting them and keeping the new group one step: two new
// groups from strangers arriving at once are counted one after the
// other, so the bound holds exactly.
type strangerGroups struct {
	mu         sync.Mutex
	perCreator int
	total      int
}

func newStrangerGroups() *strangerGroups {
	return &strangerGroups{perCreator: maxGroupsPerStranger, total: maxStrangerGroups}
}

// admit decides whether g may keep group id, new to it, whose frame
// starts with first (its create, made by its creator; nil if it did not
// parse), or take changes
// to group id that it knows and is not a member of (it left, or was
// removed: a change may add it back, and a group it joins again counts
// as a new one would): nil if it may, else why not. It returns with
// sg.mu held, whatever it decides, unless there is no decision to make
// (a group we are in, or a frame of a new group that does not start
// with its create, refused anyway): held is false then; the caller
// unlocks once it has kept the group or not.
func (sg *strangerGroups) admit(g *Groups, id group.ID, first *group.Change) (held bool, err error) {
	sg.mu.Lock()
	self := g.host.ID()
	g.mu.Lock()
	l, known := g.logs[id]
	var creator peer.ID
	member := false
	if known {
		creator, member = l.Creator(), l.IsMember(self)
	}
	g.mu.Unlock()
	switch {
	case known && member, !known && (first == nil || first.Op != group.OpCreate):
		sg.mu.Unlock()
		return false, nil
	case !known:
		creator = first.Author
	}
	if creator == self || g.book.mayMessage(creator) == nil {
		return true, nil
	}
	per, total := sg.count(g, creator)
	switch {
	case per >= sg.perCreator:
		return true, fmt.Errorf("%w: %s, who is not a contact, has put you in as many groups as are kept (%d); accept them as a contact to be added to more, or leave some of those groups",
			ErrStrangerGroups, identity.ShortID(creator), per)
	case total >= sg.total:
		return true, fmt.Errorf("%w: you are in as many groups made by peers who are not your contacts as are kept (%d); accept their makers as contacts, or leave some of those groups",
			ErrStrangerGroups, total)
	}
	return true, nil
}

// count counts the groups we are in whose creators we may not message:
// per, those of creator; total, all of them.
func (sg *strangerGroups) count(g *Groups, creator peer.ID) (per, total int) {
	self := g.host.ID()
	g.mu.Lock()
	creators := make([]peer.ID, 0, len(g.logs))
	for _, l := range g.logs {
		if l.IsMember(self) {
			creators = append(creators, l.Creator())
		}
	}
	g.mu.Unlock()
	stranger := map[peer.ID]bool{}
	for _, c := range creators {
		s, seen := stranger[c]
		if !seen {
			s = c != self && g.book.mayMessage(c) != nil
			stranger[c] = s
		}
		if !s {
			continue
		}
		total++
		if c == creator {
			per++
		}
	}
	return per, total
}
