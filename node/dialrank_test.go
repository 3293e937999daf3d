package node_test

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Real hosts on loopback, each listening on TCP and QUIC as a node does
// by default: a connection to a peer with both is TCP (dialrank.go), and
// one to a peer whose TCP address does not answer is QUIC.
func TestDialsTCPFirst(t *testing.T) {
	both := []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
	alice := startNode(t, newHome(t, "alice"), both...)
	bob := startNode(t, newHome(t, "bob"), both...)
	if got := dialedOver(t, alice, bob.ID(), bob.Host().Addrs()); got != "tcp" {
		t.Errorf("alice reached bob, who has TCP and QUIC addresses, over %q; want tcp", got)
	}

	carol := startNode(t, newHome(t, "carol"), "/ip4/127.0.0.1/udp/0/quic-v1")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ma.StringCast("/ip4/127.0.0.1/tcp/" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	l.Close() // nothing answers there now
	if got := dialedOver(t, alice, carol.ID(), append(carol.Host().Addrs(), dead)); got != "quic-v1" {
		t.Errorf("alice reached carol, whose TCP address does not answer, over %q; want quic-v1", got)
	}
}

// dialedOver connects from to p at addrs and says over which transport.
func dialedOver(t *testing.T, from *testNode, p peer.ID, addrs []ma.Multiaddr) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := from.Host().Connect(ctx, peer.AddrInfo{ID: p, Addrs: addrs}); err != nil {
		t.Fatalf("connect to %s: %v", p, err)
	}
	conns := from.Host().Network().ConnsToPeer(p)
	if len(conns) != 1 {
		t.Fatalf("%d connections to %s, want 1", len(conns), p)
	}
	return conns[0].ConnState().Transport
}
