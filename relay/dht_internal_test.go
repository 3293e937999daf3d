package relay

import (
	"slices"
	"testing"

	"github.com/certchat/certchat/certdht"
	"github.com/certchat/certchat/identity"
)

// --bootstrap takes full relay multiaddrs only.
func TestParseBootstrap(t *testing.T) {
	const id = "12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK"
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"/ip4/192.0.2.1/tcp/4001/p2p/" + id, true},
		{"/ip4/192.0.2.1/udp/4001/quic-v1/p2p/" + id, true},
		{"/ip4/192.0.2.1/tcp/4001", false}, // no peer ID
		{"/p2p/" + id, false},              // no transport address
		{"relay.example:4001", false},      // not a multiaddr
		{"", false},
	} {
		got, err := parseBootstrap([]string{tc.addr})
		if tc.ok != (err == nil) || tc.ok && (len(got) != 1 || got[0].ID.String() != id) {
			t.Errorf("parseBootstrap(%q) = %v, %v", tc.addr, got, err)
		}
	}
}

// A relay serves the DHT unless NoDHT.
func TestRelayDHTServerOrNot(t *testing.T) {
	for _, noDHT := range []bool{false, true} {
		srv, err := NewServer(Config{Home: identity.Home{Dir: t.TempDir()}, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, NoDHT: noDHT, NoMailbox: true})
		if err != nil {
			t.Fatal(err)
		}
		serves := slices.Contains(srv.Host().Mux().Protocols(), certdht.ProtocolID)
		if serves == noDHT {
			t.Errorf("NoDHT %v: serves %s: %v", noDHT, certdht.ProtocolID, serves)
		}
		if err := srv.Close(); err != nil {
			t.Fatal(err)
		}
		if err := srv.Close(); err != nil {
			t.Fatalf("closing twice: %v", err)
		}
	}
}
