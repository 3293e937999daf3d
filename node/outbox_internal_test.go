package node

import (
	"slices"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// readWorker gives o a running worker for p that read its (empty)
// outbox.
func readWorker(o *outbox, p peer.ID) *outboxWorker {
	w := o.worker(p)
	w.running, w.fresh = true, true
	return w
}

// The worker's copy of its outbox: what push adds, in each group's order
// and once; what receipts take out; and a read that a change overlapped
// is not kept (the worker reads again).
func TestOutboxWorkerCopy(t *testing.T) {
	o := &outbox{workers: map[peer.ID]*outboxWorker{}}
	p := peer.ID("member")
	w := readWorker(o, p)
	g1, g2 := store.GroupID{1}, store.GroupID{2}
	msg := func(id byte, g store.GroupID, seq uint64) store.Message {
		return store.Message{ID: e2e.MessageID{id}, Peer: p, Group: g, Seq: seq}
	}
	ids := func() []byte {
		var out []byte
		for _, m := range w.pending {
			out = append(out, m.ID[0])
		}
		return out
	}
	o.push(p, msg(1, g1, 2))
	o.push(p, msg(2, g2, 7))
	o.push(p, msg(3, g1, 1)) // stored before 1, pushed after it
	o.push(p, msg(1, g1, 2)) // again
	if got := ids(); !slices.Equal(got, []byte{3, 1, 2}) || !w.fresh {
		t.Fatalf("pending %v (fresh %v), want [3 1 2]", got, w.fresh)
	}

	o.acked(p, []e2e.MessageID{{3}, {9}})
	if got := ids(); !slices.Equal(got, []byte{1, 2}) {
		t.Fatalf("after a receipt: %v, want [1 2]", got)
	}

	// A read under way: a push or a receipt meanwhile makes it stale.
	w.reading = true
	gen := w.gen
	o.acked(p, []e2e.MessageID{{1}})
	if w.gen == gen {
		t.Fatal("a receipt during a read left the read to be kept")
	}
	gen = w.gen
	o.push(p, msg(4, g1, 3))
	if w.gen == gen || w.fresh {
		t.Fatal("a push during a read left the read to be kept")
	}
	w.reading = false

	// A kick (anything may have changed) and a changed status make the
	// worker read again.
	w.fresh = true
	o.kick(p)
	if w.fresh {
		t.Fatal("a kick left the copy fresh")
	}
	w.fresh = true
	o.invalidate(p)
	if w.fresh {
		t.Fatal("invalidate left the copy fresh")
	}
}

// A group deletion takes the deleted text (and our actions on it) out of
// every member's queue in the store; a worker's copy of its outbox must
// not keep them, or it writes, or leaves at a relay, a text whose body
// the sender deleted. Bob is offline, so alice's worker for him keeps
// retrying with its copy; it must come to hold what the store holds.
func TestOutboxCopyFollowsGroupDeletion(t *testing.T) {
	alice := offNewNode(t, "alice", nil, true)
	bob := offNewNode(t, "bob", nil, true)
	offLink(t, alice, bob)
	id := offGroup(t, alice, bob)
	bob.Close()
	for wait := time.Now().Add(10 * time.Second); len(alice.sessions.ofPeer(bob.ID())) > 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(wait) {
			t.Fatal("alice still has a session with bob")
		}
	}
	m, err := alice.Groups().Send(id, "not for long")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := alice.Messages().Delete(m.ID); err != nil {
		t.Fatal(err)
	}
	ids := func(ms []store.Message) []e2e.MessageID {
		var out []e2e.MessageID
		for _, m := range ms {
			out = append(out, m.ID)
		}
		return out
	}
	var kept, stored []e2e.MessageID
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		held, _, err := alice.out.outbox(bob.ID(), nil) // what the worker writes next
		if err != nil {
			t.Fatal(err)
		}
		inStore, err := alice.store.Outbox(bob.ID())
		if err != nil {
			t.Fatal(err)
		}
		kept, stored = ids(held), ids(inStore)
		if slices.Equal(kept, stored) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if slices.Contains(kept, m.ID) || !slices.Equal(kept, stored) {
		t.Fatalf("the worker holds %v for bob, the store %v (the deleted text is %v)", kept, stored, m.ID)
	}
}
