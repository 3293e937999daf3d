package ui

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
	"github.com/gdamore/tcell/v2"
)

// wholeWords checks that every word of rows is a word of text (or the
// mark "…"): nothing was cut inside a word.
func wholeWords(t *testing.T, text string, rows []string) {
	t.Helper()
	words := strings.Fields(text)
	for _, r := range rows {
		for _, w := range strings.Fields(r) {
			if w != "…" && !slices.Contains(words, w) {
				t.Errorf("row %q cuts a word: %q", r, w)
			}
		}
	}
}

func TestWrapRowsKeepsWords(t *testing.T) {
	const relay = "/relay only shows the relays. To use another relay, start chat with --relay MULTIADDR (it is remembered for later starts)."
	const keyChanged = "KEY CHANGED: a new key claims to be bob. Nothing is sent to it until you open its chat (marked KEY CHANGED), compare fingerprints and decide (/trust)."
	for _, text := range []string{relay, keyChanged, "short", "aa bbb cc dddd"} {
		for _, w := range []int{79, 59, 52, 32, 20, 12} {
			rows := wrapRows(text, w, maxNoticeRows)
			if len(rows) > maxNoticeRows {
				t.Errorf("%d rows at %d", len(rows), w)
			}
			for _, r := range rows {
				if textWidth(r) > w {
					t.Errorf("row %q wider than %d", r, w)
				}
			}
			wholeWords(t, text, rows)
			full := strings.Join(wrapText(text, w), " ")
			if joined := strings.Join(rows, " "); joined != full && !strings.HasSuffix(joined, " …") {
				t.Errorf("at %d, shortened without the mark: %q", w, rows)
			}
		}
	}
	// A word that ends exactly at the edge stays on its row.
	if got := wrap("aa bbb cc", 6); !slices.Equal(got, []string{"aa bbb", "cc"}) {
		t.Errorf("wrap: %q", got)
	}
	// Only a word wider than a whole row is cut.
	if got := wrapRows("12D3KooWabcdefghijklmnop", 10, 1); textWidth(got[0]) > 10 {
		t.Errorf("long word: %q", got)
	}
}

func TestFitStatus(t *testing.T) {
	bg := tcell.StyleDefault
	parts := []statusPart{
		{long: "me: alice", short: "alice", keep: 50},
		{long: "7UIQ2MA-5F4DX3V", keep: 20, glued: true},
		{long: "listening on 192.168.1.20:4001 (+3)", short: "192.168.1.20:4001 (+3)", keep: 40},
		{long: "LAN on", keep: 10},
		{long: "relay: 1 of 2 reserved", keep: 30},
		{long: "12 unread: Alt+A", short: "12 unread", keep: 60, shortKeep: 35},
	}
	hint := statusPart{long: "/help"}
	all := []string{"me: alice 7UIQ2MA-5F4DX3V", "alice 7UIQ2MA-5F4DX3V", "alice", "7UIQ2MA-5F4DX3V", "listening on 192.168.1.20:4001 (+3)",
		"192.168.1.20:4001 (+3)", "LAN on", "relay: 1 of 2 reserved", "12 unread: Alt+A", "12 unread", "/help"}
	for _, tc := range []struct {
		w          int
		has, hasnt []string
	}{
		{140, []string{"me: alice 7UIQ2MA-5F4DX3V", "listening on", "LAN on", "12 unread: Alt+A", "/help"}, nil},
		{100, []string{" alice 7UIQ2MA-5F4DX3V │ 192.168.1.20:4001 (+3) │ LAN on │"}, []string{"me:", "/help"}},
		{80, []string{" alice │ 192.168.1.20:4001 (+3) │ relay: 1 of 2 reserved │ 12 unread: Alt+A"}, []string{"LAN on", "7UIQ2MA"}},
		{60, []string{" alice │ 192.168.1.20:4001 (+3) │ 12 unread: Alt+A", "/help"}, []string{"7UIQ2MA", "relay"}},
		{40, []string{" alice │ 12 unread"}, []string{"192", "Alt+A"}},
		{12, []string{" 12 unread"}, []string{"alice"}},
		{4, []string{" 12"}, []string{"alice"}},
	} {
		l := fitStatus(parts, hint, tc.w, bg)
		var b strings.Builder
		for _, s := range l {
			b.WriteString(s.text)
		}
		got := b.String()
		if l.width() > tc.w {
			t.Errorf("at %d: %q is %d wide", tc.w, got, l.width())
		}
		for _, s := range tc.has {
			if !strings.Contains(got, s) {
				t.Errorf("at %d: %q lacks %q", tc.w, got, s)
			}
		}
		for _, s := range tc.hasnt {
			if strings.Contains(got, s) {
				t.Errorf("at %d: %q has %q", tc.w, got, s)
			}
		}
		// Every piece is a whole part, or a part shortened after a word.
		for _, piece := range strings.Split(got, "│") {
			piece = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(piece), "/help"))
			piece = strings.TrimSuffix(piece, " …")
			if piece != "" && !slices.ContainsFunc(all, func(a string) bool { return a == piece || strings.HasPrefix(a, piece+" ") }) {
				t.Errorf("at %d: piece %q is cut", tc.w, piece)
			}
		}
	}
}

// A notice about one chat does not follow the user into another; a
// notice about no chat in particular does.
func TestNoticeStaysWithItsChat(t *testing.T) {
	t.Parallel()
	alice, bob, carol := newPeer(t, "alice", 0), newPeer(t, "bob", 0), newPeer(t, "carol", 0)
	alice.pin(bob.peerID(), "bob", identity.StateTOFU)
	alice.pin(carol.peerID(), "carol", identity.StateTOFU)
	alice.fill(
		msg(bob.peerID(), store.Incoming, testNow.Add(-2*time.Hour), "from bob", ""),
		msg(carol.peerID(), store.Incoming, testNow.Add(-time.Hour), "from carol", ""),
	)
	w := openWindow(t, alice.start(), 80, 24, Options{})
	w.tabUntil(" bob ")
	w.enter("/trust")
	w.waitText("bob is trusted on first use")
	w.tabUntil(" carol ")
	w.waitGone("bob is trusted on first use")
	w.enter("/relay x")
	w.waitText("/relay only shows the relays")
	w.tabUntil(" bob ")
	w.waitText("/relay only shows the relays")
	// Esc clears it.
	w.key(tcell.KeyEscape, 0, tcell.ModNone)
	w.waitGone("/relay only shows the relays")
}

// BenchmarkStatusFit: the status bar is laid out on every draw.
func BenchmarkStatusFit(b *testing.B) {
	parts := []statusPart{
		{long: "me: alice", short: "alice", keep: 50},
		{long: "7UIQ2MA-5F4DX3V", keep: 20, glued: true},
		{long: "listening on 192.168.1.20:4001 (+3)", short: "192.168.1.20:4001 (+3)", keep: 40},
		{long: "LAN on", keep: 10},
		{long: "relay: 1 of 2 reserved", keep: 30},
		{long: "12 unread: Alt+A", short: "12 unread", keep: 60, shortKeep: 35},
	}
	for b.Loop() {
		fitStatus(parts, statusPart{long: "/help"}, 60, tcell.StyleDefault)
	}
}
