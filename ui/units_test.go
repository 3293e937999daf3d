package ui

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/group"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/store"
	"github.com/gdamore/tcell/v2"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/rivo/tview"
)

func TestDeliveryText(t *testing.T) {
	for st, want := range map[store.Status]string{
		store.StatusSending: "sending…", store.StatusSent: "sent", store.StatusQueued: "queued at relay",
		store.StatusDelivered: "✓ delivered", store.StatusFailed: "✗ failed: no route[2J", // the escape character is gone
	} {
		got, _ := deliveryText(store.Message{Direction: store.Outgoing, Status: st, Error: "no route\x1b[2J"})
		if got != want {
			t.Errorf("%s: %q, want %q", st, got, want)
		}
	}
	if got, _ := deliveryText(store.Message{Direction: store.Incoming, Status: store.StatusReceived}); got != "" {
		t.Errorf("incoming message has a delivery state %q", got)
	}
}

func TestTrustTitle(t *testing.T) {
	for _, tc := range []struct {
		info node.PeerInfo
		want string
		tone tone
	}{
		{node.PeerInfo{Trust: identity.StateCAVerified, Issuer: "Acme Root"}, "verified: issued by Acme Root", toneGood},
		{node.PeerInfo{Trust: identity.StateVerified}, "verified: fingerprint compared", toneGood},
		{node.PeerInfo{Trust: identity.StateTOFU}, "unverified: trusted on first use", toneWarn},
		{node.PeerInfo{Trust: identity.StateChanged}, "KEY CHANGED", toneBad},
		{node.PeerInfo{Trust: identity.StateUnknown}, "unknown: not in your contacts", toneWarn},
		{node.PeerInfo{Trust: identity.StateUntrusted}, "blocked: you rejected this key", toneBad},
		{node.PeerInfo{Trust: identity.StateUntrusted, Reason: "replaced: you accepted a new key for bob"}, "replaced: you accepted a new key for bob", toneWarn},
	} {
		if got, tn := trustTitle(tc.info); got != tc.want || tn != tc.tone {
			t.Errorf("%s: %q (%d), want %q (%d)", tc.info.Trust, got, tn, tc.want, tc.tone)
		}
	}
}

func TestExpiryNote(t *testing.T) {
	for _, tc := range []struct {
		left time.Duration
		want string
		tone tone
	}{
		{-time.Hour, "certificate EXPIRED 14 Mar 2025", toneBad},
		{time.Hour, "certificate expires today", toneWarn},
		{10 * 24 * time.Hour, "certificate expires in 10 days", toneWarn},
		{30 * 24 * time.Hour, "certificate expires in 30 days", toneWarn},
		{31 * 24 * time.Hour, "", toneNone},
	} {
		if got, tn := expiryNote(testNow.Add(tc.left), testNow); got != tc.want || tn != tc.tone {
			t.Errorf("%v left: %q (%d), want %q (%d)", tc.left, got, tn, tc.want, tc.tone)
		}
	}
}

func TestListenAndRelayText(t *testing.T) {
	id := "/p2p/12D3KooWDd18VNaZUpKfLFeATbMJgwKDJVUwPXRRNoMWxNdq7E4d"
	addrs := []string{"/ip4/127.0.0.1/tcp/4001" + id, "/ip4/192.168.1.5/udp/4001/quic-v1" + id,
		"/ip4/192.168.1.5/tcp/4001" + id, "/ip6/::1/tcp/4002" + id}
	if got := listenText(addrs); got != "listening on 192.168.1.5:4001 (+3)" {
		t.Errorf("listenText: %q", got)
	}
	if got := listenText([]string{"/ip4/203.0.113.9/tcp/4001/p2p/QmRelay/p2p-circuit" + id}); got != "reachable via relay" {
		t.Errorf("relayed only: %q", got)
	}
	if got := listenText(nil); got != "not listening" {
		t.Errorf("no addresses: %q", got)
	}
	rs := []node.RelayInfo{{Addr: "/dns4/relay.example/tcp/4001/p2p/QmRelay", Reserved: true, Expires: testNow.Add(time.Hour)},
		{Addr: "/ip4/198.51.100.7/tcp/4001/p2p/QmOther", Err: "reservation refused\n[red]"}}
	if got := relayText(rs); got != "relay: 1 of 2 reserved" {
		t.Errorf("relayText: %q", got)
	}
	if got := relayText(rs[:1]); got != "relay reserved" {
		t.Errorf("relayText: %q", got)
	}
	if got := relayText(nil); got != "no relay" {
		t.Errorf("relayText: %q", got)
	}
	u := &commands{UI: &UI{opts: Options{Location: time.UTC}}}
	report := u.relayReport(rs)
	for _, want := range []string{"relay.example", "[green]reserved[-] until 10:30", "[red]not reserved[-]: reservation refused [red[]."} {
		if !strings.Contains(report, want) {
			t.Errorf("relay report lacks %q:\n%s", want, report)
		}
	}
}

