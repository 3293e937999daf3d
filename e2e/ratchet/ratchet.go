package ratchet

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"slices"
	"time"
)

// session is one Double Ratchet session with header encryption (Signal,
// "The Double Ratchet Algorithm", §3 and §4). A session reachable from a
// returned SessionSet is never modified: every change happens on a clone.
//
// A seal changes only the sending position and the lease, which are the
// session's own fields; everything else is in its chains, which a seal
// shares with the session it was cloned from (sealClone: a seal copies
// about a hundred bytes, not the whole state). Every other change (Open,
// Expire) starts from clone, which copies the chains too, so no change
// ever reaches a session a set returned earlier still holds.
type session struct {
	id       SessionID
	lastUsed uint64 // Unix seconds of the last successful open or sending lease

	// The sending lease (§12.12.1): when leased, the encoding holds the
	// sending chain at message number leaseN (chain key leaseCK) rather
	// than the live (cks, ns), and ns <= leaseN. Seals below leaseN need
	// no commit. A new sending chain starts without a lease, unless an
	// Open made it on the active session (leaseAhead). leaseLen is
	// the last lease's length, kept across chains in memory but not
	// encoded: leases grow 1, 2, 4 … SendLease from a session's creation
	// or restore, so that each restart leaves the peer a gap of at most
	// about twice the seals made since the one before (§12.12.1).
	leased   bool
	leaseN   uint32
	leaseLen uint32
	leaseCK  [32]byte

	cks [32]byte // sending chain key
	ns  uint32   // next sending message number

	*chains // shared with seal clones: never changed after sealClone
}

// chains is the part of a session a seal does not change: the root key,
// the ratchet key pair, the header keys and the receiving side.
type chains struct {
	rk                   [32]byte
	dhs                  *ecdh.PrivateKey
	ckr                  [32]byte
	hks, hkr, nhks, nhkr [32]byte
	hasCKs, hasCKr       bool // hks is set iff hasCKs, hkr iff hasCKr
	nr, pn               uint32
	discarded            uint32 // receiving chain: keys below this may have been discarded

	initial []byte        // initiator: PQXDH initial part, sent until the first reply
	retired []chainRecord // past receiving chains, oldest first
	skipped []skippedKey  // stored skipped message keys, oldest first
}

// chainRecord remembers a past receiving chain.
type chainRecord struct {
	hk        [32]byte // its header key
	length    uint32   // messages the sender sent in it (from the header's pn)
	discarded uint32   // keys below this may have been discarded
}

type skippedKey struct {
	hk     [32]byte
	n      uint32
	mk     [32]byte
	stored uint64 // Unix seconds
}

// result describes one opened message.
type result struct {
	header  header
	skipped int  // keys stored because of this message
	late    bool // opened with a stored skipped key
}

// clone is a copy of s that may be changed in any way: its chains are
// its own.
func (s *session) clone() *session {
	c := *s
	ch := *s.chains
	ch.retired = slices.Clone(s.retired)
	ch.skipped = slices.Clone(s.skipped)
	c.chains = &ch
	return &c
}

// sealClone is a copy of s for a seal (encrypt, takeLease), which
// changes only the session's own fields: its chains are s's, shared, and
// must not be changed.
func (s *session) sealClone() *session {
	c := *s
	return &c
}

// sameKey compares two secret keys in constant time.
func sameKey(a, b *[32]byte) bool { return subtle.ConstantTimeCompare(a[:], b[:]) == 1 }

func dh(priv *ecdh.PrivateKey, pub []byte) ([]byte, error) {
	p, err := ecdh.X25519().NewPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: ratchet key", ErrAuth)
	}
	out, err := priv.ECDH(p)
	if err != nil {
		return nil, fmt.Errorf("%w: ratchet key", ErrAuth)
	}
	return out, nil
}

