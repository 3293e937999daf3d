package node

import (
	"crypto/x509"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// peerState is what the node tracks about a peer while running. Guarded
// by Node.mu.
type peerState struct {
	sessions   []*chatSession
	discovered bool              // found on the LAN
	verdict    *identity.Verdict // from the last handshake
	changed    *identity.Verdict // a changed key awaiting a decision
	cert       *x509.Certificate // the peer's leaf from the last handshake
	kick       chan struct{}     // wakes the outbox worker
	working    bool              // the outbox worker runs
	dialing    chan struct{}     // closed when a dial in progress ends
	dialCancel func()            // cancels the dial in progress
	lanAttempt time.Time         // last handshake attempt after discovery
	warned     bool              // a failure to leave messages at a relay was shown
}

// state returns the peer's state, creating it. Callers hold n.mu.
func (n *Node) state(p peer.ID) *peerState {
	ps, ok := n.peers[p]
	if !ok {
		ps = &peerState{kick: make(chan struct{}, 1)}
		n.peers[p] = ps
	}
	return ps
}

// PeerInfo describes a peer now.
func (n *Node) PeerInfo(p peer.ID) PeerInfo {
	info := PeerInfo{ID: p, Name: identity.ShortID(p), Trust: identity.StateUnknown}
	if pub, err := identity.KeyFromPeerID(p); err == nil {
		info.Fingerprint = identity.FingerprintOf(pub)
	}
	n.mu.Lock()
	if ps, ok := n.peers[p]; ok {
		if v := ps.verdict; v != nil {
			info.Name, info.Trust, info.Reason, info.Issuer, info.NotAfter = v.Name, v.State, v.Reason, v.Issuer, v.NotAfter
		}
		info.Online = len(ps.sessions) > 0
		info.Discovered = ps.discovered
		info.Changed = ps.changed
	}
	n.mu.Unlock()
	if c, ok, _ := n.trust.Contact(p); ok {
		info.Name = c.Label()
		if info.Trust != identity.StateCAVerified || c.State != identity.StateTOFU {
			info.Trust = c.State
		}
		switch {
		case c.State == identity.StateUntrusted && c.ReplacedBy != "":
			info.Reason = "replaced: you accepted a new key for " + c.Label()
		case c.State == identity.StateUntrusted:
			info.Reason = "you rejected this key"
		case info.Reason == "":
			info.Reason = reasonFor(c.State)
		}
	}
	if info.Changed != nil {
		info.Trust, info.Reason = identity.StateChanged, info.Changed.Reason
	}
	if info.Name == identity.ShortID(p) {
		// Not met this run and no label: the name seen last time.
		if rec, ok := n.peerRecord(p); ok && rec.Name != "" {
			info.Name = identity.SanitizeName(rec.Name)
		}
	}
	info.Path = n.path(p)
	return info
}

func reasonFor(s identity.State) string {
	switch s {
	case identity.StateVerified:
		return "fingerprint compared"
	case identity.StateTOFU:
		return "trusted on first use, fingerprint not compared"
	}
	return ""
}

// Peers lists every peer the node knows: contacts, peers with
// conversations, and peers seen this run.
func (n *Node) Peers() []PeerInfo {
	ids := map[peer.ID]bool{}
	if cs, err := n.trust.Contacts(); err == nil {
		for _, c := range cs {
			ids[c.PeerID] = true
		}
	}
	if convs, err := n.store.Conversations(); err == nil {
		for _, c := range convs {
			ids[c.Peer] = true
		}
	}
	n.mu.Lock()
	for p := range n.peers {
		ids[p] = true
	}
	n.mu.Unlock()
	delete(ids, n.host.ID())
	out := make([]PeerInfo, 0, len(ids))
	for p := range ids {
		out = append(out, n.PeerInfo(p))
	}
	slices.SortFunc(out, func(a, b PeerInfo) int {
		if a.Name != b.Name {
			if a.Name < b.Name {
				return -1
			}
			return 1
		}
		if a.ID < b.ID {
			return -1
		}
		return 1
	})
	return out
}

func (n *Node) emitPeer(p peer.ID) {
	info := n.PeerInfo(p)
	n.emit(Event{Kind: EventPeer, Peer: &info})
}

// path says how the chat with p travels: over the newest session's
// connection, or else the best libp2p connection. A relayed (limited)
// connection is relay; a direct one to a private, loopback or link-local
// address is lan; others are direct.
func (n *Node) path(p peer.ID) Path {
	n.mu.Lock()
	if ps, ok := n.peers[p]; ok && len(ps.sessions) > 0 {
		c := ps.sessions[len(ps.sessions)-1].conn
		n.mu.Unlock()
		return connPath(c)
	}
	n.mu.Unlock()
	best := PathNone
	for _, c := range n.host.Network().ConnsToPeer(p) {
		if cp := connPath(c); best == PathNone || best == PathRelay {
			best = cp
		}
	}
	return best
}

func connPath(c network.Conn) Path {
	switch {
	case c.Stat().Limited || isCircuit(c.RemoteMultiaddr()):
		return PathRelay
	case isLANAddr(c.RemoteMultiaddr()):
		return PathLAN
	}
	return PathDirect
}

func isCircuit(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

func isLANAddr(a ma.Multiaddr) bool {
	ip, err := manet.ToIP(a)
	if err != nil {
		return false
	}
	return ip.IsPrivate() || ip.IsLoopback() || ip.IsLinkLocalUnicast()
}

// peerRecord reads the stored record of a peer.
func (n *Node) peerRecord(p peer.ID) (PeerRecord, bool) {
	r, ok, err := n.store.Peer(p)
	if err != nil {
		n.log.Warn("read peer record", "peer", p, "err", err)
	}
	return r, ok
}

// rememberAddrs saves the peer's current addresses for the next run.
func (n *Node) rememberAddrs(p peer.ID) {
	rec, _ := n.peerRecord(p)
	n.saveRecord(p, rec)
}

// saveRecord stores a peer record with the peer's current addresses.
func (n *Node) saveRecord(p peer.ID, rec PeerRecord) {
	rec.Addrs = rec.Addrs[:0]
	for _, a := range n.host.Peerstore().Addrs(p) {
		rec.Addrs = append(rec.Addrs, a.String())
	}
	rec.LastSeen = n.cfg.Now()
	if err := n.store.PutPeer(p, rec); err != nil {
		n.log.Warn("save peer", "peer", p, "err", err)
	}
}

// restorePeers loads saved addresses into the peerstore.
func (n *Node) restorePeers() {
	recs, err := n.store.Peers()
	if err != nil {
		n.log.Warn("load peers", "err", err)
		return
	}
	for p, r := range recs {
		for _, s := range r.Addrs {
			if a, err := ma.NewMultiaddr(s); err == nil {
				n.host.Peerstore().AddAddr(p, a, peerstoreTTL)
			}
		}
	}
}

// onConnected wakes the outbox when a peer with pending messages appears,
// and moves a relayed chat to a new direct connection.
func (n *Node) onConnected(c network.Conn) {
	p := c.RemotePeer()
	n.kick(p)
	n.peerChanged(p)
	if c.Stat().Limited || isCircuit(c.RemoteMultiaddr()) {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closing || !n.hasRelayedSession(p) {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.upgrade(p)
	}()
}

// hasRelayedSession reports whether p has a session on a relayed
// connection. Callers hold n.mu.
func (n *Node) hasRelayedSession(p peer.ID) bool {
	ps, ok := n.peers[p]
	if !ok {
		return false
	}
	for _, cs := range ps.sessions {
		if cs.conn.Stat().Limited {
			return true
		}
	}
	return false
}

func (n *Node) onDisconnected(p peer.ID) {
	if n.host.Network().Connectedness(p) != network.Connected {
		n.peerChanged(p)
	}
}

// peerChanged queues a peer event from libp2p's notification callbacks,
// which must not block. One goroutine publishes them (notifyPeers), each
// computed when it is sent, so the last event about a peer is its
// current state, and bursts about one peer come out as one event.
// Connections to configured relays are infrastructure, not chat peers:
// they make no event (Relays reports them).
func (n *Node) peerChanged(p peer.ID) {
	if n.relays.isRelay(p) {
		return
	}
	n.dirtyMu.Lock()
	n.dirty[p] = struct{}{}
	n.dirtyMu.Unlock()
	signal(n.dirtyWake)
}

// notifyPeers publishes the queued peer events until the node stops.
func (n *Node) notifyPeers() {
	defer n.wg.Done()
	for {
		select {
		case <-n.dirtyWake:
		case <-n.ctx.Done():
			return
		}
		n.dirtyMu.Lock()
		dirty := n.dirty
		n.dirty = map[peer.ID]struct{}{}
		n.dirtyMu.Unlock()
		for p := range dirty {
			n.emitPeer(p)
		}
	}
}

// lanFirst orders addresses for dialing: those in a subnet of one of our
// interfaces first, then other non-loopback ones, then loopback.
func lanFirst(addrs []ma.Multiaddr) []ma.Multiaddr {
	nets := localNets()
	rank := func(a ma.Multiaddr) int {
		ip, err := manet.ToIP(a)
		switch {
		case err != nil:
			return 3
		case ip.IsLoopback():
			return 2
		}
		for _, n := range nets {
			if n.Contains(ip) {
				return 0
			}
		}
		return 1
	}
	out := slices.Clone(addrs)
	slices.SortStableFunc(out, func(a, b ma.Multiaddr) int { return rank(a) - rank(b) })
	return out
}

func localNets() []*net.IPNet {
	var out []*net.IPNet
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() {
			out = append(out, n)
		}
	}
	return out
}

// recordVerified notes what a handshake established about a peer.
func (n *Node) recordVerified(p peer.ID, v identity.Verdict, cert *x509.Certificate) {
	n.mu.Lock()
	ps := n.state(p)
	ps.verdict = &v
	ps.cert = cert
	ps.changed = nil
	n.mu.Unlock()
	if err := n.trust.NoteCertName(p, identity.DisplayName(cert)); err != nil {
		n.log.Warn("note certificate name", "peer", p, "err", err)
	}
	rec, _ := n.peerRecord(p)
	rec.Name, rec.CertDER = identity.DisplayName(cert), cert.Raw
	rec.CAVerified = v.State == identity.StateCAVerified
	n.saveRecord(p, rec)
}

// greetContacts opens, once at start, a chat session with each trusted
// contact whose direct addresses are known (skip: those the outbox
// reaches anyway). A node that restarts is otherwise invisible to its
// contacts until they next try: one of them with messages for it would
// wait out its retry backoff (up to RetryMax), and both would show the
// other offline (online means a live session, not just a connection).
// The contact's node wakes its outbox for us when we connect.
func (n *Node) greetContacts(skip []peer.ID) {
	defer n.wg.Done()
	contacts, err := n.trust.Contacts()
	if err != nil {
		n.log.Info("greet contacts", "err", err)
		return
	}
	sem := make(chan struct{}, greetParallel)
	var wg sync.WaitGroup
	for _, c := range contacts {
		p := c.PeerID
		if !c.State.Trusted() || p == n.host.ID() || slices.Contains(skip, p) || n.relays.isRelay(p) {
			continue
		}
		addrs := lanFirst(n.host.Peerstore().Addrs(p))
		if len(addrs) == 0 || n.host.Network().Connectedness(p) == network.Connected {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-n.ctx.Done():
			wg.Wait()
			return
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if _, err := n.session(n.ctx, p); err != nil {
				n.log.Debug("greet contact", "peer", p, "err", err)
			}
		}()
	}
	wg.Wait()
}

// greetParallel bounds the connections greetContacts opens at once.
const greetParallel = 4
