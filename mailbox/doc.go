// Package mailbox is the protocol between a certchat node and the mailbox
// on its relay: publishing prekey bundles, fetching a peer's bundle,
// depositing sealed envelopes for a peer who is offline, and fetching and
// deleting one's own. docs/PROTOCOL.md §11 specifies it; relay implements
// the server, this package the messages and the client side.
//
// Every envelope is sealed end to end (e2e/ratchet) before it reaches the
// relay, which stores opaque blobs and learns only who deposits for whom,
// when, and how much.
package mailbox
