package node_test

import (
	"context"
	"testing"
	"time"

	"github.com/certchat/certchat/node"
)

// TestRemovedCAStopsQueuedMessage is TestRemovedCAStopsSending for what
// was queued before: a message to a peer that was only CA-verified, in the
// outbox while the peer was away, is not delivered once the user removed
// the CA and restarted, when the peer comes back and connects. Trusting
// the CA again lets it go: the outbox held it for that reason alone.
func TestRemovedCAStopsQueuedMessage(t *testing.T) {
	aliceHome, bobHome, ca := caHomes(t)
	bob := startNode(t, bobHome, "/ip4/127.0.0.1/tcp/0")
	alice := startNode(t, aliceHome, "/ip4/127.0.0.1/tcp/0")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := alice.Connect(ctx, bob.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	alice.waitDelivered(alice.send(bob.ID(), "while the CA is trusted"))
	bob.Close()
	queued := alice.send(bob.ID(), "queued before the CA was removed")
	alice.Close()

	ts, err := aliceHome.TrustStore()
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.RemoveRoot(ca.Cert); err != nil {
		t.Fatal(err)
	}
	alice = startNode(t, aliceHome, "/ip4/127.0.0.1/tcp/0")
	bob = startNode(t, bobHome, "/ip4/127.0.0.1/tcp/0")
	if _, err := bob.Connect(ctx, alice.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	bob.quiet(3*time.Second, "the message queued for a peer whose CA was removed", func(e node.Event) bool {
		return e.Kind == node.EventMessage && e.Message.ID == queued.ID
	})

	// The CA trusted again: the same message goes.
	if err := ts.AddRoot(ca.Cert); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Connect(ctx, alice.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	bob.waitMessage(queued)
}
