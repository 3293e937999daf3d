package node

import (
	"context"
	"time"

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

type mdnsNotifee struct{ n *Node }

func (m mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) { m.n.peerFound(ai) }

func (n *Node) startMDNS() error {
	svc := mdns.NewMdnsService(lanHost{n.host}, MDNSService, mdnsNotifee{n})
	if err := svc.Start(); err != nil {
		return err
	}
	n.mu.Lock()
	n.stopLAN = func() { svc.Close() }
	n.mu.Unlock()
	return nil
}

// lanHandshakeTimeout bounds the handshake with a newly found LAN peer;
// lanRetry spaces attempts with a peer whose handshake failed; lanYield is
// how long the peer with the greater ID leaves the other to dial first.
const (
	lanHandshakeTimeout = 15 * time.Second
	lanRetry            = 30 * time.Second
	lanYield            = 2 * time.Second
)

func (n *Node) peerFound(ai peer.AddrInfo) {
	if ai.ID == n.host.ID() || ai.ID == "" {
		return
	}
	addrs := usableAddrs(ai.Addrs)
	if len(addrs) == 0 {
		return
	}
	n.host.Peerstore().AddAddrs(ai.ID, addrs, peerstoreTTL)
	n.mu.Lock()
	if n.closing {
		n.mu.Unlock()
		return
	}
	ps := n.state(ai.ID)
	isNew := !ps.discovered
	ps.discovered = true
	busy := len(ps.sessions) > 0 || ps.dialing != nil || time.Since(ps.lanAttempt) < lanRetry
	if !busy {
		ps.lanAttempt = time.Now()
	}
	verdict := ps.verdict // replaced by every handshake (recordVerified)
	if !busy {
		n.wg.Add(1) // under n.mu, so Close cannot be waiting already
	}
	n.mu.Unlock()
	if isNew {
		n.log.Info("found on the LAN", "peer", ai.ID, "addrs", addrs)
		n.emitPeer(ai.ID)
	}
	if busy {
		return
	}
	go func() {
		defer n.wg.Done()
		if n.host.ID() > ai.ID {
			// The other side dials; session below then finds its session
			// (or its dial in progress) and adds none. If a handshake
			// happened meanwhile, the other side did its part: even if
			// that session has ended already, the peer has left and
			// dialing its old addresses would only hang.
			t := time.NewTimer(lanYield)
			defer t.Stop()
			select {
			case <-t.C:
			case <-n.ctx.Done():
				return
			}
			n.mu.Lock()
			handshook := n.state(ai.ID).verdict != verdict
			n.mu.Unlock()
			if handshook {
				return
			}
		}
		ctx, cancel := context.WithTimeout(n.ctx, lanHandshakeTimeout)
		defer cancel()
		if _, err := n.session(ctx, ai.ID); err != nil {
			n.log.Info("handshake with LAN peer", "peer", ai.ID, "err", err)
		}
	}()
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
