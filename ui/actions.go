package ui

import (
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/store"
	"github.com/gdamore/tcell/v2"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Replying, editing, deleting and reacting in the window, read markers
// and typing. Alt+Up / Alt+Down (or Ctrl+Up / Ctrl+Down) move a
// selection through the open conversation; on the selected message e
// edits, d deletes, r replies, + reacts, Enter (or j) jumps to the
// message a reply quotes, Esc leaves. /edit, /delete, /reply and /react
// do the same on the selected message, or without one on the last
// fitting message. They work in group chats as in 1:1 chats: the node
// sends the action to every member (PROTOCOL §14.5) and enforces who may
// (only the author edits or deletes, within store.EditWindow; any member
// reacts and replies); the window says these rules as sentences.

// actions is the part of the window that does these, with their state:
// all of it belongs to the event loop.
type actions struct {
	*UI

	compose  *compose               // editing or replying: what Enter sends
	seenSent map[e2e.MessageID]bool // messages we told the peer we saw
	typing   peer.ID                // the peer we told we type ("" none)
	typedAt  time.Time              // the last key typed (wall clock)
	toldAt   time.Time              // when we last asked the node to say we type
}

// compose is a message being edited, or replied to.
type compose struct {
	edit  bool // else a reply
	id    e2e.MessageID
	peer  peer.ID // the chat it belongs to (a group's key for a group)
	quote string
}

// reactions offered by the picker; /react takes any other.
var reactions = []string{"👍", "❤️", "😂", "😮", "😢", "🎉", "✅", "👀"}

// maxSeenBatch bounds the messages marked seen at once (the newest).
const maxSeenBatch = 50

// selectionKey handles a key while a message is selected; false lets it
// through (and ends the selection unless it moves it).
func (u *actions) selectionKey(ev *tcell.EventKey) bool {
	e := u.conv.selected()
	if e == nil {
		u.conv.sel = e2e.MessageID{}
		return false
	}
	switch {
	case ev.Key() == tcell.KeyEscape:
		u.clearSelection()
		return true
	case ev.Key() == tcell.KeyEnter:
		u.jumpToQuoted(e.msg)
		return true
	case ev.Key() != tcell.KeyRune || ev.Modifiers()&(tcell.ModAlt|tcell.ModCtrl) != 0:
		return false
	}
	switch ev.Rune() {
	case 'e':
		u.startEdit(e.msg)
	case 'd':
		u.confirmDelete(e.msg)
	case 'r':
		u.startReply(e.msg)
	case '+':
		u.pickReaction(e.msg)
	case 'j':
		u.jumpToQuoted(e.msg)
	default:
		u.clearSelection()
		return false
	}
	return true
}

// moveKey reports whether ev moves the selection (Alt or Ctrl with Up or
// Down), and moves it.
func (u *actions) moveKey(ev *tcell.EventKey) bool {
	if ev.Modifiers()&(tcell.ModAlt|tcell.ModCtrl) == 0 || (ev.Key() != tcell.KeyUp && ev.Key() != tcell.KeyDown) {
		return false
	}
	if u.open == "" {
		return true
	}
	d := -1
	if ev.Key() == tcell.KeyDown {
		d = 1
	}
	u.moveSelection(d)
	return true
}

// moveSelection moves the selection d messages (negative: older).
func (u *actions) moveSelection(d int) {
	c := u.conv
	if len(c.stored) == 0 {
		return
	}
	i := len(c.stored) // below the newest: no selection
	if e := c.selected(); e != nil {
		i = slices.Index(c.stored, e)
	}
	i = max(0, i+d)
	if i >= len(c.stored) {
		u.clearSelection()
		return
	}
	u.selectEntry(c.stored[i])
	u.notes.inform("Selected: e edit · d delete · r reply · + react · Enter go to the quoted message · Esc leave")
}

func (u *actions) selectEntry(e *entry) {
	if old := u.conv.selected(); old != nil {
		old.rows = nil
	}
	u.conv.sel, e.rows = e.msg.ID, nil
	u.conv.scrollTo(e)
}

func (u *actions) clearSelection() {
	if e := u.conv.selected(); e != nil {
		e.rows = nil
	}
	u.conv.sel = e2e.MessageID{}
	u.notes.clear()
}

// selected is the selected entry, nil if none (or not loaded).
func (c *convView) selected() *entry {
	if c.sel == (e2e.MessageID{}) {
		return nil
	}
	return c.byID[c.sel]
}

// scrollTo scrolls so that e shows, a third up from the bottom when it
// was out of view.
func (c *convView) scrollTo(e *entry) {
	i := slices.Index(c.stored, e)
	if i < 0 || c.width <= 0 {
		return
	}
	below := len(c.belowRows(c.width))
	for k := i + 1; k < c.count(); k++ {
		below += len(c.rowsOf(k, c.width))
	}
	size := len(c.rowsOf(i, c.width))
	if c.offset > below || c.offset+c.height < below+size {
		c.offset = max(0, below+size-c.height*2/3)
	}
}

// jumpToQuoted selects the message a reply quotes, loading older pages
// until it is found.
func (u *actions) jumpToQuoted(m store.Message) {
	if m.ReplyTo == (e2e.MessageID{}) {
		u.notes.inform("That message is not a reply.")
		return
	}
	u.jumpTo(m.ReplyTo)
}

func (u *actions) jumpTo(id e2e.MessageID) {
	if e := u.conv.byID[id]; e != nil {
		u.conv.jump = e2e.MessageID{}
		u.selectEntry(e)
		u.notes.inform("The quoted message. Esc leaves the selection.")
		return
	}
	if !u.conv.hasMore {
		u.conv.jump = e2e.MessageID{}
		u.notes.showError("The quoted message is not in this conversation (it may be in another, or lost).")
		return
	}
	u.conv.jump = id
	u.notes.inform("Looking for the quoted message…")
	if !u.conv.loading {
		u.loadPage(u.open, u.conv.oldestSeq())
	}
}

// pageLoaded goes on with what waited for a page: a jump, and marking
// the newest messages seen.
func (u *actions) pageLoaded() {
	if id := u.conv.jump; id != (e2e.MessageID{}) {
		u.jumpTo(id)
	}
	u.markSeen()
}

// lastOf is the newest text of the open chat that ok accepts.
func (u *actions) lastOf(ok func(store.Message) bool) *entry {
	for i := len(u.conv.stored) - 1; i >= 0; i-- {
		if e := u.conv.stored[i]; ok(e.msg) {
			return e
		}
	}
	return nil
}

func mine(m store.Message) bool { return m.Direction == store.Outgoing && !m.Deleted }
func theirs(m store.Message) bool {
	return m.Direction == store.Incoming && !m.Deleted
}
func shown(m store.Message) bool { return !m.Deleted }

// target is the selected message, or the newest that fallback accepts;
// nil after saying why.
func (u *actions) target(cmd string, fallback func(store.Message) bool, what string) *entry {
	c := u.cmds.openChatOrSay(cmd)
	if c == nil {
		return nil
	}
	if e := u.conv.selected(); e != nil {
		return e
	}
	if e := u.lastOf(fallback); e != nil {
		return e
	}
	u.notes.showError("/" + cmd + ": there is no " + what + " in this chat to act on (select one with Alt+Up).")
	return nil
}

// startEdit puts an own message's text in the input to edit.
func (u *actions) startEdit(m store.Message) {
	if !mine(m) {
		u.notes.showError(u.onlyAuthor("edited"))
		return
	}
	if !u.mayActInGroup("Not edited") {
		return
	}
	u.clearSelection()
	u.compose = &compose{edit: true, id: m.ID, peer: u.open}
	u.in.SetText(m.Body)
	u.notes.inform("Editing your message: Enter saves, Esc cancels.")
}

// startReply makes the next message a reply to m.
func (u *actions) startReply(m store.Message) {
	if m.Deleted {
		u.notes.showError("That message was deleted.")
		return
	}
	if !u.mayActInGroup("Reply not sent") {
		return
	}
	u.clearSelection()
	q := truncate(oneLine(firstLine(m.Body)), 40)
	u.compose = &compose{id: m.ID, peer: u.open, quote: q}
	u.notes.inform("Replying to “" + q + "”: Enter sends, Esc cancels.")
}

// composing says what Enter sends now, for the submit of a message; nil
// for a plain message.
func (u *actions) composing() *compose {
	if c := u.compose; c != nil && c.peer == u.open {
		return c
	}
	u.compose = nil
	return nil
}

// sendCompose sends the edit or reply being composed.
func (u *actions) sendCompose(cp *compose, text string) bool {
	u.compose = nil
	u.notes.clear()
	if cp.edit {
		u.edit(cp.id, text)
		return true
	}
	u.reply(cp.id, text)
	return true
}

func (u *actions) edit(id e2e.MessageID, text string) {
	if !u.mayActInGroup("Not edited") {
		return
	}
	u.spawn(func() {
		_, m, err := u.b.Messages().Edit(id, text)
		u.post(func() {
			if err != nil {
				u.actionFailed("Not edited", err)
				return
			}
			u.conv.update(m)
		})
	})
}

func (u *actions) reply(id e2e.MessageID, text string) {
	if !u.mayActInGroup("Reply not sent") {
		return
	}
	u.stopTyping()
	u.spawn(func() {
		m, err := u.b.Messages().Reply(id, text)
		u.post(func() {
			if err != nil {
				u.actionFailed("Reply not sent", err)
				return
			}
			u.conv.offset = 0
			u.conv.upsert(m) // in a group, each member's delivery follows (onGroupStatus)
		})
	})
}

func (u *actions) react(id e2e.MessageID, emoji string) {
	if !u.mayActInGroup("No reaction") {
		return
	}
	u.spawn(func() {
		_, m, err := u.b.Messages().React(id, emoji)
		u.post(func() {
			if err != nil {
				u.actionFailed("No reaction", err)
				return
			}
			u.conv.update(m)
		})
	})
}

// actionFailed says why an edit, deletion, reaction or reply was refused.
func (u *actions) actionFailed(what string, err error) {
	switch {
	case errors.Is(err, store.ErrTooOld):
		u.notes.showError(what + ": a message can be edited or deleted only within 24 hours of sending it.")
	case errors.Is(err, store.ErrNotYours):
		u.notes.showError(what + ": only your own messages can be edited or deleted (in a group too: only by the member who wrote them).")
	case errors.Is(err, store.ErrDeleted):
		u.notes.showError(what + ": that message was deleted.")
	case errors.Is(err, node.ErrNotGroupMember):
		u.notes.showError(what + ": you are not a member of this group any more.")
	case errors.Is(err, node.ErrGroupBlocked):
		u.notes.showError(what + ": a member's key changed or is blocked; nothing is sent to the group until you decide in that key's chat (/trust).")
	default:
		u.notes.fail(what, err)
	}
}

// onlyAuthor says that only the author may edit or delete (what:
// "edited", "deleted"), and in a group that this holds for each member.
func (u *actions) onlyAuthor(what string) string {
	if u.gc.openGroup() != nil {
		return "Only your own messages can be " + what + ": in a group, only the member who wrote a message can (any member can react or reply)."
	}
	return "Only your own messages can be " + what + "."
}

// mayActInGroup says, in an open group the user cannot send to (not a
// member any more, or a member's key stops it), why the action is not
// sent (what: "Not edited", …); true outside groups and when it may go.
func (u *actions) mayActInGroup(what string) bool {
	c := u.gc.openGroup()
	if c == nil {
		return true
	}
	if !c.grp.info.Member {
		u.notes.showErrorAbout(c.info.ID, what+": you are not a member of "+c.name()+" any more.")
		return false
	}
	if why, _, stop := u.gc.groupStop(c); stop {
		u.notes.showErrorAbout(c.info.ID, what+": "+why)
		return false
	}
	return true
}

// confirmDelete asks before deleting an own message for both sides.
func (u *actions) confirmDelete(m store.Message) {
	if !mine(m) {
		u.notes.showError(u.onlyAuthor("deleted"))
		return
	}
	if !u.mayActInGroup("Not deleted") {
		return
	}
	u.clearSelection()
	id := m.ID
	title, where := "Delete for both of you?", "both chats"
	if u.gc.openGroup() != nil {
		title, where = "Delete for every member?", "every member's chat"
	}
	u.dlg.show(u.dlg.textDialog(title,
		"“"+truncate(oneLine(firstLine(m.Body)), 60)+"”\n\nThe text is removed from "+where+"; \"message deleted\" stays in its place.",
		true,
		button{"Delete", func() {
			if !u.mayActInGroup("Not deleted") {
				return
			}
			u.spawn(func() {
				_, t, err := u.b.Messages().Delete(id)
				u.post(func() {
					if err != nil {
						u.actionFailed("Not deleted", err)
						return
					}
					u.conv.update(t)
				})
			})
		}},
		button{"Keep (Esc)", nil}))
}

// pickReaction offers the common reactions, and taking ours back.
func (u *actions) pickReaction(m store.Message) {
	if m.Deleted {
		u.notes.showError("That message was deleted.")
		return
	}
	if !u.mayActInGroup("No reaction") {
		return
	}
	u.clearSelection()
	items := append(slices.Clone(reactions), "take my reaction back")
	id := m.ID
	u.dlg.show(u.dlg.listDialog("React: Enter picks", items, func(i int) {
		emoji := ""
		if i < len(reactions) {
			emoji = reactions[i]
		}
		u.react(id, emoji)
	}))
}

func (u *actions) cmdEdit(arg string) {
	e := u.target("edit", mine, "message of yours")
	if e == nil {
		return
	}
	if arg == "" {
		u.startEdit(e.msg)
		return
	}
	if !mine(e.msg) {
		u.notes.showError(u.onlyAuthor("edited"))
		return
	}
	u.clearSelection()
	u.edit(e.msg.ID, arg)
}

func (u *actions) cmdDelete(string) {
	if e := u.target("delete", mine, "message of yours"); e != nil {
		u.confirmDelete(e.msg)
	}
}

func (u *actions) cmdReply(arg string) {
	e := u.target("reply", theirs, "message from them")
	if e == nil {
		return
	}
	if arg == "" {
		u.startReply(e.msg)
		return
	}
	u.clearSelection()
	u.reply(e.msg.ID, arg)
}

func (u *actions) cmdReact(arg string) {
	e := u.target("react", shown, "message")
	if e == nil {
		return
	}
	if arg == "" {
		u.pickReaction(e.msg)
		return
	}
	if arg == "-" {
		arg = ""
	}
	u.clearSelection()
	u.react(e.msg.ID, arg)
}

// indicationCmd is the command that turns read markers (/seen) or typing (/typing) on or off.
func indicationCmd(which string) func(*UI, string) {
	return func(u *UI, arg string) {
		s := u.b.Indications().Settings()
		flag := &s.ReadMarkers
		what := "Read markers (“seen”)"
		if which == "typing" {
			flag, what = &s.Typing, "Typing indications"
		}
		switch strings.ToLower(arg) {
		case "on":
			*flag = true
		case "off":
			*flag = false
		case "":
		default:
			u.notes.showError("Usage: /" + which + " on|off")
			return
		}
		if arg != "" {
			u.b.Indications().Set(s)
			if u.opts.SaveIndications != nil {
				if err := u.opts.SaveIndications(s); err != nil {
					u.notes.fail("Changed for this run, but not saved", err)
					return
				}
			}
		}
		state := "off: you do not send them, and see none (for both sides of every chat)"
		if *flag {
			state = "on: shown when your contact has them on too"
		}
		u.notes.inform(what + " are " + state + ".")
	}
}

// markSeen tells the open chat's peer which of its newest messages the
// window shows, once each.
func (u *actions) markSeen() {
	if u.open == "" || isGroupKey(u.open) { // no read markers in groups
		return
	}
	if u.seenSent == nil {
		u.seenSent = map[e2e.MessageID]bool{}
	}
	var ids []e2e.MessageID
	for i := len(u.conv.stored) - 1; i >= 0 && len(ids) < maxSeenBatch; i-- {
		m := u.conv.stored[i].msg
		if m.Direction == store.Incoming && !u.seenSent[m.ID] {
			u.seenSent[m.ID] = true
			ids = append(ids, m.ID)
		}
	}
	if len(ids) == 0 {
		return
	}
	p := u.open
	u.spawn(func() { u.b.Indications().MarkSeen(p, ids) })
}

// typed notes a key typed into the message: the peer hears we type (the
// node sends at most one every 3 s) and, after node.TypingIdle without a
// key, that we stopped.
func (u *actions) typed(ev *tcell.EventKey) {
	if u.open == "" || isGroupKey(u.open) || u.dlg.dialog != nil || ev.Modifiers()&(tcell.ModAlt|tcell.ModCtrl) != 0 || (ev.Key() != tcell.KeyRune && ev.Key() != tcell.KeyBackspace2 && ev.Key() != tcell.KeyBackspace) {
		return
	}
	if text := u.in.GetText(); strings.HasPrefix(text, "/") || text == "" && ev.Key() == tcell.KeyRune && ev.Rune() == '/' {
		return // a command, not a message
	}
	p := u.open
	u.typedAt = time.Now()
	if u.typing != p {
		u.stopTyping()
		u.typing = p
		u.spawn(func() { u.watchTyping(p) })
	}
	if time.Since(u.toldAt) < time.Second {
		return // the node sends one every 3 s at most anyway: no call per key
	}
	u.toldAt = time.Now()
	u.spawn(func() { u.b.Indications().Typing(p, true) })
}

// watchTyping says we stopped once no key came for node.TypingIdle.
func (u *actions) watchTyping(p peer.ID) {
	for {
		select {
		case <-u.quit:
			return
		case <-time.After(time.Second):
		}
		done := false
		if !u.post(func() {
			if u.typing != p {
				done = true
				return
			}
			if time.Since(u.typedAt) >= node.TypingIdle {
				u.stopTyping()
				done = true
			}
		}) || done {
			return
		}
	}
}

// stopTyping tells the peer we typed to that we stopped.
func (u *actions) stopTyping() {
	p := u.typing
	if p == "" {
		return
	}
	u.typing, u.toldAt = "", time.Time{}
	u.spawn(func() { u.b.Indications().Typing(p, false) })
}

// onTyping shows (or stops showing) that a peer types; it goes by itself
// after node.TypingExpiry without news.
func (u *actions) onTyping(p peer.ID, typing bool) {
	c := u.roster.get(p)
	if c == nil {
		return
	}
	if !typing {
		c.typingUntil = time.Time{}
		return
	}
	c.typingUntil = time.Now().Add(node.TypingExpiry)
	u.spawn(func() {
		select {
		case <-u.quit:
		case <-time.After(node.TypingExpiry + 100*time.Millisecond):
			u.post(func() {}) // redraw: the title drops "typing…"
		}
	})
}

// isTyping reports whether c's peer is shown typing.
func (c *chat) isTyping() bool { return !c.typingUntil.IsZero() && time.Now().Before(c.typingUntil) }
