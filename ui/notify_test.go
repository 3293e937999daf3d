package ui

import (
	"bytes"
	"encoding/base64"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/certchat/certchat/identity"
	"github.com/gdamore/tcell/v2"
)

// termLog is a terminal's output, captured.
type termLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *termLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// take returns what was written since the last take.
func (l *termLog) take() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.buf.String()
	l.buf.Reset()
	return s
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func envOf(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// A message in a chat that is not open rings the bell, posts a desktop
// notification naming the sender (not the text), and shows the unread
// count in the title until it is read; rate limits hold per chat and
// overall; a muted chat stays silent; while the terminal is unfocused
// the open chat rings too.
func TestNotifications(t *testing.T) {
	t.Parallel()
	out := &termLog{}
	clk := &clock{t: testNow}
	opts := Options{Terminal: out, Now: clk.now, Notify: NotifyOptions{
		Desktop: DesktopOSC777, Env: envOf(nil), ChatInterval: time.Minute, Interval: 10 * time.Second,
	}}
	alice, bob, w := talking(t, 80, 24, opts)
	carol := newPeer(t, "carol", 0)
	carol.pin(alice.peerID(), "alice", identity.StateTOFU)
	alice.pin(carol.peerID(), "carol", identity.StateTOFU)
	carol.start()
	introduce(carol, alice)
	send := func(from *testPeer, text string) {
		t.Helper()
		if _, err := from.n.Send(alice.peerID(), text); err != nil {
			t.Fatal(err)
		}
	}
	out.take()

	// Bob's chat is open and the terminal has the focus: nothing.
	send(bob, "in the open chat")
	w.waitText("bob: in the open chat")
	if got := out.take(); got != "" {
		t.Fatalf("a message in the open chat wrote %q", got)
	}

	send(carol, "secret text")
	w.waitText("carol", "1")
	got := w.waitOut(out, "\x1b]2;(1) certchat\x1b\\")
	if want := "\a\x1b]777;notify;certchat: carol;New message\x1b\\"; !strings.Contains(got, want) {
		t.Fatalf("the terminal got %q, want the bell and %q", got, want)
	}
	if !strings.Contains(got, "\x1b[22;0t") {
		t.Fatalf("the title was changed without saving the terminal's: %q", got)
	}
	if strings.Contains(got, "secret") {
		t.Fatalf("the message text reached the terminal: %q", got)
	}

	// Within the chat's interval: the count, no bell.
	clk.add(20 * time.Second)
	send(carol, "again")
	got = w.waitOut(out, "(2) certchat")
	if strings.Contains(got, "\a") {
		t.Fatalf("a second message within a minute rang: %q", got)
	}

	// Muted: nothing but the count going away.
	w.tabUntil(" carol  ")
	w.waitOut(out, "\x1b[23;0t") // read: the terminal's own title back
	w.enter("/mute")
	w.waitText("Muted carol")
	w.tabUntil(" bob  ")
	clk.add(2 * time.Minute)
	send(carol, "muted")
	w.waitFor("carol's third message counted", func(string) bool {
		var n int
		w.do(func() { n = w.u.roster.get(carol.peerID()).unread })
		return n == 1
	})
	if got := out.take(); got != "" {
		t.Fatalf("a muted chat wrote %q", got)
	}

	// The terminal loses the focus: the open chat rings and counts, until
	// the focus comes back.
	postEvent(w.t, w.scr, tcell.NewEventFocus(false))
	w.waitFor("the focus lost", func(string) bool {
		var f bool
		w.do(func() { f = w.u.att.focused })
		return !f
	})
	send(bob, "while away")
	got = w.waitOut(out, "(1) certchat")
	if !strings.Contains(got, "\a") {
		t.Fatalf("a message while unfocused did not ring: %q", got)
	}
	postEvent(w.t, w.scr, tcell.NewEventFocus(true))
	w.waitOut(out, "\x1b[23;0t")
}

// waitOut waits until the captured output holds want, and returns all of
// it that was taken meanwhile.
func (w *window) waitOut(out *termLog, want string) string {
	w.t.Helper()
	var all string
	deadline := time.Now().Add(waitLimit)
	for !strings.Contains(all, want) {
		if time.Now().After(deadline) {
			w.t.Fatalf("the terminal never got %q; it got %q", want, all)
		}
		sleepTick()
		all += out.take()
	}
	return all
}

// Hostile names and texts never put a control character in a sequence:
// only the sequence's own ESC ] ... ESC \ framing remains.
func TestDesktopSequenceSanitised(t *testing.T) {
	hostile := []string{
		"eve\x1b]2;pwned\x07",
		"eve\x1b\\\x1b[31m",
		"eve\x9b31m\x9d0;x\x9c",
		"eve\u009b\u009d\u009c",
		"eve\x07\x00\x08\x7f",
		"eve;notify;fake;body",
		"eve\u202egnp.exe",
		"\xff\xfeeve",
		strings.Repeat("e", 500),
	}
	for _, d := range []Desktop{DesktopOSC777, DesktopOSC9, DesktopOSC99} {
		for _, name := range hostile {
			seq := desktopSeq(d, name, name, 1)
			for _, part := range framed(t, seq) {
				if d == DesktopOSC99 {
					b64 := part[strings.LastIndexByte(part, ';')+1:]
					raw, err := base64.StdEncoding.DecodeString(b64)
					if err != nil {
						t.Fatalf("%s: payload %q: %v", d, b64, err)
					}
					part = string(raw)
				}
				for _, r := range part {
					if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u202e' {
						t.Fatalf("%s with name %q: control %U in %q", d, name, r, seq)
					}
				}
			}
			if d == DesktopOSC777 && strings.Count(seq, ";") != 3 {
				t.Fatalf("osc777 with name %q has extra fields: %q", name, seq)
			}
		}
	}
	if got := cleanField(strings.Repeat("e", 500), maxNotifyName); len([]rune(got)) != maxNotifyName+1 {
		t.Fatalf("a long name is not cut: %d characters", len([]rune(got)))
	}
}

