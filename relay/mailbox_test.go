package relay_test

import (
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/relay"
	"github.com/certchat/certchat/store"
)

// startAt starts a relay-only node on an existing home.
func startAt(t *testing.T, h identity.Home, relays []string) (*node.Node, *node.Subscription) {
	t.Helper()
	id, err := h.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	ts, _ := h.TrustStore()
	n, err := node.New(node.Config{Home: h, Identity: id, Trust: ts, Listen: []string{"none"}, Relays: relays,
		RetryMin: 50 * time.Millisecond, RetryMax: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	sub := n.Subscribe()
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	return n, sub
}

func newHomeAt(t *testing.T, name string) identity.Home {
	h := identity.Home{Dir: t.TempDir()}
	if _, err := h.Init(name, nil, identity.DefaultKDF, time.Now()); err != nil {
		t.Fatal(err)
	}
	return h
}

// A message to a peer who is offline is sealed for it (PQXDH from the
// bundle it published: they never met), queued at the relay, and
// delivered when it comes back; the receipt returns and the sender sees
// queued, then delivered.
//
// The "delivered" events come in no set order: the receiver acknowledges
// each message it fetched on a live session if one is open at that
// moment, else in the sender's mailbox, and the session the sender dials
// as the receiver comes back may open between two of them (under load,
// the first receipt went to the mailbox and the second, live, arrived
// first). So the statuses are awaited as a set (waitStatuses).
func TestOfflineDeliveryThroughMailbox(t *testing.T) {
	srv := startRelay(t, relay.Limits{})
	relays := srv.Addrs()
	bobHome := newHomeAt(t, "bob")
	bob, bsub := startAt(t, bobHome, relays)
	waitCircuit(t, bsub)
	waitMailbox(t, bob)
	bobID := bob.ID()
	bob.Close()

	alice, asub := relayNode(t, "alice", relays)
	waitCircuit(t, asub)
	if err := alice.Contacts().Trust(bobID, false); err != nil {
		t.Fatal(err)
	}
	var sent []store.Message
	for _, text := range []string{"while you were out", "second note"} {
		m, err := alice.Send(bobID, text)
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, m)
	}
	waitStatuses(t, asub, store.StatusQueued, sent)

	bob, bsub = startAt(t, bobHome, relays)
	defer bob.Close()
	for i, m := range sent {
		e := waitEvent(t, bsub, "message from the mailbox", func(e node.Event) bool { return e.Kind == node.EventMessage })
		if e.Message.ID != m.ID {
			t.Fatalf("message %d: got %s (%q), want %s", i, e.Message.ID, e.Message.Body, m.ID)
		}
	}
	waitStatuses(t, asub, store.StatusDelivered, sent)
	hist, _ := bob.History(alice.ID(), 0, 10)
	if len(hist) != 2 || !strings.Contains(hist[0].Body, "while you were out") {
		t.Fatalf("bob's history: %+v", hist)
	}
}

// waitMailbox waits until n's mailbox is registered at its first relay.
func waitMailbox(t *testing.T, n *node.Node) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if r := n.Relays(); len(r) > 0 && r[0].Mailbox && r[0].PrekeysEC > 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("mailbox not registered: %+v", n.Relays())
}

// waitStatuses waits until each of msgs has had a status event saying st,
// in whatever order they come; other events are passed over. It fails
// naming the messages still waiting.
func waitStatuses(t *testing.T, sub *node.Subscription, st store.Status, msgs []store.Message) {
	t.Helper()
	left := map[string]string{} // ID: body
	for _, m := range msgs {
		left[m.ID.String()] = m.Body
	}
	deadline := time.After(20 * time.Second)
	for len(left) > 0 {
		select {
		case e := <-sub.C:
			if e.Kind == node.EventStatus && e.Message.Status == st {
				delete(left, e.Message.ID.String())
			}
		case <-deadline:
			t.Fatalf("timed out waiting for %s of %d of %d messages: %v", st, len(left), len(msgs), left)
		}
	}
}
