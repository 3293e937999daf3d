package node

import (
	"context"
	"sync"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// LAN discovery with go-libp2p's mDNS (DNS-SD service MDNSService).
//
// A discovered peer is known at once (it appears in Peers, marked
// discovered) and the node connects and runs a handshake with it, after
// which it is known by its verified identity and trust state. mDNS repeats
// its queries, so a peer is found many times: addresses are merged and the
// handshake runs only when there is no session. Two peers usually find each
// other within milliseconds (one multicast answer reaches both), so if both
// dialed at once they would end up with two sessions: the peer with the
// smaller ID dials at once, the other waits lanYield and dials only if no
// session came. A peer that left and comes back is found again and
// reconnected. Addresses in one of our own subnets are tried first,
// loopback last.

// lan owns LAN discovery: the mDNS service and, for each peer found, that
// it was found and when the last handshake after discovery was tried. mu
// guards found and stopMDNS; it is taken by mDNS's callback goroutine,
// the Node's API (PeerInfo) and Close, and no other lock is taken under
// it.
type lan struct {
	*core
	sessions *sessions
	book     *peerBook
	peerEv   *peerEvents

	mu       sync.Mutex
	found    map[peer.ID]time.Time // found on the LAN → last handshake attempt after discovery
	stopMDNS func()
}

func (l *lan) HandlePeerFound(ai peer.AddrInfo) { l.peerFound(ai) }

func (l *lan) start() error {
	svc := mdns.NewMdnsService(lanHost{l.host}, MDNSService, l)
	if err := svc.Start(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopMDNS = func() { svc.Close() }
	return nil
}

// stop ends the mDNS service, if it runs.
func (l *lan) stop() {
	l.mu.Lock()
	stop := l.stopMDNS
	l.stopMDNS = nil
	l.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// discovered reports whether p was found on the LAN.
func (l *lan) discovered(p peer.ID) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.found[p]
	return ok
}

// lanHandshakeTimeout bounds the handshake with a newly found LAN peer;
// lanRetry spaces attempts with a peer whose handshake failed; lanYield is
// how long the peer with the greater ID leaves the other to dial first.
const (
	lanHandshakeTimeout = 15 * time.Second
	lanRetry            = 30 * time.Second
	lanYield            = 2 * time.Second
)

func (l *lan) peerFound(ai peer.AddrInfo) {
	if ai.ID == l.host.ID() || ai.ID == "" || l.work.closed() {
		return
	}
	addrs := usableAddrs(ai.Addrs)
	if len(addrs) == 0 {
		return
	}
	l.host.Peerstore().AddAddrs(ai.ID, addrs, peerstoreTTL)
	isNew, try := l.note(ai.ID)
	if isNew {
		l.log.Info("found on the LAN", "peer", ai.ID, "addrs", addrs)
		l.peerEv.now(ai.ID)
	}
	if !try {
		return
	}
	verdict := l.book.facts(ai.ID).verdict // replaced by every handshake (recordVerified)
	l.work.goDo(func() { l.handshake(ai.ID, verdict) })
}

// note records that p was found, and says whether it is new and whether
// to try a handshake now: not while a session or a dial exists, nor
// within lanRetry of the last try.
func (l *lan) note(p peer.ID) (isNew, try bool) {
	busy := l.sessions.busy(p)
	l.mu.Lock()
	defer l.mu.Unlock()
	last, seen := l.found[p]
	try = !busy && time.Since(last) >= lanRetry
	if try {
		last = time.Now()
	}
	l.found[p] = last
	return !seen, try
}

// handshake opens a session with a peer found on the LAN. The peer with
// the greater ID waits lanYield first: the other side dials, and get then
// finds its session (or its dial in progress) and adds none. If a
// handshake happened meanwhile, the other side did its part: even if that
// session has ended already, the peer has left and dialing its old
// addresses would only hang.
func (l *lan) handshake(p peer.ID, verdict *identity.Verdict) {
	if l.host.ID() > p {
		if !l.sleep(lanYield) || l.book.facts(p).verdict != verdict {
			return
		}
	}
	ctx, cancel := context.WithTimeout(l.ctx, lanHandshakeTimeout)
	defer cancel()
	if _, err := l.sessions.get(ctx, p); err != nil {
		l.log.Info("handshake with LAN peer", "peer", p, "err", err)
	}
}

// usableAddrs keeps dialable addresses, in LAN-first order.
func usableAddrs(addrs []ma.Multiaddr) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range addrs {
		if !isCircuit(a) {
			out = append(out, a)
		}
	}
	return lanFirst(out)
}

// lanHost is the host as mDNS sees it: go-libp2p's mDNS announces every
// interface address, loopback included, and takes its A record from the
// first IPv4 one (127.0.0.1 on most machines). Only addresses other
// machines on the LAN can use are announced: loopback and link-local ones
// are left out, unless nothing else is left.
type lanHost struct{ host.Host }

func (h lanHost) Network() network.Network { return lanNetwork{h.Host.Network()} }

type lanNetwork struct{ network.Network }

func (n lanNetwork) InterfaceListenAddresses() ([]ma.Multiaddr, error) {
	addrs, err := n.Network.InterfaceListenAddresses()
	if err != nil {
		return nil, err
	}
	return announceable(addrs), nil
}

// announceable drops loopback and link-local addresses, unless that
// leaves none (a machine with no LAN).
func announceable(addrs []ma.Multiaddr) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range addrs {
		ip, err := manet.ToIP(a)
		if err == nil && (ip.IsLoopback() || ip.IsLinkLocalUnicast()) {
			continue
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return addrs
	}
	return out
}
