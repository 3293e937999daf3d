package group

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"
)

// State is a group's membership at one version.
type State struct {
	ID      ID
	Name    string
	Creator peer.ID
	Members []peer.ID // in the order they joined; the creator first
	Admins  []peer.ID // in the order they became admins
	CA      []byte    // SHA-256 of the SubjectPublicKeyInfo of the CA members' certificates must come from, or nil
	Version uint64    // changes that took effect, the create included

	// rank is the admins' seniority over the changes this state was
	// folded from (folding.seniority): an admin removes only admins
	// junior to it. Read only; clones share it.
	rank seniorityOf
}

// IsMember says whether p is a member.
func (s *State) IsMember(p peer.ID) bool { return slices.Contains(s.Members, p) }

// IsAdmin says whether p is an admin.
func (s *State) IsAdmin(p peer.ID) bool { return slices.Contains(s.Admins, p) }

func (s *State) clone() State {
	c := *s
	c.Members = slices.Clone(s.Members)
	c.Admins = slices.Clone(s.Admins)
	c.CA = bytes.Clone(s.CA)
	return c
}

// apply makes c's change to s, or says why it cannot; s is unchanged then.
// It is the one rule for both a change's admission (against the state its
// parents describe) and the fold (against the state the fold reached).
func (s *State) apply(c *Change) error {
	if c.Op == OpCreate {
		return s.create(c)
	}
	if c.Kind() == OpLeave {
		if !s.IsMember(c.Author) {
			return refused(ErrNotMember, "%s cannot leave", short(c.Author))
		}
		s.drop(c.Author)
		s.Version++
		return nil
	}
	if !s.IsAdmin(c.Author) {
		what := "not an admin"
		if !s.IsMember(c.Author) {
			what = "not a member"
		}
		return refused(ErrNotAdmin, "%s of %s is %s", c.Op, short(c.Author), what)
	}
	if err := s.change(c); err != nil {
		return err
	}
	s.Version++
	return nil
}

func (s *State) create(c *Change) error {
	if s.Version != 0 {
		return fmt.Errorf("%w: a second create", ErrMalformed)
	}
	s.ID = ID(c.hash)
	s.Name = c.Name
	s.Creator = c.Author
	s.Members = append([]peer.ID{c.Author}, c.Members...)
	s.Admins = []peer.ID{c.Author}
	s.CA = bytes.Clone(c.CA)
	s.Version = 1
	return nil
}

// change applies an admin's add, removal of another, rename or admin.
func (s *State) change(c *Change) error {
	who := short(c.Peer)
	switch c.Op {
	case OpAdd:
		if s.IsMember(c.Peer) {
			return refused(ErrAlreadyMember, "%s", who)
		}
		if len(s.Members) >= MaxMembers {
			return fmt.Errorf("%w: %d members", ErrFull, len(s.Members))
		}
		s.Members = append(s.Members, c.Peer)
	case OpRemove:
		if !s.IsMember(c.Peer) {
			return refused(ErrNotMember, "cannot remove %s", who)
		}
		if s.IsAdmin(c.Peer) && !s.seniorTo(c.Author, c.Peer) {
			return refused(ErrJuniorAdmin, "%s is a more senior admin than %s", who, short(c.Author))
		}
		s.drop(c.Peer)
	case OpRename:
		s.Name = c.Name
	case OpAdmin:
		if !s.IsMember(c.Peer) {
			return refused(ErrNotMember, "cannot make %s an admin", who)
		}
		if s.IsAdmin(c.Peer) {
			return refused(ErrAlreadyMember, "%s is an admin already", who)
		}
		s.Admins = append(s.Admins, c.Peer)
	default:
		return fmt.Errorf("%w: %s", ErrMalformed, c.Op)
	}
	return nil
}

// seniorTo says whether admin a may remove admin b, another: a is b's
// senior: the creator first, then by the earliest admin change that
// counts (folding.seniority); two admins no such change names (admins by
// succession, and those they made) by the order they became admins here.
func (s *State) seniorTo(a, b peer.ID) bool {
	_, ra := s.rank[a]
	_, rb := s.rank[b]
	if !ra && !rb {
		return slices.Index(s.Admins, a) < slices.Index(s.Admins, b)
	}
	return s.rank.compare(a, b) < 0
}

// drop takes p out of the members and admins. A group whose last admin
// goes gets the longest-standing member as its admin, so that it can
// still change.
func (s *State) drop(p peer.ID) {
	s.Members = slices.DeleteFunc(s.Members, func(m peer.ID) bool { return m == p })
	s.Admins = slices.DeleteFunc(s.Admins, func(m peer.ID) bool { return m == p })
	if len(s.Admins) == 0 && len(s.Members) > 0 {
		s.Admins = append(s.Admins, s.Members[0])
	}
}