// A node error event reads as a sentence naming the peer, in the window.
func TestNodeErrorsAreSentences(t *testing.T) {
	t.Parallel()
	alice, bob := newPeer(t, "alice", 0), newPeer(t, "bob", 0)
	alice.pin(bob.peerID(), "bob", identity.StateTOFU)
	w := openWindow(t, alice.start(), 100, 24, Options{})
	w.waitText("bob")
	w.do(func() {
		w.u.applyEvents([]node.Event{{Kind: node.EventError, PeerID: bob.peerID(),
			Err: "session with 12D3…: e2e: record tampered\n\tat frame 7"}}, nil)
		w.u.app.ForceDraw()
	})
	w.waitText("Problem with bob: Session with 12D3…: e2e: record tampered at frame 7.")
	w.key(tcell.KeyEscape, 0, tcell.ModNone)
	w.waitGone("Problem with bob")
}

// Messages that arrive out of the sender's order: the chat says how many
// earlier ones have not arrived, marks the late ones with the time they
// were written, and the warning goes once the gap closes.
func TestGapAndLateMessages(t *testing.T) {
	t.Parallel()
	alice, bob := newPeer(t, "alice", 0), newPeer(t, "bob", 0)
	alice.pin(bob.peerID(), "bob", identity.StateTOFU)
	w := openWindow(t, alice.start(), 100, 24, Options{})
	w.tabUntil(" bob  ")
	seq, infos := uint64(0), map[peer.ID]node.PeerInfo{bob.peerID(): alice.n.PeerInfo(bob.peerID())}
	arrive := func(n uint64, late bool, missing int) {
		seq++
		m := store.Message{ID: e2e.NewMessageID(), Peer: bob.peerID(), Seq: seq, Direction: store.Incoming,
			SentAt: testNow.Add(time.Duration(n-10) * time.Minute), StoredAt: testNow, Body: fmt.Sprintf("number %d", n),
			Status: store.StatusReceived, Stream: 7, Number: n, Late: late, Missing: missing}
		w.do(func() {
			w.u.applyEvents([]node.Event{{Kind: node.EventMessage, Message: &m}}, infos)
			w.u.app.ForceDraw()
		})
	}
	arrive(1, false, 0)
	arrive(4, false, 2)
	s := w.waitText("number 4", "⚠ 2 earlier messages from bob have not arrived yet")
	if strings.Contains(s, "arrived late") {
		t.Fatalf("a message in order is marked late:\n%s", s)
	}
	arrive(3, true, 1)
	w.waitText("09:23 bob: number 3  arrived late at 09:30", "⚠ 1 earlier message from bob has not arrived yet")
	arrive(2, true, 0)
	w.waitText("09:22 bob: number 2  arrived late at 09:30", "09:21 bob: number 1  arrived 09:30")
	w.waitGone("have not arrived")
	w.waitGone("has not arrived")
}

// A pasted line's final line break is dropped: the text stays visible in
// the input and the message gets no blank last line.
func TestPasteDropsFinalNewline(t *testing.T) {
	t.Parallel()
	alice := newPeer(t, "alice", 0)
	w := openWindow(t, alice.start(), 80, 24, Options{})
	w.waitText("Welcome to certchat, alice.")
	// As a terminal sends a bracketed paste: start, the keys, end.
	w.u.app.QueueEvent(tcell.NewEventPaste(true))
	w.enter("pasted words")
	w.u.app.QueueEvent(tcell.NewEventPaste(false))
	w.waitText("› pasted words")
	w.waitFor("the pasted line in the input", func(string) bool { return w.draft() == "pasted words" })
	w.do(func() { w.u.in.SetText(""); w.u.in.PasteHandler()("two\nlines\r\n", func(tview.Primitive) {}) })
	if got := w.draft(); got != "two\nlines" {
		t.Fatalf("input holds %q", got)
	}
}

