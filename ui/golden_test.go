package ui

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/group"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
	"github.com/gdamore/tcell/v2"
	"github.com/libp2p/go-libp2p/core/peer"
)

var update = flag.Bool("update", false, "rewrite the golden screen captures in testdata")

// Golden screen captures at 80x24 of the main layouts. Keys come from
// fixed seeds and the clock is fixed, so the screens are the same every
// run; only the port the node listens on is masked. Run
// `go test ./ui -run TestGolden -update` to rewrite them after a change,
// and read the diff.
func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T) (*window, []string)
	}{
		{"welcome", goldenWelcome},
		{"conversation", goldenConversation},
		{"first-contact", goldenFirstContact},
		{"key-changed", goldenKeyChanged},
		{"help", goldenHelp},
		{"tiny", goldenTiny},
		{"notice-80", func(t *testing.T) (*window, []string) { return goldenNotice(t, 80) }},
		{"notice-60", func(t *testing.T) (*window, []string) { return goldenNotice(t, 60) }},
		{"group-list", goldenGroupList},
		{"group-chat", goldenGroupChat},
		{"group-members", goldenGroupMembers},
		{"group-actions", goldenGroupActions},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w, settle := tc.setup(t)
			w.waitText(settle...)
			path := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(maskScreen(w.text())), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				got := maskScreen(w.text())
				if got == string(want) {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("screen differs from %s:\n--- got\n%s--- want\n%s", path, got, want)
				}
				sleepTick()
			}
		})
	}
}

var (
	portPattern = regexp.MustCompile(`127\.0\.0\.1:\d+`)
	helpPattern = regexp.MustCompile(`(\S) +/help\n$`)
)

// maskScreen hides the port, and the padding that depends on its length.
func maskScreen(s string) string {
	s = portPattern.ReplaceAllString(s, "127.0.0.1:PORT")
	return helpPattern.ReplaceAllString(s, "$1  /help\n")
}

func goldenWelcome(t *testing.T) (*window, []string) {
	alice := newPeer(t, "alice", 1)
	return openWindow(t, alice.start(), 80, 24, Options{}), []string{"Welcome to certchat, alice.", "listening on"}
}

func goldenConversation(t *testing.T) (*window, []string) {
	alice, bob, carol := newPeer(t, "alice", 1), newPeer(t, "bob", 2), newPeer(t, "carol", 3)
	alice.pin(bob.peerID(), "bob", identity.StateVerified)
	alice.pin(carol.peerID(), "carol", identity.StateTOFU)
	yesterday := testNow.Add(-24 * time.Hour)
	b, c := bob.peerID(), carol.peerID()
	alice.fill(
		msg(b, store.Incoming, yesterday.Add(-3*time.Hour), "Did you get the slides for Monday?", ""),
		msg(b, store.Outgoing, yesterday.Add(-2*time.Hour), "Yes, reading them now. The numbers on page 4 look off; I'll check with finance.", store.StatusDelivered),
		msg(c, store.Incoming, yesterday, "lunch tomorrow?", ""),
		msg(b, store.Incoming, testNow.Add(-50*time.Minute), "Finance confirmed: page 4 is fixed.", ""),
		msg(b, store.Outgoing, testNow.Add(-40*time.Minute), "Great, thanks!", store.StatusDelivered),
		msg(b, store.Outgoing, testNow.Add(-30*time.Minute), "Sent the final version to the team.", store.StatusFailed),
		msg(c, store.Incoming, testNow.Add(-20*time.Minute), "12:30 at the usual place?", ""),
		msg(b, store.Outgoing, testNow.Add(-10*time.Minute), "See you at the review.", store.StatusDelivered),
	)
	if err := setFailure(alice, b, "Sent the final version to the team.", "the peer rejected it"); err != nil {
		t.Fatal(err)
	}
	w := openWindow(t, alice.start(), 80, 24, Options{})
	w.tabUntil(" bob  verified")
	return w, []string{"me: See you at the review.  ✓ delivered", " 2 "}
}

