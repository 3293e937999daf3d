package node

import (
	"context"
	"fmt"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Reaching a peer: one dial at a time per peer (concurrent callers share
// it), the TLS handshake as the initiator, and moving a chat that runs
// through a relay to a direct connection once one exists.

// dialTimeout bounds reaching a peer and running the handshake.
const dialTimeout = 20 * time.Second

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
		if err := t.reach(ctx, p); err != nil {
			return nil, err
		}
	}
	return t.open(network.WithAllowLimitedConn(ctx, "certchat chat"), p)
}

// reach connects to p at its known addresses and through our relays. With
// the DHT on, a peer with no known address is looked up first, and one
// whose addresses all fail is looked up and tried again at the addresses
// it publishes now (another relay, say).
func (t *sessions) reach(ctx context.Context, p peer.ID) error {
	known := t.host.Peerstore().Addrs(p)
	if len(known) == 0 && t.dht.on() {
		known, _ = t.dht.find(ctx, p)
	}
	addrs := append(lanFirst(known), t.relays.via(p)...)
	if len(addrs) == 0 {
		return ErrNoAddress
	}
	err := t.connect(ctx, p, addrs)
	if err == nil || !t.dht.on() || ctx.Err() != nil {
		return err
	}
	found, ferr := t.dht.find(ctx, p)
	if fresh := newAddrs(found, addrs); ferr == nil && len(fresh) > 0 {
		return t.connect(ctx, p, lanFirst(fresh))
	}
	return err
}

// connect dials p at addrs.
func (t *sessions) connect(ctx context.Context, p peer.ID, addrs []ma.Multiaddr) error {
	// The outbox spaces its retries itself (RetryMin..RetryMax), and
	// Connect and discovery are deliberate: libp2p's own dial backoff
	// (5 s, growing to 5 min per failed address) would otherwise keep
	// refusing a peer that came back long after RetryMax.
	if b, ok := t.host.Network().(interface{ Backoff() *swarm.DialBackoff }); ok {
		b.Backoff().Clear(p)
	}
	if err := t.host.Connect(ctx, peer.AddrInfo{ID: p, Addrs: addrs}); err != nil {
		return fmt.Errorf("reach %s: %w", identity.ShortID(p), err)
	}
	return nil
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

// directAttempts are the delays before each try at a direct connection
// to a peer reached only through a relay; the last repeats for as long as
// the chat stays relayed. A hole punch can miss (a busy machine answers
// late, a NAT mapping changes), and libp2p punches by itself only when a
// relayed connection arrives: without trying again, a chat would stay on
// the relay for as long as that connection lives.
var directAttempts = []time.Duration{500 * time.Millisecond, 3 * time.Second, 15 * time.Second, time.Minute, 5 * time.Minute}

// directYield is how long the peer with the greater ID leaves the other
// to dial private addresses first, before it dials the other's itself
// (only if no direct connection came meanwhile). Both ends of a relayed
// chat try at the same delays from nearly the same moment, and dials at
// the same instant cross: libp2p's TCP dials from the port it listens on
// (SO_REUSEPORT, for hole punching), so the two SYNs meet in one
// connection (TCP simultaneous open) on which both ends start TLS as the
// client, and both fail ("unexpected handshake message of type
// *tls.clientHelloMsg"); having failed at the same moment, both wait the
// same delay and may cross again. On a LAN the other's dial takes
// milliseconds; the greater ID still dials when the other cannot reach
// it (a firewall that lets only one way through).
const directYield = time.Second

// tryDirect tries, while cs's chat has only relayed sessions, to move it
// to a direct connection: one that exists already (libp2p's own hole punch
// may have made it before this session was registered, when onConnected
// had no relayed chat to move), else by a hole punch (DCUtR, holepunch.go)
// and by dialing the private addresses identify reported, as DCUtR's
// first step does for public ones (go-libp2p's hole punching service
// starts only once a host has a public address, so on a LAN it would
// never run). A new direct
// connection triggers upgrade (onConnected).
func (t *sessions) tryDirect(cs *chatSession) {
	if !cs.conn.Stat().Limited {
		return
	}
	for i := 0; ; i++ {
		if !t.sleep(directAttempts[min(i, len(directAttempts)-1)], cs.done) || !t.directAttempt(cs) {
			return
		}
	}
}

// directAttempt is one of tryDirect's tries; it reports whether to go on
// trying: not once the chat has a direct session, cs has ended or the
// node is closing.
func (t *sessions) directAttempt(cs *chatSession) bool {
	if len(t.relayed(cs.peer)) == 0 {
		return false // the chat has a direct session
	}
	if hasDirect(t.host.Network(), cs.peer) {
		t.upgrade(cs.peer)
		return true // if the upgrade failed, the next try does it again
	}
	// Through NATs: DCUtR over the relayed connection, if it came in
	// to us; we wait for its end, so tries never overlap.
	if res := t.hp.punch(cs.conn, t.log.Info); res != nil {
		select {
		case err := <-res:
			if err == nil {
				return true // onConnected moves the chat
			}
		case <-cs.done:
			return false
		case <-t.ctx.Done():
			return false
		}
	}
	// The peer's private addresses (a LAN we share); its public ones
	// are the punch's, which dials them first: a dial of ours from
	// the same port to the same address would hold the socket the
	// punch needs, and the punch would fall back to a random port its
	// NAT mapping does not know. The peer with the smaller ID dials at
	// once, the other directYield later (dials at once would cross).
	var direct []ma.Multiaddr
	for _, a := range t.host.Peerstore().Addrs(cs.peer) {
		if !isCircuit(a) && !manet.IsPublicAddr(a) {
			direct = append(direct, a)
		}
	}
	if len(direct) == 0 {
		return true
	}
	if t.id.PeerID() > cs.peer {
		if !t.sleep(directYield, cs.done) {
			return false
		}
		if hasDirect(t.host.Network(), cs.peer) {
			return true // the peer's dial made it; onConnected moves the chat
		}
	}
	ctx, cancel := context.WithTimeout(network.WithForceDirectDial(t.ctx, "certchat upgrade"), dialTimeout)
	err := t.host.Connect(ctx, peer.AddrInfo{ID: cs.peer, Addrs: lanFirst(direct)})
	cancel()
	if err != nil {
		t.log.Debug("direct connection failed", "peer", cs.peer, "err", err)
	}
	return true
}

// hasDirect reports whether n has a direct (not relayed) connection to p.
func hasDirect(n network.Network, p peer.ID) bool {
	for _, c := range n.ConnsToPeer(p) {
		if !c.Stat().Limited && !isCircuit(c.RemoteMultiaddr()) {
			return true
		}
	}
	return false
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
		t.held.closeSession(cs, e2e.CloseGoingAway, "moved to a direct connection") // held receipts first
	}
}
