package relay_test

import (
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/relay"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
	circuit "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
)

// A relay that tampers with forwarded bytes: the peers detect it (the
// connection through the relay fails authentication and dies), nothing
// corrupted is stored or shown, and once the tampering stops the message
// is delivered intact.
func TestTamperingRelay(t *testing.T) {
	var on atomic.Bool
	srv, err := relay.NewTamperingServer(relay.Config{Home: identity.Home{Dir: t.TempDir()},
		Listen: []string{"/ip4/127.0.0.1/tcp/0"}}, &on)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	alice, asub := relayNode(t, "alice", srv.Addrs())
	bob, bsub := relayNode(t, "bob", srv.Addrs())
	waitCircuit(t, bsub)
	alice.Contacts().Trust(bob.ID(), false)
	bob.Contacts().Trust(alice.ID(), false)
	exchange(t, alice, asub, bob, bsub, "before tampering")

	on.Store(true)
	m, err := alice.Send(bob.ID(), "sent while the relay tampers")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.After(3 * time.Second)
wait:
	for {
		select {
		case e := <-bsub.C:
			if e.Kind == node.EventMessage {
				t.Fatalf("a message got through a tampering relay: %q", e.Message.Body)
			}
		case <-deadline:
			break wait
		}
	}
	if got, _ := alice.Store().Message(m.ID); got.Status == store.StatusDelivered {
		t.Fatal("delivered through a tampering relay")
	}
	on.Store(false)
	got := waitEvent(t, bsub, "the message after tampering stopped", func(e node.Event) bool { return e.Kind == node.EventMessage })
	if got.Message.ID != m.ID || got.Message.Body != "sent while the relay tampers" {
		t.Fatalf("received %q (%s)", got.Message.Body, got.Message.ID)
	}
	hist, err := bob.History(alice.ID(), 0, 10)
	if err != nil || len(hist) != 2 {
		t.Fatalf("bob stored %d messages (%v), want exactly 2", len(hist), err)
	}
	for _, h := range hist {
		if h.Body != "before tampering" && h.Body != "sent while the relay tampers" {
			t.Fatalf("corrupted message stored: %q", h.Body)
		}
	}
}

// A relay restart: the client reserves again within seconds, not an hour,
// and chat through the restarted relay works.
func TestRelayRestart(t *testing.T) {
	home := identity.Home{Dir: t.TempDir()}
	listen := "/ip4/127.0.0.1/tcp/" + freePort(t)
	start := func() *relay.Server {
		srv, err := relay.NewServer(relay.Config{Home: home, Listen: []string{listen}})
		if err != nil {
			t.Fatal(err)
		}
		return srv
	}
	srv := start()
	addrs := srv.Addrs()
	alice, asub := relayNode(t, "alice", addrs)
	bob, bsub := relayNode(t, "bob", addrs)
	waitCircuit(t, asub)
	waitCircuit(t, bsub)
	srv.Close()
	waitEvent(t, asub, "the circuit address to go", func(e node.Event) bool {
		return e.Kind == node.EventListening && !strings.Contains(strings.Join(e.Addrs, " "), "p2p-circuit")
	})
	srv = start()
	t.Cleanup(func() { srv.Close() })
	began := time.Now()
	waitCircuit(t, asub)
	waitCircuit(t, bsub)
	t.Logf("reserved again %v after the restart", time.Since(began).Round(time.Millisecond))
	alice.Contacts().Trust(bob.ID(), false)
	bob.Contacts().Trust(alice.ID(), false)
	exchange(t, alice, asub, bob, bsub, "after the restart")
}

// Interop with a stock go-libp2p circuit v2 relay with its defaults (2
// minutes, 128 KiB per relayed connection): chat works within the limits,
// and when the relay cuts a circuit the peers reconnect and deliver
// everything, once.
func TestStockRelay(t *testing.T) {
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay(), libp2p.ForceReachabilityPublic())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	r, err := circuit.New(h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	full, _ := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()})
	addrs := []string{full[0].String()}
	alice, asub := relayNode(t, "alice", addrs)
	bob, bsub := relayNode(t, "bob", addrs)
	waitCircuit(t, bsub)
	alice.Contacts().Trust(bob.ID(), false)
	bob.Contacts().Trust(alice.ID(), false)
	exchange(t, alice, asub, bob, bsub, "hello through a stock relay")

	// 6 × 60 KiB is far past the 128 KiB a circuit may carry.
	big := strings.Repeat("x", 60<<10)
	sent := map[string]bool{}
	for i := 0; i < 6; i++ {
		m, err := alice.Send(bob.ID(), big+string(rune('a'+i)))
		if err != nil {
			t.Fatal(err)
		}
		sent[m.ID.String()] = true
	}
	seen := map[string]int{}
	for len(seen) < len(sent) {
		e := waitEvent(t, bsub, "large messages across cut circuits", func(e node.Event) bool { return e.Kind == node.EventMessage })
		seen[e.Message.ID.String()]++
		if !sent[e.Message.ID.String()] || len(e.Message.Body) != len(big)+1 {
			t.Fatalf("unexpected message %s of %d bytes", e.Message.ID, len(e.Message.Body))
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("message %s shown %d times", id, n)
		}
	}
	// The relay must really have cut a circuit on the way: alice saw the
	// chat with bob go offline at least once.
	cuts := 0
	for drained := false; !drained; {
		select {
		case e := <-asub.C:
			if e.Kind == node.EventPeer && e.Peer.ID == bob.ID() && !e.Peer.Online {
				cuts++
			}
		case <-time.After(500 * time.Millisecond):
			drained = true
		}
	}
	if cuts == 0 {
		t.Fatal("the stock relay never cut a circuit: the test did not exercise its limits")
	}
	t.Logf("the relay cut the chat %d times", cuts)
}

func waitCircuit(t *testing.T, sub *node.Subscription) {
	t.Helper()
	waitEvent(t, sub, "a circuit address", func(e node.Event) bool {
		return e.Kind == node.EventListening && strings.Contains(strings.Join(e.Addrs, " "), "p2p-circuit")
	})
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}
