// Package ratchet is certchat's end-to-end encryption core: PQXDH first
// contact (X25519 + ML-KEM-768), the Double Ratchet with header encryption
// (XChaCha20-Poly1305 instead of CBC+HMAC), per-peer session sets and the
// envelope format shared by live and offline (mailbox) delivery. The
// protocol is specified in docs/PROTOCOL.md §12.
//
// The package is pure: no I/O, no clock (every operation takes now), no
// libp2p. Identities are Ed25519 keys and peer IDs are opaque bytes.
//
// # State and crash safety
//
// There are two kinds of state, both immutable values serialized with
// MarshalBinary (a SessionSet also with AppendBinary, into a caller's
// buffer, which the caller clears) and strictly decoded with
// UnmarshalLocalKeys and UnmarshalSessionSet:
//
//   - LocalKeys: one per identity. The identity-DH key, signed prekeys with
//     their replay records, one-time prekeys.
//   - SessionSet: one per peer. The sessions with that peer.
//
// Operations never modify their receiver: they return the new state. A
// caller persists the new state in the same transaction as the message it
// produced or consumed, then swaps it in; if anything fails, it keeps the
// old value and nothing happened. A failed Open changes nothing at all.
//
// Sending is cheaper: SealLeased persists a lease on the sending chain
// (up to SendLease message numbers ahead, growing 1, 2, 4 … from a new or
// restored session) rather than every step of it, and
// says when the new set must be committed before the envelope leaves
// (about once every SendLease seals); in between the caller may keep the
// new set in memory only. An Open that makes a new sending chain on the
// active session takes its lease, committed with the message opened, so a
// reply commits nothing of its own. A restart resumes at the lease point;
// the peer skips the unused numbers. See docs/PROTOCOL.md §12.12.1.
//
// Typical use:
//
//	keys, _ := ratchet.NewLocalKeys(hostKey, peerID, now)
//	keys, _ = keys.GenerateOneTimePrekeys(100, now)
//	// publish keys.Bundle() and keys.OneTimePrekeys() at the relay
//
//	set, _ := ratchet.NewSessionSet(keys, bobID, bobIdentity)
//	bundle, _ := ratchet.ParseBundle(fetched)
//	set, err := set.InitiateFromBundle(keys, bundle, now) // ErrBadSignature: refuse
//	env, set, _ := set.Seal([]byte("hi"), now)            // commit set, then send env
//	env, next, commit, _ := set.SealLeased([]byte("hi"), now)
//	// if commit: commit next, then send env; else send env (next in memory)
//
//	o, err := bobSet.Open(bobKeys, env, now)
//	// commit o.Set (and o.Keys when non-nil) with o.Plaintext
//
// Live channels without a session seed one from a TLS exporter secret with
// SeedResponder (TLS server) and SeedInitiator (TLS client).
//
// Errors are sentinel values (ErrAuth, ErrDuplicate, ErrReplay, ...),
// wrapped with context; test them with errors.Is. They never contain
// secrets.
package ratchet
