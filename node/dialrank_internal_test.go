package node

import (
	"fmt"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
)

// TestTCPFirst: where a peer has direct TCP and QUIC addresses, TCP is
// dialed first and QUIC 250 ms after the last TCP dial; with only one of
// them the delays are libp2p's, and so are those of relayed addresses. The addresses
// below are never dialed: 203.0.113.0/24 is documentation's.
func TestTCPFirst(t *testing.T) {
	const (
		tcp4  = "/ip4/127.0.0.1/tcp/4001"
		quic4 = "/ip4/127.0.0.1/udp/4001/quic-v1"
		tcp6  = "/ip6/::1/tcp/4001"
		quic6 = "/ip6/::1/udp/4001/quic-v1"
		ptcp  = "/ip4/203.0.113.7/tcp/4001"
		pquic = "/ip4/203.0.113.7/udp/4001/quic-v1"
		relay = "/ip4/203.0.113.9/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit"
	)
	ms := time.Millisecond
	for _, tc := range []struct {
		name  string
		addrs []string
		want  map[string]time.Duration
	}{
		{"loopback, both", []string{quic4, tcp4}, map[string]time.Duration{tcp4: 0, quic4: 250 * ms}},
		{"only QUIC: libp2p's", []string{quic4}, map[string]time.Duration{quic4: 0}},
		{"only TCP: libp2p's", []string{tcp4}, map[string]time.Duration{tcp4: 0}},
		{"IPv6 and IPv4: happy eyeballs for each", []string{quic6, quic4, tcp6, tcp4},
			map[string]time.Duration{tcp6: 0, tcp4: 30 * ms, quic6: 280 * ms, quic4: 310 * ms}},
		{"public", []string{pquic, ptcp}, map[string]time.Duration{ptcp: 0, pquic: 250 * ms}},
		{"public, relayed after", []string{pquic, ptcp, relay}, map[string]time.Duration{ptcp: 0, relay: 500 * ms, pquic: 250 * ms}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var addrs []ma.Multiaddr
			for _, s := range tc.addrs {
				addrs = append(addrs, ma.StringCast(s))
			}
			got := map[string]time.Duration{}
			for _, d := range tcpFirst(addrs) {
				got[d.Addr.String()] = d.Delay
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("tcpFirst = %v, want %v", got, tc.want)
			}
		})
	}
}
