package main

import "github.com/certchat/certchat/identity"

// openChat opens the chat window for the home's identity. Until the
// window exists, it prints the identity.
func openChat(c *ctx, h identity.Home) error {
	if err := printIdentity(c, h); err != nil {
		return err
	}
	c.printf("\nThe chat window is not built yet; see `chat help` for what works today.\n")
	return nil
}
