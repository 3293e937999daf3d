package ui

import (
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
)

// maxNoticeRows is how many rows the notice line grows to.
const maxNoticeRows = 3

// notice is the line above the input: the last information or error.
// A notice about one chat (about set) belongs to it: it shows where it
// was given and in that chat, and goes when another chat opens; a notice
// about no chat in particular stays until the next one.
type notice struct {
	text string
	err  bool
	// about is the chat the notice concerns; "" for the whole window.
	about peer.ID
	// hideIn is a chat the notice is not shown in: a changed key's
	// warning is not shown in the chat of the contact it claims to be.
	hideIn peer.ID
}

// notices is the notice line's part of the window: what it says and how
// tall it may grow. It belongs to the event loop.
type notices struct {
	*UI

	notice    notice
	noticeCap int // rows the notice may take on this screen
}

// inform shows an information line above the input.
func (u *notices) inform(text string) { u.notice = notice{text: text} }

// clear empties the notice line.
func (u *notices) clear() { u.notice = notice{} }

// showError shows an error line above the input.
func (u *notices) showError(text string) { u.notice = notice{text: text, err: true} }

// fail shows what went wrong as a sentence: "what: why".
func (u *notices) fail(what string, err error) { u.showError(what + ": " + describe(err)) }

// informAbout shows information about p's chat.
func (u *notices) informAbout(p peer.ID, text string) { u.notice = notice{text: text, about: p} }

// showErrorAbout shows an error about p's chat.
func (u *notices) showErrorAbout(p peer.ID, text string) {
	u.notice = notice{text: text, err: true, about: p}
}

// failAbout shows what went wrong with p's chat.
func (u *notices) failAbout(p peer.ID, what string, err error) {
	u.showErrorAbout(p, what+": "+describe(err))
}

// leaveNotice drops a notice about another chat than p, which is
// opening: what was said about bob does not stay on screen in alice's.
func (u *notices) leaveNotice(p peer.ID) {
	if u.notice.about != "" && u.notice.about != p {
		u.notice = notice{}
	}
}

// noticeRows is the last notice or error, wrapped at spaces into at most
// u.noticeCap rows (maxNoticeRows where the screen has room); what does
// not fit is cut after a whole word and marked "…".
func (u *notices) noticeRows(w int) []line {
	if u.notice.text == "" || (u.notice.hideIn != "" && u.notice.hideIn == u.open) {
		return nil
	}
	style := u.th.info
	if u.notice.err {
		style = u.th.errStyle
	}
	capRows := maxNoticeRows
	if u.noticeCap > 0 {
		capRows = min(capRows, u.noticeCap)
	}
	var rows []line
	for _, r := range wrapRows(u.notice.text, max(1, w-1), capRows) {
		rows = append(rows, line{{" " + r, style}})
	}
	return rows
}

// wrapRows wraps text (with newlines) at spaces into at most n rows of w
// cells. When it needs more, the last row keeps whole words only and ends
// with " …"; a single word wider than a row is the only thing cut.
func wrapRows(text string, w, n int) []string {
	rows := wrapText(text, w)
	if n <= 0 || len(rows) <= n {
		return rows
	}
	rows = rows[:n]
	rows[n-1] = shortenWords(rows[n-1], w, true)
	return rows
}

// shortenWords shortens s at a word boundary so that it fits w cells
// with " …" at its end; force adds the mark even when s fits (more text
// followed). A single word wider than w is the only thing cut.
func shortenWords(s string, w int, force bool) string {
	s = strings.TrimRight(s, " ")
	if !force && textWidth(s) <= w {
		return s
	}
	const mark = " …"
	for textWidth(s)+textWidth(mark) > w {
		i := strings.LastIndexByte(s, ' ')
		if i <= 0 { // one word wider than the room: only now is a word cut
			if force {
				return truncate(s+"…", w)
			}
			return truncate(s, w)
		}
		s = strings.TrimRight(s[:i], " ")
	}
	return s + mark
}