// setFailure gives a failed message its reason, as the outbox would.
func setFailure(p *testPeer, q interface{ String() string }, body, reason string) error {
	key, err := p.id.DeriveKey("storage")
	if err != nil {
		return err
	}
	s, err := store.Open(p.home.Path("chat.db"), key)
	if err != nil {
		return err
	}
	defer s.Close()
	found, err := s.Search(body, 1)
	if err != nil || len(found) == 0 {
		return err
	}
	m := found[0]
	// A failed message is final; mark it again with the reason.
	_, _, err = s.SetStatus(m.ID, m.Peer, store.StatusSending, "", testNow)
	if err == nil {
		_, _, err = s.SetStatus(m.ID, m.Peer, store.StatusFailed, reason, testNow)
	}
	return err
}

func goldenFirstContact(t *testing.T) (*window, []string) {
	alice, carol := newPeer(t, "alice", 1), newPeer(t, "carol", 3)
	carol.pin(alice.peerID(), "alice", identity.StateTOFU)
	alice.start()
	carol.start()
	w := openWindow(t, alice.n, 80, 24, Options{})
	w.waitText("Welcome")
	introduce(carol, alice)
	if _, err := carol.n.Send(alice.peerID(), "Hi! We met at the conference; this is my certchat."); err != nil {
		t.Fatal(err)
	}
	return w, []string{"First contact: carol", "Accept", "● carol"}
}

func goldenKeyChanged(t *testing.T) (*window, []string) {
	alice, oldBob, newBob := newPeer(t, "alice", 1), newPeer(t, "bob", 2), newPeer(t, "bob", 4)
	alice.pin(oldBob.peerID(), "bob", identity.StateTOFU)
	newBob.pin(alice.peerID(), "alice", identity.StateTOFU)
	alice.fill(msg(oldBob.peerID(), store.Incoming, testNow.Add(-time.Hour), "See you tomorrow.", ""))
	alice.start()
	newBob.start()
	w := openWindow(t, alice.n, 80, 24, Options{})
	w.waitText("See you tomorrow.")
	connect(t, newBob, alice)
	w.waitText("! KEY CHANGED")
	w.tabUntil(" bob  KEY CHANGED")
	w.enter("hi bob")
	w.waitText("Later (Esc)")
	w.key(tcell.KeyEscape, 0, tcell.ModNone)
	return w, []string{"› hi bob", "Not sent: KEY CHANGED"}
}

func goldenHelp(t *testing.T) (*window, []string) {
	alice := newPeer(t, "alice", 1)
	// Tall enough for every command and key; on 24 rows the dialog scrolls.
	w := openWindow(t, alice.start(), 80, 60, Options{})
	w.enter("/help")
	return w, []string{"Commands", "Keys"}
}

func goldenTiny(t *testing.T) (*window, []string) {
	alice, bob := newPeer(t, "alice", 1), newPeer(t, "bob", 2)
	alice.pin(bob.peerID(), "bob", identity.StateVerified)
	alice.fill(msg(bob.peerID(), store.Incoming, testNow.Add(-time.Minute), "Are you on the train yet? Call me when you are.", ""))
	w := openWindow(t, alice.start(), 20, 5, Options{})
	return w, []string{"Call", "bob"}
}

// goldenNotice shows a notice too long for three rows, and the status bar
// with unread messages, at width w: both end after whole words.
func goldenNotice(t *testing.T, w int) (*window, []string) {
	alice, bob, carol := newPeer(t, "alice", 1), newPeer(t, "bob", 2), newPeer(t, "carol", 3)
	alice.pin(bob.peerID(), "bob", identity.StateTOFU)
	alice.pin(carol.peerID(), "carol", identity.StateTOFU)
	alice.fill(
		msg(carol.peerID(), store.Incoming, testNow.Add(-2*time.Hour), "Are you coming?", ""),
		msg(bob.peerID(), store.Incoming, testNow.Add(-time.Hour), "See you tomorrow.", ""),
	)
	win := openWindow(t, alice.start(), w, 16, Options{})
	win.waitText("See you tomorrow.")
	win.enter("/relay somewhere else please")
	return win, []string{"/relay only shows", "1 unread"}
}

// The golden captures are text: the trust state must also be told by
// colour where it matters. This checks the title bar's words keep their
// colours.
func TestTitleColours(t *testing.T) {
	t.Parallel()
	alice, bob := newPeer(t, "alice", 0), newPeer(t, "bob", 0)
	alice.pin(bob.peerID(), "bob", identity.StateVerified)
	w := openWindow(t, alice.start(), 80, 24, Options{})
	w.tabUntil(" bob  verified")
	x, y, _ := w.find("verified: fingerprint compared")
	if fg, _, _ := w.styleAt(x, y).Decompose(); fg != tcell.ColorGreen {
		t.Fatalf("verified is drawn in %v", fg)
	}
	if !strings.Contains(w.text(), "✓ verified") {
		t.Fatal("no badge")
	}
}

