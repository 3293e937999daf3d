package node

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/e2e/ratchet"
	"github.com/certchat/certchat/group"
	"github.com/libp2p/go-libp2p/core/peer"
)

// The forwarder's and the member's sides of forwarded copies
// (docs/PROTOCOL.md §14.7; the sender's is groups_forward.go).
//
// A forwarder writes each copy of a forward frame onward, as it is, on
// its own direct live session with the member, if it, the sender and the
// member are members of the group the frame names and the member said it
// takes forwarded copies; it names the others back to the sender. With
// no session with a member it may message, it opens one, and tells the
// sender to ask again later.
//
// The member opens a forwarded copy with its ratchet session with the
// sender, as one fetched from the sender's mailbox: the ratchet, not the
// channel it came on, says who sealed it. It takes copies only from a
// forwarder that, with the sender and itself, is a member of the group the
// frame names; what does not open is the forwarder's doing, counted
// against the forwarder's session (maxLiveOpenFailures) and never told as
// the sender's, and never starts a new ratchet session.

const (
	// forwardingMax bounds the forward frames a forwarder writes onward
	// at once (each on a goroutine of its own, so that a member's stalled
	// connection holds back neither the sender's session nor the others);
	// a frame past it is refused whole.
	forwardingMax = 8
	// forwardDials bounds the sessions a forwarder opens at once with
	// members it was given copies for and has no session with; a member
	// past it is refused "later" and tried at a next frame.
	forwardDials = 4
	// forwardDialWait bounds one such dial.
	forwardDialWait = 30 * time.Second
)

// forwarding is our side as a forwarder of other members' group copies
// and as a member sent copies through one. It owns the count of forward
// frames being written onward; the rest it reads from the sessions, the
// groups and the ratchet keys.
type forwarding struct {
	*core
	sessions *sessions
	groups   *Groups
	rk       *ratchetKeys

	busy   atomic.Int32  // forward frames being written onward
	frames atomic.Uint64 // forward frames received (tests)

	// mu guards dialing and unreached: the members we open a session
	// with for forwarding, and those we could not reach, until when we
	// do not try again. Only workers.mu is taken under it.
	mu        sync.Mutex
	dialing   map[peer.ID]bool
	unreached map[peer.ID]time.Time

	opened atomic.Uint64 // forwarded copies opened (tests)
	// alter, set by tests, makes this node a forwarder that does not
	// forward faithfully: each copy is written onward to its member as
	// alter returns it, or not at all for nil.
	alter atomic.Pointer[func(member peer.ID, env []byte) []byte]
}

// onward is a copy to write onward: on cs, our session with member p.
type onward struct {
	cs  *chatSession
	p   peer.ID
	env []byte
}

// frame writes onward the copies of a forward frame from the peer of cs,
// those it may: we hold the group, we, the sender and the member are
// members of it, and we have a direct live session with the member, who
// said it takes forwarded copies. The others are named back in a
// forward-refused frame.
func (fw *forwarding) frame(cs *chatSession, payload []byte) error {
	f, err := e2e.ParseForward(payload)
	if err != nil {
		return err // the sender's own doing, on its channel
	}
	fw.frames.Add(1)
	s, held := fw.groups.state(group.ID(f.Group))
	self := fw.host.ID()
	ok := held && fw.sessions.ind.settings().Forwards && cs.peer != self && s.IsMember(self) && s.IsMember(cs.peer)
	var out []onward
	var refused []e2e.Refusal
	for _, c := range f.Copies {
		if !ok || c.Member == cs.peer || c.Member == self || !s.IsMember(c.Member) {
			refused = append(refused, e2e.Refusal{Member: c.Member})
			continue
		}
		ms, later := fw.sessionWith(c.Member)
		if ms == nil {
			refused = append(refused, e2e.Refusal{Member: c.Member, Later: later})
			continue
		}
		out = append(out, onward{ms, c.Member, bytes.Clone(c.Envelope)})
	}
	if len(out) > 0 && !fw.start(cs, f, out) {
		for _, o := range out {
			refused = append(refused, e2e.Refusal{Member: o.p, Later: true})
		}
	}
	fw.refuse(cs, f.ID, refused)
	return nil
}

// reach opens a session with member p, which we were given a copy for
// and have none with, unless we may not message p (we connect to no one
// we have not accepted, to forward or otherwise), a dial to p failed in
// the last forwardShun, or forwardDials are under way. It reports
// whether p's copies may be taken later: a dial is under way, or none
// was free.
func (fw *forwarding) reach(p peer.ID) (later bool) {
	if fw.sessions.book.mayMessage(p) != nil {
		return false
	}
	now := time.Now()
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if until, ok := fw.unreached[p]; ok {
		if now.Before(until) {
			return false
		}
		delete(fw.unreached, p)
	}
	if fw.dialing[p] {
		return true
	}
	if len(fw.dialing) >= forwardDials {
		return true
	}
	if fw.dialing == nil {
		fw.dialing, fw.unreached = map[peer.ID]bool{}, map[peer.ID]time.Time{}
	}
	fw.dialing[p] = true
	dial := func() {
		ctx, cancel := context.WithTimeout(fw.ctx, forwardDialWait)
		_, err := fw.sessions.get(ctx, p)
		cancel()
		fw.mu.Lock()
		defer fw.mu.Unlock()
		delete(fw.dialing, p)
		if err != nil {
			fw.log.Info("no session with a member to forward to", "member", p, "err", err)
			if len(fw.unreached) >= forwardMemory {
				clear(fw.unreached)
			}
			fw.unreached[p] = time.Now().Add(forwardShun)
		}
	}
	if !fw.work.goDo(dial) {
		delete(fw.dialing, p)
		return false
	}
	return true
}