// framed splits seq into the contents of its OSC sequences, failing if
// anything is outside them.
func framed(t *testing.T, seq string) []string {
	t.Helper()
	var parts []string
	for seq != "" {
		if !strings.HasPrefix(seq, "\x1b]") {
			t.Fatalf("not an OSC sequence: %q", seq)
		}
		end := strings.Index(seq, "\x1b\\")
		if end < 0 {
			t.Fatalf("unterminated: %q", seq)
		}
		parts = append(parts, seq[2:end])
		seq = seq[end+2:]
	}
	return parts
}

// Inside tmux, desktop notifications go through its passthrough with ESC
// doubled; the bell and title are written as they are (tmux handles
// them).
func TestNotifyInsideTmux(t *testing.T) {
	out := &termLog{}
	n := newNotifier(out, NotifyOptions{Desktop: DesktopOSC9}, envOf(map[string]string{"TMUX": "/tmp/tmux-0/default,1,0"}),
		testClock, nil)
	n.alert("chat", "bob", "hi")
	want := "\a\x1bPtmux;\x1b\x1b]9;certchat: bob: New message\x1b\x1b\\\x1b\\"
	if got := out.take(); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	n.setCount(3)
	if got := out.take(); got != "\x1b[22;0t\x1b]2;(3) certchat\x1b\\" {
		t.Fatalf("title %q", got)
	}
}

func TestDetectDesktop(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want Desktop
	}{
		{map[string]string{"TERM": "xterm-kitty"}, DesktopOSC99},
		{map[string]string{"TERM": "tmux-256color", "TERM_PROGRAM": "tmux", "KITTY_WINDOW_ID": "1"}, DesktopOSC99},
		{map[string]string{"TERM_PROGRAM": "iTerm.app"}, DesktopOSC9},
		{map[string]string{"TERM_PROGRAM": "WezTerm"}, DesktopOSC777},
		{map[string]string{"TERM": "foot"}, DesktopOSC777},
		{map[string]string{"TERM": "xterm-256color", "VTE_VERSION": "7600"}, DesktopOSC777},
		{map[string]string{"TERM": "xterm-256color"}, DesktopOff},
		{map[string]string{"TERM": "linux"}, DesktopOff},
	} {
		if got := DetectDesktop(envOf(tc.env)); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.env, got, tc.want)
		}
	}
	for in, want := range map[string]Desktop{"": DesktopAuto, "OSC9": DesktopOSC9, " off ": DesktopOff} {
		if got, err := ParseDesktop(in); err != nil || got != want {
			t.Errorf("ParseDesktop(%q) = %s, %v", in, got, err)
		}
	}
	if _, err := ParseDesktop("growl"); err == nil {
		t.Error("ParseDesktop took growl")
	}
}

// FuzzCleanField: whatever a peer names itself, the cleaned field has no
// control character, no field separator and no invalid UTF-8.
func FuzzCleanField(f *testing.F) {
	for _, s := range []string{"bob", "eve\x1b]2;x\x07", "\x9b\x9c\x9d", "a;b", "\xff", "e\u202ex"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := cleanField(s, maxNotifyText)
		if !utf8.ValidString(got) {
			t.Fatalf("invalid UTF-8 from %q: %q", s, got)
		}
		for _, r := range got {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == ';' {
				t.Fatalf("%q kept %U", s, r)
			}
		}
	})
}

// postEvent posts ev on the screen as its terminal would, waiting while
// the event queue is full.
func postEvent(t testing.TB, scr tcell.Screen, ev tcell.Event) {
	deadline := time.Now().Add(waitLimit)
	for scr.PostEvent(ev) != nil {
		if time.Now().After(deadline) {
			t.Errorf("the screen's event queue stayed full")
			return
		}
		sleepTick()
	}
}