// initAlice is RatchetInitAliceHE: the initiator knows the responder's
// ratchet public key (its signed prekey, or the seed offer's key).
func initAlice(id SessionID, sk *[32]byte, bobPub []byte, now uint64) (*session, error) {
	rk, hka, nhkb, err := sessionInitKeys(sk)
	if err != nil {
		return nil, err
	}
	s := &session{id: id, lastUsed: now, chains: &chains{hks: hka, nhkr: nhkb, hasCKs: true}}
	if s.dhs, err = ecdh.X25519().GenerateKey(rand.Reader); err != nil {
		return nil, fmt.Errorf("ratchet: ratchet key: %w", err)
	}
	out, err := dh(s.dhs, bobPub)
	if err != nil {
		return nil, err
	}
	s.rk, s.cks, s.nhks, err = kdfRK(&rk, out)
	return s, err
}

// initBob is RatchetInitBobHE: the responder's first ratchet key pair is its
// signed prekey (PQXDH) or the key of its seed offer.
func initBob(id SessionID, sk *[32]byte, pair *ecdh.PrivateKey, now uint64) (*session, error) {
	rk, hka, nhkb, err := sessionInitKeys(sk)
	if err != nil {
		return nil, err
	}
	return &session{id: id, lastUsed: now, chains: &chains{rk: rk, dhs: pair, nhks: nhkb, nhkr: hka}}, nil
}

// encrypt is RatchetEncryptHE. It returns the envelope; s must be a
// clone (sealClone will do: encrypt changes only cks and ns).
func (s *session) encrypt(plaintext, adHead []byte) ([]byte, error) {
	if !s.hasCKs {
		return nil, ErrNoSession
	}
	if s.ns == ^uint32(0) {
		return nil, fmt.Errorf("ratchet: sending chain exhausted")
	}
	var mk [32]byte
	s.cks, mk = kdfCK(&s.cks)
	h := header{pn: s.pn, n: s.ns}
	copy(h.dh[:], s.dhs.PublicKey().Bytes())
	s.ns++
	// The envelope is written in one buffer: prefix, then the header
	// sealed after it, then the payload; adHead has room for the prefix
	// and the sealed header, the payload's associated data.
	out := make([]byte, 0, envelopePrefix+len(s.initial)+encHeaderSize+minPayloadSize+len(plaintext))
	out = appendPrefix(out, s.id, s.initial)
	n := len(out)
	ad := append(adHead, out...)
	out, err := sealHeader(out, &s.hks, &h, ad)
	if err != nil {
		clear(mk[:])
		return nil, err
	}
	out, err = sealPayload(out, &mk, plaintext, append(ad, out[n:]...))
	clear(mk[:])
	return out, err
}

// decrypt is RatchetDecryptHE. s must be a clone: on error the caller
// discards it, so no state changes on failure.
func (s *session) decrypt(e *envelope, adHead []byte, now uint64) ([]byte, result, error) {
	adH := append(adHead, e.prefix...)
	adP := append(adH, e.encHeader...) // adH[:len(adH)] is unchanged
	if s.hasCKr {
		if h, ok := openHeader(&s.hkr, e.encHeader, adH); ok {
			return s.decryptCurrent(h, e.ciphertext, adP, now)
		}
	}
	if h, ok := openHeader(&s.nhkr, e.encHeader, adH); ok {
		return s.decryptNewChain(h, e.ciphertext, adP, now)
	}
	for i := len(s.retired) - 1; i >= 0; i-- {
		if h, ok := openHeader(&s.retired[i].hk, e.encHeader, adH); ok {
			return s.decryptRetired(i, h, e.ciphertext, adP, now)
		}
	}
	return nil, result{}, fmt.Errorf("%w: header", ErrAuth)
}

