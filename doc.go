// Package certchat is the root of the certchat module: a peer-to-peer,
// end-to-end encrypted messenger for the terminal. It holds no code, only
// the test (architecture_test.go) that keeps the packages' imports in the
// direction docs/ARCHITECTURE.md draws:
//
//	identity ← e2e, e2e/ratchet ← store, mailbox ← node ← ui, relay, cmd/chat
//
// (relay imports mailbox, not node). The binary is cmd/chat; the protocol
// is specified in docs/PROTOCOL.md.
package certchat
