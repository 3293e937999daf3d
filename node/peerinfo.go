package node

import (
	"net"
	"slices"
	"sync"

	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// What the Node tells of peers: each peer's state now, how it is reached,
// and greeting contacts at start.

// PeerInfo describes a peer now.
func (n *Node) PeerInfo(p peer.ID) PeerInfo {
	info := PeerInfo{ID: p, Name: identity.ShortID(p), Trust: identity.StateUnknown}
	if pub, err := identity.KeyFromPeerID(p); err == nil {
		info.Fingerprint = identity.FingerprintOf(pub)
	}
	c, isContact, err := n.trust.Contact(p)
	if err != nil {
		// Shown as not a contact, judged by its certificate alone: never
		// more trust than the store would give.
		n.log.Warn("cannot read the trust store", "peer", p, "err", err)
	}
	v := n.book.facts(p).verdict
	if !isContact {
		// Not a contact: its last chain, live or stored, evaluated now.
		// So a changed key is one after a restart as well, online or not,
		// and a CA the user no longer trusts verifies nothing.
		if now, ok := n.book.verdictNow(p); ok {
			v = &now
		}
	}
	if v != nil {
		info.Name, info.Trust, info.Reason, info.Issuer, info.NotAfter = v.Name, v.State, v.Reason, v.Issuer, v.NotAfter
		info.IssuerTrusted = v.IssuerTrusted
		if v.State == identity.StateChanged {
			info.Changed = v
		}
	}
	cs := n.sessions.newest(p)
	if cs != nil {
		info.Online, info.PostQuantum = true, cs.s.Info().PostQuantum()
	}
	info.Discovered = n.lan.discovered(p)
	if isContact {
		info.Contact = true
		info.Name = c.Label()
		if c.CertName != "" && identity.SanitizeName(c.CertName) != info.Name {
			info.CertName = identity.SanitizeName(c.CertName)
		}
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
	if info.Name == identity.ShortID(p) {
		// Not met this run and no label: the name seen last time.
		if rec, ok := n.book.record(p); ok && rec.Name != "" {
			info.Name = identity.SanitizeName(rec.Name)
		}
	}
	info.Path = n.path(p, cs)
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
	convs, err := n.store.Conversations()
	if err != nil {
		n.log.Warn("some conversations cannot be read; their peers may be missing from the list", "err", err)
	}
	for _, c := range convs {
		ids[c.Peer] = true
	}
	for _, p := range n.book.known() {
		ids[p] = true
	}
	for _, p := range n.sessions.peers() {
		ids[p] = true
	}
	// Changed keys met in earlier runs, whose chains are stored: the user
	// must still see that a key claims a contact's name.
	for _, p := range n.book.storedChangedKeys(ids) {
		ids[p] = true
	}
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

// path says how the chat with p travels: over cs, its newest session's
// connection, or else the best libp2p connection. A relayed (limited)
// connection is relay; a direct one is lan when it goes to a private or
// link-local address, or when p was found by LAN discovery and the
// connection is not to loopback; other direct ones, loopback included,
// are direct.
func (n *Node) path(p peer.ID, cs *chatSession) Path {
	discovered := n.lan.discovered(p)
	if cs != nil {
		return connPath(cs.conn, discovered)
	}
	best := PathNone
	for _, c := range n.host.Network().ConnsToPeer(p) {
		if cp := connPath(c, discovered); best == PathNone || best == PathRelay {
			best = cp
		}
	}
	return best
}

func connPath(c network.Conn, discovered bool) Path {
	a := c.RemoteMultiaddr()
	switch {
	case c.Stat().Limited || isCircuit(a):
		return PathRelay
	case isLANAddr(a) || discovered && !isLoopback(a):
		return PathLAN
	}
	return PathDirect
}

func isCircuit(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

// isLANAddr reports whether a is at a private or link-local IP address:
// another machine of the LAN (loopback is this machine).
func isLANAddr(a ma.Multiaddr) bool {
	ip, err := manet.ToIP(a)
	if err != nil {
		return false
	}
	return ip.IsPrivate() || ip.IsLinkLocalUnicast()
}

func isLoopback(a ma.Multiaddr) bool {
	ip, err := manet.ToIP(a)
	return err == nil && ip.IsLoopback()
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

// greetContacts opens, once at start, a chat session with each trusted
// contact whose direct addresses are known (skip: those the outbox
// reaches anyway). A node that restarts is otherwise invisible to its
// contacts until they next try: one of them with messages for it would
// wait out its retry backoff (up to RetryMax), and both would show the
// other offline (online means a live session, not just a connection).
// The contact's node wakes its outbox for us when we connect.
func (n *Node) greetContacts(skip []peer.ID) {
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
			if _, err := n.sessions.get(n.ctx, p); err != nil {
				n.log.Debug("greet contact", "peer", p, "err", err)
			}
		}()
	}
	wg.Wait()
}

// greetParallel bounds the connections greetContacts opens at once.
const greetParallel = 4
