package node

import (
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/group"
	"github.com/certchat/certchat/store"
)

// offGroupMemberGone returns alice, the admin of group id, and bob, its
// member, closed: no receipt will come from him.
func offGroupMemberGone(t *testing.T) (alice, bob *offNode, id group.ID) {
	alice = offNewNode(t, "alice", nil, true)
	bob = offNewNode(t, "bob", nil, true)
	offLink(t, alice, bob)
	id = offGroup(t, alice, bob)
	bob.Close()
	return alice, bob, id
}

// A group copy written to a live session is recorded as sent, with its
// event, so "delivered to 0 of 1, sent to 1" survives a restart.
func TestGroupCopySentStored(t *testing.T) {
	alice, bob, id := offGroupMemberGone(t) // the copy stays sent
	m, err := alice.Groups().Send(id, "hello")
	if err != nil {
		t.Fatal(err)
	}
	alice.out.groupCopiesSent([]store.Copy{{Peer: bob.ID(), ID: m.ID}}) // as the outbox does once it wrote the copy
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

// A group copy is recorded as sent only once it was written
// sentDelay before: one written just before the recorder looks (for
// an earlier copy) waits for its own time, since its receipt may still
// be held by the member.
func TestGroupCopySentAfterItsOwnDelay(t *testing.T) {
	alice, bob, id := offGroupMemberGone(t) // the copies stay sent
	var copies []store.Copy
	for range 2 {
		m, err := alice.Groups().Send(id, "hello")
		if err != nil {
			t.Fatal(err)
		}
		copies = append(copies, store.Copy{Peer: bob.ID(), ID: m.ID})
	}
	sentEv := func(e Event, i int) bool {
		return e.Kind == EventStatus && e.Message.ID == copies[i].ID && e.Message.Peer == bob.ID() && e.Message.Status == store.StatusSent
	}
	alice.out.groupCopiesSent(copies[:1]) // as the outbox does once it wrote the copy
	time.Sleep(sentDelay * 8 / 10)
	second := time.Now()
	alice.out.groupCopiesSent(copies[1:])
	alice.offWait("the first copy sent", func(e Event) bool {
		if sentEv(e, 1) {
			t.Fatalf("the second copy was recorded as sent %v after it was written, before the first", time.Since(second))
		}
		return sentEv(e, 0)
	})
	alice.offWait("the second copy sent", func(e Event) bool { return sentEv(e, 1) })
	if took := time.Since(second); took < sentDelay {
		t.Fatalf("the second copy was recorded as sent %v after it was written, want at least %v", took, sentDelay)
	}
}

// The queue of copies to record as sent gives each its whole delay, and
// ends its recorder once nothing is due or waits.
func TestSentQueueTakesDueCopies(t *testing.T) {
	var q sentQueue
	t0 := time.Now()
	msg := func(b byte, at time.Time) sentBatch {
		return sentBatch{copies: []store.Copy{{Peer: "m", ID: e2e.MessageID{b}}}, at: at}
	}
	if !q.add(msg(1, t0)) {
		t.Fatal("the first copy did not start a recorder")
	}
	gap := 900 * time.Millisecond
	if q.add(msg(2, t0.Add(gap))) {
		t.Fatal("a second copy started a second recorder")
	}
	due, wait, more := q.take(t0.Add(sentDelay), false)
	if len(due) != 1 || due[0].copies[0].ID != (e2e.MessageID{1}) || wait != gap || !more {
		t.Fatalf("at sentDelay: due %v, wait %v, more %v; want the first copy, %v, true", due, wait, more, gap)
	}
	due, wait, more = q.take(t0.Add(gap+sentDelay), false)
	if len(due) != 1 || due[0].copies[0].ID != (e2e.MessageID{2}) || wait != sentDelay || !more {
		t.Fatalf("at %v: due %v, wait %v, more %v; want the second copy, %v, true", gap+sentDelay, due, wait, more, sentDelay)
	}
	if due, _, more = q.take(t0.Add(gap+2*sentDelay), false); len(due) != 0 || more {
		t.Fatalf("at %v: due %v, more %v; want none, false", gap+2*sentDelay, due, more)
	}
	later := t0.Add(3 * sentDelay)
	if !q.add(msg(3, later)) {
		t.Fatal("a copy after the recorder ended did not start one")
	}
	if due, _, _ = q.take(later, true); len(due) != 1 {
		t.Fatalf("closing: due %v, want the copy at once", due)
	}
}
