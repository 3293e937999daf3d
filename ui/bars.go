package ui

import (
	"fmt"
	"strings"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"
)

// rowsView draws rows of styled text on a background: the title bar,
// status bar, banner and notice line are all one.
type rowsView struct {
	*tview.Box
	bg   tcell.Style
	rows func(w int) []line
}

func newRowsView(bg tcell.Style, rows func(w int) []line) *rowsView {
	return &rowsView{Box: tview.NewBox(), bg: bg, rows: rows}
}

func (v *rowsView) Draw(scr tcell.Screen) {
	v.Box.DrawForSubclass(scr, v)
	x, y, w, h := v.GetInnerRect()
	if w <= 0 || h <= 0 {
		return
	}
	rows := v.rows(w)
	for i := 0; i < h; i++ {
		fill(scr, x, y+i, w, v.bg)
		if i < len(rows) {
			drawLine(scr, x, y+i, w, rows[i])
		}
	}
}

// titleRows is the title bar: the open chat's name, its trust state
// spelled out, its short fingerprint, certificate expiry and path.
func (u *UI) titleRows(int) []line {
	th := u.th
	c := u.roster.get(u.open)
	if c == nil {
		return []line{{{" certchat", th.bar.Bold(true)}, {"  no chat open (Tab, /add)", th.barDim}}}
	}
	trust, t := trustTitle(c.info)
	l := line{
		{" " + c.name(), th.bar.Bold(true)},
		{"  ", th.bar},
		{trust, th.toned(t, th.bar).Bold(t == toneBad)},
		{"  " + c.info.Fingerprint.Short(), th.barDim},
	}
	if note, t := expiryNote(c.notAfter, u.now()); note != "" {
		l = append(l, span{"  ", th.bar}, span{note, th.toned(t, th.bar)})
	}
	l = append(l, span{"  " + pathText(c.info), th.barDim})
	if c.isTyping() {
		l = append(l, span{"  typing…", th.bar.Bold(true)})
	}
	if c.info.Online && !c.info.PostQuantum {
		// The peer offered X25519 only: recorded traffic is open to a
		// future quantum computer. A muted warning, not an alarm.
		l = append(l, span{"  " + notPostQuantum, th.toned(toneWarn, th.bar)})
	}
	return []line{l}
}

// notPostQuantum marks a live session whose key exchange was X25519 alone.
const notPostQuantum = "not post-quantum"

// statusRows is the status bar: who I am, how I am reachable, unread
// messages elsewhere. Where the long form does not fit, words go.
func (u *UI) statusRows(w int) []line {
	for _, long := range []bool{true, false} {
		if l := u.statusLine(long); long && l.width() <= w || !long {
			if hint := "  /help "; l.width()+textWidth(hint) <= w {
				l = append(l, span{strings.Repeat(" ", w-l.width()-textWidth(hint)), u.th.status}, span{hint, u.th.status})
			}
			return []line{l}
		}
	}
	return nil
}

func (u *UI) statusLine(long bool) line {
	th := u.th
	sep := span{" │ ", th.status}
	me, listen := " "+u.myName+" "+u.myFP, listenText(u.addrs)
	if long {
		me = " me: " + u.myName + " " + u.myFP
	} else {
		listen = strings.TrimPrefix(listen, "listening on ")
	}
	lan := "LAN off"
	if u.opts.LAN {
		lan = "LAN on"
	}
	l := line{{me, th.status.Bold(true)}, sep, {listen, th.status}, sep, {lan, th.status}, sep, {relayText(u.relays), th.status}}
	if n := u.roster.totalUnread(u.open); n > 0 {
		l = append(l, sep, span{fmt.Sprintf("%d unread: Alt+A", n), th.status.Bold(true)})
	}
	return l
}

// noticeRows is the last notice or error, wrapped.
func (u *UI) noticeRows(w int) []line {
	if u.notice.text == "" || (u.notice.hideIn != "" && u.notice.hideIn == u.open) {
		return nil
	}
	style := u.th.info
	if u.notice.err {
		style = u.th.errStyle
	}
	var rows []line
	for _, r := range wrapText(u.notice.text, max(1, w-1)) {
		rows = append(rows, line{{" " + r, style}})
	}
	return rows
}

// bannerRows warns about the open chat: a changed key, a first contact, a
// rejected key, an expiring certificate.
func (u *UI) bannerRows(w int) []line {
	c := u.roster.get(u.open)
	if c == nil {
		return nil
	}
	var rows []line
	add := func(text string, style tcell.Style) {
		for _, r := range wrap(text, max(1, w-2)) {
			pad := strings.Repeat(" ", max(0, w-1-textWidth(r)))
			rows = append(rows, line{{" " + r + pad, style}})
		}
	}
	if text, bad := u.trustWarning(c); text != "" {
		style := u.th.notice
		if bad {
			style = u.th.banner
		}
		add(text, style)
	}
	if note, t := expiryNote(c.notAfter, u.now()); note != "" {
		style := u.th.notice
		if t == toneBad {
			style = u.th.banner
		}
		add(c.name()+": "+note+".", style)
	}
	return rows
}
