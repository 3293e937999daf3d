package node_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/store"
)

// waitUpdate waits for the update of message id that satisfies ok.
func (tn *testNode) waitUpdate(id e2e.MessageID, what string, ok func(store.Message) bool) store.Message {
	tn.t.Helper()
	e := tn.waitFor(what, func(e node.Event) bool {
		return e.Kind == node.EventUpdate && e.Message.ID == id && ok(*e.Message)
	})
	return *e.Message
}

func (tn *testNode) stored(id e2e.MessageID) store.Message {
	tn.t.Helper()
	m, err := tn.Store().Message(id)
	if err != nil {
		tn.t.Fatal(err)
	}
	return m
}

// Live, both ways: an edit, a reply (quoted, from the right message), a
// reaction and a deletion reach the peer, are acknowledged, and leave
// both stores showing the same thing; the deleted text is in neither.
func TestActionsLive(t *testing.T) {
	alice := startNode(t, newHome(t, "alice"), "/ip4/127.0.0.1/tcp/0")
	bob := startNode(t, newHome(t, "bob"), "/ip4/127.0.0.1/tcp/0")
	trustEachOther(t, alice, bob)
	helo := alice.send(bob.ID(), "helo")
	bob.waitMessage(helo)
	alice.waitDelivered(helo)

	edit, mine, err := alice.Messages().Edit(helo.ID, "hello")
	if err != nil || mine.Body != "hello" || mine.Edited.IsZero() {
		t.Fatalf("edit: %+v, %v", mine, err)
	}
	got := bob.waitUpdate(helo.ID, "the edit", func(m store.Message) bool { return m.Body == "hello" })
	if got.Edited.IsZero() {
		t.Fatalf("bob's copy is not marked edited: %+v", got)
	}
	alice.waitDelivered(edit)

	reply, err := bob.Messages().Reply(helo.ID, "hi alice")
	if err != nil || reply.Quote == nil || reply.Quote.Body != "hello" {
		t.Fatalf("reply: %+v, %v", reply.Quote, err)
	}
	in := alice.waitMessage(reply)
	if in.ReplyTo != helo.ID || in.Quote == nil || in.Quote.Body != "hello" || in.Quote.Direction != store.Outgoing {
		t.Fatalf("alice's copy of the reply: %+v / %+v", in, in.Quote)
	}

	react, _, err := bob.Messages().React(helo.ID, "👍")
	if err != nil {
		t.Fatal(err)
	}
	got = alice.waitUpdate(helo.ID, "bob's reaction", func(m store.Message) bool { return len(m.Reactions) == 1 })
	if got.Reactions[0] != (store.Reaction{From: bob.ID(), Emoji: "👍"}) {
		t.Fatalf("reaction: %+v", got.Reactions)
	}
	bob.waitDelivered(react)
	if _, _, err := bob.Messages().React(helo.ID, "two words"); err == nil {
		t.Fatal("a reaction of two words was accepted")
	}

	del, _, err := alice.Messages().Delete(helo.ID)
	if err != nil {
		t.Fatal(err)
	}
	bob.waitUpdate(helo.ID, "the deletion", func(m store.Message) bool { return m.Deleted })
	alice.waitDelivered(del)
	for _, n := range []*testNode{alice, bob} {
		m := n.stored(helo.ID)
		if !m.Deleted || m.Body != "" || m.Reactions != nil {
			t.Fatalf("after the deletion: %+v", m)
		}
		if found, _ := n.Search("hello", 10); len(found) != 0 {
			t.Fatalf("the deleted text is still found: %q", bodies(found))
		}
		if q := n.stored(reply.ID).Quote; q == nil || !q.Deleted {
			t.Fatalf("the reply's quote after the deletion: %+v", q)
		}
	}
	if h := historyBodies(t, bob, alice.ID()); len(h) != 2 || h[0] != "" || h[1] != "hi alice" {
		t.Fatalf("bob's history: %q (the tombstone and the reply; actions show on their targets)", h)
	}

	// Refused at the sender: bob may not edit alice's message, nor alice
	// edit a deleted one.
	if _, _, err := bob.Messages().Edit(helo.ID, "bob's words"); !errors.Is(err, store.ErrNotYours) && !errors.Is(err, store.ErrDeleted) {
		t.Fatalf("bob edits alice's message: %v", err)
	}
	if _, _, err := bob.Messages().Edit(reply.ID, strings.Repeat("x", e2e.MaxTextBytes+1)); err == nil {
		t.Fatal("an edit longer than a message may be was accepted")
	}
	if _, _, err := alice.Messages().Edit(e2e.NewMessageID(), "x"); !errors.Is(err, store.ErrNoTarget) {
		t.Fatalf("an edit of no message: %v", err)
	}
}

