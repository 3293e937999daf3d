package node

import (
	"testing"

	"github.com/certchat/certchat/store"
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