// groupMsg is a group message to store: from a member (nil: ours, then
// delivered to those in to).
type groupMsg struct {
	from   *testPeer
	at     time.Time // when it arrived
	sent   time.Time // when it was sent (zero: at)
	body   string
	number uint64           // the sender's number (0: the next)
	to     map[peer.ID]bool // ours: the members that have it
	// A reply (replyTo) or an action (kind, with emoji for a reaction)
	// on an earlier message of the list, counted from 1 (0: none).
	replyTo, on int
	kind        store.Kind
	emoji       string
}

// fillGroup stores, in p's store (its node not running), a group that
// creator made with members, and its messages.
func (p *testPeer) fillGroup(creator *testPeer, name string, members []peer.ID, ms ...groupMsg) {
	c, err := group.Create(creator.id.Signer(), name, members, nil, testNow.Add(-48*time.Hour))
	if err != nil {
		p.t.Fatal(err)
	}
	l, err := group.New(c)
	if err != nil {
		p.t.Fatal(err)
	}
	p.fillLog(l, ms...)
}

// fillLog stores, in p's store (its node not running), the group of
// log l and its messages.
func (p *testPeer) fillLog(l *group.Log, ms ...groupMsg) {
	key, err := p.id.DeriveKey("storage")
	if err != nil {
		p.t.Fatal(err)
	}
	s, err := store.Open(p.home.Path("chat.db"), key)
	if err != nil {
		p.t.Fatal(err)
	}
	defer s.Close()
	gid := store.GroupID(l.ID())
	if err := s.Groups().PutGroupChanges(gid, l.Changes()); err != nil {
		p.t.Fatal(err)
	}
	var others []peer.ID
	for _, m := range l.State().Members {
		if m != p.peerID() {
			others = append(others, m)
		}
	}
	numbers := map[peer.ID]uint64{}
	ids := make([]e2e.MessageID, len(ms))
	for i, m := range ms {
		ids[i] = e2e.NewMessageID()
		gm := &store.GroupMessage{Group: gid, ID: ids[i], SentAt: m.at, StoredAt: m.at, Body: m.body, Kind: m.kind, Emoji: m.emoji}
		if m.replyTo > 0 {
			gm.ReplyTo = ids[m.replyTo-1]
		}
		if m.on > 0 {
			gm.Target = ids[m.on-1]
		}
		if !m.sent.IsZero() {
			gm.SentAt = m.sent
		}
		if m.from == nil {
			if err := s.Groups().AddGroupOutgoing(gm, others); err != nil {
				p.t.Fatal(err)
			}
			for q := range m.to {
				if _, _, err := s.SetStatus(gm.ID, q, store.StatusDelivered, "", m.at); err != nil {
					p.t.Fatal(err)
				}
			}
			continue
		}
		from := m.from.peerID()
		numbers[from]++
		gm.From, gm.Stream, gm.Number = from, 7, numbers[from]
		if m.number != 0 {
			gm.Number, numbers[from] = m.number, m.number
		}
		if _, err := s.Groups().ReceiveGroup(gm, m.at); err != nil {
			p.t.Fatal(err)
		}
	}
}

