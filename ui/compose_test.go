package ui

import (
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"
)

// talking opens alice's window with bob's chat open; both run.
func talking(t *testing.T, w, h int, opts Options) (alice, bob *testPeer, win *window) {
	t.Helper()
	alice, bob = newPeer(t, "alice", 0), newPeer(t, "bob", 0)
	alice.pin(bob.peerID(), "bob", identity.StateTOFU)
	bob.pin(alice.peerID(), "alice", identity.StateTOFU)
	alice.start()
	bob.start()
	introduce(alice, bob)
	introduce(bob, alice)
	win = openWindow(t, alice.n, w, h, opts)
	win.tabUntil(" bob  ")
	return alice, bob, win
}

// inputRows is the input's height.
func inputRows(w *window) int {
	var n int
	w.do(func() { _, _, _, n = w.u.in.GetRect() })
	return n
}

// The input grows as text is typed, wraps long lines, takes line breaks
// from Alt+Enter and Ctrl+J, scrolls past 8 rows; a multi-line message is
// sent with its lines and shown with them, continuation lines under the
// text.
func TestComposeMultiline(t *testing.T) {
	t.Parallel()
	_, bob, w := talking(t, 80, 24, Options{})
	sub := bob.n.Subscribe()
	defer sub.Close()
	w.typeText("first line")
	w.key(tcell.KeyEnter, 0, tcell.ModAlt) // what a terminal sends for Alt+Enter: ESC CR
	w.typeText("second line")
	w.key(tcell.KeyCtrlJ, 0, tcell.ModCtrl) // LF
	w.typeText("third " + strings.Repeat("word ", 20))
	want := "first line\nsecond line\nthird " + strings.Repeat("word ", 20)
	w.waitFor("the typed text in the input", func(string) bool { return w.draft() == want })
	s := w.waitText("› first line", "  second line", "  third word word")
	_, y, _ := findIn(s, "› first line", false)
	if _, y2, _ := findIn(s, "  second line", false); y2 != y+1 {
		t.Fatalf("the second line is not under the first:\n%s", s)
	}
	// At 80 columns the input is 51 wide: the third line wraps to three.
	if n := inputRows(w); n != 5 {
		t.Fatalf("the input has %d rows for three lines, the third wrapped to three:\n%s", n, s)
	}
	w.key(tcell.KeyEnter, 0, tcell.ModNone)
	e := waitEvent(t, sub, "the multi-line message", func(e node.Event) bool { return e.Kind == node.EventMessage })
	if e.Message.Body != want {
		t.Fatalf("bob got %q, want %q", e.Message.Body, want)
	}
	s = w.waitText("me: first line", "second line", "✓ delivered")
	x, y, _ := findIn(s, "me: first line", false)
	if x2, y2, _ := findIn(s, "second line", false); y2 != y+1 || x2 != x+4 {
		t.Fatalf("the second line is not under the first's text:\n%s", s)
	}
	if n := inputRows(w); n != 1 {
		t.Fatalf("the empty input has %d rows", n)
	}

	// Past 8 rows the input scrolls, keeping the cursor's row in view.
	for i := range 12 {
		if i > 0 {
			w.key(tcell.KeyCtrlJ, 0, tcell.ModCtrl)
		}
		w.typeText("row " + string(rune('a'+i)))
	}
	s = w.waitText("row l")
	if n := inputRows(w); n != maxInputRows {
		t.Fatalf("12 lines take %d rows, want %d", n, maxInputRows)
	}
	if strings.Contains(s, "row a") {
		t.Fatalf("the first row is still in view:\n%s", s)
	}
}

