package ui

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
	"github.com/gdamore/tcell/v2"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/rivo/tview"
)

// entry is one message as shown, with its rows cached for one width.
type entry struct {
	msg     store.Message
	members []store.MemberDelivery // an own group message's delivery to each member
	pending bool                   // shown while Send runs, before the store gave it an ID
	rows    []line
	rowsW   int
}

// convView shows the open conversation: the loaded pages of history,
// newest at the bottom. It keeps only what was loaded; scrolling towards
// the top asks for the page before (needOlder). Scrolling is counted in
// rows up from the bottom, so new messages and older pages never move
// what the user is reading.
type convView struct {
	*tview.Box
	th  *theme
	loc *time.Location
	now func() time.Time

	chat    *chat    // the open chat; nil: none
	name    string   // chat's name as the rows show it
	offline bool     // chat's peer offline, as the rows show it (own messages wait)
	stored  []*entry // from the store, by sequence number
	pending []*entry // typed, not yet stored (or failed to store)
	byID    map[e2e.MessageID]*entry
	hasMore bool // older messages are in the store
	loading bool // a page is being read
	loaded  bool // the first page arrived
	gen     int  // bumped on every reset, to drop stale pages
	offset  int  // rows scrolled up from the bottom
	width   int  // inner width at the last draw
	height  int  // inner height at the last draw

	needOlder func()
	welcome   func(w int) []line // what to show with no chat open

	// find finds one's place (findplace.go).
	find *placeFinder
	// sel is the message selected with Alt+Up/Down (actions.go); zero:
	// none. jump is a message to select once its page is loaded.
	sel  e2e.MessageID
	jump e2e.MessageID
	// fileRows are the rows under a file offer (transfers.go).
	fileRows func(m store.Message, w, indent int) []line
	// senderName names a group message's sender (groupchat.go).
	senderName func(p peer.ID) string
	// waitReason says why an own group message waits for a member, when
	// it is for the user to act (prompts.go), else "".
	waitReason func(p peer.ID) string
	// changes are the open group's membership changes, shown among its
	// messages (timeline.go).
	changes *timeline
}

func newConvView(th *theme, loc *time.Location, now func() time.Time) *convView {
	c := &convView{Box: tview.NewBox(), th: th, loc: loc, now: now, byID: map[e2e.MessageID]*entry{}}
	c.find = &placeFinder{convView: c}
	c.changes = &timeline{convView: c}
	c.SetBorderPadding(0, 0, 1, 0)
	return c
}

// reset shows another conversation (or none); its first page is loading.
func (c *convView) reset(ch *chat) {
	c.gen++
	c.chat = ch
	c.stored, c.pending = nil, nil
	c.byID = map[e2e.MessageID]*entry{}
	c.hasMore, c.loading, c.loaded, c.offset = false, ch != nil, false, 0
	c.find.markUnread(0)
	c.find.target, c.find.scrollToTop, c.find.hitSeq, c.find.hitText = place{}, nil, 0, ""
	c.sel, c.jump = e2e.MessageID{}, e2e.MessageID{}
	c.changes.list, c.changes.where = nil, nil
	if ch != nil {
		c.name, c.offline = ch.name(), ch.grp == nil && !ch.info.Online
		c.find.markUnread(ch.unread)
	}
}

// refresh takes up the chat's name and whether its peer is offline (which
// own messages not yet sent show), dropping the rows drawn with the old.
func (c *convView) refresh() {
	if name := c.chat.name(); name != c.name {
		c.name = name
		for _, e := range c.stored {
			e.rows = nil
		}
	}
	if off := c.chat.grp == nil && !c.chat.info.Online; off != c.offline {
		c.offline = off
		for _, e := range c.stored {
			if e.msg.Status == store.StatusSending {
				e.rows = nil
			}
		}
	}
}

func (c *convView) count() int { return len(c.stored) + len(c.pending) }

