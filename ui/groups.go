package ui

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/certchat/certchat/group"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/rivo/tview"
)

// Groups in the window: commands that make and change groups, list them
// and show a group's members with each one's trust (docs/PROTOCOL.md §14).
// The commands act on the open group chat (groupchat.go), or on a group
// named by its name or ID.

// groupBackend is what group chats need from the node: its group part;
// *node.Node has it.
type groupBackend interface {
	Groups() *node.Groups
}

var _ groupBackend = (*node.Node)(nil)

func groupCommands() []command {
	return []command{
		{"group", "create NAME …", "make a group with contacts (--ca CA: bound to a CA)", inCommands((*commands).cmdGroup)},
		{"groups", "", "your groups: members and unread", inCommands((*commands).cmdGroups)},
		{"members", "[GROUP]", "the open group's members and their trust", inCommands((*commands).cmdMembers)},
		{"invite", "[GROUP] MEMBER", "add a contact to the open group (admins)", groupMemberCmd("invite")},
		{"kick", "[GROUP] MEMBER", "remove a member or a newer admin (admins)", groupMemberCmd("kick")},
		{"admin", "[GROUP] MEMBER", "make a member an admin (admins)", groupMemberCmd("admin")},
		{"keep", "[GROUP] MEMBER", "write to a member whose removal was undone", groupMemberCmd("keep")},
		{"leave", "[GROUP]", "leave the open group", inCommands((*commands).cmdLeave)},
	}
}

func (u *commands) groups(cmd string) *node.Groups {
	gb, ok := u.b.(groupBackend)
	if !ok {
		u.notes.showError("/" + cmd + ": this window's node has no groups.")
		return nil
	}
	return gb.Groups()
}

// groupArg is the group a command acts on: the one named (its name or
// ID), or with no name the open group chat's.
func (u *commands) groupArg(gb *node.Groups, cmd, usage, arg string) (node.GroupInfo, bool) {
	if arg == "" {
		if c := u.gc.openGroup(); c != nil {
			return c.grp.info, true
		}
		u.notes.showError("/" + cmd + " works on the open group: open one (Tab), or " + usage + ".")
		return node.GroupInfo{}, false
	}
	g, err := gb.Find(arg)
	if err != nil {
		u.notes.showError("/" + cmd + ": " + finish(err.Error()))
		return node.GroupInfo{}, false
	}
	return g, true
}

// groupSummary is a group's trust line: "6 members: 5 verified, 1
// unverified" ("unknown": not a contact, as /members says), with KEY
// CHANGED (bad) when a member's key changed, which blocks sending to the
// group.
func groupSummary(members []node.PeerInfo) (string, tone) {
	text, t := groupSummaryWith(members, false)
	if t == toneBad {
		text += " (sending blocked until you decide)"
	}
	return text, t
}

// groupSummaryWith is groupSummary for the others of a group, with you
// counted first when you are a member: "3 members: you, 1 verified, 1
// unverified"; the title and the member list say what blocks sending.
func groupSummaryWith(members []node.PeerInfo, you bool) (string, tone) {
	verified, unverified, unknown, expired, blocked, changed := 0, 0, 0, 0, 0, 0
	for _, m := range members {
		switch {
		case m.Changed != nil || m.Trust == identity.StateChanged:
			changed++
		case m.Trust == identity.StateUntrusted:
			blocked++
		case m.Trust == identity.StateExpired:
			expired++
		case m.Trust == identity.StateVerified || m.Trust == identity.StateCAVerified:
			verified++
		case m.Trust == identity.StateUnknown: // not a contact: messages wait for it
			unknown++
		default:
			unverified++
		}
	}
	parts := []string{}
	total := len(members)
	if you {
		parts, total = append(parts, "you"), total+1
	}
	for _, p := range []struct {
		n    int
		what string
	}{{verified, "verified"}, {unverified, "unverified"}, {unknown, "unknown"}, {expired, "expired"}, {blocked, "blocked"}, {changed, "KEY CHANGED"}} {
		if p.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", p.n, p.what))
		}
	}
	noun := "members"
	if total == 1 {
		noun = "member"
	}
	text := fmt.Sprintf("%d %s: %s", total, noun, strings.Join(parts, ", "))
	switch {
	case changed > 0 || blocked > 0: // sending to the group waits (memberBlocks)
		return text, toneBad
	case expired > 0 || unverified > 0 || unknown > 0:
		return text, toneWarn
	}
	return text, toneGood
}

// memberInfos describes a group's other members (and us, as "you").
func (u *commands) memberInfos(g node.GroupInfo) []node.PeerInfo {
	self := u.b.Identity().PeerID()
	var out []node.PeerInfo
	for _, p := range g.Members {
		if p != self {
			out = append(out, u.b.PeerInfo(p))
		}
	}
	return out
}

