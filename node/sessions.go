package node

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// sessions owns the live chat sessions with each peer and the dials under
// way (dial.go reaches peers, lifecycle.go runs a session's life,
// frames.go handles what arrives on them).
// mu guards byPeer and every peerSessions in it; it is taken by the
// libp2p stream handler, the read loops, the outbox workers, discovery and
// the Node's API, and no other lock is taken under it.
type sessions struct {
	*core
	rk       *ratchetKeys
	book     *peerBook
	out      *outbox
	mail     *mailboxes
	relays   *relays
	peerEv   *peerEvents
	receipts *receiptQueue
	ind      *Indications
	files    *transfers
	dht      *dhtNode
	groups   *Groups
	// strangers tells refusals of strangers' messages once.
	strangers *strangers
	held      *receiptHolds
	// fwd is our side as a forwarder of other members' group copies
	// (groups_forward.go).
	fwd *forwarding

	// arrived tells those waiting for a peer's session that one was
	// added (awaitSession).
	arrived arrivals

	mu     sync.Mutex
	byPeer map[peer.ID]*peerSessions
}

// arrivals is a signal, sent each time a session is added, that any
// number of goroutines can wait for.
type arrivals struct {
	mu sync.Mutex
	ch chan struct{} // closed at the next arrival
}

// next is closed at the next arrival.
func (a *arrivals) next() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ch == nil {
		a.ch = make(chan struct{})
	}
	return a.ch
}

// signal wakes every goroutine waiting for the next arrival.
func (a *arrivals) signal() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ch != nil {
		close(a.ch)
		a.ch = nil
	}
}

// awaitSession waits, at most d, for a live session with p, and reports
// whether one is up. Our end of a session the peer started may be added
// a moment after the peer's (it sends the handshake's last flight), and
// what the peer sends on the connection as soon as its end is up (a file
// stream) comes before ours: refused, it would wait for the peer's next
// retry. A function, not a method: sessions has as many methods as a
// type may (architecture_test.go).
func awaitSession(ctx context.Context, t *sessions, p peer.ID, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		next := t.arrived.next() // before the look: an arrival after it closes next
		if t.newest(p) != nil {
			return true
		}
		select {
		case <-next:
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// peerSessions are one peer's live sessions, oldest first, and the dial
// in progress.
type peerSessions struct {
	live       []*chatSession
	dialing    chan struct{} // closed when the dial in progress ends
	dialCancel func()        // cancels the dial in progress
}

// chatSession is one verified e2e session with a peer.
type chatSession struct {
	s        *e2e.Session
	peer     peer.ID
	conn     network.Conn // the libp2p connection the stream runs on
	outgoing bool
	done     chan struct{}

	mu      sync.Mutex
	sent    map[e2e.MessageID]time.Time // written on this session, and when; guarded by mu
	peerSet peerSettings                // what the peer takes part in; guarded by mu
	// forgets counts the times sent lost messages (resetSent, forget):
	// what directOn found written before may not be any more.
	forgets atomic.Uint64

	held receiptHold // receipts of group envelopes to write together (receipts_hold.go)
	// openFailures counts the envelopes that could not be opened
	// (openFailed); the read loop's alone.
	openFailures int
	// seeding: a seed is under way (we offered or asked for one, and the
	// peer has not answered); seeds the peer caused since seedsSince
	// (seeds_live.go). Guarded by mu.
	seeding    bool
	seeds      int
	seedsSince time.Time
}

// of returns p's entry, creating it. Callers hold mu.
func (t *sessions) of(p peer.ID) *peerSessions {
	ps, ok := t.byPeer[p]
	if !ok {
		ps = &peerSessions{}
		t.byPeer[p] = ps
	}
	return ps
}

// newest is p's newest live session, or nil.
func (t *sessions) newest(p peer.ID) *chatSession {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ps, ok := t.byPeer[p]; ok && len(ps.live) > 0 {
		return ps.live[len(ps.live)-1]
	}
	return nil
}

// ofPeer are p's live sessions.
func (t *sessions) ofPeer(p peer.ID) []*chatSession {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ps, ok := t.byPeer[p]; ok {
		return append([]*chatSession(nil), ps.live...)
	}
	return nil
}

// all are every live session.
func (t *sessions) all() []*chatSession {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*chatSession
	for _, ps := range t.byPeer {
		out = append(out, ps.live...)
	}
	return out
}

// peers are the peers with an entry (a session or a dial, now or before).
func (t *sessions) peers() []peer.ID {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]peer.ID, 0, len(t.byPeer))
	for p := range t.byPeer {
		out = append(out, p)
	}
	return out
}

