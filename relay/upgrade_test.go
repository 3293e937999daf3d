package relay_test

import (
	"testing"
	"time"

	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/relay"
	"github.com/certchat/certchat/store"
)

// Two peers that can reach each other directly but know only each other's
// peer ID meet through the relay; the chat then moves to a direct
// connection and the peer events report the change of path.
func TestUpgradeFromRelayToDirect(t *testing.T) {
	srv := startRelay(t, relay.Limits{})
	alice, asub := relayNode(t, "alice", srv.Addrs(), "/ip4/127.0.0.1/tcp/0")
	bob, bsub := relayNode(t, "bob", srv.Addrs(), "/ip4/127.0.0.1/tcp/0")
	alice.Contacts().Trust(bob.ID(), false)
	bob.Contacts().Trust(alice.ID(), false)
	waitEvent(t, bsub, "bob's circuit address", func(e node.Event) bool {
		for _, a := range e.Addrs {
			if contains(a, "p2p-circuit") {
				return true
			}
		}
		return false
	})
	if _, err := alice.Send(bob.ID(), "first"); err != nil {
		t.Fatal(err)
	}
	var paths []node.Path
	waitEvent(t, asub, "a direct path", func(e node.Event) bool {
		if e.Kind == node.EventPeer && e.Peer.ID == bob.ID() && e.Peer.Online {
			paths = append(paths, e.Peer.Path)
			return e.Peer.Path == node.PathLAN || e.Peer.Path == node.PathDirect
		}
		return false
	})
	t.Logf("paths seen: %v", paths)
	m, err := alice.Send(bob.ID(), "second")
	if err != nil {
		t.Fatal(err)
	}
	waitEvent(t, asub, "delivered", func(e node.Event) bool {
		return e.Kind == node.EventStatus && e.Message.ID == m.ID && e.Message.Status == store.StatusDelivered
	})
	if p := alice.PeerInfo(bob.ID()).Path; p == node.PathRelay {
		t.Fatalf("still on the relay after the upgrade")
	}
	_ = time.Second
}
