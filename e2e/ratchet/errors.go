package ratchet

import "errors"

// Errors returned by the package. They are wrapped with context; test them
// with errors.Is. No error message ever contains key material or plaintext.
var (
	// ErrMalformed: bytes that do not parse (envelope, bundle, seed offer,
	// state), or values out of range.
	ErrMalformed = errors.New("ratchet: malformed input")
	// ErrVersion: a version byte this implementation does not know.
	ErrVersion = errors.New("ratchet: unsupported version")
	// ErrBadSignature: a prekey bundle or an initial message carries a key
	// not signed by the expected identity. Never send to such a bundle.
	ErrBadSignature = errors.New("ratchet: bad signature")
	// ErrIdentityMismatch: a key or state belongs to another identity.
	ErrIdentityMismatch = errors.New("ratchet: identity mismatch")
	// ErrAuth: an envelope failed authentication. Because sender and
	// recipient peer IDs and identity keys are in the associated data, an
	// envelope re-addressed to another recipient, claiming another sender,
	// or tampered with in any byte fails here; these cases are
	// indistinguishable by design.
	ErrAuth = errors.New("ratchet: authentication failed")
	// ErrDuplicate: the envelope was already opened (its message key is
	// spent). Safe to acknowledge and drop.
	ErrDuplicate = errors.New("ratchet: duplicate message")
	// ErrExpired: the envelope's message key was discarded (expired by age
	// or evicted by the cap) before the envelope arrived.
	ErrExpired = errors.New("ratchet: message key expired")
	// ErrTooManySkipped: the envelope would skip more than MaxSkip messages.
	ErrTooManySkipped = errors.New("ratchet: too many skipped messages")
	// ErrReplay: a replayed initial message, or a one-time prekey used twice.
	ErrReplay = errors.New("ratchet: replayed initial message")
	// ErrUnknownPrekey: an initial message names a prekey we do not have.
	ErrUnknownPrekey = errors.New("ratchet: unknown prekey")
	// ErrPrekeyExhausted: the replay record of the signed prekey is full;
	// rotate the signed prekey (see LocalKeys.NeedsRotation).
	ErrPrekeyExhausted = errors.New("ratchet: signed prekey exhausted")
	// ErrUnknownSession: a normal envelope for a session not in the set.
	ErrUnknownSession = errors.New("ratchet: unknown session")
	// ErrNoSession: nothing to seal with: no session yet, or the active
	// session was seeded as responder and has not received its first message.
	ErrNoSession = errors.New("ratchet: no sending session")
	// ErrTooLarge: a plaintext larger than MaxPlaintextSize.
	ErrTooLarge = errors.New("ratchet: message too large")
)
