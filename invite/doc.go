// Package invite is certchat's invitation: the one thing a person shares
// so that someone else can add them. It carries the peer ID (which embeds
// the Ed25519 key, so the fingerprint follows from it), the name they
// suggest, their direct addresses and their relays, and it is signed with
// the identity key: an invitation whose addresses or name were changed
// does not verify.
//
// The text is "CERTCHAT:" followed by the unpadded base32 of the binary
// encoding, upper case so that a QR code stores it in alphanumeric mode.
// docs/PROTOCOL.md §13, "Invitations", is the specification. Decoding is a
// parser of untrusted bytes: every length is bounded before it is used
// and anything left over is refused.
//
// The package needs no network and no identity files: Decode verifies
// with the key in the peer ID alone.
package invite