// start writes out onward on a goroutine of its own, unless
// forwardingMax frames are under way or the node closes.
func (fw *forwarding) start(cs *chatSession, f e2e.Forward, out []onward) bool {
	if fw.busy.Add(1) > forwardingMax {
		fw.busy.Add(-1)
		return false
	}
	write := func() {
		defer fw.busy.Add(-1)
		var failed []e2e.Refusal
		alter := fw.alter.Load()
		for _, o := range out {
			if alter != nil {
				if o.env = (*alter)(o.p, o.env); o.env == nil {
					continue
				}
			}
			fd, err := e2e.Forwarded{Group: f.Group, Sender: cs.peer, Envelope: o.env}.Marshal()
			if err == nil {
				err = o.cs.s.Send(e2e.FrameForwarded, fd)
			}
			if err != nil {
				fw.log.Info("write a forwarded group copy", "member", o.p, "err", err)
				failed = append(failed, e2e.Refusal{Member: o.p})
			}
		}
		fw.refuse(cs, f.ID, failed)
	}
	if !fw.work.goDo(write) {
		fw.busy.Add(-1)
		return false
	}
	return true
}

// refuse names to the sender on cs the copies of message id we did not
// write onward.
func (fw *forwarding) refuse(cs *chatSession, id e2e.MessageID, refused []e2e.Refusal) {
	if len(refused) == 0 {
		return
	}
	b, err := e2e.ForwardRefused{ID: id, Refused: refused}.Marshal()
	if err == nil {
		err = cs.s.Send(e2e.FrameForwardRefused, b)
	}
	if err != nil {
		fw.log.Info("refuse forwarded copies", "peer", cs.peer, "err", err)
	}
}

// sessionWith is our newest live session with member p if it is direct
// and p said it takes forwarded copies. Without one, later says whether
// p's copies may be taken soon: its settings have not come yet on a new
// session, or we open one now (reach). A relayed session, or a member
// that said it does not forward, is a plain refusal.
func (fw *forwarding) sessionWith(p peer.ID) (cs *chatSession, later bool) {
	cs = fw.sessions.newest(p)
	if cs == nil {
		return nil, fw.reach(p)
	}
	select {
	case <-cs.done:
		return nil, true // ended: the next look finds its successor, or none
	default:
	}
	set := cs.settings()
	switch {
	case cs.conn.Stat().Limited:
		return nil, false
	case !set.known:
		return nil, true
	case !set.Forwards:
		return nil, false
	}
	return cs, false
}

// receive opens a copy the peer of cs wrote onward for its sender. A
// frame from a forwarder that is not, with the sender and us, a member
// of the group it names, and a copy that does not open, are the
// forwarder's doing: dropped, logged and counted against its session.
// The sender writes the copy directly once its receipt is overdue.
func (fw *forwarding) receive(cs *chatSession, payload []byte) error {
	f, err := e2e.ParseForwarded(payload)
	if err != nil {
		return err
	}
	s, held := fw.groups.state(group.ID(f.Group))
	self := fw.host.ID()
	if !held || f.Sender == cs.peer || f.Sender == self || !s.IsMember(self) || !s.IsMember(cs.peer) || !s.IsMember(f.Sender) {
		return fw.failed(cs, f.Sender, errNotForwarder)
	}
	env := bytes.Clone(f.Envelope)
	res, err := fw.rk.open(f.Sender, env)
	switch {
	case errors.Is(err, ratchet.ErrDuplicate):
		return nil
	case err != nil:
		return fw.failed(cs, f.Sender, err)
	}
	fw.opened.Add(1)
	if res.grp != nil {
		res.grp.live = len(env) // its receipt is held with the sender's others
	}
	fw.sessions.delivered(f.Sender, res, fw.sessions.newest(f.Sender))
	return nil
}

// errNotForwarder refuses a forwarded copy from a peer that may not
// forward it.
var errNotForwarder = errors.New("the forwarder and the sender are not both members of the group it names")

// failed logs a forwarded copy that was dropped and counts it against
// the forwarder's session, which is closed past maxLiveOpenFailures.
// Nothing is told to the user: the sender's copy comes again directly.
func (fw *forwarding) failed(cs *chatSession, sender peer.ID, err error) error {
	fw.log.Info("forwarded group copy dropped", "forwarder", cs.peer, "sender", sender, "err", err)
	cs.openFailures++
	if cs.openFailures > maxLiveOpenFailures {
		return errBadEnvelopes
	}
	return nil
}
