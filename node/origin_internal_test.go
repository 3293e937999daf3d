package node

import (
	"crypto/rand"
	"net/netip"
	"testing"

	"github.com/certchat/certchat/e2e"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// TestOriginOf: the key the e2e caps count a stream's handshake under.
func TestOriginOf(t *testing.T) {
	_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	relay, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr    string
		limited bool
		want    e2e.Origin
	}{
		{"/ip4/192.0.2.7/tcp/4001", false, e2e.Origin{IP: netip.MustParseAddr("192.0.2.7")}},
		{"/ip6/2001:db8::7/udp/4001/quic-v1", false, e2e.Origin{IP: netip.MustParseAddr("2001:db8::7")}},
		// A circuit: the relay's IP, and relayed.
		{"/ip4/198.51.100.1/tcp/4001/p2p/" + relay.String() + "/p2p-circuit", false,
			e2e.Origin{IP: netip.MustParseAddr("198.51.100.1"), Relayed: true}},
		{"/ip4/198.51.100.1/udp/4001/quic-v1/p2p/" + relay.String() + "/p2p-circuit", true,
			e2e.Origin{IP: netip.MustParseAddr("198.51.100.1"), Relayed: true}},
		// A limited connection is relayed whatever its address says.
		{"/ip4/198.51.100.1/tcp/4001", true, e2e.Origin{IP: netip.MustParseAddr("198.51.100.1"), Relayed: true}},
		// No IP: unknown.
		{"/dns4/example.com/tcp/4001", false, e2e.Origin{}},
	} {
		got := originOf(ma.StringCast(tc.addr), tc.limited)
		if got != tc.want {
			t.Errorf("%s (limited %v): %+v, want %+v", tc.addr, tc.limited, got, tc.want)
		}
	}
}