// The conversation view's bookkeeping: a late, older delivery report
// never downgrades a message; a message older than the loaded pages
// waits for its page; one that arrives while the user is scrolled up
// does not move what they read; a new name shows on rows drawn before.
func TestConvViewUpdates(t *testing.T) {
	th := defaultTheme()
	c := newConvView(&th, time.UTC, testClock)
	ch := &chat{info: node.PeerInfo{ID: "peer"}, label: "bob"}
	c.reset(ch)
	mk := func(seq uint64, dir store.Direction, st store.Status) store.Message {
		return store.Message{ID: e2e.NewMessageID(), Peer: "peer", Seq: seq, Direction: dir, Status: st,
			StoredAt: testNow, Body: fmt.Sprintf("message %d", seq)}
	}
	page := []store.Message{mk(11, store.Incoming, store.StatusReceived), mk(12, store.Outgoing, store.StatusDelivered)}
	c.addPage(c.gen, page, len(page)) // a full page: older ones are in the store

	late := page[1]
	late.Status = store.StatusSent
	c.upsert(late)
	if got := c.byID[late.ID].msg.Status; got != store.StatusDelivered {
		t.Fatalf("a late report made a delivered message %s", got)
	}
	c.upsert(mk(5, store.Incoming, store.StatusReceived))
	if c.count() != 2 {
		t.Fatalf("a message older than the loaded pages is shown: %d messages", c.count())
	}
	c.width, c.offset = 40, 3
	c.upsert(mk(13, store.Incoming, store.StatusReceived))
	if want := 3 + len(c.rowsOf(2, 40)); c.offset != want {
		t.Fatalf("scrolled up, a new message left the offset at %d, want %d", c.offset, want)
	}

	text := func(l line) string {
		var b strings.Builder
		for _, s := range l {
			b.WriteString(s.text)
		}
		return b.String()
	}
	c.render(c.stored[0], 40)
	ch.label = "robert"
	c.refresh()
	if got := text(c.render(c.stored[0], 40)[0]); !strings.Contains(got, "robert: message 11") {
		t.Fatalf("after a new name the message reads %q", got)
	}
}

// A live session whose key exchange was X25519 alone is marked in the
// title bar, muted; a hybrid one is not.
func TestNotPostQuantumShown(t *testing.T) {
	t.Parallel()
	alice, bob := newPeer(t, "alice", 0), newPeer(t, "bob", 0)
	alice.pin(bob.peerID(), "bob", identity.StateTOFU)
	w := openWindow(t, alice.start(), 100, 24, Options{})
	w.waitText("bob")
	peerEvent := func(pq bool) {
		info := node.PeerInfo{ID: bob.peerID(), Name: "bob", Trust: identity.StateTOFU, Online: true, Path: node.PathLAN, PostQuantum: pq}
		w.do(func() {
			w.u.applyEvents([]node.Event{{Kind: node.EventPeer, Peer: &info}}, nil)
			w.u.openChat(bob.peerID())
			w.u.app.ForceDraw()
		})
	}
	peerEvent(false)
	w.waitText("bob", "not post-quantum")
	peerEvent(true)
	w.waitGone("not post-quantum")
}

// A message from a stranger not kept (node.ErrStrangerFull) reads, at
// 80x24, as a sentence short enough to show whole, what to do included:
// the node's own sentence, after "Problem with carol: ", ran past the
// notice line's three rows and lost its end. The texts are the node's
// (node/strangers.go).
func TestStrangerFullSaysWhatToDoAt80x24(t *testing.T) {
	t.Parallel()
	alice, carol := newPeer(t, "alice", 0), newPeer(t, "carol", 0)
	w := openWindow(t, alice.start(), 80, 24, Options{})
	short := identity.ShortID(carol.peerID())
	for _, tc := range []struct {
		bound node.StrangerBound
		want  string
	}{
		{node.BoundPeer, "(/trust carol)."},
		{node.BoundRoom, "to receive it."},
		{node.BoundGroup, "to receive more."},
	} {
		// The node's error, as its event carries it (Err its text).
		err := error(&node.StrangerFullError{Bound: tc.bound, Group: "team", Maker: carol.peerID()})
		w.do(func() {
			w.u.roster.setInfo(node.PeerInfo{ID: carol.peerID(), Name: "carol", Trust: identity.StateUnknown})
			w.u.applyEvents([]node.Event{{Kind: node.EventError, PeerID: carol.peerID(), Err: err.Error() + " " + short, Cause: err}}, nil)
			w.u.app.ForceDraw()
		})
		s := w.waitText(tc.want)
		if strings.Contains(s, " …") || strings.Contains(s, "Problem with") {
			t.Errorf("cut, or the node's sentence:\n%s", s)
		}
		w.key(tcell.KeyEscape, 0, tcell.ModNone)
		w.waitGone(tc.want)
	}
}