func (s *session) decryptCurrent(h header, ct, ad []byte, now uint64) ([]byte, result, error) {
	res := result{header: h}
	if h.n < s.nr {
		return s.decryptSkipped(s.hkr, h, s.discarded, ct, ad, now)
	}
	if h.n-s.nr > MaxSkip || h.n == ^uint32(0) {
		return nil, res, fmt.Errorf("%w: gap %d", ErrTooManySkipped, h.n-s.nr)
	}
	res.skipped = s.skip(h.n, now)
	var mk [32]byte
	s.ckr, mk = kdfCK(&s.ckr)
	s.nr++
	pt, err := openPayload(&mk, ct, ad)
	clear(mk[:])
	return pt, res, err
}

func (s *session) decryptNewChain(h header, ct, ad []byte, now uint64) ([]byte, result, error) {
	if s.hasCKr && h.pn > s.nr && h.pn-s.nr > MaxSkip {
		return nil, result{}, fmt.Errorf("%w: gap %d in previous chain", ErrTooManySkipped, h.pn-s.nr)
	}
	if h.n > MaxSkip {
		return nil, result{}, fmt.Errorf("%w: gap %d", ErrTooManySkipped, h.n)
	}
	skippedOld := 0
	if s.hasCKr {
		skippedOld = s.skip(h.pn, now)
		s.retired = append(s.retired, chainRecord{hk: s.hkr, length: max(s.nr, h.pn), discarded: s.discarded})
		s.trimRetired()
	}
	if err := s.dhRatchet(h.dh[:]); err != nil {
		return nil, result{}, err
	}
	pt, res, err := s.decryptCurrent(h, ct, ad, now)
	res.skipped += skippedOld
	return pt, res, err
}

func (s *session) decryptRetired(i int, h header, ct, ad []byte, now uint64) ([]byte, result, error) {
	c := s.retired[i]
	if h.n >= c.length {
		return nil, result{}, fmt.Errorf("%w: message beyond its chain", ErrAuth)
	}
	return s.decryptSkipped(c.hk, h, c.discarded, ct, ad, now)
}

// decryptSkipped opens a late message with its stored key, which it deletes.
func (s *session) decryptSkipped(hk [32]byte, h header, discarded uint32, ct, ad []byte, now uint64) ([]byte, result, error) {
	res := result{header: h, late: true}
	i := slices.IndexFunc(s.skipped, func(k skippedKey) bool { return k.n == h.n && sameKey(&k.hk, &hk) })
	switch {
	case i < 0 && h.n < discarded:
		return nil, res, fmt.Errorf("%w: key discarded", ErrExpired)
	case i < 0:
		return nil, res, ErrDuplicate
	case expired(s.skipped[i].stored, now):
		return nil, res, fmt.Errorf("%w: key too old", ErrExpired)
	}
	mk := s.skipped[i].mk
	s.skipped = slices.Delete(s.skipped, i, i+1)
	pt, err := openPayload(&mk, ct, ad)
	clear(mk[:])
	return pt, res, err
}

func expired(stored, now uint64) bool {
	return now >= stored && time.Duration(now-stored)*time.Second >= SkippedKeyMaxAge
}

// skip stores the keys of the receiving chain up to (excluding) until
// (SkipMessageKeysHE). Callers have checked until-nr <= MaxSkip.
func (s *session) skip(until uint32, now uint64) int {
	if !s.hasCKr || until <= s.nr {
		return 0
	}
	n := int(until - s.nr)
	for s.nr < until {
		var mk [32]byte
		s.ckr, mk = kdfCK(&s.ckr)
		s.skipped = append(s.skipped, skippedKey{hk: s.hkr, n: s.nr, mk: mk, stored: now})
		s.nr++
	}
	for len(s.skipped) > MaxSkippedKeys {
		s.discard(0)
	}
	return n
}

