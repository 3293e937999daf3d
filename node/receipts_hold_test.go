package node_test

import (
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/group"
	"github.com/certchat/certchat/internal/testproc"
	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Receipts of group envelopes held and written together by the member
// (PROTOCOL §14.6, node/receipts_hold.go), on real nodes over loopback.

// holdPair is alice, who sends, and bob, the member of her group, with
// the group's creation and a first message acknowledged and bob holding
// no receipt.
func holdPair(t *testing.T) (alice, bob *testNode, gid group.ID) {
	t.Helper()
	alice = startNode(t, newHome(t, "alice"))
	bob = startNode(t, newHome(t, "bob"))
	trustEachOther(t, alice, bob)
	return alice, bob, heldGroup(t, "held", alice, bob)
}

// heldGroup has alice make a group name with bob and send it a first
// message, acknowledged: alice has written everything she had for bob
// (the group's creation, perhaps twice at first contact) before it, and
// bob acknowledged all of it and holds no receipt.
func heldGroup(t *testing.T, name string, alice, bob *testNode) group.ID {
	t.Helper()
	gi, err := alice.Groups().Create(name, []peer.ID{bob.ID()})
	if err != nil {
		t.Fatal(err)
	}
	bob.waitGroup(gi.ID, "the new group", func(g node.GroupInfo) bool { return g.Member })
	alice.waitGroupDelivered(alice.groupSend(gi.ID, "first"))
	eventually(t, "bob's receipts so far are written", func() bool { return bob.HeldReceiptsForTest(alice.ID()) == 0 })
	return gi.ID
}

// TestReceiptsHeldForGroupCopies: bob acknowledges alice's group copies
// in fewer writes than copies: when 40 are held, when the envelopes they
// acknowledge reach 16 KiB, and when 200 ms have passed since the first.
// Without the hold, each copy costs bob a write.
func TestReceiptsHeldForGroupCopies(t *testing.T) {
	t.Run("count", func(t *testing.T) {
		alice, bob, gid := holdPair(t)
		bob.SetReceiptHoldForTest(time.Hour) // only the count writes them
		w0 := bob.ReceiptWritesForTest()
		var sent []store.GroupMessage
		for i := range 40 {
			sent = append(sent, alice.groupSend(gid, strings.Repeat("c", i+1)))
		}
		for _, m := range sent {
			alice.waitGroupDelivered(m)
		}
		if got := bob.ReceiptWritesForTest() - w0; got != 1 {
			t.Errorf("40 receipts in %d writes, want 1", got)
		}
		if k := bob.HeldReceiptsForTest(alice.ID()); k != 0 {
			t.Errorf("%d receipts still held", k)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		alice, bob, gid := holdPair(t)
		bob.SetReceiptHoldForTest(time.Hour) // only the size writes them
		w0 := bob.ReceiptWritesForTest()
		const body = 2900 // 16 KiB are 5 such envelopes and a part of the 6th
		var sent []store.GroupMessage
		for bob.ReceiptWritesForTest() == w0 {
			if len(sent) == 6 {
				t.Fatalf("%d envelopes of %d bytes acknowledged, none written", len(sent), body)
			}
			m := alice.groupSend(gid, strings.Repeat("b", body))
			bob.waitGroupMessage(m.ID)
			sent = append(sent, m)
			eventually(t, "bob holds or wrote the receipt", func() bool {
				return bob.HeldReceiptsForTest(alice.ID()) == len(sent) || bob.ReceiptWritesForTest() > w0
			})
		}
		if len(sent) < 5 {
			t.Errorf("written after %d envelopes of %d bytes, want 16 KiB of them", len(sent), body)
		}
		for _, m := range sent {
			alice.waitGroupDelivered(m)
		}
		if got := bob.ReceiptWritesForTest() - w0; got != 1 {
			t.Errorf("%d receipts in %d writes, want 1", len(sent), got)
		}
	})
	t.Run("time", func(t *testing.T) {
		alice, bob, gid := holdPair(t)
		w0 := bob.ReceiptWritesForTest()
		const n = 10
		var sent []store.GroupMessage
		for i := range n {
			sent = append(sent, alice.groupSend(gid, strings.Repeat("t", i+1)))
		}
		for _, m := range sent {
			alice.waitGroupDelivered(m)
		}
		// A burst of 10 reaches bob within a few hold periods even under
		// -race on a busy machine.
		if got := bob.ReceiptWritesForTest() - w0; got > n/2 {
			t.Errorf("%d receipts in %d writes, want them held together", n, got)
		}
	})
}

// TestReceiptsDirectNotHeld: the receipt of a 1:1 message is written at
// once, whatever the hold.
func TestReceiptsDirectNotHeld(t *testing.T) {
	alice, bob, _ := holdPair(t)
	bob.SetReceiptHoldForTest(time.Hour)
	for i := range 3 {
		w0 := bob.ReceiptWritesForTest()
		m := alice.send(bob.ID(), strings.Repeat("d", i+1))
		alice.waitDelivered(m)
		if got := bob.ReceiptWritesForTest() - w0; got != 1 {
			t.Errorf("message %d: %d receipt writes, want 1", i, got)
		}
		if k := bob.HeldReceiptsForTest(alice.ID()); k != 0 {
			t.Errorf("message %d: %d receipts held", i, k)
		}
	}
}

// TestReceiptsHeldWrittenOnClose: a member that closes writes the
// receipts it holds first; the sender has them although the member is
// gone. Without that, the copy would wait for the member's return.
func TestReceiptsHeldWrittenOnClose(t *testing.T) {
	alice, bob, gid := holdPair(t)
	bob.SetReceiptHoldForTest(time.Hour)
	m := alice.groupSend(gid, "before closing")
	eventually(t, "bob holds the receipt", func() bool { return bob.HeldReceiptsForTest(alice.ID()) == 1 })
	if got, err := alice.Groups().Delivery(m.ID); err != nil || got.Delivered() != 0 {
		t.Fatalf("delivered to %d before the receipt was written (%v)", got.Delivered(), err)
	}
	if err := bob.Close(); err != nil {
		t.Fatal(err)
	}
	alice.waitGroupDelivered(m)
}

// TestReceiptsHeldLostWithSession: a session that dies loses the receipts
// it holds, and nothing else: the sender writes the copy again on the
// next session, the member stores it once and acknowledges it again, at
// once: a copy come again means its receipt was lost, and held for an
// hour, as here, it would wait for another. That happens when the sender
// moves a relayed chat to a direct connection and the member's side of
// the relayed session ends before its direct one is there to take the
// held receipts (TestReceiptsHeldMoveToDirect, "sender moves").
func TestReceiptsHeldLostWithSession(t *testing.T) {
	alice, bob, gid := holdPair(t)
	bob.SetReceiptHoldForTest(time.Hour)
	m := alice.groupSend(gid, "lost receipt")
	bob.waitGroupMessage(m.ID)
	eventually(t, "bob holds the receipt", func() bool { return bob.HeldReceiptsForTest(alice.ID()) == 1 })
	w0 := bob.ReceiptWritesForTest()
	if err := bob.Host().Network().ClosePeer(alice.ID()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "bob's session with alice ended", func() bool { return bob.HeldReceiptsForTest(alice.ID()) == 0 })
	alice.waitGroupDelivered(m)
	if got := bob.ReceiptWritesForTest() - w0; got < 1 {
		t.Errorf("delivered with %d receipt writes after the session died", got)
	}
	// Stored once: the copy written again is a duplicate.
	bob.quiet(300*time.Millisecond, "the message again", func(e node.Event) bool {
		return e.Kind == node.EventMessage && e.Message.ID == m.ID
	})
	h, err := bob.Groups().History(gid, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for _, x := range h {
		if x.ID == m.ID {
			n++
		}
	}
	if n != 1 {
		t.Errorf("bob's history holds the message %d times", n)
	}
}

// TestReceiptsHeldMoveToDirect: when a relayed chat moves to a direct
// connection, the receipts the member holds on the relayed session reach
// the sender, whichever side moves the chat (the one with the smaller
// peer ID, §16.5): the member writes them before closing the relayed
// session, or, when the sender closes it, on the new direct session.
// Held for an hour, a receipt lost with the relayed session would leave
// the copy undelivered: written again on the direct session, its new
// receipt would be held there.
func TestReceiptsHeldMoveToDirect(t *testing.T) {
	for _, mover := range []string{"sender", "member"} {
		t.Run(mover+" moves", func(t *testing.T) {
			r := testproc.StartRelay(t, testproc.RelayOptions{})
			alice := relayOnly(t, "alice", r.Addr, nil)
			bob := relayOnly(t, "bob", r.Addr, nil)
			if (alice.ID() < bob.ID()) != (mover == "sender") {
				alice, bob = bob, alice // alice sends, bob is the member
			}
			linkThroughRelay(t, alice, bob)
			gid := heldGroup(t, "moving", alice, bob)
			bob.SetReceiptHoldForTest(time.Hour)
			m := alice.groupSend(gid, "held across the move")
			eventually(t, "bob holds the receipt", func() bool { return bob.HeldReceiptsForTest(alice.ID()) == 1 })

			connectDirect(t, bob, alice)
			alice.waitGroupDelivered(m)
		})
	}
}