// A bracketed paste puts its lines in the input without sending; Up on
// the first row and Down on the last recall the history, elsewhere they
// move between rows.
func TestComposePasteAndRecall(t *testing.T) {
	t.Parallel()
	_, _, w := talking(t, 80, 24, Options{})
	w.enter("/mute")
	w.waitText("Muted bob")
	w.u.app.QueueEvent(tcell.NewEventPaste(true))
	w.enter("pasted one")
	w.enter("pasted two")
	w.u.app.QueueEvent(tcell.NewEventPaste(false))
	w.waitText("› pasted one", "  pasted two")
	if d := w.draft(); d != "pasted one\npasted two" {
		t.Fatalf("the paste left %q in the input", d)
	}
	w.key(tcell.KeyUp, 0, tcell.ModNone) // row two to row one: no recall
	w.typeText("!")
	w.waitFor("the cursor on the first row", func(string) bool {
		return strings.HasPrefix(w.draft(), "pasted one!") ||
			strings.HasPrefix(w.draft(), "pasted!") || strings.Contains(strings.Split(w.draft(), "\n")[0], "!")
	})
	w.key(tcell.KeyUp, 0, tcell.ModNone) // on the first row: the previous input
	w.waitFor("/mute recalled", func(string) bool { return w.draft() == "/mute" })
	w.key(tcell.KeyDown, 0, tcell.ModNone) // back to the draft
	w.waitFor("the draft back", func(string) bool { return strings.Contains(w.draft(), "pasted two") })
}

// A burst of typed characters (a paste typed by a terminal without
// bracketed paste) is handed over as one paste: none is lost, Enter and
// Alt keys still act as keys.
func TestTypedBurst(t *testing.T) {
	scr := tcell.NewSimulationScreen("UTF-8")
	if err := scr.Init(); err != nil {
		t.Fatal(err)
	}
	defer scr.Fini()
	ts := &termScreen{Screen: scr}
	var focus []bool
	ts.onFocus = func(f bool) { focus = append(focus, f) }
	for _, r := range "abc" {
		scr.InjectKey(tcell.KeyRune, r, tcell.ModNone)
	}
	scr.InjectKey(tcell.KeyEnter, 0, tcell.ModNone)
	postEvent(t, scr, tcell.NewEventFocus(false))
	scr.InjectKey(tcell.KeyRune, 'a', tcell.ModAlt)
	scr.InjectKey(tcell.KeyRune, 'x', tcell.ModNone)
	// All seven events read ahead before the first poll, whatever the
	// machine's load: the burst is what is queued.
	ts.HasPendingEvent()
	for deadline := time.Now().Add(waitLimit); len(ts.events) < 7; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of 7 events reached the screen", len(ts.events))
		}
	}
	var got []string
	for len(got) < 8 {
		switch ev := ts.PollEvent().(type) {
		case *tcell.EventPaste:
			if ev.Start() {
				got = append(got, "[")
			} else {
				got = append(got, "]")
			}
		case *tcell.EventKey:
			got = append(got, ev.Name())
		}
		if !ts.HasPendingEvent() {
			break // everything handed over; fewer than expected
		}
	}
	if want := "[ Rune[a] Rune[b] Rune[c] ] Enter Alt+Rune[a] Rune[x]"; strings.Join(got, " ") != want {
		t.Fatalf("events %q, want %q", strings.Join(got, " "), want)
	}
	if len(focus) != 1 || focus[0] {
		t.Fatalf("focus reports %v, want [false]", focus)
	}
}

