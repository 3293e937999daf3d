package ui

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/store"
	"github.com/gdamore/tcell/v2"
)

// oddBodies are message bodies a peer might send to break a terminal UI.
func oddBodies() []string {
	return []string{
		"\x1b[31mred escape\x1b[0m and a bell\x07 and \x1b]0;title\x07",
		"\u202eevil bidi override\u202c and zero\u200bwidth",
		"[yellow]tview tag[-] [::b]bold[::-] [\"region\"] [red",
		"wide 你好世界 ｆｕｌｌ combining e\u0301 a\u0308 emoji 👩\u200d💻 🇩🇪",
		"tabs\tand\nnew\nlines\r\nand a \u2028 separator",
		"invalid utf-8: \xff\xfe\xc3",
		numbered("word", 9000) + " end",
		numbered("", 500),
		"",
	}
}

// numbered is n words "prefix0 prefix1 …" (without prefix: one long
// word of digits).
func numbered(prefix string, n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 && prefix != "" {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s%d", prefix, i)
	}
	return b.String()
}

// resize changes the simulated terminal's size and redraws.
func (w *window) resize(cols, rows int) string {
	var s string
	w.do(func() {
		w.scr.SetSize(cols, rows)
		w.u.app.ForceDraw()
		s = screenText(w.scr)
	})
	return s
}

// The window never panics and never passes escapes, bidi overrides or
// tags through, whatever peers send and however small the terminal.
func TestOddInputAndTinyTerminals(t *testing.T) {
	t.Parallel()
	alice := newPeer(t, "alice", 0)
	evil := newPeer(t, "[red]mal[::b]lory[-]", 0)
	alice.pin(evil.peerID(), "", identity.StateTOFU)
	var ms []*store.Message
	for i, b := range oddBodies() {
		dir := store.Incoming
		if i%2 == 1 {
			dir = store.Outgoing
		}
		ms = append(ms, msg(evil.peerID(), dir, testNow.Add(time.Duration(i)*time.Minute), b, store.StatusFailed))
	}
	alice.fill(ms...)
	evil.start()
	alice.start()
	if _, err := connect(t, evil, alice); err != nil {
		t.Fatal(err)
	}
	w := openWindow(t, alice.n, 80, 24, Options{})
	s := w.waitText(" [red]mal[::b]lory[-]  unverified", "end")
	assertClean(t, s)
	w.enter("[green]typed tag[-] \x1b[1m")
	w.waitText("me: [green]typed tag[-] [1m")
	w.pageUpUntil("[yellow]tview tag[-]")
	for _, size := range [][2]int{{20, 5}, {1, 1}, {0, 0}, {3, 2}, {59, 10}, {200, 60}, {80, 24}} {
		assertClean(t, w.resize(size[0], size[1]))
	}
	w.resize(20, 5)
	for _, cmd := range []string{"/help", "/whois", "/verify", "/id", "/relay", "/search a"} {
		w.enter(cmd)
		w.waitFor(cmd+" dialog", func(s string) bool { return strings.Count(s, "═") > 0 })
		w.key(tcell.KeyEscape, 0, tcell.ModNone)
		w.waitFor(cmd+" closed", func(s string) bool { return !strings.Contains(s, "═") })
	}
	w.resize(80, 24)
	w.waitText("mal[::b]lory")
	// Dialog titles show the name as it is, tags and all.
	w.enter("/whois")
	w.waitText("Who is [red]mal[::b]lory[-]")
}

// assertClean checks a screen for characters that must never reach the
// terminal.
func assertClean(t *testing.T, screen string) {
	t.Helper()
	for _, bad := range []string{"\x1b", "\x07", "\u202e", "\u200b", "\r", "\t"} {
		if strings.Contains(screen, bad) {
			t.Fatalf("the screen contains %q:\n%s", bad, screen)
		}
	}
}

// FuzzRender feeds arbitrary text and widths to the text functions and
// the message layout: no panic, no row wider than asked, nothing unclean.
func FuzzRender(f *testing.F) {
	for _, b := range oddBodies() {
		f.Add(b, 10)
	}
	f.Add("a b c", 1)
	f.Add("你好", 1)
	f.Fuzz(func(t *testing.T, text string, width int) {
		width = width%300 + 1
		if width < 1 {
			width = -width + 1
		}
		clean := identity.SanitizeText(text, true)
		for _, r := range wrapText(clean, width) {
			if textWidth(r) > max(width, 2) {
				t.Fatalf("row %q is wider than %d", r, width)
			}
		}
		if textWidth(truncate(clean, width)) > width {
			t.Fatalf("truncate(%q, %d) is too wide", clean, width)
		}
		th := defaultTheme()
		c := newConvView(&th, time.UTC, testClock)
		c.reset(&chat{info: node.PeerInfo{ID: "peer"}, label: oneLine(text)})
		e := &entry{msg: store.Message{Peer: "peer", Body: text, StoredAt: testNow, Direction: store.Outgoing, Status: store.StatusFailed, Error: text}}
		for _, r := range c.render(e, width) {
			if r.width() > max(width, 2) {
				t.Fatalf("message row %v is wider than %d", r, width)
			}
		}
		scr := tcell.NewSimulationScreen("UTF-8")
		scr.Init()
		scr.SetSize(width, 3)
		drawText(scr, 0, 0, width, clean, tcell.StyleDefault)
		scr.Show()
		assertClean(t, screenText(scr))
	})
}
