package ui

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
	"github.com/gdamore/tcell/v2"
)

// rowOf is the row of the screen that holds text (its lowest), or -1.
func rowOf(screen, text string) int {
	if _, y, ok := findIn(screen, text, true); ok {
		return y
	}
	return -1
}

// A chat opened with unread messages shows "new messages" above the first
// of them; Alt+U scrolls there, loading older pages as needed; the
// divider goes once the user leaves the chat, and comes back for a
// message that arrives while the user reads older ones.
func TestNewMessagesDivider(t *testing.T) {
	t.Parallel()
	alice, bob, carol := newPeer(t, "alice", 0), newPeer(t, "bob", 0), newPeer(t, "carol", 0)
	alice.pin(bob.peerID(), "bob", identity.StateTOFU)
	alice.pin(carol.peerID(), "carol", identity.StateTOFU)
	bob.pin(alice.peerID(), "alice", identity.StateTOFU)
	var ms []*store.Message
	at := testNow.Add(-10 * time.Hour)
	for i := range 40 {
		ms = append(ms, msg(bob.peerID(), store.Outgoing, at.Add(time.Duration(i)*time.Minute), fmt.Sprintf("old %02d", i), store.StatusDelivered))
	}
	for i := range 25 {
		ms = append(ms, msg(bob.peerID(), store.Incoming, at.Add(time.Duration(60+i)*time.Minute), fmt.Sprintf("unread %02d", i), ""))
	}
	ms = append(ms, msg(carol.peerID(), store.Incoming, testNow.Add(-time.Minute), "from carol", ""))
	alice.fill(ms...)
	alice.start()
	w := openWindow(t, alice.n, 80, 20, Options{PageSize: 10})
	w.waitText("carol: from carol")
	w.tabUntil(" bob ")
	s := w.waitText("bob: unread 24")
	if strings.Contains(s, "new messages") {
		t.Fatalf("the divider is on screen before the jump:\n%s", s)
	}
	w.key(tcell.KeyRune, 'u', tcell.ModAlt)
	s = w.waitText("─ new messages ─", "bob: unread 00")
	if d, m := rowOf(s, "─ new messages ─"), rowOf(s, "bob: unread 00"); m != d+1 || d > 4 {
		t.Fatalf("the divider (row %d) is not right above the first unread message (row %d) near the top:\n%s", d, m, s)
	}
	if rowOf(s, "me: old 39") != d0(s)-1 {
		t.Fatalf("the last read message is not right above the divider:\n%s", s)
	}

	// Leaving the chat: the messages are read, the divider goes.
	w.tabUntil(" carol ")
	w.tabUntil(" bob ")
	w.waitText("bob: unread 24")
	w.key(tcell.KeyRune, 'u', tcell.ModAlt)
	w.waitText("No new messages in this chat.")
	if strings.Contains(w.text(), "new messages ─") {
		t.Fatal("the divider stayed after the chat was read")
	}

	// A message that comes while the user reads older ones gets it.
	bob.start()
	introduce(bob, alice)
	w.key(tcell.KeyPgUp, 0, tcell.ModNone)
	w.waitText("newer messages: PgDn")
	if _, err := bob.n.Send(alice.peerID(), "fresh one"); err != nil {
		t.Fatal(err)
	}
	for arrived := false; !arrived; sleepTick() {
		w.do(func() {
			for _, e := range w.u.conv.stored {
				arrived = arrived || e.msg.Body == "fresh one"
			}
		})
	}
	for range 3 {
		w.key(tcell.KeyPgDn, 0, tcell.ModNone)
	}
	s = w.waitText("bob: fresh one")
	if d, m := rowOf(s, "─ new messages ─"), rowOf(s, "bob: fresh one"); d < 0 || m != d+1 {
		t.Fatalf("no divider above the message that came while scrolled up:\n%s", s)
	}

	// So does one that comes, at the bottom, while the terminal does not
	// have the focus.
	w.tabUntil(" carol ")
	w.tabUntil(" bob ")
	w.waitGone("─ new messages ─")
	postEvent(t, w.scr, tcell.NewEventFocus(false))
	w.do(func() {}) // the focus change is handled before the message comes
	if _, err := bob.n.Send(alice.peerID(), "while away"); err != nil {
		t.Fatal(err)
	}
	s = w.waitText("bob: while away")
	if d, m := rowOf(s, "─ new messages ─"), rowOf(s, "bob: while away"); d < 0 || m != d+1 {
		t.Fatalf("no divider above the message that came while the terminal was unfocused:\n%s", s)
	}
}

