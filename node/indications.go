package node

import (
	"sync"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/libp2p/go-libp2p/core/peer"
)

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

// indications owns our settings, the typing we last told each peer, and
// seen receipts waiting for a live session. mu guards all of them; it is
// taken by the API, the read loops and register, and no other lock is
// taken under it.
type indications struct {
	mu          sync.Mutex
	local       e2e.Settings
	typingSent  map[peer.ID]time.Time // when we last said typing (zero: stopped)
	pendingSeen map[peer.ID][]e2e.MessageID
}

func newIndications(cfg Config) *indications {
	return &indications{
		local:      e2e.Settings{ReadMarkers: !cfg.NoReadMarkers, Typing: !cfg.NoTyping},
		typingSent: map[peer.ID]time.Time{}, pendingSeen: map[peer.ID][]e2e.MessageID{},
	}
}

func (in *indications) settings() e2e.Settings {
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
}

func (cs *chatSession) settings() peerSettings {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.peerSet
}

// Indications reports which live indications we take part in.
func (n *Node) Indications() e2e.Settings { return n.ind.settings() }

// SetIndications changes which live indications we take part in and tells
// every live peer.
func (n *Node) SetIndications(s e2e.Settings) {
	n.ind.mu.Lock()
	n.ind.local = s
	if !s.ReadMarkers {
		clear(n.ind.pendingSeen)
	}
	n.ind.mu.Unlock()
	for _, cs := range n.sessions.all() {
		n.sessions.sendSettings(cs, s)
		if !s.Typing && cs.settings().typing {
			n.sessions.peerTyping(cs, false)
		}
	}
}

// MarkSeen tells p that our window showed its messages ids (read
// markers), if both of us take part: on the live session, or, with none,
// when one starts.
func (n *Node) MarkSeen(p peer.ID, ids []e2e.MessageID) {
	if len(ids) == 0 || !n.ind.settings().ReadMarkers {
		return
	}
	cs := n.sessions.newest(p)
	if cs != nil && cs.settings().known && n.sessions.sendSeen(cs, ids) {
		return
	}
	n.ind.mu.Lock()
	defer n.ind.mu.Unlock()
	q := append(n.ind.pendingSeen[p], ids...)
	if len(q) > maxPendingSeen {
		q = q[len(q)-maxPendingSeen:]
	}
	n.ind.pendingSeen[p] = q
}

// Typing tells p that we type (or stopped), if both of us take part and a
// session is live: at most one typing frame every typingEvery, and a
// stopped frame only after a typing one.
func (n *Node) Typing(p peer.ID, typing bool) {
	if !n.ind.settings().Typing {
		return
	}
	cs := n.sessions.newest(p)
	if cs == nil || !cs.settings().Typing {
		return
	}
	now := n.cfg.Now()
	n.ind.mu.Lock()
	last := n.ind.typingSent[p]
	switch {
	case typing && !last.IsZero() && now.Sub(last) < typingEvery,
		!typing && last.IsZero():
		n.ind.mu.Unlock()
		return
	case typing:
		n.ind.typingSent[p] = now
	default:
		delete(n.ind.typingSent, p)
	}
	n.ind.mu.Unlock()
	if err := cs.s.Send(e2e.FrameTyping, e2e.Typing(typing).Marshal()); err != nil {
		n.log.Info("send typing", "peer", p, "err", err)
	}
}

// sendSettings tells the peer of cs what we take part in.
func (t *sessions) sendSettings(cs *chatSession, s e2e.Settings) {
	if err := cs.s.Send(e2e.FrameSettings, s.Marshal()); err != nil {
		t.log.Info("send settings", "peer", cs.peer, "err", err)
	}
}

// sendSeen writes seen receipts on cs when the peer takes part; false if
// the session failed (they wait for the next).
func (t *sessions) sendSeen(cs *chatSession, ids []e2e.MessageID) bool {
	if !cs.settings().ReadMarkers {
		return true // not wanted
	}
	for _, id := range ids {
		if err := cs.s.SendReceipt(e2e.Receipt{ID: id, Status: e2e.ReceiptSeen}); err != nil {
			t.log.Info("send seen", "peer", cs.peer, "err", err)
			return false
		}
	}
	return true
}

// receiveSettings records what the peer takes part in, stops showing its
// typing if it no longer does, and sends the seen receipts that waited.
func (t *sessions) receiveSettings(cs *chatSession, s e2e.Settings) {
	cs.mu.Lock()
	wasTyping := cs.peerSet.typing
	cs.peerSet.Settings, cs.peerSet.known = s, true
	if !s.Typing {
		cs.peerSet.typing = false
	}
	cs.mu.Unlock()
	if wasTyping && !s.Typing {
		t.emit(Event{Kind: EventTyping, PeerID: cs.peer})
	}
	if !s.ReadMarkers {
		return
	}
	t.ind.mu.Lock()
	ids := t.ind.pendingSeen[cs.peer]
	delete(t.ind.pendingSeen, cs.peer)
	local := t.ind.local
	t.ind.mu.Unlock()
	if local.ReadMarkers {
		t.sendSeen(cs, ids)
	}
}

// receiveTyping shows the peer's typing if both take part.
func (t *sessions) receiveTyping(cs *chatSession, typing bool) {
	if !t.ind.settings().Typing || !cs.settings().Typing {
		return
	}
	t.peerTyping(cs, typing)
}

// peerTyping records and reports the peer's typing state.
func (t *sessions) peerTyping(cs *chatSession, typing bool) {
	cs.mu.Lock()
	cs.peerSet.typing = typing
	cs.mu.Unlock()
	t.emit(Event{Kind: EventTyping, PeerID: cs.peer, Typing: typing})
}

// honoursSeen reports whether a seen receipt from the peer of cs counts:
// both take part.
func (t *sessions) honoursSeen(cs *chatSession) bool {
	return t.ind.settings().ReadMarkers && cs.settings().ReadMarkers
}
