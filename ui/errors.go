package ui

import (
	"context"
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
)

// describe turns an error into the end of a sentence: one line, no log
// noise, ending with a full stop.
func describe(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "the peer did not answer in time."
	case errors.Is(err, context.Canceled):
		return "canceled."
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

// errorSentence is how a node error event reads in the window.
func (u *UI) errorSentence(e node.Event) string {
	text := capitalize(finish(e.Err))
	if e.PeerID == "" {
		return text
	}
	name := identity.ShortID(e.PeerID)
	if c := u.roster.get(e.PeerID); c != nil {
		name = c.name()
	}
	return "Problem with " + name + ": " + text
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
