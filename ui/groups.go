package ui

import (
	"errors"
	"fmt"
	"strings"

	"github.com/certchat/certchat/group"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Groups in the window: commands that make and change groups, list them
// and show a group's members with each one's trust (docs/PROTOCOL.md §14).
// A group is named by its name or ID in each command: group chats do not
// open in the chat pane yet.

// groupBackend is what the group commands need from the node: its group
// part; *node.Node has it.
type groupBackend interface {
	Groups() *node.Groups
}

var _ groupBackend = (*node.Node)(nil)

func groupCommands() []command {
	return []command{
		{"group", "create NAME …", "make a group: /group create NAME MEMBER...", inCommands((*commands).cmdGroup)},
		{"groups", "", "your groups: members and unread", inCommands((*commands).cmdGroups)},
		{"members", "GROUP", "a group's members and their trust", inCommands((*commands).cmdMembers)},
		{"invite", "GROUP MEMBER", "add a contact to a group (admins)", groupMemberCmd("invite")},
		{"kick", "GROUP MEMBER", "remove a member from a group (admins)", groupMemberCmd("kick")},
		{"admin", "GROUP MEMBER", "make a member an admin (admins)", groupMemberCmd("admin")},
		{"leave", "GROUP", "leave a group", inCommands((*commands).cmdLeave)},
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

// groupSummary is a group's trust line: "6 members: 5 verified, 1
// unverified", with KEY CHANGED (bad) when a member's key changed, which
// blocks sending to the group.
func groupSummary(members []node.PeerInfo) (string, tone) {
	verified, unverified, changed, blocked := 0, 0, 0, 0
	for _, m := range members {
		switch m.Trust {
		case identity.StateVerified, identity.StateCAVerified:
			verified++
		case identity.StateChanged:
			changed++
		case identity.StateUntrusted, identity.StateExpired:
			blocked++
		default:
			if m.Changed != nil {
				changed++
			} else {
				unverified++
			}
		}
	}
	parts := []string{}
	for _, p := range []struct {
		n    int
		what string
	}{{verified, "verified"}, {unverified, "unverified"}, {blocked, "blocked or expired"}, {changed, "KEY CHANGED"}} {
		if p.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", p.n, p.what))
		}
	}
	noun := "members"
	if len(members) == 1 {
		noun = "member"
	}
	text := fmt.Sprintf("%d %s: %s", len(members), noun, strings.Join(parts, ", "))
	switch {
	case changed > 0:
		return text + " (sending blocked until you decide)", toneBad
	case blocked > 0 || unverified > 0:
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

// memberPeer resolves a MEMBER argument: a chat's name or a peer ID.
func (u *commands) memberPeer(arg string) (peer.ID, error) {
	if p, err := peer.Decode(strings.TrimPrefix(arg, "@")); err == nil {
		return p, nil
	}
	c, err := u.findChat(arg)
	if err != nil {
		return "", err
	}
	return c.info.ID, nil
}

func (u *commands) cmdGroup(arg string) {
	gb := u.groups("group")
	if gb == nil {
		return
	}
	f := strings.Fields(arg)
	if len(f) < 2 || f[0] != "create" {
		u.notes.showError("/group create NAME MEMBER...: a name and at least one contact.")
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
		g, err := gb.Create(name, members)
		u.post(func() {
			if err != nil {
				u.notes.showError("/group create: " + finish(err.Error()))
				return
			}
			u.notes.inform(fmt.Sprintf("Group %s made with %d members; /members %s shows them.", identity.SanitizeName(g.Name), len(g.Members), identity.SanitizeName(g.Name)))
		})
	})
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
				fmt.Fprintf(&b, "%s  %d members", identity.SanitizeName(g.Name), len(g.Members))
				if g.Unread > 0 {
					fmt.Fprintf(&b, ", %d unread", g.Unread)
				}
				if !g.Member {
					b.WriteString(" (you left or were removed)")
				}
				b.WriteString("\n")
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
	if arg == "" {
		u.notes.showError("/members GROUP: name the group (its name or ID).")
		return
	}
	g, err := gb.Find(arg)
	if err != nil {
		u.notes.showError("/members: " + finish(err.Error()))
		return
	}
	u.spawn(func() {
		infos := u.memberInfos(g)
		flags := gb.Flags(g.ID)
		issuers := gb.Issuers(g.ID) // a group bound to a CA: the CA that vouches for each member
		u.post(func() {
			summary, _ := groupSummary(infos)
			var b strings.Builder
			fmt.Fprintf(&b, "%s\n\n", summary)
			if g.Member {
				b.WriteString("you")
				if isAdmin(g, u.b.Identity().PeerID()) {
					b.WriteString(" (admin)")
				}
				b.WriteString("\n")
			}
			for _, info := range infos {
				t, _ := trustTitle(info)
				fmt.Fprintf(&b, "%s", displayName(info))
				if isAdmin(g, info.ID) {
					b.WriteString(" (admin)")
				}
				fmt.Fprintf(&b, " — %s", t)
				if err := flags[info.ID]; err != nil {
					fmt.Fprintf(&b, " — FLAGGED: %s", err)
				}
				if name, ok := issuers[info.ID]; ok {
					fmt.Fprintf(&b, " — group CA: %s", name)
				} else if info.Issuer != "" && info.IssuerTrusted && info.Trust != identity.StateCAVerified {
					fmt.Fprintf(&b, ", issued by %s", identity.SanitizeName(info.Issuer))
				}
				b.WriteString("\n")
			}
			u.dlg.show(u.dlg.textDialog("Members of "+identity.SanitizeName(g.Name), strings.TrimRight(b.String(), "\n"), true, button{"Close (Esc)", nil}))
		})
	})
}

func isAdmin(g node.GroupInfo, p peer.ID) bool {
	for _, a := range g.Admins {
		if a == p {
			return true
		}
	}
	return false
}

// groupMemberCmd is /invite, /kick or /admin GROUP MEMBER.
func groupMemberCmd(cmd string) func(u *UI, arg string) {
	return func(u *UI, arg string) {
		gb := u.cmds.groups(cmd)
		if gb == nil {
			return
		}
		f := strings.Fields(arg)
		if len(f) != 2 {
			u.notes.showError("/" + cmd + " GROUP MEMBER: name the group and the member.")
			return
		}
		g, err := gb.Find(f[0])
		if err != nil {
			u.notes.showError("/" + cmd + ": " + finish(err.Error()))
			return
		}
		p, err := u.cmds.memberPeer(f[1])
		if err != nil {
			u.notes.showError("/" + cmd + ": " + finish(err.Error()))
			return
		}
		u.spawn(func() {
			var err error
			switch cmd {
			case "invite":
				_, err = gb.Add(g.ID, p)
			case "kick":
				_, err = gb.Remove(g.ID, p)
			case "admin":
				_, err = gb.Admin(g.ID, p)
			}
			u.post(func() {
				if err != nil {
					u.notes.showError("/" + cmd + ": " + finish(groupReason(err)))
					return
				}
				u.notes.inform(fmt.Sprintf("/%s %s: done; every member is told.", cmd, identity.SanitizeName(g.Name)))
			})
		})
	}
}

func (u *commands) cmdLeave(arg string) {
	gb := u.groups("leave")
	if gb == nil {
		return
	}
	g, err := gb.Find(arg)
	if err != nil {
		u.notes.showError("/leave: " + finish(err.Error()))
		return
	}
	u.spawn(func() {
		_, err := gb.Leave(g.ID)
		u.post(func() {
			if err != nil {
				u.notes.showError("/leave: " + finish(groupReason(err)))
				return
			}
			u.notes.inform("You left " + identity.SanitizeName(g.Name) + ".")
		})
	})
}

// groupReason is a refused group change's error in words.
func groupReason(err error) string {
	if errors.Is(err, group.ErrNotAdmin) {
		return "only an admin of the group can do that"
	}
	return err.Error()
}