// goldenGroup is alice with a chat and a group of four bob made: two
// members she trusts on first use, bob verified; an own message that one
// member lacks; carol's first message arriving after her second; a gap
// in dave's messages.
func goldenGroup(t *testing.T) *window {
	alice, bob, carol, dave := newPeer(t, "alice", 1), newPeer(t, "bob", 2), newPeer(t, "carol", 3), newPeer(t, "dave", 5)
	alice.pin(bob.peerID(), "bob", identity.StateVerified)
	alice.pin(carol.peerID(), "carol", identity.StateTOFU)
	alice.pin(dave.peerID(), "dave", identity.StateTOFU)
	yesterday := testNow.Add(-24 * time.Hour)
	alice.fillGroup(bob, "launch", []peer.ID{alice.peerID(), carol.peerID(), dave.peerID()},
		groupMsg{from: bob, at: yesterday.Add(-time.Hour), body: "Kick-off tomorrow at 10 in room 4."},
		groupMsg{from: carol, at: yesterday, body: "I'll bring the plan.", number: 2},
		groupMsg{from: carol, at: yesterday.Add(30 * time.Minute), sent: yesterday.Add(-3 * time.Hour), body: "Morning all.", number: 1},
		groupMsg{from: dave, at: yesterday.Add(time.Hour), body: "Count me in."},
		groupMsg{at: testNow.Add(-40 * time.Minute), body: "Great, see you all there.", to: map[peer.ID]bool{bob.peerID(): true, carol.peerID(): true}},
		groupMsg{from: dave, at: testNow.Add(-35 * time.Minute), body: "Running late: start without me.", number: 3},
	)
	alice.fill(msg(bob.peerID(), store.Incoming, testNow.Add(-20*time.Minute), "Coffee before the kick-off?", ""))
	return openWindow(t, alice.start(), 80, 24, Options{})
}

// A group's replies, edits, deletions and reactions, as the pane shows
// them: the quote above a reply with its sender's name, "(edited)",
// "message deleted" and the reactions counted.
func goldenGroupActions(t *testing.T) (*window, []string) {
	alice, bob, carol, dave := newPeer(t, "alice", 1), newPeer(t, "bob", 2), newPeer(t, "carol", 3), newPeer(t, "dave", 5)
	alice.pin(bob.peerID(), "bob", identity.StateVerified)
	alice.pin(carol.peerID(), "carol", identity.StateTOFU)
	alice.pin(dave.peerID(), "dave", identity.StateTOFU)
	at := testNow.Add(-time.Hour)
	alice.fillGroup(bob, "launch", []peer.ID{alice.peerID(), carol.peerID(), dave.peerID()},
		groupMsg{from: bob, at: at, body: "Kick-off tomorrow at 10 in room 4."},
		groupMsg{from: carol, at: at.Add(5 * time.Minute), body: "Room 4 is taken; room 5?", replyTo: 1},
		groupMsg{from: bob, at: at.Add(10 * time.Minute), body: "Kick-off tomorrow at 10 in room 5.", kind: store.KindEdit, on: 1},
		groupMsg{from: dave, at: at.Add(15 * time.Minute), kind: store.KindReact, emoji: "👍", on: 1},
		groupMsg{from: carol, at: at.Add(16 * time.Minute), kind: store.KindReact, emoji: "👍", on: 1},
		groupMsg{from: dave, at: at.Add(20 * time.Minute), body: "I may be late."},
		groupMsg{from: dave, at: at.Add(21 * time.Minute), kind: store.KindDelete, on: 6},
		groupMsg{at: at.Add(30 * time.Minute), body: "See you there.", replyTo: 2, to: map[peer.ID]bool{bob.peerID(): true, carol.peerID(): true, dave.peerID(): true}},
	)
	w := openWindow(t, alice.start(), 80, 24, Options{})
	w.tabUntil(" launch  4 members")
	return w, []string{"bob: Kick-off tomorrow at 10 in room 5.", "(edited)", "👍 2", "↪ bob: Kick-off", "↪ carol: Room 4", "dave: message deleted", "✓ delivered to all 3"}
}

// The chat list with a group: its name, member count and unread count.
func goldenGroupList(t *testing.T) (*window, []string) {
	w := goldenGroup(t)
	return w, []string{"# launch", "4 members", "bob: Coffee before the kick-off?", " 5 ", "127.0.0.1:"}
}

// A group's chat: its title with the members' trust, each message with
// its sender, "delivered to 2 of 3" and who lacks it, the gap in dave's.
func goldenGroupChat(t *testing.T) (*window, []string) {
	w := goldenGroup(t)
	w.tabUntil(" launch  4 members")
	return w, []string{"dave: Running late", "waiting for dave", "1 earlier message from dave", "carol: Morning all.  arrived late", "listening on"}
}

// The open group's members, each with their trust.
func goldenGroupMembers(t *testing.T) (*window, []string) {
	w := goldenGroup(t)
	w.tabUntil(" launch  4 members")
	w.waitText("dave: Running late")
	w.enter("/members")
	return w, []string{"Members of launch", "dave — unverified"}
}
