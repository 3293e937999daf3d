package node

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/e2e/ratchet"
	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// A session's life: the peer's stream or our dial ends in a verified
// session, which is registered, read until it ends, then forgotten.

// handleStream is the responder side of the chat protocol.
func (t *sessions) handleStream(s network.Stream) {
	remote := s.Conn().RemotePeer()
	from := originOf(s.Conn().RemoteMultiaddr(), s.Conn().Stat().Limited)
	sess, err := t.ep.ServerFrom(t.ctx, s, remote, from)
	if err != nil {
		t.handshakeFailed(remote, err)
		return
	}
	t.register(sess, s.Conn(), false)
}

// originOf is where a stream on a connection to addr comes from, for the
// e2e caps on half-open handshakes: the connection's remote IP. For a
// relayed (limited, or circuit) connection that is the relay's IP, the
// first IP in .../p2p/<relay>/p2p-circuit: all we know of the path, shared
// by every peer behind that relay, and counted against relayed handshakes
// as well. An address without an IP is an unknown origin.
func originOf(addr ma.Multiaddr, limited bool) e2e.Origin {
	o := e2e.Origin{Relayed: limited || isCircuit(addr)}
	if ip, err := manet.ToIP(addr); err == nil {
		o.IP, _ = netip.AddrFromSlice(ip)
	}
	return o
}

// handshakeFailed records what a failed handshake says about the peer.
func (t *sessions) handshakeFailed(p peer.ID, err error) {
	var he *e2e.HandshakeError
	if errors.As(err, &he) && he.Verdict != nil && errors.Is(err, e2e.ErrKeyChanged) {
		t.book.keyChanged(p, he.Verdict)
		t.log.Warn("key changed", "peer", p, "reason", he.Verdict.Reason)
		t.peerEv.now(p)
		return
	}
	switch {
	case errors.Is(err, e2e.ErrTampered):
		t.emitError(p, err)
	case errors.Is(err, e2e.ErrUntrusted), errors.Is(err, e2e.ErrBusy):
		t.log.Info("handshake refused", "peer", p, "err", err)
	default:
		t.log.Warn("handshake failed", "peer", p, "err", err)
	}
}

// register starts using a verified session: its read loop, a try at a
// direct connection if it is relayed, the ratchet, and the outbox.
func (t *sessions) register(sess *e2e.Session, conn network.Conn, outgoing bool) *chatSession {
	p := sess.PeerID()
	cs := &chatSession{s: sess, peer: p, conn: conn, outgoing: outgoing, done: make(chan struct{}), sent: map[e2e.MessageID]time.Time{}}
	t.book.recordVerified(p, sess.Peer(), sess.PeerCertificates())
	// Added before its read loop starts, so the loop's end finds it; if
	// the node is closing, Close may not have seen it: close it here.
	t.add(cs)
	t.cm.Protect(p, protectTag)
	// Our settings go first on the session: a seen receipt we write once
	// the peer's settings arrive (read loop) must find ours there before
	// it, or the peer does not honour it.
	t.ind.sendSettings(cs, t.ind.settings())
	if !t.work.goDo(func() { t.readLoop(cs) }) {
		if t.remove(cs) {
			t.cm.Unprotect(p, protectTag)
		}
		close(cs.done)
		sess.CloseWith(e2e.CloseGoingAway, "shutting down")
		return cs
	}
	t.log.Info("session", "peer", p, "name", sess.Peer().Name, "trust", sess.Peer().State,
		"outgoing", outgoing, "resumed", sess.Info().Resumed, "group", sess.Info().GroupName())
	t.peerEv.now(p)
	t.work.goDo(func() { t.book.rememberIdentified(conn) })
	t.work.goDo(func() { t.tryDirect(cs) })
	t.startRatchet(cs)
	t.out.kick(p)
	return cs
}

// unregister forgets a session that ended.
func (t *sessions) unregister(cs *chatSession) {
	last := t.remove(cs)
	close(cs.done)
	t.held.moveHeld(cs, t.newest(cs.peer))
	if last {
		t.cm.Unprotect(cs.peer, protectTag)
	}
	if cs.settings().typing {
		t.emit(Event{Kind: EventTyping, PeerID: cs.peer})
	}
	if !t.work.closed() {
		t.peerEv.now(cs.peer)
		t.out.kick(cs.peer)
		t.out.fwd.lost(cs.peer) // copies it was to forward
	}
}

// readLoop handles what the peer sends until the session ends.
func (t *sessions) readLoop(cs *chatSession) {
	defer t.unregister(cs)
	for {
		f, err := cs.s.Receive()
		if err != nil {
			t.ended(cs, err)
			return
		}
		if err := t.handleFrame(cs, f); err != nil {
			t.log.Warn("bad frame", "peer", cs.peer, "err", err)
			cs.s.CloseWith(e2e.CloseProtocol, err.Error())
			t.emitError(cs.peer, fmt.Errorf("closed the session with %s: %w", identity.ShortID(cs.peer), err))
			return
		}
	}
}

// ended logs why a session ended, and tells the user of tampering.
func (t *sessions) ended(cs *chatSession, err error) {
	switch {
	case errors.Is(err, io.EOF):
		code, reason, _ := cs.s.CloseReason()
		t.log.Info("session closed by peer", "peer", cs.peer, "code", code, "reason", reason)
	case t.ctx.Err() != nil:
	case errors.Is(err, e2e.ErrTampered):
		t.emitError(cs.peer, fmt.Errorf("session with %s: %w", identity.ShortID(cs.peer), err))
	default:
		t.log.Info("session ended", "peer", cs.peer, "err", err)
	}
	cs.s.Close()
}

// closePeer ends p's live sessions with a rejected close frame.
func (t *sessions) closePeer(p peer.ID, reason string) {
	for _, cs := range t.ofPeer(p) {
		cs.s.CloseWith(e2e.CloseRejected, reason)
	}
}

// startRatchet makes sure the peers share a ratchet session once a live
// session is up: the TLS server seeds one from the exporter if it has
// none; the TLS client that has none asks the server for a seed.
func (t *sessions) startRatchet(cs *chatSession) {
	if !t.rk.hasSession(cs.peer) {
		t.reseed(cs)
	}
}

// exporterSecret is the session's TLS exporter secret that seeds a
// ratchet session (docs/PROTOCOL.md §12.8).
func (t *sessions) exporterSecret(cs *chatSession) ([]byte, error) {
	return cs.s.ExportKeyingMaterial(ratchet.ExporterLabel, ratchet.ExporterContext([]byte(t.id.PeerID()), []byte(cs.peer)), 32)
}