// A stranger whose messages get no receipt (node/outbox.go, unstall) is
// told, whole at 80x24, both things it may mean: the node's sentence ran
// to six rows and was cut after "either they have not accepted you yet,
// and your …".
func TestNoReceiptSaysWhyAt80x24(t *testing.T) {
	t.Parallel()
	carol, alice := newPeer(t, "carol", 0), newPeer(t, "alice", 0)
	carol.pin(alice.peerID(), "alice", identity.StateTOFU)
	w := openWindow(t, carol.start(), 80, 24, Options{})
	w.waitText("alice")
	err := fmt.Errorf("%s %w: either they have not accepted you yet, and your messages wait with you until they do, or your encryption sessions were out of step, as when a home is restored from a backup; a new session was started and your messages are sent again, but in that case messages between you since then may have been lost",
		identity.ShortID(alice.peerID()), node.ErrNoReceipt)
	w.do(func() {
		w.u.applyEvents([]node.Event{{Kind: node.EventError, PeerID: alice.peerID(), Err: err.Error(), Cause: err}}, nil)
		w.u.app.ForceDraw()
	})
	s := w.waitText("No receipt from alice", "may be lost).")
	if strings.Contains(s, " …") {
		t.Errorf("cut:\n%s", s)
	}
}

// A removal undone by a change that crossed it (node.RemovalUndoneError;
// SECURITY.md, open finding 7) reads as a sentence with the members'
// names and what to do, whole at 80x24, rather than "Problem with" the
// peer that relayed the frame and two short peer IDs.
func TestRemovalUndoneSaysWhoAt80x24(t *testing.T) {
	t.Parallel()
	alice, bob, carol := newPeer(t, "alice", 0), newPeer(t, "bob", 0), newPeer(t, "carol", 0)
	alice.pin(bob.peerID(), "bob", identity.StateTOFU)
	alice.pin(carol.peerID(), "carol", identity.StateTOFU)
	w := openWindow(t, alice.start(), 80, 24, Options{})
	w.waitText("carol")
	for _, tc := range []struct {
		name   string
		target peer.ID
		cause  error
		want   []string
	}{
		{"by a leave beside it: a decision waits", carol.peerID(),
			fmt.Errorf("not a member of the group: remove by 12D3Ko…ecLHQB was kept out of the log, %w", group.ErrBesideLeave),
			[]string{"carol is a member of team again: a leave of bob's", "team until you /kick carol (admins) or /keep carol."}},
		{"by a change that crossed it (a senior's removal of bob)", carol.peerID(), errors.New("remove crossed its author's removal"),
			[]string{"carol is a member of team again: bob's removal of", "/kick carol before writing."}},
		{"of us", alice.peerID(), errors.New("removed"), []string{"You are a member of team again: bob's removal of you"}},
	} {
		err := &node.RemovalUndoneError{Group: group.ID{1}, Name: "team", Target: tc.target, Author: bob.peerID(), Cause: tc.cause}
		w.do(func() {
			w.u.applyEvents([]node.Event{{Kind: node.EventError, PeerID: carol.peerID(), Err: err.Error(), Cause: err}}, nil)
			w.u.app.ForceDraw()
		})
		s := w.waitText(tc.want...)
		if strings.Contains(s, " …") || strings.Contains(s, "Problem with") {
			t.Errorf("%s: cut, or the node's sentence:\n%s", tc.name, s)
		}
		w.key(tcell.KeyEscape, 0, tcell.ModNone)
		w.waitGone(tc.want[len(tc.want)-1])
	}
}
