package relay_test

import (
	"testing"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/relay"
	"github.com/certchat/certchat/store"
)

// relayNode starts a node that is reachable only through relays.
func relayNode(t *testing.T, name string, relays []string, listen ...string) (*node.Node, *node.Subscription) {
	t.Helper()
	h := identity.Home{Dir: t.TempDir()}
	id, err := h.Init(name, nil, identity.DefaultKDF, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ts, err := h.TrustStore()
	if err != nil {
		t.Fatal(err)
	}
	if len(listen) == 0 {
		listen = []string{"none"}
	}
	n, err := node.New(node.Config{Home: h, Identity: id, Trust: ts, Listen: listen, Relays: relays,
		RetryMin: 50 * time.Millisecond, RetryMax: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	sub := n.Subscribe()
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n, sub
}

func startRelay(t *testing.T, limits relay.Limits) *relay.Server {
	t.Helper()
	srv, err := relay.NewServer(relay.Config{Home: identity.Home{Dir: t.TempDir()},
		Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

func waitEvent(t *testing.T, sub *node.Subscription, what string, match func(node.Event) bool) node.Event {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case e := <-sub.C:
			if match(e) {
				return e
			}
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestChatThroughRelay(t *testing.T) {
	srv := startRelay(t, relay.Limits{})
	addrs := srv.Addrs()
	alice, asub := relayNode(t, "alice", addrs)
	bob, bsub := relayNode(t, "bob", addrs)
	for _, s := range []*node.Subscription{asub, bsub} {
		waitEvent(t, s, "circuit address", func(e node.Event) bool {
			for _, a := range e.Addrs {
				if len(a) > 0 && contains(a, "/p2p-circuit") {
					return true
				}
			}
			return false
		})
	}
	if err := alice.Contacts().Trust(bob.ID(), false); err != nil {
		t.Fatal(err)
	}
	bob.Contacts().Trust(alice.ID(), false)
	m, err := alice.Send(bob.ID(), "hello through the relay")
	if err != nil {
		t.Fatal(err)
	}
	got := waitEvent(t, bsub, "message", func(e node.Event) bool { return e.Kind == node.EventMessage })
	if got.Message.Body != "hello through the relay" {
		t.Fatalf("got %q", got.Message.Body)
	}
	waitEvent(t, asub, "delivered", func(e node.Event) bool {
		return e.Kind == node.EventStatus && e.Message.ID == m.ID && e.Message.Status == store.StatusDelivered
	})
	if p := alice.PeerInfo(bob.ID()).Path; p != node.PathRelay {
		t.Fatalf("path %q, want relay", p)
	}
	t.Logf("relays: %+v", alice.Relays())
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
