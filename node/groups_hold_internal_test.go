package node

import (
	"crypto/ed25519"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/group"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

func testKey(t testing.TB) (ed25519.PrivateKey, peer.ID) {
	t.Helper()
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := identity.PeerIDFromKey(key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return key, p
}

// Held messages whose sender's add and removal arrive together are
// dropped with the reason; one whose sender's add arrives is stored.
func TestGroupHeldReleasedOrDropped(t *testing.T) {
	bob := offNewNode(t, "bob", nil, true)
	aliceKey, alice := testKey(t)
	_, erin := testKey(t)
	_, dave := testKey(t)
	now := time.Now()
	l := handCreate(t, bob, aliceKey, alice, "team", bob.ID())
	id := l.ID()
	bob.offWait("the group", groupEv(id, func(g GroupInfo) bool { return g.Member }))

	msg := func(from peer.ID, body string) store.GroupMessage {
		return store.GroupMessage{Group: store.GroupID(id), ID: e2e.NewMessageID(), From: from, SentAt: now, Body: body, Stream: 1, Number: 1}
	}
	if err := bob.groups.mayPost(erin, store.GroupID(id)); err == nil || !strings.Contains(err.Error(), "not a member of the group yet") {
		t.Fatalf("a stranger's message: %v, want to hold it", err)
	}
	bob.groups.held.hold(erin, msg(erin, "from erin"))
	md := msg(dave, "from dave")
	bob.groups.held.hold(dave, md)
	bob.groups.held.hold(dave, md) // the same message again is held once
	if n := bob.heldCountForTest(); n != 2 {
		t.Fatalf("%d held, want 2", n)
	}

	change := func(op group.Op, p peer.ID) {
		c, err := l.Propose(aliceKey, op, p, "", now)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	change(group.OpAdd, erin)
	change(group.OpRemove, erin)
	bob.groups.receive(alice, e2e.GroupChanges{ID: e2e.NewMessageID(), Group: id, Changes: l.Changes()})
	bob.offWait("erin's message dropped", func(e Event) bool {
		return e.Kind == EventError && e.PeerID == erin && strings.Contains(e.Err, "do not make them one")
	})
	if n := bob.heldCountForTest(); n != 1 {
		t.Fatalf("%d held, want dave's", n)
	}
	// Once erin is known as removed, her messages are refused at once.
	if err := bob.groups.mayPost(erin, store.GroupID(id)); err == nil || strings.Contains(err.Error(), "yet") {
		t.Fatalf("a removed member's message: %v, want refused", err)
	}

	change(group.OpAdd, dave)
	bob.groups.receive(alice, e2e.GroupChanges{ID: e2e.NewMessageID(), Group: id, Changes: l.Changes()})
	bob.offWait("dave's message", offIsMessage(md.ID))
	if n := bob.heldCountForTest(); n != 0 {
		t.Fatalf("%d held", n)
	}
}

// The hold is bounded per group. One message too many is neither held
// nor acknowledged: its sender tries again later. Held messages are
// acknowledged only once decided.
func TestGroupHoldBounded(t *testing.T) {
	bob := offNewNode(t, "bob", nil, true)
	acked := recordHoldAcks(bob)
	aliceKey, alice := testKey(t)
	_, erin := testKey(t)
	id := strangerCreate(t, bob, aliceKey, alice, "team", bob.ID())
	for i := range maxHeldPerGroup + 1 {
		bob.groups.held.hold(erin, store.GroupMessage{Group: store.GroupID(id), ID: e2e.NewMessageID(), From: erin, Body: "x", Number: uint64(i + 1)})
	}
	if n := bob.heldCountForTest(); n != maxHeldPerGroup {
		t.Fatalf("%d held, want %d", n, maxHeldPerGroup)
	}
	if n := len(acked()); n != 0 {
		t.Fatalf("%d messages acknowledged while held or refused for room", n)
	}
	for _, e := range bob.offEvents(100 * time.Millisecond) {
		if e.Kind == EventError {
			t.Fatalf("an error event for a message left to its sender's next try: %s", e.Err)
		}
	}
}

// recordHoldAcks makes n's hold record the messages it acknowledges
// instead of sending their receipts; the function returned lists them.
func recordHoldAcks(n *offNode) func() map[e2e.MessageID]bool {
	var mu sync.Mutex
	acked := map[e2e.MessageID]bool{}
	n.groups.held.ack = func(_ peer.ID, id e2e.MessageID) {
		mu.Lock()
		defer mu.Unlock()
		acked[id] = true
	}
	return func() map[e2e.MessageID]bool {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(acked)
	}
}

func (n *Node) heldCountForTest() int {
	n.groups.held.mu.Lock()
	defer n.groups.held.mu.Unlock()
	return n.groups.held.count
}
