package ui

import (
	"fmt"
	"slices"
	"strings"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/group"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Group chats in the chat list and the conversation pane. A group is a
// chat like a person's: it is listed (name, member count, unread count),
// opens in the pane (its history from the node, new messages live, each
// with its sender's name and, on our own, how many members have it), and
// typing sends to it. Its title spells out the members' trust; a member
// whose key changed (or is blocked) stops sending to the group until the
// user decides, as in a 1:1 chat.
//
// In the roster a group has a key of its own in the peer IDs' space
// (groupKey): "group:" and the group's ID in hex, which no peer ID is
// (a peer ID is a multihash's bytes, starting with its code 0x00 or
// 0x12), so the list, unread counts, muting and the notice work for
// groups unchanged.

// groupChats is the part of the window that shows group chats (the
// roster holds their chats, convView their messages). It belongs to the
// event loop.
type groupChats struct {
	*UI
}

// groupChat is what a group's chat holds besides a chat's.
type groupChat struct {
	info    node.GroupInfo
	missing map[peer.ID]int // per sender: earlier messages not arrived yet
	// asked: outgoing message IDs whose delivery was read from the node
	// (a receipt for a message not shown yet), so it is read once.
	asked map[e2e.MessageID]bool
}

const groupKeyPrefix = "group:"

// groupKey is a group's key in the roster.
func groupKey(id group.ID) peer.ID { return peer.ID(groupKeyPrefix + id.String()) }

// isGroupKey says whether a roster key is a group's.
func isGroupKey(p peer.ID) bool { return strings.HasPrefix(string(p), groupKeyPrefix) }

// setGroup records what the node says of a group, making its chat.
func (r *roster) setGroup(gi node.GroupInfo) *chat {
	key := groupKey(gi.ID)
	c, ok := r.chats[key]
	if !ok {
		c = &chat{grp: &groupChat{missing: map[peer.ID]int{}, asked: map[e2e.MessageID]bool{}}}
		r.chats[key] = c
	}
	c.grp.info = gi
	c.info = node.PeerInfo{ID: key, Name: gi.Name}
	c.label = oneLine(identity.SanitizeName(gi.Name))
	if c.label == "" {
		c.label = "group " + gi.ID.Short()
	}
	if gi.Messages > 0 {
		c.hasConv = true
	}
	if gi.Last.After(c.last) {
		c.last = gi.Last
	}
	return c
}

// groupChatOf is the chat of a group's message, if the window knows it.
func (u *groupChats) groupChatOf(id store.GroupID) *chat {
	if c := u.roster.get(groupKey(group.ID(id))); c != nil && c.grp != nil {
		return c
	}
	return nil
}

// openGroup is the open chat when it is a group's.
func (u *groupChats) openGroup() *chat {
	if c := u.roster.get(u.open); c != nil && c.grp != nil {
		return c
	}
	return nil
}

// memberInfo is what the window knows of a member now.
func (u *groupChats) memberInfo(p peer.ID) node.PeerInfo {
	if c := u.roster.get(p); c != nil {
		return c.info
	}
	return unknownPeer(p)
}

// groupOthers describes a group's members other than us, as the window
// knows them now (the roster follows the node's peer events).
func (u *groupChats) groupOthers(g node.GroupInfo) []node.PeerInfo {
	var out []node.PeerInfo
	for _, p := range g.Members {
		if p != u.myID {
			out = append(out, u.memberInfo(p))
		}
	}
	return out
}

// memberBlocks says whether a member's key stops sending to the group:
// changed (a key that claims a contact's name) or blocked.
func memberBlocks(info node.PeerInfo) bool {
	return info.Changed != nil || info.Trust == identity.StateChanged || info.Trust == identity.StateUntrusted
}

// groupBlocker is the first member whose key stops sending to c's group.
func (u *groupChats) groupBlocker(c *chat) (node.PeerInfo, bool) {
	for _, info := range u.groupOthers(c.grp.info) {
		if memberBlocks(info) {
			return info, true
		}
	}
	return node.PeerInfo{}, false
}

// memberCount is "1 member", "2 members".
func memberCount(n int) string {
	if n == 1 {
		return "1 member"
	}
	return fmt.Sprintf("%d members", n)
}

// groupLine is a group's second row in the chat list: its member count,
// in the tone of its members' trust.
func (u *groupChats) groupLine(c *chat) (string, tone) {
	g := c.grp.info
	if !g.Member {
		return memberCount(len(g.Members)) + " · you're out", toneWarn // left or removed: it does not know which
	}
	_, t := groupSummaryWith(u.groupOthers(g), true)
	text := memberCount(len(g.Members))
	switch _, mark, stop := u.groupStop(c); {
	case mark == undoneMark:
		text = mark // the count would not fit beside it
	case stop:
		text = mark + " · " + text
	}
	return text, t
}

// groupTrust is groupSummaryWith for group g, others its members but
// us, with the undone removals that sending waits on (groupStop).
func groupTrust(g node.GroupInfo, others []node.PeerInfo) (string, tone) {
	summary, t := groupSummaryWith(others, g.Member)
	if n := len(g.Undone); n > 0 && g.Member {
		summary, t = summary+fmt.Sprintf("; %d REMOVAL UNDONE", n), toneBad
	}
	return summary, t
}

// undoneMark marks in the chat list a group whose sending waits for a
// decision on an undone removal (groupStop).
const undoneMark = "! REMOVAL UNDONE"

// groupStop says what stops sending to c's group (text, to follow "Not
// sent: "), and its mark in the chat list: a member whose key changed
// or is blocked, or a member whose removal a leave of its remover's key
// undid (node.GroupInfo.Undone), until the user decides.
func (u *groupChats) groupStop(c *chat) (text, mark string, stop bool) {
	if info, bad := u.groupBlocker(c); bad {
		mark = "! KEY CHANGED"
		if info.Changed == nil && info.Trust == identity.StateUntrusted {
			mark = "✗ member blocked"
		}
		return u.groupRefusalText(info), mark, true
	}
	if undone := c.grp.info.Undone; len(undone) > 0 {
		return u.undoneText(undone[0]), undoneMark, true
	}
	return "", "", false
}

// undoneText says that nothing goes to a group while d, a removal its
// remover's own leave undid, waits for the user's decision, and what
// the decisions are (to follow "Not sent: ").
func (u *groupChats) undoneText(d group.Undone) string {
	who, by := u.dlg.nameOf(d.Target), u.dlg.nameOf(d.Author)
	return by + "'s removal of " + who + " was undone by a leave " + by + "'s key signed beside it: nothing is sent to the group until you decide. " +
		"An admin can remove " + who + " again (/kick " + who + "); /keep " + who + " writes to them."
}

// groupBanner warns, in a group's chat, of what stops sending to it.
func (u *groupChats) groupBanner(c *chat) (string, bool) {
	if !c.grp.info.Member {
		return "You are not a member of " + c.name() + " any more (you left or were removed): its history stays, nothing can be sent to it.", false
	}
	if text, _, stop := u.groupStop(c); stop {
		return capitalize(text), true
	}
	return u.strangerMade(c), false
}

// strangerMade says, in a group made by a peer who is not a contact, who
// made it and what the user may do: anyone may put the user in a group,
// as anyone may write ("" for a group made by us or by a contact).
func (u *groupChats) strangerMade(c *chat) string {
	maker := c.grp.info.Creator
	if maker == "" || maker == u.myID {
		return ""
	}
	if m := u.roster.get(maker); m != nil && m.info.Trust != identity.StateUnknown {
		return ""
	}
	name := u.dlg.nameOf(maker)
	return "Made by " + name + ", who is not in your contacts: /members shows who is in it, /leave leaves it, /trust " + name + " accepts its maker."
}

// groupRefusalText says why nothing is sent to a group while info's key
// stops it, and what to do (to follow "Not sent: ").
func (u *groupChats) groupRefusalText(info node.PeerInfo) string {
	name := u.dlg.nameOf(info.ID)
	if info.Trust == identity.StateUntrusted && info.Changed == nil {
		return "sending to the group is blocked: you rejected the key of " + name + ", a member. Accept it again (/unblock " + name +
			"), or ask an admin to remove them (/kick " + name + ")."
	}
	return "KEY CHANGED for " + name + ", a member: sending to the group is blocked until you decide. Open the chat marked " +
		"KEY CHANGED, compare fingerprints (/verify), then accept or reject the key (/trust)."
}

// groupTitle is a group's title bar: its name, the members' trust and
// our role.
func (u *groupChats) groupTitle(c *chat, w int) line {
	th := u.th
	summary, t := groupTrust(c.grp.info, u.groupOthers(c.grp.info))
	l := line{
		{" " + titleName(c.name(), summary, w), th.bar.Bold(true)},
		{"  ", th.bar},
		{summary, th.toned(t, th.bar).Bold(t == toneBad)},
	}
	switch {
	case !c.grp.info.Member:
		l = append(l, span{"  not a member", th.toned(toneWarn, th.bar)})
	case isAdmin(c.grp.info, u.myID):
		l = append(l, span{"  you: admin", th.barDim})
	}
	return l
}

// sendGroupText sends a message to the open group: refused at once while
// a member's key stops it, as the node would.
func (u *groupChats) sendGroupText(c *chat, text string) bool {
	gb := u.cmds.groups("send")
	if gb == nil {
		return false
	}
	if !c.grp.info.Member {
		u.notes.showErrorAbout(c.info.ID, "Not sent: you are not a member of "+c.name()+" any more.")
		return false
	}
	if why, _, stop := u.groupStop(c); stop {
		u.notes.showErrorAbout(c.info.ID, "Not sent: "+why)
		return false
	}
	if len(text) > e2e.MaxTextBytes {
		u.notes.showError(fmt.Sprintf("Not sent: a message holds at most %d KiB; this one has %d KiB.", e2e.MaxTextBytes>>10, (len(text)+1023)>>10))
		return false
	}
	key, id := c.info.ID, c.grp.info.ID
	e := u.conv.addPending(text)
	u.conv.offset = 0
	c.hasConv, c.last = true, u.now()
	u.roster.sort()
	u.spawn(func() {
		m, err := gb.Send(id, text)
		u.post(func() {
			if err != nil {
				u.conv.failPending(e, describe(err))
				u.notes.showErrorAbout(key, "Not sent: "+describe(err))
				return
			}
			u.conv.upsertGroup(m)
		})
	})
	return true
}

// onGroup takes a group event: the group's chat follows its name and
// membership, and the open one shows its membership changes anew.
func (u *groupChats) onGroup(gi node.GroupInfo) {
	old := u.roster.get(groupKey(gi.ID))
	wasMember := old != nil && old.grp.info.Member
	c := u.roster.setGroup(gi)
	if old == nil {
		c.last = u.now() // a new group comes to the top
	}
	if wasMember && !gi.Member {
		u.notes.informAbout(c.info.ID, "You are no longer a member of "+c.name()+".")
	}
	if c.info.ID == u.open {
		u.updatePlaceholder()
		u.loadChanges(c)
	}
}

// onGroupMessage shows a group message: in the open chat, or as an
// unread count. It reports whether the open chat got it.
func (u *groupChats) onGroupMessage(m store.Message) bool {
	c := u.groupChatOf(m.Group)
	if c == nil {
		return false // a group the node does not hold (prefetch found none)
	}
	key := c.info.ID
	counted := m.Seq != 0 && m.Seq <= c.lastSeq
	u.att.attendIn(key, m, c, counted)
	c.hasConv, c.last, c.lastSeq = true, m.StoredAt, max(c.lastSeq, m.Seq)
	if m.Direction == store.Incoming { // the store counts what is missing now, late or not
		c.grp.missing[m.Peer] = m.Missing
	}
	if key == u.open {
		u.conv.upsert(m)
		return true
	}
	if !counted {
		c.unread++
	}
	if u.open == "" {
		u.openChat(key)
	}
	return false
}

// onGroupStatus shows a member's copy of an own group message moving on
// (sent, queued, delivered): the message's "delivered to N of M".
func (u *groupChats) onGroupStatus(m store.Message) {
	c := u.groupChatOf(m.Group)
	if c == nil || c.info.ID != u.open {
		return
	}
	if u.conv.groupStatus(m) || c.grp.asked[m.ID] {
		return
	}
	// A receipt for a message not shown yet (its send is still being
	// stored, or it is a membership change, which is not shown): read it
	// once.
	c.grp.asked[m.ID] = true
	gbk, ok := u.b.(groupBackend)
	if !ok {
		return
	}
	gb := gbk.Groups()
	gen := u.conv.gen
	u.spawn(func() {
		gm, err := gb.Delivery(m.ID)
		if err != nil || gm.Changes != nil || gm.Direction != store.Outgoing {
			return
		}
		u.post(func() {
			if u.conv.gen == gen {
				u.conv.upsertGroup(gm)
			}
		})
	})
}

// upsertGroup shows an own group message with each member's delivery.
func (c *convView) upsertGroup(gm store.GroupMessage) {
	c.upsert(gm.AsMessage())
	if e := c.byID[gm.ID]; e != nil {
		e.mergeMembers(gm.Members)
	}
}

// groupStatus takes a member's delivery of a shown own message; false:
// the message is not shown.
func (c *convView) groupStatus(m store.Message) bool {
	e := c.byID[m.ID]
	if e == nil {
		return false
	}
	e.mergeMembers([]store.MemberDelivery{{Peer: m.Peer, Status: m.Status, Delivered: m.Delivered}})
	return true
}

// mergeMembers takes members' delivery states, never going back.
func (e *entry) mergeMembers(ds []store.MemberDelivery) {
	for _, d := range ds {
		i := slices.IndexFunc(e.members, func(x store.MemberDelivery) bool { return x.Peer == d.Peer })
		switch {
		case i < 0:
			e.members = append(e.members, d)
		case statusRank(d.Status) >= statusRank(e.members[i].Status):
			e.members[i] = d
		}
	}
	e.rows = nil
	if len(e.members) > 0 && delivered(e.members) == len(e.members) {
		e.msg.Status = store.StatusDelivered
	}
}

func delivered(ds []store.MemberDelivery) int {
	n := 0
	for _, d := range ds {
		if d.Status == store.StatusDelivered {
			n++
		}
	}
	return n
}

// groupDeliveryText is an own group message's delivery: "delivered to 4
// of 6", and who is still missing; why, if not nil, says why a member
// waits when it is for the user to act ("(not a contact: /trust carol)").
func groupDeliveryText(ds []store.MemberDelivery, name, why func(peer.ID) string) (string, tone) {
	n := delivered(ds)
	switch {
	case len(ds) == 0:
		return "sending…", toneNone
	case n == len(ds) && n == 1:
		return "✓ delivered", toneGood
	case n == len(ds):
		return fmt.Sprintf("✓ delivered to all %d", n), toneGood
	}
	var waiting, failed []string
	for _, d := range ds {
		switch d.Status {
		case store.StatusDelivered:
		case store.StatusFailed:
			failed = append(failed, name(d.Peer))
		case store.StatusQueued:
			waiting = append(waiting, name(d.Peer)+" (at their relay)")
		default:
			w := name(d.Peer)
			if why != nil {
				w += why(d.Peer)
			}
			waiting = append(waiting, w)
		}
	}
	text := fmt.Sprintf("delivered to %d of %d", n, len(ds))
	if len(waiting) > 0 {
		text += "; waiting for " + nameList(waiting)
	}
	t := toneNone
	if len(failed) > 0 {
		text += "; ✗ failed for " + nameList(failed)
		t = toneBad
	}
	return text, t
}

// nameList joins names, at most three and how many more.
func nameList(names []string) string {
	slices.Sort(names)
	if len(names) > 3 {
		return strings.Join(names[:3], ", ") + fmt.Sprintf(" and %d more", len(names)-3)
	}
	return strings.Join(names, ", ")
}

// groupGapRows say, under the newest message, whose earlier messages
// have not arrived yet (each sender numbers theirs).
func (c *convView) groupGapRows(w int) []line {
	var senders []peer.ID
	for p, n := range c.chat.grp.missing {
		if n > 0 {
			senders = append(senders, p)
		}
	}
	slices.SortFunc(senders, func(a, b peer.ID) int { return strings.Compare(c.senderName(a), c.senderName(b)) })
	var rows []line
	for _, p := range senders {
		n, name := c.chat.grp.missing[p], c.senderName(p)
		text := fmt.Sprintf("⚠ %d earlier messages from %s have not arrived yet; they will show when they do.", n, name)
		if n == 1 {
			text = fmt.Sprintf("⚠ 1 earlier message from %s has not arrived yet; it will show when it does.", name)
		}
		rows = append(rows, wrapLine(line{{text, c.th.toned(toneWarn, c.th.dim)}}, w)...)
	}
	return rows
}

// loadGroupPage reads a page of a group's history before seq.
func (u *groupChats) loadGroupPage(c *chat, before uint64) {
	gb := u.cmds.groups("open")
	if gb == nil {
		return
	}
	gen, limit, key, id := u.conv.gen, u.opts.PageSize, c.info.ID, c.grp.info.ID
	u.conv.loading = true
	u.spawn(func() {
		page, err := gb.History(id, before, limit)
		msgs := make([]store.Message, len(page))
		for i, gm := range page {
			msgs[i] = gm.AsMessage()
		}
		u.post(func() {
			if err != nil {
				u.conv.addPage(gen, nil, limit)
				u.notes.failAbout(key, "Could not read the group's messages", err)
				return
			}
			if !u.conv.addPage(gen, msgs, limit) {
				return
			}
			for _, gm := range page {
				if e := u.conv.byID[gm.ID]; e != nil && gm.Direction == store.Outgoing {
					e.mergeMembers(gm.Members)
				}
			}
			if before == 0 {
				c.grp.missing = missingOf(page)
			}
			u.act.pageLoaded()
		})
	})
}

// missingOf is, per sender, how many earlier messages have not arrived,
// from the newest page of a group's history (oldest first): what the
// store counted when the sender's last message to arrive came.
func missingOf(page []store.GroupMessage) map[peer.ID]int {
	out := map[peer.ID]int{}
	for _, m := range page {
		if m.Direction == store.Incoming {
			out[m.From] = m.Missing
		}
	}
	return out
}

// markGroupRead clears a group's unread count in the store.
func (u *groupChats) markGroupRead(id group.ID) {
	gbk, ok := u.b.(groupBackend)
	if !ok {
		return
	}
	gb := gbk.Groups()
	u.spawn(func() {
		if err := gb.MarkRead(id); err != nil {
			u.log.Warn("mark group read", "group", id.Short(), "err", err)
		}
	})
}

// sendGroupFile offers a file to each other member of the open group
// (each gets their own offer, in their chat with us: PROTOCOL §15.7).
func (u *groupChats) sendGroupFile(c *chat, path string) {
	gb := u.cmds.groups("send")
	if gb == nil {
		return
	}
	if !c.grp.info.Member {
		u.notes.showErrorAbout(c.info.ID, "Not sent: you are not a member of "+c.name()+" any more.")
		return
	}
	if why, _, stop := u.groupStop(c); stop {
		u.notes.showErrorAbout(c.info.ID, "Not sent: "+why)
		return
	}
	var to []peer.ID
	for _, info := range u.groupOthers(c.grp.info) {
		if err := mayType(info); err != nil {
			name := u.dlg.nameOf(info.ID)
			u.notes.showErrorAbout(c.info.ID, "Not sent: "+name+", a member, is not in your contacts, and files go only to contacts. Accept them first (/trust "+name+").")
			return
		}
		to = append(to, info.ID)
	}
	if len(to) == 0 {
		u.notes.showErrorAbout(c.info.ID, "Not sent: "+c.name()+" has no other member.")
		return
	}
	key, name := c.info.ID, c.name()
	u.spawn(func() {
		fs, err := u.b.Files().SendToEach(to, path)
		u.post(func() {
			for _, f := range fs {
				u.xfer.files[f.ID] = &fileView{info: f}
			}
			if err != nil {
				u.notes.showErrorAbout(key, fmt.Sprintf("Offered to %d of %d members, then: %s", len(fs), len(to), describe(err)))
				return
			}
			f, who := fs[0], memberCount(len(fs))
			u.notes.informAbout(key, fmt.Sprintf("Offered %s (%s) to %s of %s: each sees it in their chat with you; /files shows the transfers.",
				oneLine(f.Name), sizeText(f.Size), who, name))
		})
	})
}