func (c *convView) at(i int) *entry {
	if i < len(c.stored) {
		return c.stored[i]
	}
	return c.pending[i-len(c.stored)]
}

// oldestSeq is the page cursor for the next older page.
func (c *convView) oldestSeq() uint64 {
	if len(c.stored) == 0 {
		return 0
	}
	return c.stored[0].msg.Seq
}

// addPage merges a page of history (oldest first) read for generation gen.
func (c *convView) addPage(gen int, page []store.Message, limit int) bool {
	if gen != c.gen {
		return false
	}
	c.loading, c.loaded = false, true
	for _, m := range page {
		if _, ok := c.byID[m.ID]; !ok {
			e := &entry{msg: m}
			c.byID[m.ID] = e
			c.stored = append(c.stored, e)
		}
	}
	c.sortStored()
	if c.chat != nil && c.chat.grp != nil && len(page) > 0 {
		for _, e := range c.stored { // a group reply quotes what is loaded
			if e.msg.ReplyTo != (e2e.MessageID{}) {
				e.rows = nil
			}
		}
	}
	c.hasMore = len(page) >= limit && page[0].Seq > 1
	c.find.resolveDivider()
	c.find.seekTarget()
	return true
}

func (c *convView) sortStored() {
	slices.SortStableFunc(c.stored, func(a, b *entry) int {
		switch {
		case a.msg.Seq < b.msg.Seq:
			return -1
		case a.msg.Seq > b.msg.Seq:
			return 1
		}
		return 0
	})
}

// addPending shows a message the user just typed, before Send returns.
func (c *convView) addPending(body string) *entry {
	e := &entry{pending: true, msg: store.Message{
		Peer: c.chat.info.ID, Direction: store.Outgoing, Body: body, SentAt: c.now(), StoredAt: c.now(), Status: store.StatusSending,
	}}
	if g := c.chat.grp; g != nil {
		e.msg.Peer, e.msg.Group = "", store.GroupID(g.info.ID)
	}
	c.pending = append(c.pending, e)
	c.keepPlace(c.count() - 1)
	return e
}

// failPending marks a typed message that could not be stored.
func (c *convView) failPending(e *entry, reason string) {
	e.msg.Status, e.msg.Error, e.rows = store.StatusFailed, reason, nil
}

// upsert adds a new message or updates a shown one's delivery state.
// Edits, deletions and reactions are not shown on their own: update
// shows what they did to their message.
func (c *convView) upsert(m store.Message) {
	if !c.belongs(m) || m.Kind != store.KindText {
		return
	}
	if e := c.byID[m.ID]; e != nil {
		if statusRank(m.Status) >= statusRank(e.msg.Status) {
			keepQuote(&m, e.msg)
			e.msg, e.rows = m, nil
		}
		return
	}
	if c.hasMore && len(c.stored) > 0 && m.Seq < c.oldestSeq() {
		return // not loaded yet; it comes with its page
	}
	e := c.takePending(m)
	wasShown := e != nil
	if e == nil {
		e = &entry{}
	}
	e.msg, e.pending, e.rows = m, false, nil
	c.byID[m.ID] = e
	c.stored = append(c.stored, e)
	c.sortStored()
	c.find.arrived(e)
	if c.chat.grp != nil { // a late group message quoted by a reply shown
		c.requote(m)
	}
	if !wasShown {
		c.keepPlace(slices.Index(c.stored, e))
	}
}

// update shows a message's new state after an edit, deletion or
// reaction, and the quote of the replies to it.
func (c *convView) update(m store.Message) {
	if !c.belongs(m) {
		return
	}
	if e := c.byID[m.ID]; e != nil {
		st := e.msg.Status
		keepQuote(&m, e.msg)
		e.msg, e.rows = m, nil
		if statusRank(st) > statusRank(m.Status) {
			e.msg.Status = st
		}
	}
	c.requote(m)
}

