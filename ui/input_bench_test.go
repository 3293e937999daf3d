package ui

import (
	"strings"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"
)

// pasteText is 22 KB of prose without line breaks: what a long paste
// typed as keystrokes (a terminal without bracketed paste) delivers.
var pasteText = strings.Repeat("lorem ipsum ", 22_000/12)

// typedPaste injects text on the screen one key event at a time, as a
// terminal's input parser posts them, and returns how long the window
// took until the input held all of it.
func typedPaste(tb testing.TB, w *window, text string) time.Duration {
	w.do(func() { w.u.in.SetText("") })
	start := time.Now()
	go func() {
		for _, r := range text {
			w.scr.InjectKey(tcell.KeyRune, r, tcell.ModNone)
		}
	}()
	deadline := start.Add(5 * time.Minute)
	for len(w.draft()) < len(text) {
		if time.Now().After(deadline) {
			tb.Fatalf("the input holds %d of %d bytes after 5 minutes", len(w.draft()), len(text))
		}
		time.Sleep(5 * time.Millisecond)
	}
	took := time.Since(start)
	if got := w.draft(); got != text {
		tb.Fatalf("the input holds %d bytes that differ from the %d typed", len(got), len(text))
	}
	return took
}

// BenchmarkTypedPaste measures how long 22 KB typed as single key events
// keep the window busy, at 100x30 (one op is the whole paste):
//
//	go test -run '^$' -bench TypedPaste -benchtime 3x ./ui/
func BenchmarkTypedPaste(b *testing.B) {
	alice := newPeer(b, "alice", 0)
	w := openWindow(b, alice.start(), 100, 30, Options{})
	w.waitText("Welcome to certchat, alice.")
	b.ResetTimer()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		total += typedPaste(b, w, pasteText)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/22KB")
}
