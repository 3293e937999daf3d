package ui

import (
	"errors"
	"fmt"
	"strings"

	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/rivo/tview"
)

// Contacts from the window: /rename, /remove, /block and /unblock act on
// the open chat, or on the contact named first ("/block bob", "/block
// @bob"), as `chat contacts` does from the command line.

// chatArg is the chat a command acts on: the one named by arg (a name as
// the chat list shows it, with or without "@", or a peer ID), or with no
// arg the open chat. It says what is wrong and returns nil otherwise.
func (u *commands) chatArg(cmd, arg string) *chat {
	if arg == "" {
		c := u.openChatOrSay(cmd)
		if c != nil && c.grp != nil {
			u.notes.showError("/" + cmd + " works on a person's chat: name a member (/" + cmd + " NAME); /members lists them.")
			return nil
		}
		return c
	}
	c, err := u.findChat(arg)
	if err != nil {
		u.notes.showError("/" + cmd + ": " + finish(err.Error()))
	}
	return c
}

// findChat finds a chat by name (compared as the trust store compares
// names, so a look-alike is ambiguous, not a match) or peer ID.
func (u *commands) findChat(arg string) (*chat, error) {
	arg = strings.TrimPrefix(strings.TrimSpace(arg), "@")
	if p, err := identity.ParsePeerID(arg); err == nil {
		if c := u.roster.get(p); c != nil {
			return c, nil
		}
		return nil, fmt.Errorf("no chat with %s", identity.ShortID(p))
	}
	var found []*chat
	for _, p := range u.roster.order {
		if c := u.roster.get(p); c.grp == nil && (identity.SameName(c.name(), arg) || strings.EqualFold(c.name(), arg)) {
			found = append(found, c)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no chat is called %q: give a name from the chat list (Tab completes it) or a peer ID", truncate(oneLine(arg), 30))
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("%d chats are called %q: give the peer ID (/whois shows it)", len(found), truncate(oneLine(arg), 30))
}

// splitTarget reads "[CONTACT] REST": when arg has more than one word and
// its first word names a chat, that chat and the rest; otherwise nil and
// arg. "@name" always names a chat.
func (u *commands) splitTarget(arg string) (*chat, string, error) {
	first, rest, ok := strings.Cut(arg, " ")
	rest = strings.TrimSpace(rest)
	if !ok || rest == "" {
		if strings.HasPrefix(arg, "@") {
			return nil, "", errors.New("give the new name after the contact")
		}
		return nil, arg, nil
	}
	c, err := u.findChat(first)
	switch {
	case err == nil:
		return c, rest, nil
	case strings.HasPrefix(first, "@"):
		return nil, "", err
	}
	return nil, arg, nil
}

func (u *commands) cmdRename(arg string) {
	if arg == "" {
		u.notes.showError("Usage: /rename NEWNAME (the open chat) or /rename CONTACT NEWNAME.")
		return
	}
	c, name, err := u.splitTarget(arg)
	if err != nil {
		u.notes.showError("/rename: " + finish(err.Error()))
		return
	}
	if c == nil {
		if c = u.openChatOrSay("rename"); c == nil {
			return
		}
		if c.grp != nil {
			u.renameGroup(c, name)
			return
		}
	}
	// A peer a CA vouches for is trusted without being a contact: naming
	// it pins it (its trust shows as before, CA-verified).
	pinFirst := !c.info.Contact && c.info.Trust == identity.StateCAVerified && c.info.Changed == nil
	if !c.info.Contact && !pinFirst {
		u.notes.showErrorAbout(c.info.ID, c.name()+" is not in your contacts: accept them first (/trust), then name them.")
		return
	}
	p, old := c.info.ID, c.name()
	u.spawn(func() {
		var err error
		if pinFirst {
			err = u.b.Contacts().TrustNew(p)
		}
		if err == nil {
			err = u.b.Contacts().Rename(p, name)
		}
		info := u.b.PeerInfo(p)
		u.post(func() {
			u.roster.setInfo(info)
			u.roster.sort()
			var taken *identity.NameTakenError
			switch {
			case errors.As(err, &taken):
				u.notes.showErrorAbout(p, "Not renamed: \u201c"+oneLine(taken.Name)+"\u201d reads the same as your contact "+
					oneLine(taken.Contact)+". Two contacts must never read the same: choose another name.")
			case err != nil:
				u.notes.failAbout(p, "Could not rename "+old, err)
			default:
				u.notes.informAbout(p, "Renamed "+old+" to "+oneLine(identity.SanitizeName(name))+".")
				if p == u.open {
					u.updatePlaceholder()
				}
			}
		})
	})
}

func (u *commands) cmdRemove(arg string) {
	c := u.chatArg("remove", arg)
	if c == nil {
		return
	}
	if !c.info.Contact {
		u.notes.showErrorAbout(c.info.ID, c.name()+" is not in your contacts.")
		return
	}
	p, name := c.info.ID, tview.Escape(c.name())
	text := fmt.Sprintf("Remove [::b]%s[::-] from your contacts?\n\nFingerprint: %s\n\n"+
		"Their key is forgotten: nothing is sent to it until you add or accept it again, "+
		"and a message from it asks again as a first contact. The conversation stays. "+
		"To refuse the key instead, /block it.", name, c.info.Fingerprint.String())
	u.dlg.show(u.dlg.trustDialog("Remove "+c.name(), text,
		button{"Remove", func() { u.remove(p) }},
		button{"Keep (Esc)", nil}))
}

// remove forgets p's key.
func (u *commands) remove(p peer.ID) {
	name := u.dlg.nameOf(p)
	u.spawn(func() {
		err := u.b.Contacts().Remove(p)
		info := u.b.PeerInfo(p)
		u.post(func() {
			u.roster.setInfo(info)
			u.roster.sort()
			if err != nil {
				u.notes.failAbout(p, "Could not remove "+name, err)
				return
			}
			u.notes.informAbout(p, "Removed "+name+" from your contacts. /trust or /add accepts the key again.")
		})
	})
}

func (u *commands) cmdBlock(arg string) {
	if c := u.chatArg("block", arg); c != nil {
		if c.info.Trust == identity.StateUntrusted {
			u.notes.informAbout(c.info.ID, c.name()+" is blocked already. /unblock accepts the key again.")
			return
		}
		u.dlg.reject(c.info.ID)
	}
}

func (u *commands) cmdUnblock(arg string) {
	c := u.chatArg("unblock", arg)
	switch {
	case c == nil:
	case c.info.Changed != nil:
		// Another contact's name: that decision has its own question.
		u.dlg.keyChangedPrompt(c)
	case c.info.Trust != identity.StateUntrusted:
		u.notes.informAbout(c.info.ID, c.name()+" is not blocked.")
	default:
		u.dlg.accept(c.info.ID, false)
	}
}
