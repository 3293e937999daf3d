package node

import (
	"testing"
	"time"

	"github.com/certchat/certchat/store"
)

// A group copy written to a live session is recorded as sent, with its
// event, so "delivered to 0 of 1, sent to 1" survives a restart.
func TestGroupCopySentStored(t *testing.T) {
	alice := offNewNode(t, "alice", nil, true)
	bob := offNewNode(t, "bob", nil, true)
	offLink(t, alice, bob)
	id := offGroup(t, alice, bob)
	bob.Close() // no receipt will come: the copy stays sent
	m, err := alice.Groups().Send(id, "hello")
	if err != nil {
		t.Fatal(err)
	}
	c := m.AsMessage()
	c.Peer = bob.ID()
	alice.out.groupCopiesSent(bob.ID(), []store.Message{c}) // as the outbox does once it wrote the copy
	alice.offWait("sent", func(e Event) bool {
		return e.Kind == EventStatus && e.Message.ID == m.ID && e.Message.Peer == bob.ID() && e.Message.Status == store.StatusSent
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, err := alice.Groups().Delivery(m.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Members) == 1 && d.Members[0].Status == store.StatusSent {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob's copy is stored as %+v, want sent", d.Members)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
