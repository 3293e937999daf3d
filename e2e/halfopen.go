package e2e

import (
	"fmt"
	"net/netip"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Origin is where an incoming handshake comes from, as the caller's
// transport sees it: the IP address at the other end of the connection
// the stream arrived on. For a relayed connection (a circuit) that is the
// relay's address: the relayed peer's own address is not known to us, and
// every peer behind one relay shares it. The zero Origin is unknown: only
// the per-peer and global caps apply.
type Origin struct {
	IP netip.Addr
	// Relayed says the stream came through a relay; all relayed
	// handshakes together also have a cap of their own.
	Relayed bool
}

// String is the origin for logs.
func (o Origin) String() string {
	var s string
	switch k, ok := o.key(); {
	case !ok:
		s = "unknown"
	case k.Bits() == 32 || k.Bits() == 128:
		s = k.Addr().String()
	default:
		s = k.String()
	}
	if o.Relayed {
		s = "relay " + s
	}
	return s
}

// key is the address block one attacker is assumed to hold: one IPv4
// address, or one IPv6 /64 (the smallest block a site is usually given,
// so a host can change its address within it at will).
func (o Origin) key() (netip.Prefix, bool) {
	ip := o.IP.Unmap().WithZone("")
	switch {
	case !ip.IsValid():
		return netip.Prefix{}, false
	case ip.Is4():
		return netip.PrefixFrom(ip, 32), true
	}
	return netip.PrefixFrom(ip, 64).Masked(), true
}

// halfOpenCaps are the limits on the responder's handshakes in progress.
type halfOpenCaps struct {
	total, perPeer, perIP, relayed int
}

// halfOpen counts the responder's handshakes in progress, overall, per
// remote peer ID (authenticated by the transport, so one peer cannot
// spend another's share), per origin address block, and through relays,
// so that one peer or one address cannot take every place (docs/PROTOCOL.md
// §9). A count that drops to zero is deleted: the maps hold only what is
// in progress.
type halfOpen struct {
	caps halfOpenCaps

	mu      sync.Mutex
	total   int
	relayed int
	peers   map[peer.ID]int
	ips     map[netip.Prefix]int
}

func newHalfOpen(caps halfOpenCaps) *halfOpen {
	return &halfOpen{caps: caps, peers: map[peer.ID]int{}, ips: map[netip.Prefix]int{}}
}

// acquire takes a place for a handshake from p at o, or says which cap
// refuses it (wrapping ErrBusy). The caller calls release exactly once
// when the handshake ends, however it ends.
func (h *halfOpen) acquire(p peer.ID, o Origin) (release func(), err error) {
	ip, known := o.key()
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.total >= h.caps.total:
		return nil, fmt.Errorf("%w (%d in all)", ErrBusy, h.total)
	case h.peers[p] >= h.caps.perPeer:
		return nil, fmt.Errorf("%w (%d from this peer)", ErrBusy, h.peers[p])
	case known && h.ips[ip] >= h.caps.perIP:
		return nil, fmt.Errorf("%w (%d from %s)", ErrBusy, h.ips[ip], o)
	case o.Relayed && h.relayed >= h.caps.relayed:
		return nil, fmt.Errorf("%w (%d through relays)", ErrBusy, h.relayed)
	}
	h.total++
	h.peers[p]++
	if known {
		h.ips[ip]++
	}
	if o.Relayed {
		h.relayed++
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.total--
			if h.peers[p]--; h.peers[p] == 0 {
				delete(h.peers, p)
			}
			if known {
				if h.ips[ip]--; h.ips[ip] == 0 {
					delete(h.ips, ip)
				}
			}
			if o.Relayed {
				h.relayed--
			}
		})
	}, nil
}
