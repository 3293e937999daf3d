package node

import (
	"slices"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/store"
)

// storedStatus waits until a's store holds message id with status want.
func storedStatus(t *testing.T, a *offNode, id e2e.MessageID, want store.Status) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, err := a.Store().Message(id)
		if err != nil {
			t.Fatal(err)
		}
		if m.Status == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("message %s is stored as %s, want %s", id, m.Status, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A 1:1 message written to a live session whose receipt does not come is
// recorded as sent a second later, so "sent" survives a restart; its
// event went out as it was written (tellSent), once: not again when a
// worker writes it again on another session, nor when it is recorded.
func TestDirectSentStoredLate(t *testing.T) {
	alice := offNewNode(t, "alice", nil, true)
	bob := offNewNode(t, "bob", nil, true)
	offLink(t, alice, bob)
	bob.Close() // no receipt will come
	var ids [2]e2e.MessageID
	var msgs []store.Message
	for i := range ids {
		m, err := alice.Send(bob.ID(), "hello")
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = m.ID
		msgs = append(msgs, m)
	}
	// As the outbox does as it writes them.
	if told := alice.out.sent.tell(slices.Clone(msgs)); len(told) != 2 {
		t.Fatalf("told %d, want 2", len(told))
	}
	if told := alice.out.sent.tell(slices.Clone(msgs)); len(told) != 0 {
		t.Fatal("a message written again on another session was told sent twice")
	}
	written := time.Now()
	alice.out.directSent(bob.ID(), ids[:])
	m, err := alice.Store().Message(ids[1])
	if err != nil || m.Status != store.StatusSending {
		t.Fatalf("just written: %v, %v; want still sending in the store", m.Status, err)
	}
	for _, id := range ids {
		storedStatus(t, alice, id, store.StatusSent)
	}
	if took := time.Since(written); took < sentDelay {
		t.Fatalf("recorded as sent %v after it was written, want at least %v", took, sentDelay)
	}
	for quiet := time.After(300 * time.Millisecond); ; {
		select {
		case e := <-alice.sub.C:
			if e.Kind == EventStatus && e.Message.Status == store.StatusSent {
				t.Fatalf("message %s told sent again when recorded", e.Message.ID)
			}
			continue
		case <-quiet:
		}
		break
	}
	alice.out.sent.mu.Lock()
	left := len(alice.out.sent.told)
	alice.out.sent.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d messages still counted told after they were recorded", left)
	}
}

// Messages between two live nodes: each is told sent once, before it is
// told delivered (told just before its envelope leaves, so before its
// receipt can come, whatever the worker's copy of its outbox holds), and
// is stored delivered.
func TestDirectSentToldBeforeDelivered(t *testing.T) {
	alice := offNewNode(t, "alice", nil, true)
	bob := offNewNode(t, "bob", nil, true)
	offLink(t, alice, bob)
	const n = 40
	ids := map[e2e.MessageID]int{}
	for i := range n {
		m, err := alice.Send(bob.ID(), "hello")
		if err != nil {
			t.Fatal(err)
		}
		ids[m.ID] = i
	}
	sent := map[e2e.MessageID]int{}
	delivered := 0
	for delivered < n {
		e := alice.offWait("statuses", func(e Event) bool { return e.Kind == EventStatus })
		if _, ok := ids[e.Message.ID]; !ok {
			continue
		}
		switch e.Message.Status {
		case store.StatusSent:
			if sent[e.Message.ID] < 0 {
				t.Fatalf("message %d told sent after delivered", ids[e.Message.ID])
			}
			if sent[e.Message.ID]++; sent[e.Message.ID] > 1 {
				t.Fatalf("message %d told sent twice", ids[e.Message.ID])
			}
		case store.StatusDelivered:
			if sent[e.Message.ID] != 1 {
				t.Fatalf("message %d told delivered, not told sent before", ids[e.Message.ID])
			}
			sent[e.Message.ID] = -1
			delivered++
		}
	}
	time.Sleep(sentDelay + 200*time.Millisecond) // the recorder has looked
	for id := range ids {
		storedStatus(t, alice, id, store.StatusDelivered)
	}
}
