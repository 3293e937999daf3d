package ui

import (
	"fmt"
	"slices"
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
// A long name is cut to leave the trust state room: a name is chosen by
// its owner (up to 64 characters), and must not push "KEY CHANGED" or
// "unknown" off the screen, nor end in words that read like a trust state.
func (u *UI) titleRows(w int) []line {
	th := u.th
	c := u.roster.get(u.open)
	if c == nil {
		return []line{{{" certchat", th.bar.Bold(true)}, {"  no chat open (Tab, /add)", th.barDim}}}
	}
	if c.grp != nil {
		return []line{u.gc.groupTitle(c, w)}
	}
	trust, t := trustTitle(c.info)
	l := line{
		{" " + titleName(c.name(), trust, w), th.bar.Bold(true)},
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

// titleName is name cut to leave state, after it in a title of width w,
// its room; never under 8 cells.
func titleName(name, state string, w int) string {
	return truncate(name, max(8, w-3-textWidth(state)))
}

// notPostQuantum marks a live session whose key exchange was X25519 alone.
const notPostQuantum = "not post-quantum"

// statusRows is the status bar: who I am, how I am reachable, unread
// messages elsewhere, and where /help is. It is one row: where the long
// form does not fit, the short one is used, then the least important
// parts go whole (fitStatus); no word is ever cut in the middle.
func (u *statusLine) statusRows(w int) []line {
	th := u.th
	listen := listenText(u.addrs)
	parts := []statusPart{
		{long: "me: " + u.myName, short: u.myName, style: th.status.Bold(true), keep: 50},
		{long: u.myFP, style: th.status.Bold(true), keep: 20, glued: true},
		{long: listen, short: strings.TrimPrefix(listen, "listening on "), style: th.status, keep: 40},
		{long: u.lanText(true), short: u.lanText(false), style: th.status, keep: 10},
		{long: relayText(u.relays), style: th.status, keep: 30},
	}
	if n := u.roster.totalUnread(u.open); n > 0 {
		parts = append(parts, statusPart{long: fmt.Sprintf("%d unread: Alt+A", n), short: fmt.Sprintf("%d unread", n),
			style: th.status.Bold(true), keep: 60, shortKeep: 35})
	}
	return []line{fitStatus(parts, statusPart{long: "/help", style: th.status}, w, th.status)}
}

// statusPart is one piece of the status bar: its long and short forms
// (short "" means it has one form), and how important it is to keep:
// the part with the lowest keep goes first, and its short form replaces
// the long one when shortKeep is the lowest (0: before anything goes).
// A glued part follows the one before it after a space, not a separator.
type statusPart struct {
	long, short     string
	style           tcell.Style
	keep, shortKeep int
	glued           bool
}

// fitStatus lays out parts in w cells. While they do not fit, the least
// important step is taken: a part takes its short form, or a part goes,
// whole. The hint goes right-aligned where there is room. A last part
// still too long is shortened after a whole word.
func fitStatus(parts []statusPart, hint statusPart, w int, bg tcell.Style) line {
	ps := slices.Clone(parts)
	widths := make([]int, len(ps)) // each part's text: measured once a form
	for i, p := range ps {
		widths[i] = textWidth(p.long)
	}
	for {
		total := 0
		for i, p := range ps {
			total += widths[i] + 3 // " │ " before each, or " "
			if i == 0 || p.glued {
				total -= 2
			}
		}
		if total <= w {
			l := renderStatus(ps, bg)
			if h := " " + hint.long + " "; total+1+textWidth(h) <= w {
				l = append(l, span{strings.Repeat(" ", w-total-textWidth(h)), bg}, span{h, hint.style})
			}
			return l
		}
		if len(ps) == 0 {
			return nil
		}
		k, shorten := -1, false
		for i, p := range ps {
			if p.short != "" && (k < 0 || p.shortKeep < cost(ps[k], shorten)) {
				k, shorten = i, true
			}
			if len(ps) > 1 && (k < 0 || p.keep < cost(ps[k], shorten)) {
				k, shorten = i, false
			}
		}
		switch {
		case k < 0: // one part, in its short form
			return line{{" ", bg}, {shortenWords(ps[0].long, max(0, w-1), false), ps[0].style}}
		case shorten:
			ps[k].long, ps[k].short = ps[k].short, ""
			widths[k] = textWidth(ps[k].long)
		default:
			ps, widths = slices.Delete(ps, k, k+1), slices.Delete(widths, k, k+1)
			ps[0].glued = false
		}
	}
}

// cost is how important the step on p is: shortening or dropping it.
func cost(p statusPart, shorten bool) int {
	if shorten {
		return p.shortKeep
	}
	return p.keep
}

// renderStatus joins the parts with separators, after a margin.
func renderStatus(ps []statusPart, bg tcell.Style) line {
	var l line
	for i, p := range ps {
		sep := " │ "
		if i == 0 || p.glued {
			sep = " "
		}
		l = append(l, span{sep, bg}, span{p.long, p.style})
	}
	return l
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
	text, bad := u.dlg.trustWarning(c)
	if c.grp != nil {
		text, bad = u.gc.groupBanner(c)
	}
	if text != "" {
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