// d0 is the row of the divider.
func d0(s string) int { return rowOf(s, "─ new messages ─") }

// Choosing a /search result scrolls its chat to the message, loading
// older pages, and highlights it; Alt+N and Alt+P step through the hits.
func TestSearchMovesToHit(t *testing.T) {
	t.Parallel()
	alice, bob, carol := newPeer(t, "alice", 0), newPeer(t, "bob", 0), newPeer(t, "carol", 0)
	alice.pin(bob.peerID(), "bob", identity.StateTOFU)
	alice.pin(carol.peerID(), "carol", identity.StateTOFU)
	var ms []*store.Message
	at := testNow.Add(-10 * time.Hour)
	for i := range 120 {
		body := fmt.Sprintf("filler %03d", i)
		switch i {
		case 7:
			body = "the old Needle is here"
		case 100:
			body = "a newer needle"
		}
		ms = append(ms, msg(bob.peerID(), store.Outgoing, at.Add(time.Duration(i)*time.Minute), body, store.StatusDelivered))
	}
	ms = append(ms, msg(carol.peerID(), store.Incoming, testNow.Add(-time.Minute), "carol's needle", ""))
	alice.fill(ms...)
	w := openWindow(t, alice.start(), 80, 20, Options{PageSize: 20})
	w.waitText("carol: carol's needle")
	w.enter("/search needle")
	w.waitText("3 messages contain “needle”.", "me → bob: a newer needle")
	w.key(tcell.KeyDown, 0, tcell.ModNone) // the newest is carol's: take bob's
	w.key(tcell.KeyEnter, 0, tcell.ModNone)
	s := w.waitText(" bob ", "me: a newer needle", "Result 2 of 3")
	reversed := func(s, text string) bool {
		x, y, ok := findIn(s, text, true)
		if !ok {
			return false
		}
		_, _, attr := w.styleAt(x+strings.Index(text, "eedle"), y).Decompose()
		return attr&tcell.AttrReverse != 0
	}
	if !reversed(s, "a newer needle") {
		t.Fatalf("the hit is not highlighted:\n%s", s)
	}
	w.key(tcell.KeyRune, 'n', tcell.ModAlt)
	s = w.waitText("me: the old Needle is here", "Result 3 of 3")
	if !reversed(s, "the old Needle is here") {
		t.Fatalf("the older hit is not highlighted:\n%s", s)
	}
	if reversed(s, "filler 008") {
		t.Fatal("a message that is no hit is highlighted")
	}
	// Round to the first: carol's chat.
	w.key(tcell.KeyRune, 'n', tcell.ModAlt)
	w.waitText(" carol ", "Result 1 of 3")
	w.key(tcell.KeyRune, 'p', tcell.ModAlt)
	w.waitText(" bob ", "me: the old Needle is here", "Result 3 of 3")
	// Esc ends the highlight.
	w.key(tcell.KeyEscape, 0, tcell.ModNone)
	w.waitGone("Result 3 of 3")
	if s := w.text(); reversed(s, "the old Needle is here") {
		t.Fatal("Esc left the highlight")
	}
}

func TestSplitHits(t *testing.T) {
	st := tcell.StyleDefault
	for _, tc := range []struct {
		text, needle string
		want         []string // spans, hits in [brackets]
	}{
		{"a needle in a Needle", "needle", []string{"a ", "[needle]", " in a ", "[Needle]"}},
		{"needle", "needle", []string{"[needle]"}},
		{"nothing", "needle", []string{"nothing"}},
		{"x", "", []string{"x"}},
	} {
		var got []string
		for _, s := range splitHits(span{tc.text, st}, tc.needle) {
			if _, _, a := s.style.Decompose(); a&tcell.AttrReverse != 0 {
				got = append(got, "["+s.text+"]")
			} else {
				got = append(got, s.text)
			}
		}
		if strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("%q / %q: %q, want %q", tc.text, tc.needle, got, tc.want)
		}
	}
}
