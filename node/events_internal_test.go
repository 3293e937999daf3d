package node

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A subscription's pump hands its delivered queue back for the next
// batch: a steady stream of events (a group message's receipts are a
// status event each) allocates no queue, and the events it delivered
// hold nothing (their messages can be collected).
func TestSubscriptionReusesItsQueue(t *testing.T) {
	b := newBroker()
	s := b.subscribe()
	defer s.Close()
	m := &store.Message{Body: "hi"}
	round := func() {
		for range 64 {
			b.publish(Event{Kind: EventStatus, Message: m})
		}
		for range 64 {
			if e := <-s.C; e.Message != m {
				t.Fatalf("event %+v, want the status of %p", e, m)
			}
		}
	}
	round()
	round()
	if n := testing.AllocsPerRun(50, round); n > 0.5 {
		t.Errorf("%.1f allocations for 64 events, want none", n)
	}
	// The queue the pump holds for the next batch holds no events.
	b.publish(Event{Kind: EventStatus, Message: m})
	s.mu.Lock()
	q := s.queue
	s.mu.Unlock()
	for _, e := range q[len(q):cap(q)] {
		if e.Message != nil {
			t.Fatalf("the spare queue still points to a message: %+v", e)
		}
	}
	<-s.C
}

// The last peer event about a peer says its state, though a change the
// node publishes at once (peerEvents.now: a rename here; a key found
// changed in a handshake) comes between the batch's read of the same
// peer (changed: identify on that connection) and its publication. The
// batch's event, read before the change, came out after the change's
// own and stayed the last (found 2026-12-06): ui's
// TestKeyChangedDialogText waited 20 s for "KEY CHANGED" while the
// window showed the key that claims bob's name as a stranger's.
func TestPeerEventLastIsCurrent(t *testing.T) {
	on := offNewNode(t, "alice", nil, false)
	p := noticePeerID(t)
	if err := on.cfg.Trust.Pin(p, "before", identity.StateTOFU, time.Now()); err != nil {
		t.Fatal(err)
	}
	var armed atomic.Bool
	on.peerEv.read = func(q peer.ID) {
		if q == p && armed.CompareAndSwap(true, false) {
			if err := on.Contacts().Rename(p, "after"); err != nil {
				t.Error(err)
			}
		}
	}
	if err := on.Start(); err != nil {
		t.Fatal(err)
	}
	armed.Store(true)
	on.peerEv.changed(p)
	var last *PeerInfo
	for _, e := range on.noticeFlushPeers() {
		if e.Kind == EventPeer && e.Peer.ID == p {
			last = e.Peer
		}
	}
	switch {
	case armed.Load():
		t.Fatal("the batch did not read the peer")
	case last == nil || last.Name != "after":
		t.Fatalf("the last peer event says %+v, want the name %q", last, "after")
	}
}
