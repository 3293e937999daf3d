package node

import "errors"

// Errors callers branch on; the UI turns them into sentences.
var (
	// ErrNotTrusted: the peer is not a contact (nor CA-verified), so
	// nothing is sent to it until the user accepts it.
	ErrNotTrusted = errors.New("this peer is not in your contacts: accept it (or add it by peer id) before sending")
	// ErrBlocked: the user rejected the peer's key.
	ErrBlocked = errors.New("you rejected this peer's key")
	// ErrKeyChanged: a changed key waits for the user's decision.
	ErrKeyChanged = errors.New("KEY CHANGED: compare fingerprints and accept or reject the new key before sending")
	// ErrNoAddress: nothing tells us how to reach the peer.
	ErrNoAddress = errors.New("no known address for this peer: connect with its full multiaddr, or wait for LAN discovery or its relay")
	// ErrSelf: the peer is this node.
	ErrSelf = errors.New("that is your own peer id")
	// ErrNoReceipt: messages written on a working session got no receipt
	// for a while (Config.ResendAfter): the peer has not accepted us yet,
	// or the ratchet sessions were out of step (a new one was started).
	ErrNoReceipt = errors.New("did not acknowledge your messages on a working connection")
	// ErrClosed: the node is shutting down.
	ErrClosed = errors.New("the node is shutting down")
)
