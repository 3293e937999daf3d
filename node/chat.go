package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/e2e/ratchet"
	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
)

// A session's life: a dial (or the peer's stream) and the TLS handshake,
// registration, a read loop until it ends, and a move to a direct
// connection when one appears under a relayed session.

// dialTimeout bounds reaching a peer and running the handshake.
const dialTimeout = 20 * time.Second

// handleStream is the responder side of the chat protocol.
func (t *sessions) handleStream(s network.Stream) {
	remote := s.Conn().RemotePeer()
	sess, err := t.ep.Server(t.ctx, s, remote)
	if err != nil {
		t.handshakeFailed(remote, err)
		return
	}
	t.register(sess, s.Conn(), false)
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

// get returns a live session with p, dialing if there is none.
// Concurrent callers share one dial.
func (t *sessions) get(ctx context.Context, p peer.ID) (*chatSession, error) {
	for {
		if t.work.closed() {
			return nil, ErrClosed
		}
		t.mu.Lock()
		ps := t.of(p)
		if k := len(ps.live); k > 0 {
			cs := ps.live[k-1]
			t.mu.Unlock()
			return cs, nil
		}
		wait := ps.dialing
		if wait == nil {
			ps.dialing = make(chan struct{})
			dctx, cancel := context.WithCancel(ctx)
			ps.dialCancel = cancel
			t.mu.Unlock()
			cs, err := t.dial(dctx, p)
			cancel()
			return t.dialed(ps, cs, err)
		}
		t.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// dialed ends a dial: the waiters wake, and a dial that failed because
// the peer's own session arrived meanwhile (and cancelled it) uses that.
func (t *sessions) dialed(ps *peerSessions, cs *chatSession, err error) (*chatSession, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	close(ps.dialing)
	ps.dialing, ps.dialCancel = nil, nil
	if err != nil && len(ps.live) > 0 {
		return ps.live[len(ps.live)-1], nil
	}
	return cs, err
}

// dial opens a chat stream to p and runs the initiator's handshake.
// Streams may use a relayed (limited) connection: everything on them is
// end-to-end encrypted, and relays are configured for chat (docs/PROTOCOL.md §11).
func (t *sessions) dial(ctx context.Context, p peer.ID) (*chatSession, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	if t.host.Network().Connectedness(p) != network.Connected {
		addrs := append(lanFirst(t.host.Peerstore().Addrs(p)), t.relays.via(p)...)
		if len(addrs) == 0 {
			return nil, ErrNoAddress
		}
		// The outbox spaces its retries itself (RetryMin..RetryMax), and
		// Connect and discovery are deliberate: libp2p's own dial backoff
		// (5 s, growing to 5 min per failed address) would otherwise keep
		// refusing a peer that came back long after RetryMax.
		if b, ok := t.host.Network().(interface{ Backoff() *swarm.DialBackoff }); ok {
			b.Backoff().Clear(p)
		}
		if err := t.host.Connect(ctx, peer.AddrInfo{ID: p, Addrs: addrs}); err != nil {
			return nil, fmt.Errorf("reach %s: %w", identity.ShortID(p), err)
		}
	}
	return t.open(network.WithAllowLimitedConn(ctx, "certchat chat"), p)
}

// open opens a chat stream on an existing connection and runs the
// initiator's handshake. Without WithAllowLimitedConn in ctx, libp2p uses
// only a direct (unlimited) connection.
func (t *sessions) open(ctx context.Context, p peer.ID) (*chatSession, error) {
	s, err := t.host.NewStream(ctx, p, e2e.ProtocolChat)
	if err != nil {
		return nil, fmt.Errorf("open chat stream to %s: %w", identity.ShortID(p), err)
	}
	sess, err := t.ep.Client(ctx, s, s.Conn().RemotePeer(), p)
	if err != nil {
		t.handshakeFailed(p, err)
		return nil, err
	}
	return t.register(sess, s.Conn(), true), nil
}

// register starts using a verified session: its read loop, a try at a
// direct connection if it is relayed, the ratchet, and the outbox.
func (t *sessions) register(sess *e2e.Session, conn network.Conn, outgoing bool) *chatSession {
	p := sess.PeerID()
	cs := &chatSession{s: sess, peer: p, conn: conn, outgoing: outgoing, done: make(chan struct{}), sent: map[e2e.MessageID]bool{}}
	t.book.recordVerified(p, sess.Peer(), sess.PeerCertificates()[0])
	// Added before its read loop starts, so the loop's end finds it; if
	// the node is closing, Close may not have seen it: close it here.
	t.add(cs)
	t.cm.Protect(p, protectTag)
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
	t.work.goDo(func() { t.tryDirect(cs) })
	t.startRatchet(cs)
	t.out.kick(p)
	return cs
}

// unregister forgets a session that ended.
func (t *sessions) unregister(cs *chatSession) {
	last := t.remove(cs)
	close(cs.done)
	if last {
		t.cm.Unprotect(cs.peer, protectTag)
	}
	if !t.work.closed() {
		t.peerEv.now(cs.peer)
		t.out.kick(cs.peer)
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

// directAttempts are the delays before each try at a direct connection
// to a peer first reached through a relay.
var directAttempts = []time.Duration{500 * time.Millisecond, 3 * time.Second, 15 * time.Second, time.Minute}

// tryDirect dials a peer reached through a relay at the direct addresses
// identify reported, as DCUtR's first step does. (go-libp2p's hole punching
// service starts only once a host has a public address, so on a LAN it
// would never run.) A direct connection then triggers upgrade.
func (t *sessions) tryDirect(cs *chatSession) {
	if !cs.conn.Stat().Limited {
		return
	}
	for _, d := range directAttempts {
		if !t.sleep(d, cs.done) {
			return
		}
		var direct []ma.Multiaddr
		for _, a := range t.host.Peerstore().Addrs(cs.peer) {
			if !isCircuit(a) {
				direct = append(direct, a)
			}
		}
		if len(direct) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(network.WithForceDirectDial(t.ctx, "certchat upgrade"), dialTimeout)
		err := t.host.Connect(ctx, peer.AddrInfo{ID: cs.peer, Addrs: lanFirst(direct)})
		cancel()
		if err == nil {
			return // onConnected moves the chat
		}
		t.log.Debug("direct connection failed", "peer", cs.peer, "err", err)
	}
}

// onConnected moves a relayed chat to a new direct connection.
func (t *sessions) onConnected(c network.Conn) {
	p := c.RemotePeer()
	if c.Stat().Limited || isCircuit(c.RemoteMultiaddr()) || len(t.relayed(p)) == 0 {
		return
	}
	t.work.goDo(func() { t.upgrade(p) })
}

// upgrade moves the chat with p off relayed connections once a direct
// connection exists (hole punching succeeded): a new session on the direct
// connection, then the relayed ones close. Unacknowledged messages are
// written again on the new session; the receiver drops duplicates.
func (t *sessions) upgrade(p peer.ID) {
	// Both ends see the direct connection; the one with the smaller peer
	// ID moves the chat, the other only if that did not happen.
	if t.id.PeerID() > p && !t.sleep(lanYield) {
		return
	}
	relayed := t.relayed(p)
	if len(relayed) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(t.ctx, dialTimeout)
	defer cancel()
	if _, err := t.open(ctx, p); err != nil {
		t.log.Info("upgrade to a direct connection failed; staying on the relay", "peer", p, "err", err)
		return
	}
	t.log.Info("chat moved to a direct connection", "peer", p)
	for _, cs := range relayed {
		cs.s.CloseWith(e2e.CloseGoingAway, "moved to a direct connection")
	}
}
