package node

import (
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/internal/testproc"
	"github.com/certchat/certchat/store"
)

// Mailboxes on more than one relay: the sender deposits at each of the
// recipient's relays, so losing one with queued messages loses none.

// mbAllRegistered waits until on's mailbox is registered at every relay.
func (on *offNode) mbAllRegistered() {
	on.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		rs, all := on.Relays(), true
		for _, r := range rs {
			all = all && r.Mailbox && r.PrekeysEC > 0
		}
		if all && len(rs) > 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	on.t.Fatalf("mailbox not registered everywhere: %+v", on.Relays())
}

// Alice and bob both use relays R1 and R2. Bob goes offline; alice sends
// three messages, which are queued, and goes offline too; the relay she
// would have deposited at first is killed; bob comes back and every
// message arrives, from the other relay, once.
func TestMailboxOnTwoRelaysSurvivesLosingOne(t *testing.T) {
	r1 := testproc.StartRelay(t, testproc.RelayOptions{})
	r2 := testproc.StartRelay(t, testproc.RelayOptions{})
	relays := []string{r1.Addr, r2.Addr}
	byID := map[string]*testproc.Relay{r1.Info.ID.String(): r1, r2.Info.ID.String(): r2}

	alice := offNewNode(t, "alice", relays, true)
	bh := identity.Home{Dir: t.TempDir()}
	bid, err := bh.Init("bob", nil, identity.DefaultKDF, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	bob := offNodeAt(t, bh, bid, relays, true)
	alice.mbAllRegistered()
	bob.mbAllRegistered()
	offLink(t, alice, bob)

	bobID := bob.ID()
	if err := bob.Close(); err != nil {
		t.Fatal(err)
	}
	alice.offWait("bob offline", func(e Event) bool {
		return e.Kind == EventPeer && e.Peer.ID == bobID && !e.Peer.Online
	})
	var sent []e2e.MessageID
	for _, text := range []string{"one", "two", "three"} {
		m, err := alice.Send(bobID, text)
		if err != nil {
			t.Fatal(err)
		}
		alice.offWait("queued: "+text, func(e Event) bool {
			return e.Kind == EventStatus && e.Message.ID == m.ID && e.Message.Status == store.StatusQueued
		})
		sent = append(sent, m.ID)
	}
	theirs := alice.mail.relaysOf(bobID)
	if theirs.theirs != 2 {
		t.Fatalf("bob's relays as alice knows them: %+v", theirs)
	}
	// Alice goes offline too: the messages can come only from the mailboxes.
	if err := alice.Close(); err != nil {
		t.Fatal(err)
	}
	victim := byID[theirs.all[0].String()]
	victim.Kill()

	bob = offNodeAt(t, bh, bid, relays, true)
	for _, id := range sent {
		bob.offWait("a queued message", offIsMessage(id))
	}
	time.Sleep(500 * time.Millisecond) // a second copy would come now
	for _, id := range sent {
		if n := bob.offCount(alice.ID(), id); n != 1 {
			t.Fatalf("message %v stored %d times", id, n)
		}
	}
}
