package ui

import (
	"fmt"
	"slices"
	"strings"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/store"
)

// Finding one's place in a conversation: the "new messages" divider above
// the first message that was unread when the chat opened (or that came
// while the user read older messages), a key to jump to it, and a search
// hit brought into view and highlighted. The view scrolls in rows up from
// the bottom; a place not loaded yet is reached by loading older pages
// until it is.

// newMessagesLabel is the divider above the first unread message.
const newMessagesLabel = " new messages "

// placeFinder is the conversation view's part that finds one's place:
// the divider, where to scroll once a page is loaded, and the search
// hit. Like the view, it belongs to the event loop.
type placeFinder struct {
	*convView

	newFrom     e2e.MessageID // the "new messages" divider is above it
	away        bool          // the terminal does not have the focus
	unreadLeft  int           // unread messages to place the divider above, once loaded
	target      place         // where to scroll once loaded
	scrollToTop *entry        // the next draw brings it to the top
	hitSeq      uint64        // the search hit shown highlighted
	hitText     string        // what was searched
}

// place is where the conversation view should scroll once it can: a
// message (by sequence number), or the divider.
type place struct {
	seq     uint64
	divider bool
	active  bool
}

// markUnread remembers that the newest n incoming messages are unread:
// the divider goes above the oldest of them once they are loaded.
func (c *placeFinder) markUnread(n int) {
	c.newFrom, c.unreadLeft = e2e.MessageID{}, n
}

// resolveDivider places the divider once the unread messages are loaded:
// above the n-th incoming message from the newest, or above the oldest
// incoming one when the whole conversation is loaded and holds fewer.
func (c *placeFinder) resolveDivider() {
	if c.unreadLeft <= 0 || c.newFrom != (e2e.MessageID{}) {
		return
	}
	n, oldest := 0, -1
	for i := len(c.stored) - 1; i >= 0; i-- {
		if c.stored[i].msg.Direction != store.Incoming {
			continue
		}
		n, oldest = n+1, i
		if n == c.unreadLeft {
			break
		}
	}
	if n == c.unreadLeft || (!c.hasMore && oldest >= 0) {
		c.setDivider(c.stored[oldest])
		c.unreadLeft = 0
	}
}

// arrived puts the divider above a message that came while the user was
// reading older ones (scrolled up) or while the terminal did not have the
// focus, when there is none yet.
func (c *placeFinder) arrived(e *entry) {
	if (c.offset > 0 || c.away) && c.newFrom == (e2e.MessageID{}) && c.unreadLeft == 0 && e.msg.Direction == store.Incoming {
		c.setDivider(e)
	}
}

func (c *placeFinder) setDivider(e *entry) { c.newFrom = e.msg.ID }

// hasDivider says whether there is a divider, or one waits for its page.
func (c *placeFinder) hasDivider() bool {
	return c.newFrom != (e2e.MessageID{}) || c.unreadLeft > 0
}

// goTo scrolls to p now if it is loaded, or remembers it and loads older
// pages until it is.
func (c *placeFinder) goTo(p place) {
	p.active = true
	c.target = p
	c.seekTarget()
}

// seekTarget brings the remembered place into view if it is loaded, and
// otherwise asks for the page before; it runs again as each page arrives.
func (c *placeFinder) seekTarget() {
	t := c.target
	if !t.active || !c.loaded {
		return
	}
	c.resolveDivider()
	i := -1
	switch {
	case t.divider && c.newFrom != (e2e.MessageID{}):
		i = slices.IndexFunc(c.stored, func(e *entry) bool { return e.msg.ID == c.newFrom })
	case !t.divider:
		i = slices.IndexFunc(c.stored, func(e *entry) bool { return e.msg.Seq == t.seq })
	}
	if i >= 0 {
		c.target = place{}
		c.scrollToEntry(i)
		return
	}
	if !c.hasMore || (!t.divider && len(c.stored) > 0 && t.seq > c.oldestSeq()) {
		c.target = place{} // not in this conversation (deleted?)
		return
	}
	if !c.loading && c.needOlder != nil {
		c.needOlder()
	}
}

// scrollToEntry asks the next draw to scroll so that entry i's first row
// (its divider, if it has one) is near the top of the view, under one row
// of the message before, or as near as the end allows. The draw knows the width the rows take.
func (c *placeFinder) scrollToEntry(i int) { c.scrollToTop = c.stored[i] }

