package ui

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
	"github.com/gdamore/tcell/v2"
)

// talking opens two windows whose users are contacts, each with the
// other's chat open.
func talkingBoth(t *testing.T) (alice, bob *testPeer, wa, wb *window) {
	alice, bob = newPeer(t, "alice", 0), newPeer(t, "bob", 0)
	alice.pin(bob.peerID(), "bob", identity.StateTOFU)
	bob.pin(alice.peerID(), "alice", identity.StateTOFU)
	alice.start()
	bob.start()
	introduce(alice, bob)
	introduce(bob, alice)
	wa = openWindow(t, alice.n, 80, 24, Options{})
	wb = openWindow(t, bob.n, 80, 24, Options{})
	wa.tabUntil(" bob  ")
	wb.tabUntil(" alice  ")
	return alice, bob, wa, wb
}

// alt presses Alt with a key.
func (w *window) alt(k tcell.Key) { w.key(k, 0, tcell.ModAlt) }

// Editing, replying, reacting and deleting from the keyboard, as both
// screens show them.
func TestEditReplyReactDelete(t *testing.T) {
	t.Parallel()
	_, _, wa, wb := talkingBoth(t)
	wb.enter("helo")
	wa.waitText("bob: helo")
	wb.waitText("me: helo  ✓ seen")

	// Bob selects his message, e puts its text in the input, Enter saves.
	wb.alt(tcell.KeyUp)
	wb.waitText("Selected: e edit")
	wb.typeText("e")
	wb.waitFor("the text to edit in the input", func(string) bool { return wb.draft() == "helo" })
	wb.waitText("Editing your message")
	wb.enter("!")
	wb.waitText("me: helo!  (edited)  ✓ seen")
	wa.waitText("bob: helo!  (edited)")

	// Alice replies to it: the quote shows above, on both screens.
	wa.alt(tcell.KeyUp)
	wa.typeText("r")
	wa.waitText("Replying to “helo!”")
	wa.enter("yes!")
	s := wb.waitText("↪ me: helo!", "alice: yes!")
	if _, qy, _ := findIn(s, "↪ me: helo!", false); !strings.Contains(strings.Split(s, "\n")[qy+1], "alice: yes!") {
		t.Fatalf("the quote is not right above the reply:\n%s", s)
	}
	wa.waitText("↪ bob: helo!", "me: yes!")

	// Alice reacts to bob's message: two up, + opens the picker.
	wa.alt(tcell.KeyUp)
	wa.alt(tcell.KeyUp)
	wa.typeText("+")
	wa.waitText("React: Enter picks")
	wa.key(tcell.KeyEnter, 0, tcell.ModNone)
	wb.waitText("👍 1")
	wa.waitText("👍 1")

	// From her reply, Enter goes to the message it quotes.
	wa.alt(tcell.KeyUp)
	wa.key(tcell.KeyEnter, 0, tcell.ModNone)
	wa.waitText("The quoted message.")
	wa.key(tcell.KeyEscape, 0, tcell.ModNone)

	// Alice may not edit bob's message.
	wa.alt(tcell.KeyUp)
	wa.alt(tcell.KeyUp)
	wa.typeText("e")
	wa.waitText("Only your own messages can be edited.")
	wa.key(tcell.KeyEscape, 0, tcell.ModNone)

	// The commands: /edit with a text edits bob's last message; /reply
	// with a text answers alice's last.
	wb.enter("/edit hello!")
	wa.waitText("bob: hello!  (edited)", "↪ bob: hello!")
	wb.enter("/reply indeed")
	wa.waitText("↪ me: yes!", "bob: indeed")

	// Bob deletes the first: selected, asked first.
	for range 3 {
		wb.alt(tcell.KeyUp)
	}
	wb.typeText("d")
	wb.choose("Delete")
	wa.waitText("bob: message deleted", "↪ bob: message deleted")
	wb.waitText("me: message deleted")
	wb.waitGone("👍 1")
}

// Read markers and typing in the title: shown when both have them on;
// /seen off and /typing off on one side stop them both ways.
func TestSeenAndTypingWindows(t *testing.T) {
	t.Parallel()
	_, _, wa, wb := talkingBoth(t)
	wa.enter("one")
	wa.waitText("me: one  ✓ seen")
	wa.typeText("typing a message")
	if s := wb.waitText("typing…"); !strings.Contains(titleRow(s), "alice") {
		t.Fatalf("typing… is not in alice's title:\n%s", s)
	}
	wa.key(tcell.KeyEnter, 0, tcell.ModNone)
	wb.waitText("alice: typing a message")
	wb.waitGone("typing…")

	wb.enter("/seen off")
	wb.waitText("Read markers (“seen”) are off")
	wb.enter("/typing off")
	wb.waitText("Typing indications are off")
	wa.enter("two")
	wa.waitText("me: two  ✓ delivered")
	wa.typeText("more")
	wb.enter("back")
	wa.waitText("bob: back")
	if s := wb.text(); strings.Contains(s, "typing…") {
		t.Fatalf("typing shown with it turned off:\n%s", s)
	}
	if s := wa.text(); strings.Contains(s, "me: two  ✓ seen") || strings.Contains(s, "typing…") {
		t.Fatalf("seen or typing shown with the peer's turned off:\n%s", s)
	}
}

// Enter on a reply goes to the message it quotes, reading older pages
// until it is loaded, and selects it there.
func TestJumpToQuotedLoadsPages(t *testing.T) {
	t.Parallel()
	alice, bob := newPeer(t, "alice", 0), newPeer(t, "bob", 0)
	alice.pin(bob.peerID(), "bob", identity.StateTOFU)
	var ms []*store.Message
	for i := 0; i < 200; i++ {
		ms = append(ms, msg(bob.peerID(), store.Incoming, testNow.Add(-200*time.Minute+time.Duration(i)*time.Minute), fmt.Sprintf("message %03d", i), ""))
	}
	ms[0].ID = e2e.NewMessageID()
	reply := msg(bob.peerID(), store.Outgoing, testNow, "answering the first", store.StatusDelivered)
	reply.ReplyTo = ms[0].ID
	alice.fill(append(ms, reply)...)
	w := openWindow(t, alice.start(), 80, 24, Options{PageSize: 30})
	w.waitText("↪ bob: message 000", "me: answering the first")
	w.alt(tcell.KeyUp)
	w.key(tcell.KeyEnter, 0, tcell.ModNone)
	s := w.waitText("The quoted message.", "bob: message 000")
	var sel e2e.MessageID
	w.do(func() { sel = w.u.conv.sel })
	if sel != ms[0].ID {
		t.Fatalf("selected %s, want the quoted message:\n%s", sel, s)
	}
}
