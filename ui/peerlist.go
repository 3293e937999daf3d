package ui

import (
	"fmt"

	"github.com/gdamore/tcell/v2"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/rivo/tview"
)

// rowsPerChat: a chat takes two rows: name and unread count, then trust
// badge and path.
const rowsPerChat = 2

// peerList draws the roster: one header row, then two rows per chat, and
// a separator on its right edge. Clicking a chat opens it; the wheel
// scrolls the list.
type peerList struct {
	*tview.Box
	th       *theme
	r        *roster
	open     func() peer.ID
	onSelect func(peer.ID)
	top      int     // first chat shown
	lastOpen peer.ID // the open chat when it was last brought into view
	// groupLine is a group's second row: members, in their trust's tone.
	groupLine func(*chat) (string, tone)
}

func newPeerList(th *theme, r *roster, open func() peer.ID, onSelect func(peer.ID), groupLine func(*chat) (string, tone)) *peerList {
	return &peerList{Box: tview.NewBox(), th: th, r: r, open: open, onSelect: onSelect, groupLine: groupLine}
}

// capacity is how many chats fit in h rows (one is the header).
func capacity(h int) int { return max(0, (h-1)/rowsPerChat) }

func (l *peerList) Draw(scr tcell.Screen) {
	l.Box.DrawForSubclass(scr, l)
	x, y, w, h := l.GetInnerRect()
	if w < 3 || h < 1 {
		return
	}
	listW := w - 1
	l.drawHeader(scr, x, y, listW)
	for row := 0; row < h; row++ {
		scr.SetContent(x+listW, y+row, '│', nil, l.th.dim)
	}
	if len(l.r.order) == 0 {
		drawText(scr, x+1, y+1, listW-1, "No chats yet.", l.th.dim)
		drawText(scr, x+1, y+2, listW-1, "/add INVITATION", l.th.dim)
		return
	}
	l.scrollIntoView(capacity(h))
	for k := 0; k < capacity(h) && l.top+k < len(l.r.order); k++ {
		p := l.r.order[l.top+k]
		l.drawChat(scr, x, y+1+k*rowsPerChat, listW, l.r.get(p), p == l.open())
	}
}

func (l *peerList) drawHeader(scr tcell.Screen, x, y, w int) {
	header := " Chats"
	if n := len(l.r.order); n > 0 {
		header = fmt.Sprintf(" Chats (%d)", n)
	}
	drawText(scr, x, y, w, header, l.th.dim.Bold(true))
}

// scrollIntoView keeps the open chat visible when it changes, and the
// list within bounds.
func (l *peerList) scrollIntoView(n int) {
	if open := l.open(); open != l.lastOpen {
		l.lastOpen = open
		if i := l.r.index(open); i >= 0 && n > 0 {
			if i < l.top {
				l.top = i
			} else if i >= l.top+n {
				l.top = i - n + 1
			}
		}
	}
	l.top = max(0, min(l.top, len(l.r.order)-n))
}

func (l *peerList) drawChat(scr tcell.Screen, x, y, w int, c *chat, selected bool) {
	base := tcell.StyleDefault
	if selected {
		base = l.th.selected
		fill(scr, x, y, w, base)
		fill(scr, x, y+1, w, base)
	}
	dot, dotStyle := "○", onBar(l.th.dim, base)
	if c.info.Online {
		dot, dotStyle = "●", onBar(l.th.good, base)
	}
	if c.grp != nil {
		dot = "#"
	}
	unread := ""
	if c.unread > 0 {
		unread = fmt.Sprintf(" %d ", min(c.unread, 999))
	}
	nameW := w - 3 - textWidth(unread)
	drawText(scr, x+1, y, 1, dot, dotStyle)
	drawText(scr, x+3, y, nameW, truncate(c.name(), nameW), base.Bold(c.unread > 0 || selected))
	drawText(scr, x+w-textWidth(unread), y, textWidth(unread), unread, onBar(l.th.unread, base).Reverse(true))
	if c.grp != nil {
		text, t := l.groupLine(c)
		drawText(scr, x+3, y+1, w-3, text, l.th.toned(t, base))
		return
	}
	badge, t := trustBadge(c.info)
	used := drawText(scr, x+3, y+1, w-3, badge, l.th.toned(t, base))
	drawText(scr, x+3+used, y+1, w-3-used, " · "+pathText(c.info), onBar(l.th.dim, base))
}

// MouseHandler opens a clicked chat and scrolls on the wheel.
func (l *peerList) MouseHandler() func(tview.MouseAction, *tcell.EventMouse, func(tview.Primitive)) (bool, tview.Primitive) {
	return l.WrapMouseHandler(func(action tview.MouseAction, ev *tcell.EventMouse, _ func(tview.Primitive)) (bool, tview.Primitive) {
		mx, my := ev.Position()
		if !l.InRect(mx, my) {
			return false, nil
		}
		_, y, _, _ := l.GetInnerRect()
		switch action {
		case tview.MouseLeftClick:
			if k := (my - y - 1) / rowsPerChat; my > y && l.top+k < len(l.r.order) {
				l.onSelect(l.r.order[l.top+k])
			}
			return true, nil
		case tview.MouseScrollUp:
			l.top = max(0, l.top-1)
			return true, nil
		case tview.MouseScrollDown:
			l.top++
			return true, nil
		}
		return false, nil
	})
}
