package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/e2e/ratchet"
	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
)

// dialTimeout bounds reaching a peer and running the handshake.
const dialTimeout = 20 * time.Second

// chatSession is one verified e2e session with a peer.
type chatSession struct {
	s        *e2e.Session
	peer     peer.ID
	conn     network.Conn // the libp2p connection the stream runs on
	outgoing bool
	done     chan struct{}

	mu   sync.Mutex
	sent map[e2e.MessageID]bool // written on this session
}

// wasSent reports whether id was written on this session.
func (cs *chatSession) wasSent(id e2e.MessageID) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.sent[id]
}

// resetSent forgets what was written on this session, so pending
// messages are sealed and written again (after a new ratchet seed).
func (cs *chatSession) resetSent() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	clear(cs.sent)
}

// markSent records that id goes out on this session; false if it already did.
func (cs *chatSession) markSent(id e2e.MessageID) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.sent[id] {
		return false
	}
	cs.sent[id] = true
	return true
}

// pruneSent forgets what was written on this session and has left the
// outbox (acknowledged or failed), so that a long-lived session does not
// remember every message it ever carried. pending is the outbox now.
func (cs *chatSession) pruneSent(pending []Message) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if len(cs.sent) <= 2*len(pending)+64 {
		return
	}
	keep := make(map[e2e.MessageID]bool, len(pending))
	for _, m := range pending {
		if cs.sent[m.ID] {
			keep[m.ID] = true
		}
	}
	cs.sent = keep
}

// handleStream is the responder side of the chat protocol.
func (n *Node) handleStream(s network.Stream) {
	remote := s.Conn().RemotePeer()
	sess, err := n.ep.Server(n.ctx, s, remote)
	if err != nil {
		n.handshakeFailed(remote, err)
		return
	}
	n.register(sess, s.Conn(), false)
}

// handshakeFailed records what a failed handshake says about the peer.
func (n *Node) handshakeFailed(p peer.ID, err error) {
	var he *e2e.HandshakeError
	if errors.As(err, &he) && he.Verdict != nil && errors.Is(err, e2e.ErrKeyChanged) {
		n.mu.Lock()
		n.state(p).changed = he.Verdict
		n.mu.Unlock()
		n.log.Warn("key changed", "peer", p, "reason", he.Verdict.Reason)
		n.emitPeer(p)
		return
	}
	switch {
	case errors.Is(err, e2e.ErrTampered):
		n.emitError(p, err)
	case errors.Is(err, e2e.ErrUntrusted), errors.Is(err, e2e.ErrBusy):
		n.log.Info("handshake refused", "peer", p, "err", err)
	default:
		n.log.Warn("handshake failed", "peer", p, "err", err)
	}
}

