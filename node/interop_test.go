package node_test

import (
	"context"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
)

// A stock go-libp2p host, with nothing of certchat in it, reaches a node
// like any libp2p peer: it connects, pings, learns the node's protocols
// through identify; and when it opens the chat protocol and speaks
// anything but certchat's handshake, the node refuses it and carries on.
func TestStockLibp2pPeer(t *testing.T) {
	alice := startNode(t, newHome(t, "alice"))
	bob := startNode(t, newHome(t, "bob"))
	trustEachOther(t, alice, bob)

	stock, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer stock.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := stock.Connect(ctx, peer.AddrInfo{ID: alice.ID(), Addrs: alice.Host().Addrs()}); err != nil {
		t.Fatalf("a stock libp2p host cannot connect: %v", err)
	}
	res := <-ping.Ping(ctx, stock, alice.ID())
	if res.Error != nil {
		t.Fatalf("ping: %v", res.Error)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		protos, _ := stock.Peerstore().GetProtocols(alice.ID())
		if slices.Contains(protos, e2e.ProtocolChat) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("identify did not report %s: %v", e2e.ProtocolChat, protos)
		}
		time.Sleep(20 * time.Millisecond)
	}

	for _, junk := range []string{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "\x16\x03\x01\x00\x05hello", ""} {
		s, err := stock.NewStream(ctx, alice.ID(), e2e.ProtocolChat)
		if err != nil {
			t.Fatalf("open the chat protocol: %v", err)
		}
		s.SetDeadline(time.Now().Add(15 * time.Second))
		s.Write([]byte(junk))
		s.CloseWrite()
		answer, _ := io.ReadAll(s)
		if len(answer) > 64 {
			t.Errorf("junk %q: the node answered %d bytes; it should refuse at once", junk, len(answer))
		}
		s.Close()
	}

	// The node is unharmed: it still chats with bob.
	m, err := alice.Send(bob.ID(), "still here")
	if err != nil {
		t.Fatal(err)
	}
	alice.waitFor("delivered", func(e node.Event) bool {
		return e.Kind == node.EventStatus && e.Message.ID == m.ID && e.Message.Status == store.StatusDelivered
	})
	if info := alice.PeerInfo(stock.ID()); info.Online || info.Trust.Trusted() {
		t.Errorf("the stock peer is shown as %+v", info)
	}
}
