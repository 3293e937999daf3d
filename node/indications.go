package node

import (
	"sync"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Indications is the node's part for read markers and typing.
func (n *Node) Indications() *Indications { return n.ind }

// Read markers ("seen") and typing (docs/PROTOCOL.md §10, "Seen and
// typing"). Both travel only on a live session: a settings frame says
// which of them a side takes part in (sent when the session starts and
// when the user changes them), a typing frame says the sender types or
// stopped, and a receipt with status seen says the window showed a
// message. Each side sends one only when both take part, and honours one
// only when it takes part itself: turning either off on one side stops it
// both ways. Older peers skip the optional frames and never get a seen
// receipt (their settings frame never arrives).

// Typing is rate-limited at the sender and forgotten at the receiver:
// while the user types, at most one typing frame every typingEvery; a
// stopped frame when the user stops (the window says so after
// typingIdle); the receiver's window forgets a typing peer after
// TypingExpiry without news, so a lost stopped frame (or a session cut)
// never leaves "typing…" shown.
const (
	typingEvery  = 3 * time.Second
	TypingIdle   = 4 * time.Second
	TypingExpiry = 6 * time.Second
)

// maxPendingSeen bounds the seen receipts kept per peer while it is
// offline (only the newest matter: the window shows the newest).
const maxPendingSeen = 64

// Indications is the node's part for read markers and typing
// (Node.Indications): it owns our settings, the typing we last told each
// peer, and seen receipts waiting for a live session, and sends and
// receives the frames on the sessions. mu guards local, typingSent and
// pendingSeen; it is taken by the API, the read loops and register, and
// no other lock is taken under it.
type Indications struct {
	*core
	sessions *sessions

	mu          sync.Mutex
	local       e2e.Settings
	typingSent  map[peer.ID]time.Time // when we last said typing (zero: stopped)
	pendingSeen map[peer.ID][]e2e.MessageID
}

func newIndications(c *core) *Indications {
	cfg := c.cfg
	return &Indications{
		core:       c,
		local:      e2e.Settings{ReadMarkers: !cfg.NoReadMarkers, Typing: !cfg.NoTyping, Forwards: !cfg.NoForward},
		typingSent: map[peer.ID]time.Time{}, pendingSeen: map[peer.ID][]e2e.MessageID{},
	}
}

func (in *Indications) settings() e2e.Settings {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.local
}

// peerSettings is what the peer of a session said it takes part in;
// known is false until its settings frame arrived (an older peer never
// sends one). Guarded by chatSession.mu.
type peerSettings struct {
	e2e.Settings
	known  bool
	typing bool // the peer said it types, and has not said it stopped
	// The typing the peer said last (typingWant), whether it is news
	// not shown yet, when the last was shown, and whether flushTyping
	// will show it (receiveTyping).
	typingWant, typingNews, typingFlush bool
	typingShown                         time.Time
}

func (cs *chatSession) settings() peerSettings {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.peerSet
}

// Settings reports which live indications we take part in.
func (in *Indications) Settings() e2e.Settings { return in.settings() }

// Set changes which live indications we take part in and tells
// every live peer. Whether we forward group copies is the node's
// configuration (Config.NoForward), not changed here.
func (in *Indications) Set(s e2e.Settings) {
	in.mu.Lock()
	s.Forwards = in.local.Forwards
	in.local = s
	if !s.ReadMarkers {
		clear(in.pendingSeen)
	}
	in.mu.Unlock()
	for _, cs := range in.sessions.all() {
		in.sendSettings(cs, s)
		if !s.Typing && cs.settings().typing {
			in.peerTyping(cs, false)
		}
	}
}

// MarkSeen tells p that our window showed its messages ids (read
// markers), if both of us take part: on the live session, or, with none,
// when one starts.
func (in *Indications) MarkSeen(p peer.ID, ids []e2e.MessageID) {
	if len(ids) == 0 || !in.settings().ReadMarkers {
		return
	}
	cs := in.sessions.newest(p)
	if cs != nil && cs.settings().known && in.sendSeen(cs, ids) {
		return
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	q := append(in.pendingSeen[p], ids...)
	if len(q) > maxPendingSeen {
		q = q[len(q)-maxPendingSeen:]
	}
	in.pendingSeen[p] = q
}

// Typing tells p that we type (or stopped), if both of us take part and a
// session is live: at most one typing frame every typingEvery, and a
// stopped frame only after a typing one.
func (in *Indications) Typing(p peer.ID, typing bool) {
	if !in.settings().Typing {
		return
	}
	cs := in.sessions.newest(p)
	if cs == nil || !cs.settings().Typing {
		return
	}
	now := in.cfg.Now()
	in.mu.Lock()
	last := in.typingSent[p]
	switch {
	case typing && !last.IsZero() && now.Sub(last) < typingEvery,
		!typing && last.IsZero():
		in.mu.Unlock()
		return
	case typing:
		in.typingSent[p] = now
	default:
		delete(in.typingSent, p)
	}
	in.mu.Unlock()
	if err := cs.s.Send(e2e.FrameTyping, e2e.Typing(typing).Marshal()); err != nil {
		in.log.Info("send typing", "peer", p, "err", err)
	}
}

// sendSettings tells the peer of cs what we take part in.
func (in *Indications) sendSettings(cs *chatSession, s e2e.Settings) {
	if err := cs.s.Send(e2e.FrameSettings, s.Marshal()); err != nil {
		in.log.Info("send settings", "peer", cs.peer, "err", err)
	}
}

// sendSeen writes seen receipts on cs when the peer takes part; false if
// the session failed (they wait for the next).
func (in *Indications) sendSeen(cs *chatSession, ids []e2e.MessageID) bool {
	if !cs.settings().ReadMarkers {
		return true // not wanted
	}
	for _, id := range ids {
		if err := cs.s.SendReceipt(e2e.Receipt{ID: id, Status: e2e.ReceiptSeen}); err != nil {
			in.log.Info("send seen", "peer", cs.peer, "err", err)
			return false
		}
	}
	return true
}

// receiveSettings records what the peer takes part in, stops showing its
// typing if it no longer does, and sends the seen receipts that waited.
func (in *Indications) receiveSettings(cs *chatSession, s e2e.Settings) {
	cs.mu.Lock()
	wasTyping := cs.peerSet.typing
	cs.peerSet.Settings, cs.peerSet.known = s, true
	if !s.Typing {
		cs.peerSet.typing = false
	}
	cs.mu.Unlock()
	if wasTyping && !s.Typing {
		in.emit(Event{Kind: EventTyping, PeerID: cs.peer})
	}
	if !s.ReadMarkers {
		return
	}
	in.mu.Lock()
	ids := in.pendingSeen[cs.peer]
	delete(in.pendingSeen, cs.peer)
	local := in.local
	in.mu.Unlock()
	if local.ReadMarkers {
		in.sendSeen(cs, ids)
	}
}

// typingShownEvery bounds the typing events a peer's frames make: at
// most one in it per session. An honest peer writes a "typing" every
// typingEvery at most while its user types, and a "stopped" when it
// stops; one that wrote them without end (typing, stopped, typing…)
// would have an event each queued for every subscriber (their queues are
// unbounded) and the window redrawn for each. What comes within it is not
// lost: the last state the peer said is shown once it has passed
// (flushTyping), so a quick "stopped, typing" still shows typing.
const typingShownEvery = time.Second

// receiveTyping shows the peer's typing if both take part, at most once
// every typingShownEvery (the rest waits for flushTyping).
func (in *Indications) receiveTyping(cs *chatSession, typing bool) {
	if !in.settings().Typing || !cs.settings().Typing {
		return
	}
	now := time.Now()
	cs.mu.Lock()
	ps := &cs.peerSet
	ps.typingWant, ps.typingNews = typing, typing || ps.typing
	show := ps.typingNews && now.Sub(ps.typingShown) >= typingShownEvery
	if show {
		ps.typingShown, ps.typingNews = now, false
	}
	flush := ps.typingNews && !ps.typingFlush
	ps.typingFlush = ps.typingFlush || flush
	wait := ps.typingShown.Add(typingShownEvery).Sub(now)
	cs.mu.Unlock()
	switch {
	case show:
		in.peerTyping(cs, typing)
	case flush && !in.work.goDo(func() { in.flushTyping(cs, wait) }):
		cs.mu.Lock()
		ps.typingFlush = false
		cs.mu.Unlock()
	}
}

// flushTyping shows, after wait, the last typing state the peer said on
// cs if it was not shown (receiveTyping), unless the session ended.
func (in *Indications) flushTyping(cs *chatSession, wait time.Duration) {
	alive := in.sleep(wait, cs.done)
	cs.mu.Lock()
	ps := &cs.peerSet
	ps.typingFlush = false
	show, typing := alive && ps.typingNews, ps.typingWant
	if show {
		ps.typingShown, ps.typingNews = time.Now(), false
	}
	cs.mu.Unlock()
	if show {
		in.peerTyping(cs, typing)
	}
}

// peerTyping records and reports the peer's typing state.
func (in *Indications) peerTyping(cs *chatSession, typing bool) {
	cs.mu.Lock()
	cs.peerSet.typing = typing
	cs.mu.Unlock()
	in.emit(Event{Kind: EventTyping, PeerID: cs.peer, Typing: typing})
}

// honoursSeen reports whether a seen receipt from the peer of cs counts:
// both take part.
func (in *Indications) honoursSeen(cs *chatSession) bool {
	return in.settings().ReadMarkers && cs.settings().ReadMarkers
}