// An attacker's node that speaks the protocol: edits and deletions of
// messages that are not its own are refused (from the session's peer, not
// from what the frame says), reported, and change nothing; so are edits
// past the window; its own edit that arrives before the message works.
func TestForgedActionsRefused(t *testing.T) {
	bob := startNode(t, newHome(t, "bob"), "/ip4/127.0.0.1/tcp/0")
	honest := startNode(t, newHome(t, "honest"), "/ip4/127.0.0.1/tcp/0")
	mallory := startNode(t, newHome(t, "mallory"), "/ip4/127.0.0.1/tcp/0")
	trustEachOther(t, bob, honest, mallory)
	orig := honest.send(bob.ID(), "honest words")
	bob.waitMessage(orig)
	toMallory := bob.send(mallory.ID(), "bob's words")
	mallory.waitMessage(toMallory)
	bob.waitDelivered(toMallory)
	old := mallory.send(bob.ID(), "mallory's old words")
	bob.waitMessage(old)

	now := time.Now()
	forge := func(kind store.Kind, target e2e.MessageID, body string, at time.Time) store.Message {
		return store.Message{ID: e2e.NewMessageID(), Peer: bob.ID(), Kind: kind, Target: target, Body: body, SentAt: at}
	}
	for _, tc := range []struct {
		name string
		m    store.Message
		want string
	}{
		{"edit of bob's own message", forge(store.KindEdit, toMallory.ID, "forged", now), store.ErrNotYours.Error()},
		{"deletion of bob's own message", forge(store.KindDelete, toMallory.ID, "", now), store.ErrNotYours.Error()},
		{"edit of honest's message", forge(store.KindEdit, orig.ID, "forged", now), store.ErrNoTarget.Error()},
		{"deletion of honest's message", forge(store.KindDelete, orig.ID, "", now), store.ErrNoTarget.Error()},
		{"edit past the window", forge(store.KindEdit, old.ID, "rewritten", old.SentAt.Add(store.EditWindow+time.Hour)), store.ErrTooOld.Error()},
	} {
		if err := mallory.WriteTextForTest(tc.m); err != nil {
			t.Fatal(err)
		}
		e := bob.waitFor(tc.name+": refused", func(e node.Event) bool {
			return e.Kind == node.EventError && e.PeerID == mallory.ID() || e.Kind == node.EventUpdate
		})
		if e.Kind != node.EventError || !strings.Contains(e.Err, tc.want) {
			t.Fatalf("%s: %s %q, want an error saying %q", tc.name, e.Kind, e.Err, tc.want)
		}
		if m := bob.stored(tc.m.ID); m.Status != store.StatusRefused {
			t.Fatalf("%s: stored as %s", tc.name, m.Status)
		}
	}
	for id, body := range map[e2e.MessageID]string{toMallory.ID: "bob's words", orig.ID: "honest words", old.ID: "mallory's old words"} {
		if m := bob.stored(id); m.Body != body || m.Deleted || !m.Edited.IsZero() {
			t.Fatalf("after mallory's attempts: %+v", m)
		}
	}

	// Out of order: mallory's edit of its own message arrives first.
	later := store.Message{ID: e2e.NewMessageID(), Peer: bob.ID(), SentAt: time.Now(), Body: "typo"}
	if err := mallory.WriteTextForTest(forge(store.KindEdit, later.ID, "fixed", later.SentAt.Add(time.Second))); err != nil {
		t.Fatal(err)
	}
	if err := mallory.WriteTextForTest(later); err != nil {
		t.Fatal(err)
	}
	if m := bob.waitMessage(later); m.Body != "fixed" || m.Edited.IsZero() {
		t.Fatalf("the message its edit waited for: %+v", m)
	}
}

