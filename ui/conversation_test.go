package ui

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/store"
	"github.com/gdamore/tcell/v2"
	"github.com/libp2p/go-libp2p/core/peer"
)

// An own message to a peer who is offline (and no relay) says it waits
// for them, then "✓ delivered" once the peer is up and stored it.
func TestDeliveryStates(t *testing.T) {
	t.Parallel()
	alice, bob := newPeer(t, "alice", 0), newPeer(t, "bob", 0)
	alice.pin(bob.peerID(), "bob", identity.StateTOFU)
	bob.pin(alice.peerID(), "alice", identity.StateTOFU)
	w := openWindow(t, alice.start(), 80, 24, Options{})
	w.tabUntil(" bob  unverified")
	w.enter("are you there?")
	w.waitText("me: are you there?  waiting: bob is offline")
	bob.start()
	introduce(alice, bob)
	w.waitText("me: are you there?  ✓ delivered")
	if h, err := bob.n.History(alice.peerID(), 0, 10); err != nil || len(h) != 1 || h[0].Body != "are you there?" {
		t.Fatalf("bob's history: %+v, %v", h, err)
	}
}

// Messages to chats that are not open count as unread, in the chat list
// and the status bar; Alt+A opens the next unread chat and clears it.
func TestUnreadCounts(t *testing.T) {
	t.Parallel()
	alice, bob, carol := newPeer(t, "alice", 0), newPeer(t, "bob", 0), newPeer(t, "carol", 0)
	for _, p := range []*testPeer{bob, carol} {
		alice.pin(p.peerID(), p.id.Name(), identity.StateTOFU)
		p.pin(alice.peerID(), "alice", identity.StateTOFU)
	}
	alice.start()
	carol.start()
	introduce(carol, alice)
	w := openWindow(t, alice.n, 80, 24, Options{})
	w.tabUntil(" bob  ")
	for i := 1; i <= 3; i++ {
		if _, err := carol.n.Send(alice.peerID(), fmt.Sprintf("ping %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	s := w.waitText("carol", " 3 ", "3 unread: Alt+A")
	if x, y, ok := w.find(" 3 "); !ok || x > 30 || !strings.Contains(strings.Split(s, "\n")[y], "carol") {
		t.Fatalf("the unread count is not on carol's row:\n%s", s)
	}
	w.key(tcell.KeyRune, 'a', tcell.ModAlt)
	w.waitText(" carol  unverified", "carol: ping 1", "carol: ping 3")
	w.waitGone("unread: Alt+A")
	waitUnread(t, alice.n, carol.peerID(), 0)
}

// waitUnread waits for the store's unread count of p's conversation.
func waitUnread(t *testing.T, n *node.Node, p peer.ID, want int) {
	t.Helper()
	for i := 0; ; i++ {
		convs, err := n.Conversations()
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range convs {
			if c.Peer == p && c.Unread == want {
				return
			}
		}
		if i > 2000 {
			t.Fatalf("unread count of %s never became %d: %+v", p, want, convs)
		}
		sleepTick()
	}
}

// countingBackend is a real node that counts history reads.
type countingBackend struct {
	*node.Node
	pages atomic.Int32
}

func (c *countingBackend) History(p peer.ID, before uint64, limit int) ([]store.Message, error) {
	c.pages.Add(1)
	return c.Node.History(p, before, limit)
}

// History loads a page at a time: opening shows the newest page only;
// PgUp reads older pages as they come into view, down to the start.
func TestHistoryPagesLazily(t *testing.T) {
	t.Parallel()
	alice, bob := newPeer(t, "alice", 0), newPeer(t, "bob", 0)
	alice.pin(bob.peerID(), "bob", identity.StateTOFU)
	var ms []*store.Message
	for i := 0; i < 300; i++ {
		ms = append(ms, msg(bob.peerID(), store.Incoming, testNow.Add(-300*60e9+60e9*time.Duration(i)), fmt.Sprintf("message %03d", i), ""))
	}
	alice.fill(ms...)
	b := &countingBackend{Node: alice.start()}
	w := openWindow(t, b, 80, 24, Options{PageSize: 50})
	w.waitText("bob: message 299")
	var loaded int
	w.do(func() { loaded = len(w.u.conv.stored) })
	if loaded > 100 || b.pages.Load() > 2 {
		t.Fatalf("opening read %d messages in %d pages", loaded, b.pages.Load())
	}
	// The wheel scrolls too.
	before := w.text()
	x, y, _ := w.find("bob: message 299")
	w.scr.InjectMouse(x, y, tcell.WheelUp, tcell.ModNone)
	w.waitFor("the wheel to scroll", func(s string) bool { return s != before })
	for i := 0; i < 100; i++ {
		s := w.text()
		if strings.Contains(s, "This is the start of your conversation with bob.") {
			if !strings.Contains(s, "bob: message 000") {
				t.Fatalf("the start shows without the first message:\n%s", s)
			}
			if got := b.pages.Load(); got < 6 || got > 8 {
				t.Fatalf("read %d pages for 300 messages of 50", got)
			}
			w.key(tcell.KeyPgDn, 0, tcell.ModNone)
			return
		}
		w.key(tcell.KeyPgUp, 0, tcell.ModNone)
		w.waitFor("a scroll", func(s2 string) bool { return s2 != s || strings.Contains(s2, "loading") })
	}
	t.Fatal("PgUp never reached the start of the conversation")
}
