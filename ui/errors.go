package ui

import (
	"context"
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/certchat/certchat/group"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/libp2p/go-libp2p/core/peer"
)

// describe turns an error into the end of a sentence: one line, no log
// noise, ending with a full stop.
func describe(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "the peer did not answer in time."
	case errors.Is(err, context.Canceled):
		return "canceled."
	case errors.Is(err, node.ErrRemovalUndone):
		return "a member's removal was undone by a leave of its remover's key; nothing is sent to the group until you decide (/members shows whom: /kick or /keep them)."
	}
	return finish(err.Error())
}

// finish makes text one clean line ending with punctuation.
func finish(text string) string {
	s := strings.Join(strings.Fields(oneLine(text)), " ")
	if s == "" {
		return "something went wrong."
	}
	if r, _ := utf8.DecodeLastRuneInString(s); !strings.ContainsRune(".!?", r) {
		s += "."
	}
	return s
}

// capitalize starts a sentence with a capital letter.
func capitalize(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[n:]
}

// errorAbout is the chat a node error event is about: the group's for a
// removal undone, else the peer's.
func errorAbout(e node.Event) peer.ID {
	var undone *node.RemovalUndoneError
	if errors.As(e.Cause, &undone) {
		return groupKey(undone.Group)
	}
	return e.PeerID
}

// errorSentence is how a node error event reads in the window.
func (u *UI) errorSentence(e node.Event) string {
	var undone *node.RemovalUndoneError
	if errors.As(e.Cause, &undone) {
		return u.undoneSentence(undone)
	}
	text := capitalize(finish(e.Err))
	if e.PeerID == "" {
		return text
	}
	name := identity.ShortID(e.PeerID)
	if c := u.roster.get(e.PeerID); c != nil {
		name = c.name()
	}
	if s, ok := strangerFullSentence(e.Cause, name); ok {
		return s
	}
	if errors.Is(e.Cause, node.ErrNoReceipt) {
		return "No receipt from " + name + ": they may not have accepted you yet (your messages wait), " +
			"or a restored backup put you out of step (resent; some may be lost)."
	}
	return "Problem with " + name + ": " + text
}

// undoneSentence says who is a member of a group again, whose removal
// of them a crossing change undid, and what to do about it.
func (u *UI) undoneSentence(e *node.RemovalUndoneError) string {
	by := u.dlg.nameOf(e.Author)
	if e.Target == u.myID {
		return "You are a member of " + e.Name + " again: " + by + "'s removal of you was undone by a change that crossed it."
	}
	who := u.dlg.nameOf(e.Target)
	if errors.Is(e.Cause, group.ErrBesideLeave) {
		return who + " is a member of " + e.Name + " again: a leave of " + by + "'s key undid " + by + "'s removal of them. " +
			"Nothing goes to " + e.Name + " until you /kick " + who + " (admins) or /keep " + who + "."
	}
	return who + " is a member of " + e.Name + " again: " + by + "'s removal of them was undone by a change that crossed it. " +
		"If that is not what you want, /kick " + who + " before writing."
}

// strangerFullSentence says, short enough for the notice line at 80
// columns, why a message from name (or in a group made by a stranger)
// was not kept (a *node.StrangerFullError) and what brings it: the
// node's own sentence, prefixed "Problem with …", ran to four rows there
// and lost the part that says what to do. ok is false for any other
// error.
func strangerFullSentence(err error, name string) (string, bool) {
	var full *node.StrangerFullError
	if !errors.As(err, &full) {
		return "", false
	}
	switch full.Bound {
	case node.BoundPeer:
		return name + " is not in your contacts and has as many messages waiting as are kept; " +
			"the rest wait with them until you accept them (/trust " + name + ").", true
	case node.BoundRoom:
		return "Not received from " + name + ": as many peers not in your contacts have messages waiting as are kept; " +
			"accept or block some (/trust) to receive it.", true
	case node.BoundGroup:
		return "Not received from " + name + ": a group made by someone not in your contacts holds as many messages " +
			"as are kept; accept its maker (/members) to receive more.", true
	}
	return "", false
}

// refusal explains why a message to c cannot be sent now.
func (u *UI) refusal(c *chat, err error) string {
	name := c.name()
	switch {
	case errors.Is(err, node.ErrKeyChanged):
		return "Not sent: KEY CHANGED for " + name + ". Compare fingerprints (/verify), then accept or reject the new key (/trust)."
	case errors.Is(err, node.ErrBlocked):
		return "Not sent: you rejected " + name + "'s key. /trust accepts it again."
	case errors.Is(err, node.ErrNotTrusted):
		return "Not sent: " + name + " is not in your contacts. Accept them first (/trust)."
	}
	return "Not sent: " + describe(err)
}
