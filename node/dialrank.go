package node

import (
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
)

// Which transport a connection to a peer uses. A node listens on TCP and
// QUIC (DefaultListen), and libp2p's default dial ranker dials a peer's
// QUIC addresses first and its TCP ones 30 ms (on a private network) or
// 250 ms (public) later, so two certchat nodes nearly always ended up on
// QUIC. quic-go does in user space, per connection, what the kernel does
// for TCP (acknowledgements, pacing, timers, one goroutine each): with a
// connection to each member of a group, that doubled the sender's CPU
// for a message (BENCHMARKS.md, twenty-third round: 100 members, the
// same binary, QUIC against TCP). So a node dials TCP first, and QUIC
// after quicAfterTCP: QUIC stays the way in where TCP is blocked or
// fails. A hole punch dials every address at
// once whatever the ranker says (libp2p's simultaneous connect), and a
// peer that dials us picks for itself.

// quicAfterTCP is the delay, after the last TCP dial, before the first
// QUIC one: libp2p's delay of TCP after QUIC on a public network, here on
// every network. A TCP dial that fails at once (a closed port) brings
// the QUIC dial forward (libp2p dials the next address when none is in
// flight); one that hangs (a firewall that drops TCP) costs this much.
// libp2p's 30 ms on a private network would be shorter than a TCP
// connection's upgrade on a busy machine, and the node would often dial
// both.
const quicAfterTCP = swarm.PublicTCPDelay

// tcpFirst ranks a peer's addresses for dialing: as libp2p's default
// ranker does, except that where a peer has both direct TCP and direct
// QUIC addresses, the TCP ones go first (ranked among themselves and the
// relayed and other addresses as the default ranker ranks them) and the
// QUIC ones follow the last TCP dial by quicAfterTCP.
func tcpFirst(addrs []ma.Multiaddr) []network.AddrDelay {
	var tcp, quic, rest []ma.Multiaddr
	for _, a := range addrs {
		switch {
		case isCircuit(a):
			rest = append(rest, a)
		case plainTCP(a):
			tcp = append(tcp, a)
		case hasProtocol(a, ma.P_QUIC_V1) && !hasProtocol(a, ma.P_WEBTRANSPORT):
			quic = append(quic, a)
		default:
			rest = append(rest, a)
		}
	}
	if len(tcp) == 0 || len(quic) == 0 {
		return swarm.DefaultDialRanker(addrs)
	}
	out := swarm.DefaultDialRanker(append(tcp, rest...))
	var last time.Duration
	for _, d := range out {
		if plainTCP(d.Addr) && !isCircuit(d.Addr) && d.Delay > last {
			last = d.Delay
		}
	}
	for _, d := range swarm.DefaultDialRanker(quic) {
		d.Delay += last + quicAfterTCP
		out = append(out, d)
	}
	return out
}

// plainTCP says whether a is a TCP address, not a WebSocket one.
func plainTCP(a ma.Multiaddr) bool {
	return hasProtocol(a, ma.P_TCP) && !hasProtocol(a, ma.P_WS) && !hasProtocol(a, ma.P_WSS)
}

func hasProtocol(a ma.Multiaddr, code int) bool {
	_, err := a.ValueForProtocol(code)
	return err == nil
}
