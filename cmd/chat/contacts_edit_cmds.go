package main

import (
	"errors"

	"github.com/certchat/certchat/identity"
)

// contactEditCommands rename and unblock contacts, as /rename and
// /unblock do in the window.
func contactEditCommands() []*command {
	return []*command{
		{
			name:    "contacts rename",
			args:    "PEER NAME",
			summary: "give a contact another name (not one that reads like another contact's)",
			run:     runContactsRename,
		},
		{
			name:    "contacts unblock",
			args:    "PEER",
			summary: "accept a blocked contact's key again (trusted on first use)",
			run:     runContactsUnblock,
		},
	}
}

func runContactsRename(c *ctx) error {
	if err := c.wantArgs(2); err != nil {
		return err
	}
	t, ct, err := c.resolveContact(c.args[0])
	if err != nil {
		return err
	}
	if ct.State == "" {
		return identity.ErrUnknownContact
	}
	old := labelFor(t, ct.PeerID)
	if err := t.Rename(ct.PeerID, c.args[1], c.now()); err != nil {
		return err
	}
	c.printf("Renamed %s to %s.\n", old, identity.SanitizeName(c.args[1]))
	return nil
}

func runContactsUnblock(c *ctx) error {
	if err := c.wantArgs(1); err != nil {
		return err
	}
	t, ct, err := c.resolveContact(c.args[0])
	if err != nil {
		return err
	}
	switch {
	case ct.State != identity.StateUntrusted:
		return errors.New("that contact is not blocked")
	case ct.ReplacedBy != "":
		// Accepting it again takes the name back from the key that
		// replaced it: a decision to take in the window, comparing keys.
		return errors.New("that key was replaced by a new key for the same name: open the chat and use /trust to compare and decide")
	}
	if err := c.pin(t, ct.PeerID, "", identity.StateTOFU); err != nil {
		return err
	}
	c.printf("Unblocked %s: trusted on first use.\n", labelFor(t, ct.PeerID))
	return nil
}