// requote shows m's new state (or its arrival) in the quotes of the
// replies to it.
func (c *convView) requote(m store.Message) {
	for _, e := range c.stored {
		if q := e.msg.Quote; q != nil && q.ID == m.ID {
			q2 := *q
			q2.Body, q2.Deleted = m.Body, m.Deleted
			e.msg.Quote, e.rows = &q2, nil
		} else if e.msg.ReplyTo == m.ID {
			e.rows = nil // a group reply quotes what the pane shows
		}
	}
}

// belongs says whether m is of the open conversation: a group's message
// of the open group, a private message with the open chat's peer.
func (c *convView) belongs(m store.Message) bool {
	switch {
	case c.chat == nil:
		return false
	case c.chat.grp != nil:
		return m.Group == store.GroupID(c.chat.grp.info.ID)
	}
	return m.Group == (store.GroupID{}) && m.Peer == c.chat.info.ID
}

// keepQuote keeps the quote shown with a reply when a newer copy of it
// (a status change) comes without one: status changes do not read the
// message replied to.
func keepQuote(m *store.Message, shown store.Message) {
	if m.Quote == nil && m.ReplyTo == shown.ReplyTo {
		m.Quote = shown.Quote
	}
}

// takePending removes and returns the first typed message with m's body,
// when m is what the store made of it.
func (c *convView) takePending(m store.Message) *entry {
	if m.Direction != store.Outgoing {
		return nil
	}
	for i, e := range c.pending {
		if e.msg.Body == m.Body && e.msg.Status != store.StatusFailed {
			c.pending = slices.Delete(c.pending, i, i+1)
			return e
		}
	}
	return nil
}

// keepPlace keeps the rows the user reads in place when entry i was
// added while scrolled up.
func (c *convView) keepPlace(i int) {
	if c.offset > 0 && c.width > 0 && i >= 0 {
		c.offset += len(c.rowsOf(i, c.width))
	}
}

// statusRank orders delivery states so a late, older report never
// overwrites a newer one.
func statusRank(s store.Status) int {
	switch s {
	case store.StatusSent, store.StatusQueued:
		return 1
	case store.StatusFailed:
		return 2
	case store.StatusDelivered:
		return 3
	}
	return 0
}

// scroll moves the view n rows towards older messages (negative: newer).
func (c *convView) scroll(n int) { c.offset = max(0, c.offset+n) }

// pageSize is how far PgUp and PgDn move.
func (c *convView) pageSize() int { return max(1, c.height-1) }

func (c *convView) Draw(scr tcell.Screen) {
	c.Box.DrawForSubclass(scr, c)
	x, y, w, h := c.GetInnerRect()
	if w <= 0 || h <= 0 {
		return
	}
	c.width, c.height = w, h
	if c.chat == nil {
		c.drawRows(scr, x, y, w, h, c.welcome(w))
		return
	}
	c.refresh()
	c.find.applyScroll(w, h)
	rows, reachedTop := c.collect(w, 2*h+c.offset)
	if reachedTop {
		c.offset = min(c.offset, max(0, len(rows)-h))
		if c.hasMore && !c.loading && c.needOlder != nil {
			c.needOlder()
		}
	}
	end := len(rows) - c.offset
	start := max(0, end-h)
	c.drawRows(scr, x, y+h-(end-start), w, end-start, rows[start:end])
	if c.offset > 0 {
		hint := " ↓ newer messages: PgDn "
		drawText(scr, x+max(0, w-textWidth(hint)), y+h-1, w, hint, c.th.notice)
	}
}

func (c *convView) drawRows(scr tcell.Screen, x, y, w, h int, rows []line) {
	for i := 0; i < h && i < len(rows); i++ {
		drawLine(scr, x, y+i, w, rows[i])
	}
}