// session returns a live session with p, dialing if there is none.
// Concurrent callers share one dial.
func (n *Node) session(ctx context.Context, p peer.ID) (*chatSession, error) {
	for {
		n.mu.Lock()
		if n.closing {
			n.mu.Unlock()
			return nil, ErrClosed
		}
		ps := n.state(p)
		if k := len(ps.sessions); k > 0 {
			cs := ps.sessions[k-1]
			n.mu.Unlock()
			return cs, nil
		}
		wait := ps.dialing
		if wait == nil {
			ps.dialing = make(chan struct{})
			dctx, cancel := context.WithCancel(ctx)
			ps.dialCancel = cancel
			n.mu.Unlock()
			cs, err := n.dial(dctx, p)
			cancel()
			n.mu.Lock()
			close(ps.dialing)
			ps.dialing, ps.dialCancel = nil, nil
			if err != nil && len(ps.sessions) > 0 {
				// The peer's own session arrived meanwhile (and cancelled
				// our dial): use it.
				cs, err = ps.sessions[len(ps.sessions)-1], nil
			}
			n.mu.Unlock()
			return cs, err
		}
		n.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// dial opens a chat stream to p and runs the initiator's handshake.
// Streams may use a relayed (limited) connection: everything on them is
// end-to-end encrypted, and relays are configured for chat (docs/PROTOCOL.md).
func (n *Node) dial(ctx context.Context, p peer.ID) (*chatSession, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	if n.host.Network().Connectedness(p) != network.Connected {
		addrs := append(lanFirst(n.host.Peerstore().Addrs(p)), n.viaRelays(p)...)
		if len(addrs) == 0 {
			return nil, ErrNoAddress
		}
		// The outbox spaces its retries itself (RetryMin..RetryMax), and
		// Connect and discovery are deliberate: libp2p's own dial backoff
		// (5 s, growing to 5 min per failed address) would otherwise keep
		// refusing a peer that came back long after RetryMax.
		if b, ok := n.host.Network().(interface{ Backoff() *swarm.DialBackoff }); ok {
			b.Backoff().Clear(p)
		}
		if err := n.host.Connect(ctx, peer.AddrInfo{ID: p, Addrs: addrs}); err != nil {
			return nil, fmt.Errorf("reach %s: %w", identity.ShortID(p), err)
		}
	}
	return n.openSession(network.WithAllowLimitedConn(ctx, "certchat chat"), p)
}

// openSession opens a chat stream on an existing connection and runs the
// initiator's handshake. Without WithAllowLimitedConn in ctx, libp2p uses
// only a direct (unlimited) connection.
func (n *Node) openSession(ctx context.Context, p peer.ID) (*chatSession, error) {
	s, err := n.host.NewStream(ctx, p, e2e.ProtocolChat)
	if err != nil {
		return nil, fmt.Errorf("open chat stream to %s: %w", identity.ShortID(p), err)
	}
	sess, err := n.ep.Client(ctx, s, s.Conn().RemotePeer(), p)
	if err != nil {
		n.handshakeFailed(p, err)
		return nil, err
	}
	return n.register(sess, s.Conn(), true), nil
}

// upgrade moves the chat with p off relayed connections once a direct
// connection exists (hole punching succeeded): a new session on the direct
// connection, then the relayed ones close. Unacknowledged messages are
// written again on the new session; the receiver drops duplicates.
func (n *Node) upgrade(p peer.ID) {
	if n.id.PeerID() > p {
		// Both ends see the direct connection; the one with the smaller
		// peer ID moves the chat, the other only if that did not happen.
		select {
		case <-time.After(lanYield):
		case <-n.ctx.Done():
			return
		}
	}
	n.mu.Lock()
	var relayed []*chatSession
	if ps, ok := n.peers[p]; ok {
		for _, cs := range ps.sessions {
			if !cs.conn.Stat().Limited {
				n.mu.Unlock()
				return // already direct
			}
			relayed = append(relayed, cs)
		}
	}
	n.mu.Unlock()
	if len(relayed) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, dialTimeout)
	defer cancel()
	if _, err := n.openSession(ctx, p); err != nil {
		n.log.Info("upgrade to a direct connection failed; staying on the relay", "peer", p, "err", err)
		return
	}
	n.log.Info("chat moved to a direct connection", "peer", p)
	for _, cs := range relayed {
		cs.s.CloseWith(e2e.CloseGoingAway, "moved to a direct connection")
	}
}

// register starts using a verified session.
func (n *Node) register(sess *e2e.Session, conn network.Conn, outgoing bool) *chatSession {
	p := sess.PeerID()
	cs := &chatSession{s: sess, peer: p, conn: conn, outgoing: outgoing, done: make(chan struct{}), sent: map[e2e.MessageID]bool{}}
	n.recordVerified(p, sess.Peer(), sess.PeerCertificates()[0])
	n.mu.Lock()
	if n.closing {
		n.mu.Unlock()
		sess.CloseWith(e2e.CloseGoingAway, "shutting down")
		return cs
	}
	ps := n.state(p)
	ps.sessions = append(ps.sessions, cs)
	if !outgoing && ps.dialCancel != nil {
		// A dial of ours still running (perhaps to the addresses the peer
		// had before it left) is not needed any more: it would only open a
		// second session.
		ps.dialCancel()
	}
	n.wg.Add(2) // under n.mu, so Close cannot be waiting already
	n.mu.Unlock()
	n.cm.Protect(p, protectTag)
	n.log.Info("session", "peer", p, "name", sess.Peer().Name, "trust", sess.Peer().State,
		"outgoing", outgoing, "resumed", sess.Info().Resumed, "group", sess.Info().GroupName())
	n.emitPeer(p)
	go n.readLoop(cs)
	go n.tryDirect(cs)
	n.startRatchet(cs)
	n.kick(p)
	return cs
}

// startRatchet makes sure the peers share a ratchet session once a live
// session is up: the TLS server seeds one from the exporter if it has
// none; the TLS client that has none asks the server for a seed.
func (n *Node) startRatchet(cs *chatSession) {
	if !n.hasSession(cs.peer) {
		n.reseed(cs)
	}
}

// offerSeed seeds a ratchet session as the TLS server and sends the offer.
func (n *Node) offerSeed(cs *chatSession) {
	offer, err := n.seedResponder(cs)
	if err != nil {
		n.log.Error("seed a ratchet session", "peer", cs.peer, "err", err)
		return
	}
	if err := cs.s.Send(e2e.FrameRatchetInit, offer); err != nil {
		n.log.Info("send ratchet seed", "peer", cs.peer, "err", err)
	}
}

// directAttempts are the delays before each try at a direct connection
// to a peer first reached through a relay.
var directAttempts = []time.Duration{500 * time.Millisecond, 3 * time.Second, 15 * time.Second, time.Minute}

// tryDirect dials a peer reached through a relay at the direct addresses
// identify reported, as DCUtR's first step does. (go-libp2p's hole punching
// service starts only once a host has a public address, so on a LAN it
// would never run.) A direct connection then triggers upgrade.
func (n *Node) tryDirect(cs *chatSession) {
	defer n.wg.Done()
	if !cs.conn.Stat().Limited {
		return
	}
	for _, d := range directAttempts {
		select {
		case <-time.After(d):
		case <-cs.done:
			return
		case <-n.ctx.Done():
			return
		}
		var direct []ma.Multiaddr
		for _, a := range n.host.Peerstore().Addrs(cs.peer) {
			if !isCircuit(a) {
				direct = append(direct, a)
			}
		}
		if len(direct) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(network.WithForceDirectDial(n.ctx, "certchat upgrade"), dialTimeout)
		err := n.host.Connect(ctx, peer.AddrInfo{ID: cs.peer, Addrs: lanFirst(direct)})
		cancel()
		if err == nil {
			return // onConnected moves the chat
		}
		n.log.Debug("direct connection failed", "peer", cs.peer, "err", err)
	}
}

// unregister forgets a session that ended.
func (n *Node) unregister(cs *chatSession) {
	n.mu.Lock()
	ps := n.state(cs.peer)
	for i, x := range ps.sessions {
		if x == cs {
			ps.sessions = append(ps.sessions[:i], ps.sessions[i+1:]...)
			break
		}
	}
	last := len(ps.sessions) == 0
	closing := n.closing
	n.mu.Unlock()
	close(cs.done)
	if last {
		n.cm.Unprotect(cs.peer, protectTag)
	}
	if !closing {
		n.emitPeer(cs.peer)
		n.kick(cs.peer)
	}
}

// readLoop handles what the peer sends until the session ends.
func (n *Node) readLoop(cs *chatSession) {
	defer n.wg.Done()
	defer n.unregister(cs)
	for {
		f, err := cs.s.Receive()
		if err != nil {
			n.sessionEnded(cs, err)
			return
		}
		if err := n.handleFrame(cs, f); err != nil {
			n.log.Warn("bad frame", "peer", cs.peer, "err", err)
			cs.s.CloseWith(e2e.CloseProtocol, err.Error())
			n.emitError(cs.peer, fmt.Errorf("closed the session with %s: %w", identity.ShortID(cs.peer), err))
			return
		}
	}
}

func (n *Node) sessionEnded(cs *chatSession, err error) {
	switch {
	case errors.Is(err, io.EOF):
		code, reason, _ := cs.s.CloseReason()
		n.log.Info("session closed by peer", "peer", cs.peer, "code", code, "reason", reason)
	case n.ctx.Err() != nil:
	case errors.Is(err, e2e.ErrTampered):
		n.emitError(cs.peer, fmt.Errorf("session with %s: %w", identity.ShortID(cs.peer), err))
	default:
		n.log.Info("session ended", "peer", cs.peer, "err", err)
	}
	cs.s.Close()
}

func (n *Node) handleFrame(cs *chatSession, f e2e.Frame) error {
	switch f.Type {
	case e2e.FrameText:
		return fmt.Errorf("%w: messages must be sealed (envelope frames), not sent as text", e2e.ErrMalformed)
	case e2e.FrameEnvelope:
		// Copies: the session reuses the payload's memory, and ratchet
		// state may keep parts of what it opens.
		return n.receiveEnvelope(cs, bytes.Clone(f.Payload))
	case e2e.FrameRatchetInit:
		return n.receiveRatchetInit(cs, bytes.Clone(f.Payload))
	case e2e.FrameReceipt:
		r, err := e2e.ParseReceipt(f.Payload)
		if err != nil {
			return err
		}
		n.receiveReceipt(cs.peer, r)
		return nil
	}
	n.log.Debug("frame ignored", "peer", cs.peer, "type", f.Type)
	return nil
}

// receiveEnvelope opens a sealed message or receipt. The message is
// stored (once, whatever the retries) with the new ratchet state, then
// acknowledged: the receipt means "stored durably".
func (n *Node) receiveEnvelope(cs *chatSession, env []byte) error {
	res, err := n.open(cs.peer, env)
	switch {
	case errors.Is(err, ratchet.ErrDuplicate):
		n.log.Info("duplicate envelope dropped", "peer", cs.peer)
		return nil
	case errors.Is(err, ratchet.ErrNoSession), errors.Is(err, ratchet.ErrUnknownSession),
		errors.Is(err, ratchet.ErrTooManySkipped), errors.Is(err, ratchet.ErrReplay):
		// The peer sealed for a session we do not have (we lost state, or
		// it predates a seed), or one whose direction cannot go on (a gap
		// beyond MAX_SKIP): start a new one; the peer writes its
		// unacknowledged messages again on it.
		n.log.Warn("envelope cannot be opened in its session; seeding a new one", "peer", cs.peer, "err", err)
		n.reseed(cs)
		return nil
	case err != nil:
		n.emitError(cs.peer, fmt.Errorf("a message from %s could not be opened and was dropped: %w", identity.ShortID(cs.peer), err))
		return nil
	}
	n.delivered(cs.peer, res, cs)
	return nil
}

// delivered reports what an opened envelope carried and acknowledges a
// message: on the live session when there is one, else through the
// sender's mailbox.
func (n *Node) delivered(p peer.ID, res opened, cs *chatSession) {
	if res.text != nil {
		if res.isNew {
			n.emit(Event{Kind: EventMessage, Message: res.text})
		}
		n.sendReceipt(p, res.text.ID, cs)
	}
	if res.receipt != nil && res.changed {
		n.emit(Event{Kind: EventStatus, Message: res.receipt})
	}
	n.kick(p) // a receipt opens the send window; a first envelope confirms a seed
}

// reseed starts a new ratchet session over a live session.
func (n *Node) reseed(cs *chatSession) {
	if cs.outgoing {
		if err := cs.s.Send(e2e.FrameRatchetInit, nil); err != nil {
			n.log.Info("ask for a ratchet seed", "peer", cs.peer, "err", err)
		}
		return
	}
	n.offerSeed(cs)
	cs.resetSent()
}

// receiveRatchetInit handles a seed request (empty, to the TLS server) or
// a seed offer (to the TLS client).
func (n *Node) receiveRatchetInit(cs *chatSession, offer []byte) error {
	switch {
	case len(offer) == 0 && !cs.outgoing:
		n.reseed(cs)
		return nil
	case len(offer) == 0 || !cs.outgoing:
		return fmt.Errorf("%w: unexpected ratchet-init frame", e2e.ErrMalformed)
	}
	if err := n.seedInitiator(cs, offer); err != nil {
		return fmt.Errorf("ratchet seed: %w", err)
	}
	// The server cannot send until it opens one envelope of ours.
	env, err := n.seal(cs.peer, nil)
	if err != nil {
		return err
	}
	if err := cs.s.Send(e2e.FrameEnvelope, env); err != nil {
		n.log.Info("confirm ratchet seed", "peer", cs.peer, "err", err)
	}
	cs.resetSent()
	n.kick(cs.peer)
	return nil
}

// receiveReceipt marks a message delivered; repeated receipts change
// nothing. Receipts are recorded in batches (receiptQueue), so the read
// loop does not wait for a commit per receipt.
func (n *Node) receiveReceipt(p peer.ID, r e2e.Receipt) {
	q := &n.receipts
	q.mu.Lock()
	q.pending = append(q.pending, pendingReceipt{p, r.ID})
	if q.running {
		q.mu.Unlock()
		return
	}
	n.mu.Lock()
	closing := n.closing
	if !closing {
		n.wg.Add(1)
	}
	n.mu.Unlock()
	if closing { // not recorded: the message is written again next run, and acknowledged again
		q.pending = nil
		q.mu.Unlock()
		return
	}
	q.running = true
	q.mu.Unlock()
	go n.applyReceipts()
}

// receiptQueue holds receipts read and not yet recorded. Recording one
// late is safe: until it is, the message stays in the outbox, and at worst
// is written again and acknowledged again (receivers drop duplicates).
type receiptQueue struct {
	mu      sync.Mutex
	pending []pendingReceipt
	running bool // applyReceipts is draining the queue
}

type pendingReceipt struct {
	peer peer.ID
	id   e2e.MessageID
}

// applyReceipts records the queued receipts, one transaction per peer for
// all that arrived meanwhile, until the queue is empty.
func (n *Node) applyReceipts() {
	defer n.wg.Done()
	q := &n.receipts
	for {
		q.mu.Lock()
		batch := q.pending
		q.pending = nil
		if len(batch) == 0 {
			q.running = false
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		byPeer := map[peer.ID][]e2e.MessageID{}
		var order []peer.ID
		for _, r := range batch {
			if _, ok := byPeer[r.peer]; !ok {
				order = append(order, r.peer)
			}
			byPeer[r.peer] = append(byPeer[r.peer], r.id)
		}
		for _, p := range order {
			n.setStatuses(p, byPeer[p], StatusDelivered)
			n.kick(p)
		}
	}
}
