package node

import (
	"errors"
	"fmt"
	"sync"

	"github.com/certchat/certchat/group"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// What peers we may not message may leave with us (docs/PROTOCOL.md
// §10, docs/SECURITY.md). Anyone may write to us, and what they write is
// kept until the user accepts or blocks them; unbounded, one stranger,
// or as many keys as an attacker cares to make, could fill the store.
// So a message from a peer we may not message (not a contact, nor
// vouched for by a CA we trust; a blocked peer cannot write at all) is
// kept only while its conversation holds fewer than maxStrangerMessages
// records (texts and actions alike) and, for a stranger new to us, while
// fewer than maxStrangerConversations strangers have messages waiting;
// and a message in a group made by such a peer only while the group
// holds fewer than maxStrangerGroupMessages. Past a bound the message is
// neither stored nor acknowledged, and the ratchet state does not move:
// its sender keeps it and writes it again (on its next session or seed,
// or when it finds it unacknowledged), so it arrives once the user
// accepts the peer, or the group's maker (or blocks other strangers);
// each refusal is told once. What they leave in the ratchet state is
// bounded apart: their session sets are held in memory, not stored,
// until something of theirs is kept (ratchet_held.go).
const (
	maxStrangerMessages      = 256
	maxStrangerConversations = 64
	maxStrangerGroupMessages = 256
	// maxStrangersTold bounds the peers and groups whose refusal was
	// told; past it they are told again.
	maxStrangersTold = 1024
)

// ErrStrangerFull: a message from a peer who is not a contact (or in a
// group such a peer made) is not kept until the user accepts its sender.
// The refusal is a *StrangerFullError, which says which bound was full.
var ErrStrangerFull = errors.New("a message from a peer who is not a contact waits with its sender")

// StrangerBound names the bound a *StrangerFullError met.
type StrangerBound int

const (
	// BoundPeer: the sender's own share (maxStrangerMessages records).
	BoundPeer StrangerBound = iota + 1
	// BoundRoom: how many strangers may have messages waiting
	// (maxStrangerConversations).
	BoundRoom
	// BoundGroup: a group made by a stranger (maxStrangerGroupMessages).
	BoundGroup
)

// StrangerFullError is why a message was not kept (errors.Is
// ErrStrangerFull), for callers that say it in their own words (the
// window, Event.Cause): which bound, and for BoundGroup the group's name
// and maker.
type StrangerFullError struct {
	Bound StrangerBound
	Group string
	Maker peer.ID
	text  string
}

func (e *StrangerFullError) Error() string { return ErrStrangerFull.Error() + ": " + e.text }

// Unwrap makes the error ErrStrangerFull.
func (e *StrangerFullError) Unwrap() error { return ErrStrangerFull }

// strangers decides whether a message from a peer we may not message is
// kept (keep, keepInGroup; called by the ratchet keys with their lock
// held, before anything is stored) and tells each refusal once (tell,
// from the read loops and mailbox loops). mu guards told; a leaf.
type strangers struct {
	*core
	book   *peerBook
	groups *Groups

	perPeer, conversations, perGroup int

	mu   sync.Mutex
	told map[string]bool // peers and groups whose refusal was told
	// full keeps the refusals at a peer's own bound (BoundPeer) for its
	// next messages: records only grow, so a stranger at its bound stays
	// there until accepted, and the rest of its flood costs a look-up
	// here, not a read of every conversation under the ratchet keys'
	// lock. At most maxStrangersTold peers.
	full  map[peer.ID]*StrangerFullError
	scans int // conversation scans made (keep), for tests
}

func newStrangers(c *core, book *peerBook, g *Groups) *strangers {
	return &strangers{core: c, book: book, groups: g, perPeer: maxStrangerMessages,
		conversations: maxStrangerConversations, perGroup: maxStrangerGroupMessages, told: map[string]bool{},
		full: map[peer.ID]*StrangerFullError{}}
}

// keep says whether a private message from p may be kept: nil, or why
// not (ErrStrangerFull).
func (s *strangers) keep(p peer.ID) error {
	if s.book.mayMessage(p) == nil {
		return nil
	}
	s.mu.Lock()
	full := s.full[p]
	if full == nil {
		s.scans++
	}
	s.mu.Unlock()
	if full != nil {
		return full
	}
	convs, err := s.store.Conversations()
	if err != nil {
		return fmt.Errorf("count the messages of peers who are not contacts: %w", err)
	}
	held, others := 0, 0
	for _, c := range convs {
		switch {
		case c.Peer == p:
			// Every record counts, actions too (a reaction shows on its
			// text, but is kept as a record of its own).
			held = max(c.Messages, int(c.LastSeq))
		case (c.Messages > 0 || c.LastSeq > 0) && s.waiting(c.Peer):
			// Any record takes a place: a conversation of actions
			// alone (reactions pending on texts never sent) holds
			// records as one of texts does.
			others++
		}
	}
	switch {
	case held >= s.perPeer:
		full := &StrangerFullError{Bound: BoundPeer, text: fmt.Sprintf("%s, who is not a contact, already has as many messages waiting for you as are kept (%d); accept them to receive more (they keep the rest until then)",
			identity.ShortID(p), held)}
		s.mu.Lock()
		if len(s.full) >= maxStrangersTold {
			clear(s.full)
		}
		s.full[p] = full
		s.mu.Unlock()
		return full
	case held == 0 && others >= s.conversations:
		return &StrangerFullError{Bound: BoundRoom, text: fmt.Sprintf("as many peers who are not your contacts have messages waiting for you as are kept (%d); accept or block some of them to receive from %s (they keep their messages until then)",
			others, identity.ShortID(p))}
	}
	return nil
}

// waiting says whether p's messages wait for the user's decision: p is
// neither a peer we may message nor blocked (a blocked peer's messages
// are decided, and it cannot write more).
func (s *strangers) waiting(p peer.ID) bool {
	err := s.book.mayMessage(p)
	return err != nil && !errors.Is(err, ErrBlocked)
}

// keepInGroup says whether a message in group id may be kept: nil, or
// why not (ErrStrangerFull), for a group made by a peer we may not
// message that holds maxStrangerGroupMessages messages.
func (s *strangers) keepInGroup(id store.GroupID) error {
	creator, name, ok := s.groups.creator(group.ID(id))
	if !ok || creator == s.host.ID() || s.book.mayMessage(creator) == nil {
		return nil
	}
	sg, _, err := s.store.Groups().Get(id)
	if err != nil {
		return fmt.Errorf("count the messages of group %x: %w", id[:4], err)
	}
	// Every record counts, actions too (they are not among its
	// messages, but each is kept as a record of its own).
	if held := max(sg.Messages, int(sg.Records)); held >= s.perGroup {
		return &StrangerFullError{Bound: BoundGroup, Group: name, Maker: creator, text: fmt.Sprintf("group %q, made by %s who is not a contact, holds as many messages as are kept (%d); accept its maker to receive more (their senders keep them until then)",
			name, identity.ShortID(creator), held)}
	}
	return nil
}

// tell reports a refusal (ErrStrangerFull) of p's message once: its
// sender writes the message again on every session, and each refusal
// would say the same.
func (s *strangers) tell(p peer.ID, err error) {
	key := string(p) + "\x00" + err.Error()
	s.mu.Lock()
	if len(s.told) >= maxStrangersTold {
		clear(s.told)
	}
	told := s.told[key]
	s.told[key] = true
	s.mu.Unlock()
	if !told {
		s.emitError(p, err)
	}
}
