package ui

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/node"
)

// submit handles an input line: a /command, or a message to the open
// chat ("//" sends a line starting with "/"). It returns false to keep
// the line in the input, when the message was refused.
func (u *UI) submit(text string) bool {
	u.notes.clear()
	u.act.stopTyping()
	if strings.HasPrefix(text, "/") && !strings.HasPrefix(text, "//") {
		u.cmds.runCommand(text)
		return true
	}
	text = strings.TrimPrefix(text, "/")
	if cp := u.act.composing(); cp != nil {
		return u.act.sendCompose(cp, text)
	}
	return u.sendText(text)
}

// sendText sends a message to the open chat. The message shows at once as
// "sending…"; the node stores it off the event loop.
func (u *UI) sendText(text string) bool {
	c := u.roster.get(u.open)
	if c == nil {
		u.notes.showError("No chat is open: pick one with Tab, or start one with /add INVITATION (/id shows yours).")
		return false
	}
	if c.grp != nil {
		return u.gc.sendGroupText(c, text)
	}
	if err := mayType(c.info); err != nil {
		u.notes.showErrorAbout(c.info.ID, u.refusal(c, err))
		u.dlg.promptTrust(c)
		return false
	}
	if len(text) > e2e.MaxTextBytes {
		u.notes.showError(fmt.Sprintf("Not sent: a message holds at most %d KiB; this one has %d KiB.", e2e.MaxTextBytes>>10, (len(text)+1023)>>10))
		return false
	}
	p := u.open
	u.act.stopTyping()
	e := u.conv.addPending(text)
	u.conv.offset = 0
	c.hasConv, c.last = true, u.now()
	u.roster.sort()
	u.spawn(func() {
		m, err := u.b.Send(p, text)
		u.post(func() {
			if err != nil {
				u.conv.failPending(e, describe(err))
				u.notes.showErrorAbout(p, u.refusal(c, err))
				if errors.Is(err, node.ErrKeyChanged) || errors.Is(err, node.ErrNotTrusted) {
					u.dlg.promptTrust(c)
				}
				return
			}
			u.conv.upsert(m)
		})
	})
	return true
}

func (u *UI) now() time.Time { return u.opts.Now() }