// collect gathers at least need rows, newest last, from the newest
// message back. reachedTop says every loaded message is in them (with a
// header row on top).
func (c *convView) collect(w, need int) (rows []line, reachedTop bool) {
	var chunks [][]line
	n := 0
	i := c.count() - 1
	for ; i >= 0 && n < need; i-- {
		r := c.rowsOf(i, w)
		chunks = append(chunks, r)
		n += len(r)
	}
	if i < 0 {
		reachedTop = true
		chunks = append(chunks, wrapLine(c.header(), w))
	}
	rows = make([]line, 0, n+2)
	for k := len(chunks) - 1; k >= 0; k-- {
		rows = append(rows, chunks[k]...)
	}
	return append(rows, c.belowRows(w)...), reachedTop
}

// gapRows, under the newest message, say that messages the peer wrote
// earlier have not arrived yet (the sender's numbering shows the gap).
func (c *convView) gapRows(w int) []line {
	if c.chat.grp != nil {
		return c.groupGapRows(w)
	}
	n := c.chat.missing
	if n <= 0 {
		return nil
	}
	text := fmt.Sprintf("⚠ %d earlier messages from %s have not arrived yet; they will show when they do.", n, c.name)
	if n == 1 {
		text = fmt.Sprintf("⚠ 1 earlier message from %s has not arrived yet; it will show when it does.", c.name)
	}
	return wrapLine(line{{text, c.th.toned(toneWarn, c.th.dim)}}, w)
}

// header is the row above the oldest loaded message.
func (c *convView) header() line {
	switch {
	case !c.loaded:
		return line{{"loading…", c.th.dim}}
	case c.loading || c.hasMore:
		return line{{"loading older messages…", c.th.dim}}
	}
	return line{{"This is the start of your conversation with " + c.name + ".", c.th.dim}}
}

// rowsOf is entry i's rows, with the membership changes shown above it
// (timeline.go) and a date divider above each when the day changes.
// Days go by arrival (the order of the conversation); the time on each
// message is its sender's.
func (c *convView) rowsOf(i, w int) []line {
	e := c.at(i)
	rows := c.find.decorate(e, c.render(e, w), w)
	var prev time.Time
	if i > 0 {
		prev = c.at(i - 1).msg.StoredAt
	}
	cs := c.changes.before(i)
	if len(cs) == 0 && !newDay(prev, e.msg.StoredAt, c.loc) {
		return rows
	}
	above, prev := c.changes.rows(cs, prev, w)
	if newDay(prev, e.msg.StoredAt, c.loc) {
		above = append(above, c.divider(e.msg.StoredAt.In(c.loc), w))
	}
	return append(above, rows...)
}

func sameDay(a, b time.Time) bool {
	ay, am, ad := a.Date()
	by, bm, bd := b.Date()
	return ay == by && am == bm && ad == bd
}

func (c *convView) divider(day time.Time, w int) line {
	label := " " + dayLabel(day, c.now().In(c.loc)) + " "
	side := max(0, (w-textWidth(label))/2)
	return line{{strings.Repeat("─", side) + label + strings.Repeat("─", max(0, w-side-textWidth(label))), c.th.dim}}
}

// dayLabel names a day: Today, Yesterday, or the date.
func dayLabel(day, now time.Time) string {
	switch {
	case sameDay(day, now):
		return "Today"
	case sameDay(day, now.AddDate(0, 0, -1)):
		return "Yesterday"
	}
	return day.Format("Mon 2 Jan 2006")
}

