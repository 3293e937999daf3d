package node_test

import (
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestGroupMessageIDSquatted: mal, a member, got bob's group message X
// before carol did (each member's copy travels on its own path) and
// sends carol a message of its own under X. When bob's copy of X comes,
// carol must not take it for a copy she already has and drop it without
// a word: she refuses it and says why, naming the clash. The same when
// the order is the other way (mal's copy second).
func TestGroupMessageIDSquatted(t *testing.T) {
	alice := startNode(t, newHome(t, "alice"))
	bob := startNode(t, newHome(t, "bob"))
	carol := startNode(t, newHome(t, "carol"))
	mal := startNode(t, newHome(t, "mal"))
	trustEachOther(t, alice, bob, carol, mal)
	gi, err := alice.Groups().Create("team", []peer.ID{bob.ID(), carol.ID(), mal.ID()})
	if err != nil {
		t.Fatal(err)
	}
	for _, tn := range []*testNode{bob, carol, mal} {
		tn.waitGroup(gi.ID, "the new group", func(g node.GroupInfo) bool { return g.Member })
	}
	for _, tn := range []*testNode{bob, mal} { // pairwise sessions first
		tn.waitDelivered(tn.send(carol.ID(), "hi carol"))
	}
	write := func(from *testNode, id e2e.MessageID, body string) {
		t.Helper()
		m := store.Message{ID: id, Peer: carol.ID(), SentAt: time.Now(), Body: body, Group: store.GroupID(gi.ID)}
		if err := from.WriteTextForTest(m); err != nil {
			t.Fatal(err)
		}
	}
	clash := func(first, second *testNode) {
		t.Helper()
		x := e2e.NewMessageID()
		write(first, x, "first under "+x.String())
		if got := carol.waitGroupMessage(x); got.Peer != first.ID() {
			t.Fatalf("carol's message %s is from %s, want %s", x, got.Peer, first.ID())
		}
		write(second, x, "second under "+x.String())
		carol.waitFor("the clash reported", func(e node.Event) bool {
			return e.Kind == node.EventError && e.PeerID == second.ID() && strings.Contains(e.Err, "taken")
		})
	}
	clash(mal, bob)
	clash(bob, mal)
	// Both second copies were acknowledged (refused, not left to be sent
	// again forever), and carol still talks with both.
	m := bob.groupSend(gi.ID, "after the clash")
	carol.waitGroupMessage(m.ID)
	m = mal.groupSend(gi.ID, "mal after the clash")
	carol.waitGroupMessage(m.ID)
}
