package ui

import (
	"slices"

	"github.com/certchat/certchat/store"
	"github.com/gdamore/tcell/v2"
	"github.com/libp2p/go-libp2p/core/peer"
)

// attention is the part of the window that calls the user: the bell, the
// terminal title with the unread count and desktop notifications, for
// what arrives while the terminal does not have the focus or another chat
// is open. It belongs to the event loop.
type attention struct {
	*UI

	notify  *notifier
	focused bool            // the terminal has the focus (as far as known)
	away    int             // messages in the open chat while unfocused
	muted   map[string]bool // chats that never call for attention
}

// openTerminal makes the terminal screen: mouse, bracketed paste and
// focus reports on, and the notifier writing to its tty.
func (u *attention) openTerminal() error {
	scr, err := tcell.NewScreen()
	if err != nil {
		return err
	}
	u.scr = &termScreen{Screen: scr, onFocus: u.focusChanged}
	u.app.SetScreen(u.scr) // initialises it
	scr.EnableMouse()
	scr.EnablePaste()
	scr.EnableFocus()
	if u.notify.w == nil {
		if tty, ok := scr.Tty(); ok {
			u.notify.w = tty
		}
	}
	return nil
}

// focusChanged is called by the screen, off the event loop, when the
// terminal gains or loses the focus.
func (u *attention) focusChanged(focused bool) {
	select {
	case <-u.quit:
		return
	default:
	}
	u.app.QueueUpdateDraw(func() {
		u.focused = focused
		u.conv.find.away = !focused // messages that come meanwhile get a divider
		if focused {
			u.away = 0
		}
	})
}

// attend calls for attention for an incoming message: in a chat that is
// not open, or while the terminal does not have the focus, and not muted.
// counted says the message was seen before (a repeated event).
func (u *attention) attend(m store.Message, c *chat, counted bool) { u.attendIn(m.Peer, m, c, counted) }

// attendIn is attend for a message of the chat with key key (a peer's,
// or a group's: then the alert names the sender in the group).
func (u *attention) attendIn(key peer.ID, m store.Message, c *chat, counted bool) {
	if counted || m.Direction != store.Incoming || u.muted[string(key)] {
		return
	}
	if key == u.open {
		if u.focused {
			return
		}
		u.away++
	}
	name := c.name()
	if c.grp != nil {
		name = u.dlg.nameOf(m.Peer) + " in " + name
	}
	u.notify.alert(string(key), name, m.Body)
}

// updateTitle shows the number of unread messages of chats that are not
// muted in the terminal's title (after each draw: it writes only when
// the number changes).
func (u *attention) updateTitle() {
	n := u.away
	for _, c := range u.roster.chats {
		if !u.muted[string(c.info.ID)] {
			n += c.unread
		}
	}
	u.notify.setCount(n)
}

// cmdMute and cmdUnmute switch the open chat's alerts off and on.
func (u *attention) cmdMute(string)   { u.setMuted(true) }
func (u *attention) cmdUnmute(string) { u.setMuted(false) }

func (u *attention) setMuted(on bool) {
	cmd := "mute"
	if !on {
		cmd = "unmute"
	}
	c := u.cmds.openChatOrSay(cmd)
	if c == nil {
		return
	}
	id := string(c.info.ID)
	if u.muted[id] == on {
		if on {
			u.notes.inform(c.name() + " is muted already; /unmute brings the bell and notifications back.")
		} else {
			u.notes.inform(c.name() + " is not muted.")
		}
		return
	}
	if on {
		u.muted[id] = true
	} else {
		delete(u.muted, id)
	}
	var list []string
	for m := range u.muted {
		list = append(list, m)
	}
	slices.Sort(list)
	if on {
		u.notes.inform("Muted " + c.name() + ": no bell, notification or title count for this chat (/unmute undoes).")
	} else {
		u.notes.inform("Unmuted " + c.name() + ": new messages ring the bell again.")
	}
	save := u.opts.Notify.SaveMuted
	if save == nil {
		return
	}
	name := c.name()
	u.spawn(func() {
		if err := save(list); err != nil {
			u.post(func() { u.notes.fail("Could not remember that "+name+" is "+cmd+"d", err) })
		}
	})
}

// inputEmptied runs when the input becomes empty: a first-contact
// question held back while the user typed opens now.
func (u *attention) inputEmptied() {
	if c := u.roster.get(u.open); c != nil {
		u.dlg.maybeFirstContact(c)
	}
}