// render lays out one message at width w: "15:04 name: text", wrapped
// under the text, and for own messages the delivery state at the end.
func (c *convView) render(e *entry, w int) []line {
	if e.rows != nil && e.rowsW == w {
		return e.rows
	}
	m := e.msg
	who, whoStyle := truncate(c.name, 16), c.th.them
	if m.Direction == store.Outgoing {
		who, whoStyle = "me", c.th.me
	} else if c.chat != nil && c.chat.grp != nil && c.senderName != nil {
		who = truncate(c.senderName(m.Peer), 16)
	}
	timeStyle := c.th.dim
	if c.sel != (e2e.MessageID{}) && c.sel == m.ID {
		timeStyle, whoStyle = c.th.selected, c.th.selected
	}
	prefix := line{{shownTime(m).In(c.loc).Format("15:04") + " ", timeStyle}, {who, whoStyle}, {": ", c.th.dim}}
	indent := prefix.width()
	var rows []line
	if m.ReplyTo != (e2e.MessageID{}) {
		rows = append(rows, c.quoteRow(m, w, indent))
	}
	first := len(rows)
	if w-indent < 12 { // narrow: the name on a row of its own
		rows, indent = append(rows, wrapLine(prefix, w)...), min(2, w/3)
	}
	body, bodyStyle := identity.SanitizeText(m.Body, true), c.th.text
	if m.Deleted {
		body, bodyStyle = "message deleted", c.th.dim.Italic(true)
	}
	for k, text := range wrapText(body, max(1, w-indent)) {
		if k == 0 && len(rows) == first {
			rows = append(rows, append(slices.Clone(prefix), span{text, bodyStyle}))
			continue
		}
		rows = append(rows, line{{strings.Repeat(" ", indent), c.th.text}, {text, bodyStyle}})
	}
	rows = c.appendStatus(rows, e, w, indent)
	if len(m.Reactions) > 0 {
		rows = append(rows, wrapLine(append(line{{strings.Repeat(" ", indent), c.th.text}}, c.reactionSpans(m)...), w)...)
	}
	if c.fileRows != nil {
		rows = append(rows, c.fileRows(m, w, indent)...)
	}
	e.rows, e.rowsW = rows, w
	return rows
}

// shownTime is the time a message shows: its sender's.
func shownTime(m store.Message) time.Time {
	if m.SentAt.IsZero() {
		return m.StoredAt
	}
	return m.SentAt
}

// quoteRow is the line a reply quotes, above it: who wrote it and its
// first line as it stands now.
func (c *convView) quoteRow(m store.Message, w, indent int) line {
	ind := strings.Repeat(" ", min(indent, max(0, w/3)))
	q, who := m.Quote, c.name
	if c.chat != nil && c.chat.grp != nil {
		// The store quotes no group message: the quoted one as the pane
		// shows it now (with its sender), if loaded.
		q = nil
		if t := c.byID[m.ReplyTo]; t != nil {
			q = &store.Quote{ID: t.msg.ID, Direction: t.msg.Direction, SentAt: t.msg.SentAt, Body: t.msg.Body, Deleted: t.msg.Deleted}
			if c.senderName != nil {
				who = c.senderName(t.msg.Peer)
			}
		}
	}
	if q == nil {
		return line{{ind + "↪ a message not loaded here", c.th.dim}}
	}
	if q.Direction == store.Outgoing {
		who = "me"
	}
	text := identity.SanitizeText(firstLine(q.Body), false)
	if q.Deleted {
		text = "message deleted"
	}
	head := ind + "↪ " + truncate(who, 16) + ": "
	return line{{head, c.th.dim}, {truncate(text, max(1, w-textWidth(head))), c.th.dim.Italic(true)}}
}

// firstLine is a text's first line, marked when more follows.
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

// reactionSpans shows a message's reactions: each emoji with how many
// chose it, ours highlighted.
func (c *convView) reactionSpans(m store.Message) line {
	var order []string
	count, mine := map[string]int{}, map[string]bool{}
	for _, r := range m.Reactions {
		if count[r.Emoji] == 0 {
			order = append(order, r.Emoji)
		}
		count[r.Emoji]++
		if r.From == "" {
			mine[r.Emoji] = true
		}
	}
	var l line
	for i, emoji := range order {
		if i > 0 {
			l = append(l, span{"  ", c.th.text})
		}
		st := c.th.dim
		if mine[emoji] {
			st = c.th.me
		}
		l = append(l, span{fmt.Sprintf("%s %d", identity.SanitizeText(emoji, false), count[emoji]), st})
	}
	return l
}

