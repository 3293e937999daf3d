package ui

import (
	"slices"
	"testing"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
	"github.com/gdamore/tcell/v2"
)

func TestCompleteLine(t *testing.T) {
	commands := []string{"add", "block", "help", "relay", "remove", "rename", "search", "unblock", "verify", "whois"}
	names := []string{"bob", "Bobby Tables", "carol", "Dave"}
	for _, tc := range []struct {
		text    string
		ok      bool
		start   int
		matches []string
	}{
		{"hello", false, 0, nil},
		{"", false, 0, nil},
		{"hi bob", false, 0, nil},
		{"/", true, 0, []string{"/add ", "/block ", "/help ", "/relay ", "/remove ", "/rename ", "/search ", "/unblock ", "/verify ", "/whois "}},
		{"/re", true, 0, []string{"/relay ", "/remove ", "/rename "}},
		{"/REN", true, 0, []string{"/rename "}},
		{"/xyz", true, 0, nil},
		{"/block ", true, 7, []string{"bob", "Bobby Tables", "carol", "Dave"}},
		{"/block b", true, 7, []string{"bob", "Bobby Tables"}},
		{"/block Bobby T", true, 7, []string{"Bobby Tables"}},
		{"/verify d", true, 8, []string{"Dave"}},
		{"/block @c", true, 7, []string{"@carol"}},
		{"/rename ca", true, 8, []string{"carol"}},
		{"/rename carol Ca", true, 14, nil}, // the new name: nothing to complete
		{"/search bo", true, 8, nil},
		{"hi @bo", true, 3, []string{"@bob", "@Bobby Tables"}},
		{"@", true, 0, []string{"@bob", "@Bobby Tables", "@carol", "@Dave"}},
		{"@zed", true, 0, nil},
		{"//not a command", false, 0, nil},
	} {
		comp, ok := completeLine(tc.text, commands, names)
		if ok != tc.ok || (ok && (comp.start != tc.start || !slices.Equal(comp.matches, tc.matches))) {
			t.Errorf("%q: %v %d %q; want %v %d %q", tc.text, ok, comp.start, comp.matches, tc.ok, tc.start, tc.matches)
		}
	}
}

func TestCompleterCycles(t *testing.T) {
	commands := []string{"relay", "remove", "rename", "help"}
	names := []string{"bob", "Bobby", "carol"}
	var c completer
	steps := []struct{ in, want string }{
		{"/re", "/relay "},
		{"/relay ", "/remove "}, // the next Tab: the next match
		{"/remove ", "/rename "},
		{"/rename ", "/relay "}, // round again
	}
	for _, s := range steps {
		got, _, ok := c.tab(s.in, commands, names)
		if !ok || got != s.want {
			t.Fatalf("Tab on %q: %q, want %q", s.in, got, s.want)
		}
	}
	// Typing changes the line: the next Tab starts over, here on the
	// contact after the command.
	c.reset()
	got, _, _ := c.tab("/remove b", commands, names)
	if got != "/remove bob" {
		t.Fatalf("got %q", got)
	}
	got, _, _ = c.tab(got, commands, names)
	if got != "/remove Bobby" {
		t.Fatalf("got %q", got)
	}
	// One match: completed, and the next Tab works on the new line.
	var d completer
	if got, m, _ := d.tab("/hel", commands, names); got != "/help " || len(m) != 1 {
		t.Fatalf("got %q %q", got, m)
	}
	if _, _, ok := d.tab("hello", commands, names); ok {
		t.Fatal("Tab on a message completed something")
	}
}

// Tab completes commands and contacts when the line starts with "/" or
// the word with "@", lists the matches, and switches chats otherwise.
func TestTabCompletesInWindow(t *testing.T) {
	t.Parallel()
	alice, bob, carol := newPeer(t, "alice", 0), newPeer(t, "bob", 0), newPeer(t, "carol", 0)
	alice.pin(bob.peerID(), "bob", identity.StateTOFU)
	alice.pin(carol.peerID(), "carol", identity.StateTOFU)
	alice.fill(
		msg(carol.peerID(), store.Incoming, testNow.Add(-2*time.Hour), "from carol", ""),
		msg(bob.peerID(), store.Incoming, testNow.Add(-time.Hour), "from bob", ""),
	)
	w := openWindow(t, alice.start(), 80, 24, Options{})
	w.tabUntil(" bob ")
	tab := func() { w.key(tcell.KeyTab, 0, tcell.ModNone) }

	w.typeText("/re")
	tab()
	w.waitText("› /react", "Tab: /react  /relay  /remove  /rename  /reply")
	tab()
	w.waitText("› /relay")
	tab()
	w.waitText("› /remove")
	w.typeText("c")
	tab()
	w.waitText("› /remove carol")
	if got := w.draft(); got != "/remove carol" {
		t.Fatalf("draft %q", got)
	}
	w.key(tcell.KeyEnter, 0, tcell.ModNone)
	w.waitText("Remove carol from your contacts?")
	w.key(tcell.KeyEscape, 0, tcell.ModNone)
	w.waitGone("Keep (Esc)")

	w.typeText("see you @ca")
	tab()
	w.waitText("› see you @carol")
	if title := titleRow(w.text()); title[:5] != " bob " {
		t.Fatalf("Tab switched chats while completing: %q", title)
	}
	// A message without "@": Tab switches chats, the text stays.
	w.typeText(" later")
	tab()
	w.waitFor("carol's chat", func(s string) bool { return titleRow(s)[:7] == " carol " })
	if got := w.draft(); got != "see you @carol later" {
		t.Fatalf("draft %q", got)
	}
}
