package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/group"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// changeUnsent has on make n renames of group id that no member is sent
// (as if a member missed their frames: restored from an old backup, say).
func changeUnsent(t *testing.T, on *offNode, id group.ID, n int) {
	t.Helper()
	on.groups.mu.Lock()
	l := on.groups.logs[id]
	for i := range n {
		c, err := l.Propose(on.groups.id.Signer(), group.OpRename, "", fmt.Sprint("missed ", i), time.Now())
		if err == nil {
			err = l.Add(c)
		}
		if err != nil {
			on.groups.mu.Unlock()
			t.Fatal(err)
		}
	}
	changes := l.Changes()
	on.groups.mu.Unlock()
	if err := on.store.Groups().PutGroupChanges(store.GroupID(id), changes); err != nil {
		t.Fatal(err)
	}
}

// A member who missed more changes than the newest frame holds cannot
// place that frame's changes; it asks the frame's sender, which sends it
// the whole log, and it ends at the version the sender holds. Without
// the ask it stays at the version before the gap.
func TestGroupWantFillsGap(t *testing.T) {
	alice := offNewNode(t, "alice", nil, true)
	bob := offNewNode(t, "bob", nil, true)
	offLink(t, alice, bob)
	id := offGroup(t, alice, bob)
	changeUnsent(t, alice, id, 300)
	gi, err := alice.Groups().Rename(id, "after the gap")
	if err != nil {
		t.Fatal(err)
	}
	bob.offWait("the log after the gap", groupEv(id, func(g GroupInfo) bool {
		return g.Version == gi.Version && g.Name == "after the gap"
	}))
}

// A group-want is answered only for a member of the group as the
// answerer holds it, only if it names a change the answerer has, and at
// most once a member every wantEvery; an answer is the whole log, in
// frames oldest first.
func TestGroupWantAnswered(t *testing.T) {
	alice := offNewNode(t, "alice", nil, true)
	_, carol := testKey(t) // a member who is away: what alice sends her stays queued
	gi, err := alice.Groups().Create("team", []peer.ID{carol})
	if err != nil {
		t.Fatal(err)
	}
	id := gi.ID
	changeUnsent(t, alice, id, 300)
	alice.groups.mu.Lock()
	create, last := alice.groups.logs[id].Changes()[0], alice.groups.logs[id].Heads()[0]
	alice.groups.mu.Unlock()
	queued := func() int {
		msgs, err := alice.store.Outbox(carol)
		if err != nil {
			t.Fatal(err)
		}
		return len(msgs)
	}
	before := queued() // the create
	want := func(h [32]byte) e2e.GroupWant { return e2e.GroupWant{Group: id, Hashes: [][32]byte{h}} }

	for _, tc := range []struct {
		name  string
		from  peer.ID
		w     e2e.GroupWant
		sends int // frames queued for carol
	}{
		{"a stranger's", "mallory", want(last), 0},
		{"a change alice lacks", carol, want([32]byte{1}), 0},
		{"another group", carol, e2e.GroupWant{Group: [32]byte{9}, Hashes: [][32]byte{last}}, 0},
		{"carol's", carol, want(last), 2},
		{"carol's again, too soon", carol, want(group.HashOf(create)), 0},
	} {
		n := queued()
		alice.groups.wants.answer(tc.from, tc.w)
		if got := queued() - n; got != tc.sends {
			t.Errorf("%s: %d frames queued for carol, want %d", tc.name, got, tc.sends)
		}
	}
	if msgs, _ := alice.store.Outbox("mallory"); len(msgs) != 0 {
		t.Errorf("%d frames queued for mallory", len(msgs))
	}
	if queued() != before+2 {
		t.Fatalf("%d queued for carol, want %d", queued(), before+2)
	}
}

// The same through mailboxes, each end offline in turn: bob gets the
// frame he cannot place from his mailbox while alice is away, so his ask
// waits in hers; she answers when she comes back.
func TestGroupWantThroughMailboxes(t *testing.T) {
	relayAddr, _ := offRelay(t)
	aliceHome, aliceID := offHome(t, "alice")
	bobHome, bobID := offHome(t, "bob")
	alice := offNodeAt(t, aliceHome, aliceID, []string{relayAddr}, true)
	bob := offNodeAt(t, bobHome, bobID, []string{relayAddr}, true)
	for _, n := range []*offNode{alice, bob} {
		n.offRegistered()
	}
	offLink(t, alice, bob)
	id := offGroup(t, alice, bob)
	changeUnsent(t, alice, id, 300)

	bob.Close()
	gi, err := alice.Groups().Rename(id, "after the gap")
	if err != nil {
		t.Fatal(err)
	}
	alice.offWait("the frame of the rename queued at bob's mailbox", func(e Event) bool {
		return e.Kind == EventStatus && e.Message.Peer == bob.ID() && e.Message.Group == store.GroupID(id) &&
			e.Message.Status == store.StatusQueued && len(e.Message.GroupChanges) > 1 // not the create's, sent again
	})
	alice.Close()
	bob = offNodeAt(t, bobHome, bobID, []string{relayAddr}, true)
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		bob.groups.mu.Lock()
		lacks := len(bob.groups.logs[id].Missing()) > 0
		bob.groups.mu.Unlock()
		if lacks {
			break // the frame from his mailbox, which he cannot place
		}
		if time.Now().After(deadline) {
			t.Fatal("bob did not get the frame from his mailbox")
		}
	}
	offNodeAt(t, aliceHome, aliceID, []string{relayAddr}, true) // alice back: she fetches the want and answers
	bob.offWait("the log after the gap", groupEv(id, func(g GroupInfo) bool {
		return g.Version == gi.Version && g.Name == "after the gap"
	}))
}