// Ctrl+C with an empty input quits; with typed text it asks, and n keeps
// the window and the text; y or a second Ctrl+C quits.
func TestCtrlCAsks(t *testing.T) {
	t.Parallel()
	alice := newPeer(t, "alice", 0)
	w := openWindow(t, alice.start(), 80, 24, Options{})
	w.waitText("Welcome to certchat, alice.")
	w.typeText("half a thought")
	w.key(tcell.KeyCtrlC, 0, tcell.ModCtrl)
	w.waitText("Quit certchat?", "What you typed is not") // wrapped
	w.typeText("n")
	w.waitGone("Quit certchat?")
	if d := w.draft(); d != "half a thought" {
		t.Fatalf("the input holds %q after staying", d)
	}
	w.key(tcell.KeyF1, 0, tcell.ModNone) // a dialog: asks too, with an empty input
	w.key(tcell.KeyCtrlU, 0, tcell.ModCtrl)
	w.key(tcell.KeyCtrlC, 0, tcell.ModCtrl)
	w.waitText("Quit certchat?")
	w.key(tcell.KeyEscape, 0, tcell.ModNone)
	w.waitGone("Quit certchat?")
	w.waitText("Close (Esc)") // the help is still open
	select {
	case <-w.u.quit:
		t.Fatal("the window quit")
	default:
	}
	w.key(tcell.KeyCtrlC, 0, tcell.ModCtrl)
	w.waitText("Quit certchat?")
	w.key(tcell.KeyCtrlC, 0, tcell.ModCtrl)
	select {
	case <-w.u.quit:
	case <-time.After(waitLimit):
		t.Fatal("a second Ctrl+C did not quit")
	}
}

// Ctrl+C with nothing typed and no dialog quits at once.
func TestCtrlCQuitsWhenEmpty(t *testing.T) {
	t.Parallel()
	alice := newPeer(t, "alice", 0)
	w := openWindow(t, alice.start(), 80, 24, Options{})
	w.waitText("Welcome to certchat, alice.")
	w.key(tcell.KeyCtrlC, 0, tcell.ModCtrl)
	select {
	case <-w.u.quit:
	case <-time.After(waitLimit):
		t.Fatal("Ctrl+C did not quit")
	}
}

// wrappedRows counts rows as the TextArea lays them out.
func TestWrappedRowsMatchesTextArea(t *testing.T) {
	scr := tcell.NewSimulationScreen("UTF-8")
	if err := scr.Init(); err != nil {
		t.Fatal(err)
	}
	defer scr.Fini()
	scr.SetSize(40, 30)
	for _, text := range []string{
		"", "short", strings.Repeat("word ", 20), strings.Repeat("x", 95), "a\nb\n\nc", "trailing\n",
		"mixed " + strings.Repeat("longlonglong", 5) + " tail", "日本語のテキスト" + strings.Repeat("漢字", 20),
		"tab\there\tand " + strings.Repeat("more ", 9), "emoji 👍🏽 " + strings.Repeat("👍 ", 20),
	} {
		for _, w := range []int{10, 17, 38} {
			ta := tview.NewTextArea().SetWrap(true).SetWordWrap(true)
			ta.SetText(text, false)
			ta.SetRect(0, 0, w, 30)
			scr.Clear()
			ta.Draw(scr)
			used := 1
			for y := 0; y < 30; y++ {
				for x := 0; x < w; x++ {
					if r, _, _, _ := scr.GetContent(x, y); r != ' ' && r != 0 {
						used = y + 1
					}
				}
			}
			// A trailing line break or blank lines are rows too: count
			// them by the cursor's row at the end of the text.
			ta.SetText(text, true)
			ta.Draw(scr)
			if row, _, _, _ := ta.GetCursor(); row+1 > used {
				used = row + 1
			}
			if got := wrappedRows(text, w, 30); got != used {
				t.Errorf("%q at %d columns: %d rows, the text area uses %d", text, w, got, used)
			}
		}
	}
}

// Text pasted (or typed in a burst) while a dialog is open goes to the
// input line, as typed letters do: nothing is lost.
func TestPasteIntoDialogGoesToInput(t *testing.T) {
	t.Parallel()
	alice := newPeer(t, "alice", 0)
	w := openWindow(t, alice.start(), 80, 24, Options{})
	w.waitText("Welcome to certchat, alice.")
	w.key(tcell.KeyF1, 0, tcell.ModNone)
	w.waitText("Close (Esc)")
	w.u.app.QueueEvent(tcell.NewEventPaste(true))
	w.typeText("pasted")
	w.u.app.QueueEvent(tcell.NewEventPaste(false))
	w.waitFor("the paste in the input", func(string) bool { return w.draft() == "pasted" })
	w.waitText("Close (Esc)")
}