// busy reports whether p has a session or a dial in progress.
func (t *sessions) busy(p peer.ID) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	ps, ok := t.byPeer[p]
	return ok && (len(ps.live) > 0 || ps.dialing != nil)
}

// add records a new live session. An incoming one cancels a dial of ours
// still running (perhaps to the addresses the peer had before it left):
// it would only open a second session.
func (t *sessions) add(cs *chatSession) {
	t.mu.Lock()
	ps := t.of(cs.peer)
	ps.live = append(ps.live, cs)
	if !cs.outgoing && ps.dialCancel != nil {
		ps.dialCancel()
	}
	t.mu.Unlock()
	t.arrived.signal() // after mu: no other lock is taken under it
}

// remove forgets a session and reports whether it was p's last.
func (t *sessions) remove(cs *chatSession) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	ps := t.of(cs.peer)
	for i, x := range ps.live {
		if x == cs {
			ps.live = append(ps.live[:i], ps.live[i+1:]...)
			break
		}
	}
	return len(ps.live) == 0
}

// relayed are p's sessions on relayed connections; none if p has a
// direct one.
func (t *sessions) relayed(p peer.ID) []*chatSession {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*chatSession
	if ps, ok := t.byPeer[p]; ok {
		for _, cs := range ps.live {
			if !cs.conn.Stat().Limited {
				return nil
			}
			out = append(out, cs)
		}
	}
	return out
}

// stalled reports whether a message still pending was written on this
// session before the time given: its receipt is overdue.
func (cs *chatSession) stalled(pending []store.Message, before time.Time) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, m := range pending {
		if at, ok := cs.sent[m.ID]; ok && at.Before(before) {
			return true
		}
	}
	return false
}

// resetSent forgets what was written on this session, so pending
// messages are sealed and written again (after a new ratchet seed).
func (cs *chatSession) resetSent() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	clear(cs.sent)
	cs.forgets.Add(1)
}

// forget empties sent but for the messages of pending. The map keeps its
// room for the next ones rather than being made anew, and is cleared
// rather than deleted from: deletions would leave marks that every
// later look-up of a message not written yet steps over. Callers hold
// mu.
func (cs *chatSession) forget(pending []store.Message) {
	type entry struct {
		id e2e.MessageID
		at time.Time
	}
	var room [8]entry
	keep := room[:0]
	for _, m := range pending {
		if at, ok := cs.sent[m.ID]; ok {
			keep = append(keep, entry{m.ID, at})
		}
	}
	clear(cs.sent)
	cs.forgets.Add(1)
	for _, e := range keep {
		cs.sent[e.id] = e.at
	}
}

// markSent records that id goes out on this session now; false if it
// already did.
func (cs *chatSession) markSent(id e2e.MessageID, now time.Time) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if _, ok := cs.sent[id]; ok {
		return false
	}
	cs.sent[id] = now
	return true
}

// unmarkSent forgets that id was written on this session: a group copy
// handed to a forwarder and taken back, which the worker writes again.
func (cs *chatSession) unmarkSent(id e2e.MessageID) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	delete(cs.sent, id)
	cs.forgets.Add(1)
}

// wroteAll reports whether every message of pending was written on
// this session.
func (cs *chatSession) wroteAll(pending []store.Message) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for i := range pending {
		if _, ok := cs.sent[pending[i].ID]; !ok {
			return false
		}
	}
	return true
}

// sentCount is how many message IDs the session remembers as written.
func (cs *chatSession) sentCount() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return len(cs.sent)
}

// written reports, for each message of pending (the outbox now),
// whether it was written on this session, appended to was. It first
// forgets what was written and has left the outbox (acknowledged or
// failed), so that a long-lived session does not remember every message
// it ever carried. One lock for the whole outbox: a worker's round asks
// about every message it holds.
func (cs *chatSession) written(pending []store.Message, was []bool) []bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if len(cs.sent) > 2*len(pending)+64 {
		cs.forget(pending)
	}
	for _, m := range pending {
		_, ok := cs.sent[m.ID]
		was = append(was, ok)
	}
	return was
}