// discard deletes skipped key i, raising its chain's discard mark.
func (s *session) discard(i int) {
	k := s.skipped[i]
	if s.hasCKr && sameKey(&k.hk, &s.hkr) {
		s.discarded = max(s.discarded, k.n+1)
	}
	for j := range s.retired {
		if sameKey(&s.retired[j].hk, &k.hk) {
			s.retired[j].discarded = max(s.retired[j].discarded, k.n+1)
		}
	}
	clear(s.skipped[i].mk[:])
	s.skipped = slices.Delete(s.skipped, i, i+1)
}

// trimRetired forgets the oldest past chains beyond MaxRetiredChains, with
// their skipped keys.
func (s *session) trimRetired() {
	for len(s.retired) > MaxRetiredChains {
		hk := s.retired[0].hk
		s.retired = s.retired[1:]
		s.skipped = slices.DeleteFunc(s.skipped, func(k skippedKey) bool { return sameKey(&k.hk, &hk) })
	}
}

// expire discards skipped keys older than SkippedKeyMaxAge; it reports
// whether anything changed.
func (s *session) expire(now uint64) bool {
	changed := false
	for i := 0; i < len(s.skipped); {
		if expired(s.skipped[i].stored, now) {
			s.discard(i)
			changed = true
			continue
		}
		i++
	}
	return changed
}

// needsLease reports whether sealing message number ns at now must take
// a new lease (and the new state be committed before the envelope
// leaves): there is none, ns is not below it, or it is SendLeaseMaxAge old.
func (s *session) needsLease(now uint64) bool {
	aged := now >= s.lastUsed && time.Duration(now-s.lastUsed)*time.Second >= SendLeaseMaxAge
	return !s.leased || s.ns >= s.leaseN || aged
}

// takeLease is called after a seal (cks, ns are the next message's):
// the lease covers the message just sealed and the next leaseLen-1, where
// leaseLen doubles from 1 to SendLease (nextLeaseLen).
func (s *session) takeLease(now uint64) { s.leaseCovering(1, now) }

// leaseAhead takes the next lease before a seal (cks, ns are the next
// message's): it covers that message and the next leaseLen-1. Open takes
// it when it makes a new sending chain on the active session, so that the
// reply it commits with the message opened needs no commit of its own.
func (s *session) leaseAhead(now uint64) { s.leaseCovering(0, now) }

// leaseCovering takes the next lease: leaseLen numbers, sealed of them
// already (before ns), the rest from ns on.
func (s *session) leaseCovering(sealed uint32, now uint64) {
	s.leaseLen = nextLeaseLen(s.leaseLen)
	steps := min(s.leaseLen-sealed, ^uint32(0)-s.ns)
	s.leased, s.leaseN, s.leaseCK = true, s.ns+steps, advanceCK(s.cks, steps)
	s.lastUsed = now
}

// nextLeaseLen is the length of the lease after one of length last (0:
// none since the session was made or restored): twice as long, from 1 up
// to SendLease.
func nextLeaseLen(last uint32) uint32 { return max(1, min(SendLease, 2*last)) }

// dropLease forgets the lease: a new sending chain starts without one.
func (s *session) dropLease() {
	clear(s.leaseCK[:])
	s.leased, s.leaseN = false, 0
}

// dhRatchet is DHRatchetHE.
func (s *session) dhRatchet(remote []byte) error {
	s.dropLease()
	s.pn, s.ns, s.nr, s.discarded = s.ns, 0, 0, 0
	s.hks, s.hkr = s.nhks, s.nhkr
	s.hasCKr, s.hasCKs = true, true
	out, err := dh(s.dhs, remote)
	if err != nil {
		return err
	}
	if s.rk, s.ckr, s.nhkr, err = kdfRK(&s.rk, out); err != nil {
		return err
	}
	if s.dhs, err = ecdh.X25519().GenerateKey(rand.Reader); err != nil {
		return fmt.Errorf("ratchet: ratchet key: %w", err)
	}
	if out, err = dh(s.dhs, remote); err != nil {
		return err
	}
	s.rk, s.cks, s.nhks, err = kdfRK(&s.rk, out)
	return err
}