// Seen and typing: shown when both take part; when either turns them off,
// neither direction shows them.
func TestSeenAndTyping(t *testing.T) {
	alice := startNode(t, newHome(t, "alice"), "/ip4/127.0.0.1/tcp/0")
	bob := startNode(t, newHome(t, "bob"), "/ip4/127.0.0.1/tcp/0")
	trustEachOther(t, alice, bob)
	m := bob.send(alice.ID(), "are you there?")
	alice.waitMessage(m)
	bob.waitDelivered(m)
	// The settings frames went first on the session; a message each way
	// after them makes sure both arrived.
	probe := alice.send(bob.ID(), "probe")
	bob.waitMessage(probe)
	alice.waitDelivered(probe)

	alice.Indications().MarkSeen(bob.ID(), []e2e.MessageID{m.ID})
	e := bob.waitFor("seen", func(e node.Event) bool { return e.Kind == node.EventSeen && e.Message.ID == m.ID })
	if e.Message.Seen.IsZero() || e.Message.Status != store.StatusDelivered || bob.stored(m.ID).Seen.IsZero() {
		t.Fatalf("seen: %+v", e.Message)
	}
	alice.Indications().Typing(bob.ID(), true)
	bob.waitFor("typing", func(e node.Event) bool { return e.Kind == node.EventTyping && e.PeerID == alice.ID() && e.Typing })
	for range 5 { // a key each: at most one frame every 3 s
		alice.Indications().Typing(bob.ID(), true)
	}
	bob.quiet(300*time.Millisecond, "a typing frame within 3 s of the last", func(e node.Event) bool { return e.Kind == node.EventTyping })
	alice.Indications().Typing(bob.ID(), false)
	bob.waitFor("stopped", func(e node.Event) bool { return e.Kind == node.EventTyping && e.PeerID == alice.ID() && !e.Typing })

	indication := func(e node.Event) bool { return e.Kind == node.EventSeen || e.Kind == node.EventTyping }
	for _, off := range []*testNode{bob, alice} {
		on := alice
		if off == alice {
			on = bob
			bob.Indications().Set(e2e.Settings{ReadMarkers: true, Typing: true})
		}
		off.Indications().Set(e2e.Settings{})
		m := off.send(on.ID(), "hi from "+off.ID().String())
		on.waitMessage(m)
		on.Indications().MarkSeen(off.ID(), []e2e.MessageID{m.ID})
		on.Indications().Typing(off.ID(), true)
		off.Indications().Typing(on.ID(), true)
		off.quiet(300*time.Millisecond, "an indication with "+off.ID().String()+"'s turned off", indication)
		on.quiet(100*time.Millisecond, "an indication from a peer that turned them off", indication)
		if !off.stored(m.ID).Seen.IsZero() {
			t.Fatal("seen recorded while turned off")
		}
	}
}

// A message marked seen while its sender is offline is told when a
// session with the sender starts again (alice's settings go first on it,
// so bob honours the receipt whichever side's settings arrive first).
func TestSeenWaitsForTheSender(t *testing.T) {
	aliceHome, bobHome := newHome(t, "alice"), newHome(t, "bob")
	alice := startNode(t, aliceHome, "/ip4/127.0.0.1/tcp/0")
	bob := startNode(t, bobHome, "/ip4/127.0.0.1/tcp/0")
	trustEachOther(t, alice, bob)
	bobAddr := bob.tcpAddr()
	m := bob.send(alice.ID(), "read me later")
	alice.waitMessage(m)
	bob.waitDelivered(m)
	bob.Close()
	alice.waitPeer(bob.ID(), "bob offline", func(p node.PeerInfo) bool { return !p.Online })

	alice.Indications().MarkSeen(bob.ID(), []e2e.MessageID{m.ID})
	bob = startNode(t, bobHome, strings.Split(bobAddr, "/p2p/")[0]) // he greets alice at start
	bob.waitFor("seen after the restart", func(e node.Event) bool { return e.Kind == node.EventSeen && e.Message.ID == m.ID })
}
