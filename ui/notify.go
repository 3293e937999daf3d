package ui

import (
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// Notifications: a message that arrives in a chat that is not open, or
// while the terminal does not have the focus, rings the bell, shows the
// unread count in the terminal's title and, where the terminal shows
// them, posts a desktop notification. What reaches the terminal is
// escape sequences written to it directly (tcell has no call for them):
// every peer-controlled part is cleaned of control characters first.

// Desktop is how desktop notifications are sent.
type Desktop string

// The desktop notification protocols.
const (
	DesktopAuto   Desktop = "auto"   // chosen from the environment (DetectDesktop)
	DesktopOSC777 Desktop = "osc777" // ESC ] 777 ; notify ; title ; body ST: foot, WezTerm, Ghostty, VTE, urxvt
	DesktopOSC9   Desktop = "osc9"   // ESC ] 9 ; text ST: iTerm2, WezTerm, Ghostty, kitty
	DesktopOSC99  Desktop = "osc99"  // ESC ] 99 ; metadata ; payload ST: kitty's own
	DesktopOff    Desktop = "off"
)

// ParseDesktop reads a setting's value ("" means auto).
func ParseDesktop(s string) (Desktop, error) {
	switch d := Desktop(strings.ToLower(strings.TrimSpace(s))); d {
	case "":
		return DesktopAuto, nil
	case DesktopAuto, DesktopOSC777, DesktopOSC9, DesktopOSC99, DesktopOff:
		return d, nil
	}
	return "", fmt.Errorf("notify %q: want auto, osc777, osc9, osc99 or off", s)
}

// DetectDesktop chooses the protocol for auto from the environment: the
// terminal's own variables (which survive inside tmux, unlike TERM and
// TERM_PROGRAM, which tmux replaces). A terminal not recognised gets none:
// most ignore sequences they do not know, but not all.
func DetectDesktop(env func(string) string) Desktop {
	term, prog := env("TERM"), env("TERM_PROGRAM")
	switch {
	case env("KITTY_WINDOW_ID") != "" || term == "xterm-kitty":
		return DesktopOSC99
	case prog == "iTerm.app" || env("ITERM_SESSION_ID") != "" || env("LC_TERMINAL") == "iTerm2":
		return DesktopOSC9
	case prog == "WezTerm" || env("WEZTERM_PANE") != "",
		prog == "ghostty" || term == "xterm-ghostty" || env("GHOSTTY_RESOURCES_DIR") != "",
		strings.HasPrefix(term, "foot"),
		strings.HasPrefix(term, "rxvt-unicode"),
		env("VTE_VERSION") != "":
		return DesktopOSC777
	}
	return DesktopOff
}

// NotifyOptions say how the window calls for attention.
type NotifyOptions struct {
	// NoBell, NoTitle turn off the bell and the unread count in the title.
	NoBell, NoTitle bool
	// Desktop is the desktop notification protocol; "" means auto.
	Desktop Desktop
	// ShowText puts the message text in desktop notifications; by default
	// they name the sender only.
	ShowText bool
	// Muted are chats (peer IDs as text) that never call for attention.
	Muted []string
	// SaveMuted remembers the muted chats after /mute or /unmute; nil
	// keeps them for this run only.
	SaveMuted func(muted []string) error
	// Env reads the environment (nil: os.Getenv), for auto and tmux.
	Env func(string) string
	// ChatInterval is the least time between two alerts (bell or desktop
	// notification) for one chat; 0 means DefaultChatInterval.
	ChatInterval time.Duration
	// Interval is the least time between any two alerts; 0 means
	// DefaultInterval.
	Interval time.Duration
}

// The alert rate limits: a chatty peer, or many, ring at most this often.
const (
	DefaultChatInterval = 30 * time.Second
	DefaultInterval     = 5 * time.Second
)

// appTitle is the terminal title's text after the unread count.
const appTitle = "certchat"

// Field limits of desktop notifications, in characters.
const (
	maxNotifyName = 64
	maxNotifyText = 200
)

// notifier writes the bell, title and desktop notification sequences to
// the terminal, rate-limited. It is used from the event loop (close from
// the goroutine that stops the window too).
type notifier struct {
	mu      sync.Mutex // close may come from another goroutine
	w       io.Writer  // nil: nothing is written
	bell    bool
	title   bool
	desktop Desktop
	text    bool
	tmux    bool // wrap desktop notifications for tmux's passthrough
	now     func() time.Time

	chatEvery, every time.Duration
	lastChat         map[string]time.Time
	last             time.Time
	pushed           bool // the terminal's own title is saved on its stack
	shown            int  // the count in the title now (0: none)
	nextID           int  // kitty notification ids
	err              error
	closed           bool
	log              *slog.Logger
}

func newNotifier(w io.Writer, o NotifyOptions, env func(string) string, now func() time.Time, log *slog.Logger) *notifier {
	d := o.Desktop
	if d == "" || d == DesktopAuto {
		d = DetectDesktop(env)
	}
	// The Linux console and dumb terminals have no title to set.
	term := env("TERM")
	titled := !o.NoTitle && term != "linux" && term != "dumb"
	n := &notifier{
		w: w, bell: !o.NoBell, title: titled, desktop: d, text: o.ShowText,
		tmux: env("TMUX") != "", now: now, log: log,
		chatEvery: o.ChatInterval, every: o.Interval, lastChat: map[string]time.Time{},
	}
	if n.chatEvery <= 0 {
		n.chatEvery = DefaultChatInterval
	}
	if n.every <= 0 {
		n.every = DefaultInterval
	}
	return n
}

// write sends one whole sequence in one Write (the tty serialises whole
// writes, so it never lands inside one of tcell's). A failed write is
// remembered, reported once by the caller, and ends further writes.
func (n *notifier) write(seq string) {
	if n.w == nil || n.err != nil || n.closed {
		return
	}
	if _, err := io.WriteString(n.w, seq); err != nil {
		n.err = err
		n.log.Warn("bell, title and notifications off: writing to the terminal failed", "err", err)
	}
}

// alert rings the bell and posts a desktop notification for a message
// from name in chat, unless one went out for that chat, or for any chat,
// too recently. It reports whether it did.
func (n *notifier) alert(chat, name, text string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.w == nil || (!n.bell && n.desktop == DesktopOff) {
		return false
	}
	now := n.now()
	if t, ok := n.lastChat[chat]; ok && now.Sub(t) < n.chatEvery {
		return false
	}
	if !n.last.IsZero() && now.Sub(n.last) < n.every {
		return false
	}
	n.lastChat[chat], n.last = now, now
	if n.bell {
		n.write("\a")
	}
	if n.desktop != DesktopOff {
		body := "New message"
		if n.text {
			body = text
		}
		n.write(n.passthrough(desktopSeq(n.desktop, name, body, n.nextID)))
		n.nextID++
	}
	return true
}

// setCount shows count unread messages in the title, or gives the
// terminal its own title back at 0. The first change saves the
// terminal's title on its title stack (XTWINOPS 22), and 0 restores it
// (23): xterm, VTE, kitty, foot, WezTerm and tmux keep such a stack.
func (n *notifier) setCount(count int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.title || count == n.shown {
		return
	}
	n.shown = count
	if count == 0 {
		if n.pushed {
			n.write("\x1b[23;0t")
			n.pushed = false
		}
		return
	}
	seq := ""
	if !n.pushed {
		seq, n.pushed = "\x1b[22;0t", true
	}
	n.write(seq + "\x1b]2;(" + strconv.Itoa(count) + ") " + appTitle + "\x1b\\")
}

// close restores the terminal's title; nothing is written after it.
func (n *notifier) close() {
	n.setCount(0)
	n.mu.Lock()
	n.closed = true
	n.mu.Unlock()
}

// passthrough wraps seq for tmux, which passes a DCS "tmux;" sequence's
// content (ESC doubled) on to the outer terminal when its
// allow-passthrough option is on (tmux 3.3 and later; earlier ones
// always). The bell and the title need no wrapping: tmux handles them.
func (n *notifier) passthrough(seq string) string {
	if !n.tmux {
		return seq
	}
	return "\x1bPtmux;" + strings.ReplaceAll(seq, "\x1b", "\x1b\x1b") + "\x1b\\"
}

// desktopSeq is the desktop notification sequence for a message from
// name: its title names the sender, its body is body. Both are cleaned.
func desktopSeq(d Desktop, name, body string, id int) string {
	name = cleanField(name, maxNotifyName)
	body = cleanField(body, maxNotifyText)
	title := "certchat: " + name
	switch d {
	case DesktopOSC777:
		return "\x1b]777;notify;" + title + ";" + body + "\x1b\\"
	case DesktopOSC9:
		// Text only; it starts with a letter, so that ConEmu, which reads
		// OSC 9 ; <digit> ; as its own commands, never does.
		return "\x1b]9;" + title + ": " + body + "\x1b\\"
	case DesktopOSC99:
		// Title then body, base64 (e=1), under one id; d=0 says more
		// follows.
		b64 := base64.StdEncoding.EncodeToString
		meta := "i=certchat" + strconv.Itoa(id)
		return "\x1b]99;" + meta + ":d=0:e=1;" + b64([]byte(title)) + "\x1b\\" +
			"\x1b]99;" + meta + ":d=1:e=1:p=body;" + b64([]byte(body)) + "\x1b\\"
	}
	return ""
}

// cleanField makes untrusted text safe inside an escape sequence: no C0
// or C1 control character (ESC, BEL, the 8-bit ST and CSI among them), no
// DEL, no invalid UTF-8, no format characters that reorder text, no ";"
// (it separates fields); whitespace runs become one space, and the text
// is cut to limit characters.
func cleanField(s string, limit int) string {
	var b strings.Builder
	n, space := 0, false
	for len(s) > 0 && n < limit {
		r, size := utf8.DecodeRuneInString(s)
		s = s[size:]
		switch {
		case r == utf8.RuneError && size <= 1:
			r = '\uFFFD'
		case unicode.IsSpace(r) || r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			space = b.Len() > 0
			continue
		case unicode.Is(unicode.Cf, r):
			continue
		case r == ';':
			r = ','
		}
		if space {
			b.WriteByte(' ')
			n++
			space = false
		}
		b.WriteRune(r)
		n++
	}
	if len(s) > 0 && n >= limit {
		return strings.TrimRight(b.String(), " ") + "…"
	}
	return b.String()
}
