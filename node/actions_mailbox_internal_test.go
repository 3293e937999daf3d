package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/store"
)

// Edits, reactions, replies and deletions through a real relay's mailbox
// while the peer is offline: queued at the relay, applied when the peer
// comes back and fetches, acknowledged. Then an edit deposited before the
// message it edits (the mailbox keeps no order between senders' paths):
// it waits, and the message arrives edited.
func TestActionsThroughMailbox(t *testing.T) {
	relayAddr, relayID := offRelay(t)
	alice := offNewNode(t, "alice", []string{relayAddr}, true)
	bobHome, bobID := offHome(t, "bob")
	bob := offNodeAt(t, bobHome, bobID, []string{relayAddr}, true)
	alice.offRegistered()
	bob.offRegistered()
	offLink(t, alice, bob)
	fromBob := bob.offHistory(alice.ID())[1] // "live from bob"
	helo, err := alice.Send(bob.ID(), "helo")
	if err != nil {
		t.Fatal(err)
	}
	alice.offWait("helo delivered", offStatus(helo.ID, store.StatusDelivered))
	bob.Close()

	doomed, err := alice.Send(bob.ID(), "sent in haste")
	if err != nil {
		t.Fatal(err)
	}
	edit, _, err := alice.Messages().Edit(helo.ID, "hello")
	if err != nil {
		t.Fatal(err)
	}
	react, _, err := alice.Messages().React(fromBob.ID, "❤️")
	if err != nil {
		t.Fatal(err)
	}
	reply, err := alice.Messages().Reply(fromBob.ID, "answering you")
	if err != nil {
		t.Fatal(err)
	}
	del, _, err := alice.Messages().Delete(doomed.ID)
	if err != nil {
		t.Fatal(err)
	}
	alice.offStatuses("queued at the relay", store.StatusQueued, edit.ID, react.ID, reply.ID, del.ID)

	bob = offNodeAt(t, bobHome, bobID, []string{relayAddr}, true)
	alice.offStatuses("delivered through the mailbox", store.StatusDelivered, edit.ID, react.ID, reply.ID, del.ID)
	get := func(id e2e.MessageID) store.Message {
		m, err := bob.store.Message(id)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	if m := get(helo.ID); m.Body != "hello" || m.Edited.IsZero() {
		t.Fatalf("the edited message at bob: %+v", m)
	}
	if m := get(fromBob.ID); len(m.Reactions) != 1 || m.Reactions[0].Emoji != "❤️" || m.Reactions[0].From != alice.ID() {
		t.Fatalf("bob's message's reactions: %+v", m.Reactions)
	}
	if m := get(reply.ID); m.Quote == nil || m.Quote.Body != fromBob.Body {
		t.Fatalf("the reply at bob: %+v", m)
	}
	// The deleted message reached bob's outbox-less self only if it was
	// deposited before its deletion; either way bob does not show it.
	if m, err := bob.store.Message(doomed.ID); err == nil && (!m.Deleted || m.Body != "") {
		t.Fatalf("the deleted message at bob: %+v", m)
	}

	// An edit deposited before its message.
	later := store.Message{ID: e2e.NewMessageID(), Peer: bob.ID(), SentAt: time.Now(), Body: "tpyo", Direction: store.Outgoing}
	if err := alice.store.Number(&later); err != nil {
		t.Fatal(err)
	}
	fix := store.Message{ID: e2e.NewMessageID(), Peer: bob.ID(), Kind: store.KindEdit, Target: later.ID, Body: "typo", SentAt: later.SentAt.Add(time.Second)}
	ctx := context.Background()
	for _, m := range []store.Message{fix, later} {
		env, err := alice.rk.sealText(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := alice.mail.client().Deposit(ctx, relayID, bob.ID(), env); err != nil {
			t.Fatal(err)
		}
	}
	bob.offWait("the message its edit waited for", func(e Event) bool {
		return e.Kind == EventMessage && e.Message.ID == later.ID && e.Message.Body == "typo" && !e.Message.Edited.IsZero()
	})
	bob.offWait("the update of the edit that waited, as for a live one", offIsUpdate(later.ID, fix.ID))
	bob.offMailboxEmpty(relayID)
}

// offStatuses reads events until each of ids has reached status st, in
// whatever order: the receipts of messages that went through a mailbox
// come back by two paths (the receiver's fetch acknowledges through our
// mailbox, or live if a session is there; our outbox also writes them
// live once the peer is back, and that copy is acknowledged live), so
// their statuses change in any order, and waiting for one at a time would
// drop the events of the others that came first.
func (on *offNode) offStatuses(what string, st store.Status, ids ...e2e.MessageID) {
	on.t.Helper()
	left := map[e2e.MessageID]bool{}
	for _, id := range ids {
		left[id] = true
	}
	for len(left) > 0 {
		e := on.offWait(fmt.Sprintf("%s (%d of %d)", what, len(left), len(ids)), func(e Event) bool {
			return e.Kind == EventStatus && e.Message.Status == st && left[e.Message.ID]
		})
		delete(left, e.Message.ID)
	}
}

func offStatus(id e2e.MessageID, st store.Status) func(Event) bool {
	return func(e Event) bool { return e.Kind == EventStatus && e.Message.ID == id && e.Message.Status == st }
}