// applyScroll does what scrollToEntry asked, at width w and height h.
func (c *placeFinder) applyScroll(w, h int) {
	e := c.scrollToTop
	if e == nil {
		return
	}
	c.scrollToTop = nil
	i := slices.Index(c.stored, e)
	if i < 0 {
		return
	}
	rows := len(c.belowRows(w))
	for k := i; k < c.count(); k++ {
		rows += len(c.rowsOf(k, w))
	}
	if i > 0 && h > 3 {
		rows++ // the row above stays in view: where the user was
	}
	c.offset = max(0, rows-h)
}

// highlight marks the message with seq as the search hit for text.
func (c *placeFinder) highlight(seq uint64, text string) { c.hitSeq, c.hitText = seq, text }

// decorate adds what rowsOf shows besides the message: the "new messages"
// divider above it, and the search hit's highlight.
func (c *placeFinder) decorate(e *entry, rows []line, w int) []line {
	if c.hitSeq != 0 && e.msg.Seq == c.hitSeq && !e.pending {
		rows = highlightRows(rows, c.hitText, c.th)
	}
	if e.msg.ID == c.newFrom && !e.pending {
		side := max(0, (w-textWidth(newMessagesLabel))/2)
		div := line{{strings.Repeat("─", side) + newMessagesLabel + strings.Repeat("─", max(0, w-side-textWidth(newMessagesLabel))), c.th.unread}}
		rows = append([]line{div}, rows...)
	}
	return rows
}

// highlightRows draws the occurrences of text in a message's rows in
// reverse video, and its time too, so that a hit cut across rows still
// shows which message it is.
func highlightRows(rows []line, text string, th *theme) []line {
	out := make([]line, len(rows))
	needle := strings.ToLower(text)
	for r, l := range rows {
		var nl line
		for k, s := range l {
			switch {
			case r == 0 && k == 0:
				nl = append(nl, span{s.text, s.style.Reverse(true)})
			case s.style == th.text: // the message's text, not its sender or state
				nl = append(nl, splitHits(s, needle)...)
			default:
				nl = append(nl, s)
			}
		}
		out[r] = nl
	}
	return out
}

// splitHits splits a span around the occurrences of needle (lower case),
// which it draws reversed.
func splitHits(s span, needle string) []span {
	lower := strings.ToLower(s.text)
	if needle == "" || len(lower) != len(s.text) || !strings.Contains(lower, needle) {
		return []span{s}
	}
	var out []span
	rest, low := s.text, lower
	for {
		i := strings.Index(low, needle)
		if i < 0 {
			break
		}
		if i > 0 {
			out = append(out, span{rest[:i], s.style})
		}
		out = append(out, span{rest[i : i+len(needle)], s.style.Reverse(true)})
		rest, low = rest[i+len(needle):], low[i+len(needle):]
	}
	if rest != "" {
		out = append(out, span{rest, s.style})
	}
	return out
}

// jumpToUnread scrolls the open chat to the "new messages" divider.
func (u *finder) jumpToUnread() {
	if u.open == "" || !u.conv.find.hasDivider() {
		u.notes.inform("No new messages in this chat. Alt+A opens the next chat with unread messages.")
		return
	}
	u.conv.find.goTo(place{divider: true})
}

// finder is the window's part that finds one's place across chats: the
// key to the divider, /search and stepping through its hits. It belongs
// to the event loop.
type finder struct {
	*UI

	search searchState // the last /search, to step through its hits
}

// searchState is the last /search: its hits, newest first, and the one
// shown.
type searchState struct {
	text  string
	found []store.Message
	at    int
}

// showHit opens the chat of hit i of the last search, scrolls to it and
// highlights it.
func (u *finder) showHit(i int) {
	s := &u.search
	if len(s.found) == 0 {
		u.notes.inform("No search results: /search TEXT finds messages.")
		return
	}
	s.at = (i%len(s.found) + len(s.found)) % len(s.found)
	m := s.found[s.at]
	u.roster.ensure(unknownPeer(m.Peer))
	u.openChat(m.Peer)
	u.conv.find.highlight(m.Seq, s.text)
	u.conv.find.goTo(place{seq: m.Seq})
	u.notes.informAbout(m.Peer, fmt.Sprintf("Result %d of %d for \u201c%s\u201d. Alt+N: next (older), Alt+P: previous; Esc clears.",
		s.at+1, len(s.found), truncate(oneLine(s.text), 30)))
}

// findKey runs the Alt+letter keys of finding one's place: Alt+U jumps
// to the first unread message, Alt+N and Alt+P step through search hits.
func (u *finder) findKey(r rune) bool {
	switch r {
	case 'u', 'U':
		u.jumpToUnread()
	case 'n', 'N':
		u.showHit(u.search.at + 1)
	case 'p', 'P':
		u.showHit(u.search.at - 1)
	default:
		return false
	}
	return true
}
