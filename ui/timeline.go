package ui

import (
	"slices"
	"strings"
	"time"

	"github.com/certchat/certchat/group"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A group chat shows who changed its membership among its messages:
// "bob added dan.", "carol left.", each at its author's time, in the
// order the group's changes take effect (node.MembershipChanges). They
// are read from the node again when the chat opens and on each group
// event for it, so that a change a crossing change undid is not shown
// as if it had taken effect.

// timeline is the conversation view's part for the open group's
// membership changes: which, and above which message each is shown. It
// belongs to the event loop.
type timeline struct {
	*convView
	list   []node.MembershipChange // in the order they take effect
	where  []int                   // where each is shown (place), for the pane as placed
	placed placedFor
	text   func(node.MembershipChange) string // one in words (groupChats.changeText)
}

// placedFor is what of the pane place placed the changes for.
type placedFor struct {
	stored, pending int
	hasMore, loaded bool
}

// loadChanges reads the membership changes of c's group, the open chat,
// and shows them among its messages.
func (u *groupChats) loadChanges(c *chat) {
	gbk, ok := u.b.(groupBackend)
	if !ok {
		return
	}
	gb, gen, key, id := gbk.Groups(), u.conv.gen, c.info.ID, c.grp.info.ID
	u.spawn(func() {
		cs, err := node.MembershipChanges(gb, id)
		u.post(func() {
			if u.conv.gen != gen {
				return
			}
			if err != nil {
				u.notes.failAbout(key, "Could not read the group's changes", err)
				return
			}
			u.conv.changes.set(cs)
		})
	})
}

// changeText is a membership change as a sentence, with names as the
// roster shows them now: "bob added dan.", "you left.".
func (u *groupChats) changeText(ch node.MembershipChange) string {
	by, on := u.memberName(ch.Author), u.memberName(ch.Peer)
	switch ch.Op {
	case group.OpCreate:
		text := by + " created the group " + quotedName(ch.Name)
		if len(ch.Members) > 0 {
			names := make([]string, len(ch.Members))
			for i, p := range ch.Members {
				names[i] = u.memberName(p)
			}
			text += " with " + andList(names)
		}
		return text + "."
	case group.OpAdd:
		return by + " added " + on + "."
	case group.OpRemove:
		if ch.Undone { // SECURITY.md finding 7: the banner asks for a decision
			whose := by + "'s"
			if by == "you" {
				whose = "your"
			}
			return by + " removed " + on + "; undone by a leave " + whose + " key signed beside it."
		}
		return by + " removed " + on + "."
	case group.OpLeave:
		return by + " left."
	case group.OpRename:
		return by + " renamed the group to " + quotedName(ch.Name) + "."
	case group.OpAdmin:
		return by + " made " + on + " an admin."
	}
	return by + " changed the group."
}

// memberName is a member as the roster shows them (a contact's name,
// else the short ID), or "you".
func (u *groupChats) memberName(p peer.ID) string {
	if p == u.myID {
		return "you"
	}
	return u.dlg.nameOf(p)
}

// quotedName is a group's name, a peer's text, made safe and quoted.
func quotedName(name string) string {
	return `"` + oneLine(identity.SanitizeName(name)) + `"`
}

// andList joins names as a sentence does: "bob", "bob and carol", "bob,
// carol and dan", and past three how many more (nameList).
func andList(names []string) string {
	if len(names) < 2 || len(names) > 3 {
		return nameList(names)
	}
	slices.Sort(names)
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// set shows cs, the open group's membership changes in the order they
// take effect. Scrolled up, the rows the user reads stay in place as
// changes come or go under the newest message.
func (t *timeline) set(cs []node.MembershipChange) {
	below := 0
	if t.offset > 0 {
		below = len(t.belowRows(t.width))
	}
	t.list, t.where = cs, nil
	if t.offset > 0 {
		t.offset = max(0, t.offset+len(t.belowRows(t.width))-below)
	}
}

// place puts each membership change above the first message that
// arrived after it (where: the entry's index; count(): under the newest;
// -1: not shown), keeping their order. One above the oldest message
// loaded waits for the page before, if there is one.
func (t *timeline) place() {
	key := placedFor{len(t.stored), len(t.pending), t.hasMore, t.loaded}
	if t.where != nil && key == t.placed {
		return
	}
	t.where, t.placed = make([]int, len(t.list)), key
	i := 0
	for k, ch := range t.list {
		for i < t.count() && !t.at(i).msg.StoredAt.After(ch.Time) {
			i++
		}
		t.where[k] = i
		if !t.loaded || (i == 0 && t.hasMore) {
			t.where[k] = -1
		}
	}
}

// before are the membership changes shown above entry i (i == count():
// under the newest).
func (t *timeline) before(i int) []node.MembershipChange {
	t.place()
	from, _ := slices.BinarySearch(t.where, i)
	to, _ := slices.BinarySearch(t.where, i+1)
	return t.list[from:to]
}

// rows are the rows of membership changes cs, after a row of the day
// prev (zero: none), each with a date divider when the day changes,
// drawn as the UI draws what it says itself (dim, italic); it returns
// the day of the last.
func (t *timeline) rows(cs []node.MembershipChange, prev time.Time, w int) ([]line, time.Time) {
	var rows []line
	for _, ch := range cs {
		if newDay(prev, ch.Time, t.loc) {
			rows = append(rows, t.divider(ch.Time.In(t.loc), w))
		}
		head := ch.Time.In(t.loc).Format("15:04") + " "
		indent := textWidth(head)
		for k, text := range wrap(t.text(ch), max(1, w-indent)) {
			lead := span{strings.Repeat(" ", indent), t.th.text}
			if k == 0 {
				lead = span{head, t.th.dim}
			}
			rows = append(rows, line{lead, {text, t.th.dim.Italic(true)}})
		}
		prev = ch.Time
	}
	return rows, prev
}

// newDay says whether a row at t starts a day in loc after a row at prev
// (zero: none above).
func newDay(prev, t time.Time, loc *time.Location) bool {
	return prev.IsZero() || !sameDay(prev.In(loc), t.In(loc))
}

// belowRows are the rows under the newest message: the membership
// changes after it, then the messages that have not arrived (gapRows).
func (c *convView) belowRows(w int) []line {
	var prev time.Time
	if n := c.count(); n > 0 {
		prev = c.at(n - 1).msg.StoredAt
	}
	rows, _ := c.changes.rows(c.changes.before(c.count()), prev, w)
	return append(rows, c.gapRows(w)...)
}