// memberPeer resolves a MEMBER argument: a chat's name or a peer ID
// (an Ed25519 one: the end of one, such as "16FbzZ", may decode as a
// peer ID that embeds no key, and names no peer).
func (u *commands) memberPeer(arg string) (peer.ID, error) {
	if p, err := identity.ParsePeerID(strings.TrimPrefix(arg, "@")); err == nil {
		return p, nil
	}
	c, err := u.findChat(arg)
	if err != nil {
		return "", err
	}
	return c.info.ID, nil
}

// groupMember finds the member of g that arg names: a peer ID or a
// chat's name (memberPeer), or else the piece of a member's peer ID that
// /members shows for one that is not a contact ("12D3Ko…xv7Uha", with
// "…" or "...", or its start or end alone, 4 characters or more): such
// a member has no other name here.
func (u *commands) groupMember(g node.GroupInfo, arg string) (peer.ID, error) {
	p, err := u.memberPeer(arg)
	if err == nil {
		return p, nil
	}
	var found []peer.ID
	for _, m := range g.Members {
		if idMatches(m.String(), strings.TrimPrefix(strings.TrimSpace(arg), "@")) {
			found = append(found, m)
		}
	}
	switch len(found) {
	case 0:
		return "", err
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("%d members of %s have a peer ID like %q: give more of it (/members shows them)",
		len(found), oneLine(identity.SanitizeName(g.Name)), truncate(oneLine(arg), 30))
}

// idMatches says whether id (a peer ID) is what frag shows of it: its
// start and end around "…" or "...", or its start or its end alone, at
// least 4 characters either way.
func idMatches(id, frag string) bool {
	for _, sep := range []string{"…", "..."} {
		if pre, suf, ok := strings.Cut(frag, sep); ok {
			return len(pre)+len(suf) >= 4 && strings.HasPrefix(id, pre) && strings.HasSuffix(id[len(pre):], suf)
		}
	}
	return len(frag) >= 4 && (strings.HasPrefix(id, frag) || strings.HasSuffix(id, frag))
}

func (u *commands) cmdGroup(arg string) {
	gb := u.groups("group")
	if gb == nil {
		return
	}
	f, caName := groupCreateFields(arg)
	if len(f) < 3 || f[0] != "create" || caName == "--ca" {
		u.notes.showError("/group create NAME MEMBER...: a name and at least one contact; add --ca CA (a CA you trust, by name or fingerprint) to bind the group to it.")
		return
	}
	var members []peer.ID
	for _, a := range f[2:] {
		p, err := u.memberPeer(a)
		if err != nil {
			u.notes.showError("/group create: " + finish(err.Error()))
			return
		}
		members = append(members, p)
	}
	name := f[1]
	u.spawn(func() {
		var ca []byte
		var err error
		if caName != "" {
			ca, err = gb.TrustedCA(caName)
		}
		var g node.GroupInfo
		if err == nil {
			g, err = gb.CreateCA(name, members, ca)
		}
		u.post(func() {
			if err != nil {
				u.notes.showError("/group create: " + finish(err.Error()))
				return
			}
			c := u.roster.setGroup(g)
			c.last = u.now()
			u.roster.sort()
			u.openChat(c.info.ID)
			bound := ""
			if ca != nil {
				bound = ", bound to " + tview.Escape(oneLine(identity.SanitizeName(caName))) + " (every member needs a certificate it issued)"
			}
			u.notes.informAbout(c.info.ID, fmt.Sprintf("Group %s made with %s%s; type to write to all of them, /members shows them.", c.name(), memberCount(len(g.Members)), bound))
		})
	})
}

// groupCreateFields splits /group's argument into its words and the CA
// after "--ca" (the rest of the line, which may hold spaces: "--ca Acme
// Root"): "--ca" itself when nothing follows it, "" without it.
func groupCreateFields(arg string) ([]string, string) {
	f := strings.Fields(arg)
	i := slices.Index(f, "--ca")
	if i < 0 {
		return f, ""
	}
	if i == len(f)-1 {
		return f[:i], "--ca"
	}
	return f[:i], strings.Join(f[i+1:], " ")
}

func (u *commands) cmdGroups(string) {
	gb := u.groups("groups")
	if gb == nil {
		return
	}
	u.spawn(func() {
		gs := gb.List()
		u.post(func() {
			if len(gs) == 0 {
				u.notes.inform("No groups yet: /group create NAME MEMBER... makes one.")
				return
			}
			var b strings.Builder
			for _, g := range gs {
				fmt.Fprintf(&b, "%s  %s", tview.Escape(oneLine(identity.SanitizeName(g.Name))), memberCount(len(g.Members)))
				if g.Unread > 0 {
					fmt.Fprintf(&b, ", %d unread", g.Unread)
				}
				if !g.Member {
					b.WriteString(" (you left or were removed)")
				}
				// The ID names the group where its name is shared.
				fmt.Fprintf(&b, "  [::d]ID %s[::-]\n", g.ID.Short())
			}
			u.dlg.show(u.dlg.textDialog("Groups", strings.TrimRight(b.String(), "\n"), false, button{"Close (Esc)", nil}))
		})
	})
}

func (u *commands) cmdMembers(arg string) {
	gb := u.groups("members")
	if gb == nil {
		return
	}
	g, ok := u.groupArg(gb, "members", "name the group: /members GROUP", arg)
	if !ok {
		return
	}
	u.spawn(func() {
		infos := u.memberInfos(g)
		flags := gb.Flags(g.ID)
		issuers := gb.Issuers(g.ID) // a group bound to a CA: the CA that vouches for each member
		u.post(func() {
			for _, info := range infos {
				u.roster.setInfo(info)
			}
			u.dlg.show(u.dlg.textDialog("Members of "+oneLine(identity.SanitizeName(g.Name)), u.membersText(g, infos, flags, issuers), true, button{"Close (Esc)", nil}))
		})
	})
}

// membersText lists a group's members with each one's trust; a member
// whose key stops sending to the group is in red.
// issuers names, in a group bound to a CA, the CA that vouches for each
// member (Groups.Issuers).
func (u *commands) membersText(g node.GroupInfo, infos []node.PeerInfo, flags map[peer.ID]error, issuers map[peer.ID]string) string {
	summary, t := groupTrust(g, infos)
	var b strings.Builder
	b.WriteString(tagged(tview.Escape(summary), t) + "\n\n")
	if g.Member {
		b.WriteString("you" + adminTag(g, u.myID) + "\n")
	}
	for _, info := range infos {
		tt, tn := trustTitle(info)
		if info.Changed != nil {
			tt, tn = "KEY CHANGED: claims to be "+claimed(info), toneBad
		}
		row := tview.Escape(displayName(info)) + adminTag(g, info.ID)
		row += " — " + tagged(tview.Escape(tt), tn)
		if err := flags[info.ID]; err != nil {
			row += " — " + tagged("FLAGGED: "+tview.Escape(oneLine(err.Error())), toneBad)
		}
		if name, ok := issuers[info.ID]; ok {
			row += " — group CA: " + tview.Escape(oneLine(identity.SanitizeName(name)))
		} else if info.Issuer != "" && info.IssuerTrusted && info.Trust != identity.StateCAVerified {
			row += ", issued by " + tview.Escape(oneLine(identity.SanitizeName(info.Issuer)))
		}
		if i := slices.IndexFunc(g.Undone, func(d group.Undone) bool { return d.Target == info.ID }); i >= 0 {
			row += " — " + tagged(tview.Escape("REMOVAL UNDONE by "+u.dlg.nameOf(g.Undone[i].Author)+"'s key"), toneBad)
		}
		if memberBlocks(info) {
			row = "[red::b]" + row + "[-::-]"
		}
		b.WriteString(row + "\n")
	}
	for _, info := range infos {
		if displayName(info) == identity.ShortID(info.ID) {
			// Known by no other name: say how to name it in a command.
			id := info.ID.String()
			fmt.Fprintf(&b, "\nA member shown by its ID is named by it in /kick and /admin, or by its end alone (%s).\n", id[len(id)-6:])
			break
		}
	}
	if !g.Member {
		b.WriteString("\nYou are not a member any more.\n")
	}
	return strings.TrimRight(b.String(), "\n")
}

// tagged colours text (already escaped) for a tview text view.
func tagged(text string, t tone) string {
	switch t {
	case toneGood:
		return "[green]" + text + "[-]"
	case toneWarn:
		return "[olive]" + text + "[-]"
	case toneBad:
		return "[red::b]" + text + "[-::-]"
	}
	return text
}

// adminTag marks an admin in the member list, and the creator among
// them: an admin removes members and the admins made after it, and
// nobody removes the creator (PROTOCOL §14.3).
func adminTag(g node.GroupInfo, p peer.ID) string {
	switch {
	case !isAdmin(g, p):
		return ""
	case p == g.Creator:
		return " (admin, creator)"
	}
	return " (admin)"
}

func isAdmin(g node.GroupInfo, p peer.ID) bool {
	for _, a := range g.Admins {
		if a == p {
			return true
		}
	}
	return false
}

// groupMemberCmd is /invite, /kick or /admin [GROUP] MEMBER: with one
// word, on the open group.
func groupMemberCmd(cmd string) func(u *UI, arg string) {
	return func(u *UI, arg string) {
		gb := u.cmds.groups(cmd)
		if gb == nil {
			return
		}
		f := strings.Fields(arg)
		usage := "/" + cmd + " MEMBER in a group's chat, or /" + cmd + " GROUP MEMBER"
		var (
			g  node.GroupInfo
			ok bool
		)
		switch len(f) {
		case 1:
			g, ok = u.cmds.groupArg(gb, cmd, usage, "")
		case 2:
			g, ok = u.cmds.groupArg(gb, cmd, usage, f[0])
			f = f[1:]
		default:
			u.notes.showError("Usage: " + usage + ".")
			return
		}
		if !ok || u.cmds.notMember(cmd, g) {
			return
		}
		find := u.cmds.memberPeer
		if cmd != "invite" { // a member already: maybe known only by its ID
			find = func(arg string) (peer.ID, error) { return u.cmds.groupMember(g, arg) }
		}
		p, err := find(f[0])
		if err != nil {
			u.notes.showError("/" + cmd + ": " + finish(err.Error()))
			return
		}
		name, key := u.dlg.nameOf(p), groupKey(g.ID)
		u.spawn(func() {
			var err error
			switch cmd {
			case "invite":
				_, err = gb.Add(g.ID, p)
			case "kick":
				_, err = gb.Remove(g.ID, p)
			case "admin":
				_, err = gb.Admin(g.ID, p)
			case "keep":
				_, err = gb.Keep(g.ID, p)
			}
			u.post(func() {
				if err != nil {
					u.notes.showErrorAbout(key, "/"+cmd+": "+finish(groupReason(err)))
					return
				}
				done := map[string]string{"invite": "%s is now a member of %s; every member is told.", "kick": "%s is no longer a member of %s; every member is told.",
					"admin": "%s is now an admin of %s; every member is told.", "keep": "You write to %s in %s again (your decision: an admin can still remove them)."}[cmd]
				u.notes.informAbout(key, fmt.Sprintf(done, name, oneLine(identity.SanitizeName(g.Name))))
			})
		})
	}
}

func (u *commands) cmdLeave(arg string) {
	gb := u.groups("leave")
	if gb == nil {
		return
	}
	g, ok := u.groupArg(gb, "leave", "name the group: /leave GROUP", arg)
	if !ok || u.notMember("leave", g) {
		return
	}
	key := groupKey(g.ID)
	u.spawn(func() {
		_, err := gb.Leave(g.ID)
		u.post(func() {
			if err != nil {
				u.notes.showErrorAbout(key, "/leave: "+finish(groupReason(err)))
				return
			}
			u.notes.informAbout(key, "You left "+oneLine(identity.SanitizeName(g.Name))+": its history stays here.")
		})
	})
}

// renameGroup renames the open group for every member (admins only).
func (u *commands) renameGroup(c *chat, name string) {
	gb := u.groups("rename")
	if gb == nil {
		return
	}
	if u.notMember("rename", c.grp.info) {
		return
	}
	key, id, old := c.info.ID, c.grp.info.ID, c.name()
	u.spawn(func() {
		g, err := gb.Rename(id, name)
		u.post(func() {
			if err != nil {
				u.notes.showErrorAbout(key, "/rename: "+finish(groupReason(err)))
				return
			}
			u.roster.setGroup(g)
			u.roster.sort()
			u.updatePlaceholder()
			u.notes.informAbout(key, "Renamed the group "+old+" to "+u.roster.get(key).name()+" for every member.")
		})
	})
}

// notMember says, and reports, that g is no longer yours to change: the
// node's refusal named your peer ID ("... 12D3Ko…xv7Uha cannot leave"),
// or said only an admin could, as if you still were a member.
func (u *commands) notMember(cmd string, g node.GroupInfo) bool {
	if g.Member {
		return false
	}
	u.notes.showErrorAbout(groupKey(g.ID), "/"+cmd+": you are not a member of "+oneLine(identity.SanitizeName(g.Name))+" any more (you left or were removed).")
	return true
}

// groupReason is a refused group change's error in words.
func groupReason(err error) string {
	if errors.Is(err, group.ErrNotAdmin) {
		return "only an admin of the group can do that"
	}
	if errors.Is(err, group.ErrJuniorAdmin) {
		return "they were an admin before you, and an admin can remove only the admins made after them (the group's creator, never)"
	}
	if errors.Is(err, group.ErrLogFull) {
		return fmt.Sprintf("the group has had %d changes to its members, admins and name, the most a group keeps, so nobody can change it any more (messages still go); to go on changing it, make it anew with /group create NAME MEMBER...", group.MaxChanges)
	}
	return err.Error()
}