// appendStatus puts an own message's delivery state after its text, or
// on rows of its own when it does not fit.
func (c *convView) appendStatus(rows []line, e *entry, w, indent int) []line {
	st, t := deliveryText(e.msg)
	if c.chat != nil && c.chat.grp != nil && e.msg.Direction == store.Outgoing && !e.pending && e.msg.Status != store.StatusFailed {
		st, t = groupDeliveryText(e.members, c.senderName, c.waitReason)
	}
	if e.msg.Status == store.StatusSending && e.msg.Direction == store.Outgoing && c.offline && !e.pending {
		st, t = "waiting: "+c.name+" is offline", toneWarn
	}
	if e.msg.Direction == store.Incoming {
		st, t = c.arrival(e.msg)
	}
	if !e.msg.Edited.IsZero() && !e.msg.Deleted {
		st = strings.TrimSpace("(edited)  " + st)
	}
	if st == "" {
		return rows
	}
	style := c.th.toned(t, c.th.dim)
	last := rows[len(rows)-1]
	if last.width()+2+textWidth(st) <= w {
		rows[len(rows)-1] = append(slices.Clone(last), span{"  ", c.th.text}, span{st, style})
		return rows
	}
	for _, r := range wrap(st, max(1, w-indent)) {
		rows = append(rows, line{{strings.Repeat(" ", indent), c.th.text}, {r, style}})
	}
	return rows
}

// arrivalNote is how far apart a message's sending and its arrival may be
// before the arrival is shown too: clocks differ a little, a mailbox and a
// peer offline make it more.
const arrivalNote = time.Minute

// arrival marks an incoming message that arrived late (after later ones)
// or well after it was sent, with the time it arrived (and the day, when
// it is not the day it was sent).
func (c *convView) arrival(m store.Message) (string, tone) {
	sent, stored := shownTime(m).In(c.loc), m.StoredAt.In(c.loc)
	at := ""
	if d := stored.Sub(sent); d > arrivalNote || d < -arrivalNote {
		at = stored.Format("15:04")
		if !sameDay(sent, stored) {
			at = stored.Format("2 Jan 15:04")
		}
	}
	switch {
	case m.Late && at != "":
		return "arrived late at " + at, toneWarn
	case m.Late:
		return "arrived late", toneWarn
	case at != "":
		return "arrived " + at, toneNone
	}
	return "", toneNone
}

// deliveryText spells out an own message's delivery state.
func deliveryText(m store.Message) (string, tone) {
	if m.Direction != store.Outgoing {
		return "", toneNone
	}
	switch m.Status {
	case store.StatusSent:
		return "sent", toneNone
	case store.StatusQueued:
		return "queued at relay", toneWarn
	case store.StatusDelivered:
		if !m.Seen.IsZero() {
			return "✓ seen", toneGood
		}
		return "✓ delivered", toneGood
	case store.StatusFailed:
		if reason := oneLine(m.Error); reason != "" {
			return "✗ failed: " + reason, toneBad
		}
		return "✗ failed", toneBad
	}
	return "sending…", toneNone
}

// MouseHandler scrolls on the wheel.
func (c *convView) MouseHandler() func(tview.MouseAction, *tcell.EventMouse, func(tview.Primitive)) (bool, tview.Primitive) {
	return c.WrapMouseHandler(func(action tview.MouseAction, ev *tcell.EventMouse, _ func(tview.Primitive)) (bool, tview.Primitive) {
		if !c.InRect(ev.Position()) {
			return false, nil
		}
		switch action {
		case tview.MouseScrollUp:
			c.scroll(3)
			return true, nil
		case tview.MouseScrollDown:
			c.scroll(-3)
			return true, nil
		}
		return false, nil
	})
}
