package node_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/group"
	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// waitUpdate waits for the update of target that action makes.
func (tn *testNode) waitActionUpdate(target, action e2e.MessageID) store.Message {
	tn.t.Helper()
	e := tn.waitFor("update of "+target.String(), func(e node.Event) bool {
		return e.Kind == node.EventUpdate && e.Message.ID == target && e.Action != nil && e.Action.ID == action
	})
	return *e.Message
}

func groupMsg(t *testing.T, tn *testNode, id group.ID, msg e2e.MessageID) store.GroupMessage {
	t.Helper()
	h, err := tn.Groups().History(id, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range h {
		if m.ID == msg {
			return m
		}
	}
	t.Fatalf("%s has no message %s in its history", tn.ID(), msg)
	return store.GroupMessage{}
}

// Replies, edits, deletions and reactions in a group: each member sees
// them applied; only the author edits or deletes (the sender the pairwise
// session authenticated); only members react; a removed member's actions
// are refused.
func TestGroupActions(t *testing.T) {
	alice := startNode(t, newHome(t, "alice"))
	bob := startNode(t, newHome(t, "bob"))
	carol := startNode(t, newHome(t, "carol"))
	trustEachOther(t, alice, bob, carol)
	gi, err := alice.Groups().Create("team", []peer.ID{bob.ID(), carol.ID()})
	if err != nil {
		t.Fatal(err)
	}
	id := gi.ID
	for _, tn := range []*testNode{bob, carol} {
		tn.waitGroup(id, "the group", func(g node.GroupInfo) bool { return g.Member })
	}
	m := bob.groupSend(id, "lunch at noon?")
	alice.waitGroupMessage(m.ID)
	carol.waitGroupMessage(m.ID)

	// A reply.
	r, err := carol.Messages().Reply(m.ID, "yes")
	if err != nil {
		t.Fatal(err)
	}
	for _, tn := range []*testNode{alice, bob} {
		got := tn.waitGroupMessage(r.ID)
		if got.ReplyTo != m.ID || got.Group != store.GroupID(id) || got.Peer != carol.ID() {
			t.Fatalf("%s got the reply as %+v", tn.ID(), got)
		}
	}

	// Bob edits his message.
	edit, _, err := bob.Messages().Edit(m.ID, "lunch at one?")
	if err != nil {
		t.Fatal(err)
	}
	for _, tn := range []*testNode{alice, carol} {
		if got := tn.waitActionUpdate(m.ID, edit.ID); got.Body != "lunch at one?" || got.Edited.IsZero() {
			t.Fatalf("%s sees the edit as %+v", tn.ID(), got)
		}
	}

	// Carol reacts; alice too.
	react, _, err := carol.Messages().React(m.ID, "👍")
	if err != nil {
		t.Fatal(err)
	}
	alice.waitActionUpdate(m.ID, react.ID)
	got := bob.waitActionUpdate(m.ID, react.ID)
	if len(got.Reactions) != 1 || got.Reactions[0].From != carol.ID() || got.Reactions[0].Emoji != "👍" {
		t.Fatalf("bob sees the reactions %+v", got.Reactions)
	}

	// Carol cannot edit bob's message: her node refuses, and forced,
	// every member refuses it.
	if _, _, err := carol.Messages().Edit(m.ID, "lunch cancelled"); err == nil {
		t.Fatal("carol edited bob's message")
	}
	forged := store.Message{ID: e2e.NewMessageID(), Peer: alice.ID(), SentAt: time.Now(), Kind: store.KindEdit,
		Target: m.ID, Body: "lunch cancelled", Group: store.GroupID(id), Stream: 7, Number: 1}
	if err := carol.WriteTextForTest(forged); err != nil {
		t.Fatal(err)
	}
	alice.waitFor("carol's edit of bob's message refused", func(e node.Event) bool {
		return e.Kind == node.EventError && e.PeerID == carol.ID() && strings.Contains(e.Err, store.ErrNotYours.Error())
	})
	if got := groupMsg(t, alice, id, m.ID); got.Body != "lunch at one?" {
		t.Fatalf("alice's copy reads %q", got.Body)
	}

	// Bob deletes it: gone for everyone, reactions too.
	del, _, err := bob.Messages().Delete(m.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, tn := range []*testNode{alice, carol} {
		if got := tn.waitActionUpdate(m.ID, del.ID); !got.Deleted || got.Body != "" || len(got.Reactions) != 0 {
			t.Fatalf("%s sees the deletion as %+v", tn.ID(), got)
		}
	}

	// Carol is removed; her reaction, forced, is refused.
	m2 := alice.groupSend(id, "carol, bye")
	carol.waitGroupMessage(m2.ID)
	if _, err := alice.Groups().Remove(id, carol.ID()); err != nil {
		t.Fatal(err)
	}
	carol.waitGroup(id, "her removal", func(g node.GroupInfo) bool { return !g.Member })
	bob.waitGroup(id, "carol's removal", func(g node.GroupInfo) bool { return len(g.Members) == 2 })
	if _, _, err := carol.Messages().React(m2.ID, "😢"); err == nil {
		t.Fatal("a removed member reacted")
	}
	forcedReact := store.Message{ID: e2e.NewMessageID(), Peer: alice.ID(), SentAt: time.Now(), Kind: store.KindReact,
		Target: m2.ID, Emoji: "😢", Group: store.GroupID(id), Stream: 7, Number: 2}
	if err := carol.WriteTextForTest(forcedReact); err != nil {
		t.Fatal(err)
	}
	alice.waitFor("the removed member's reaction refused", func(e node.Event) bool {
		return e.Kind == node.EventError && e.PeerID == carol.ID() && strings.Contains(e.Err, "not a member")
	})
	if got := groupMsg(t, alice, id, m2.ID); len(got.Reactions) != 0 {
		t.Fatalf("alice's message has reactions %+v", got.Reactions)
	}
	// Actions are not in the history.
	if got := groupBodies(t, bob, id); !slices.Equal(got, []string{"", "yes", "carol, bye"}) {
		t.Fatalf("bob's history: %q", got)
	}
}
