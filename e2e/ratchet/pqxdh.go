package ratchet

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/mlkem"
	"crypto/rand"
	"fmt"
	"slices"
)

// initiate runs the initiator side of PQXDH (Signal, "The PQXDH Key
// Agreement Protocol") against a verified bundle and returns a session in
// the Alice role whose envelopes carry the initial part until a reply.
func initiate(local *LocalKeys, b *Bundle, id SessionID, now uint64) (*session, error) {
	bk, err := b.keys()
	if err != nil {
		return nil, err
	}
	ek, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ratchet: ephemeral key: %w", err)
	}
	ss, ct := bk.kem.Encapsulate()
	sk, err := initiatorSecret(local.idDH, ek, bk, ss)
	clear(ss)
	if err != nil {
		return nil, err
	}
	s, err := initAlice(id, &sk, b.SignedPrekey.Public, now)
	clear(sk[:])
	if err != nil {
		return nil, err
	}
	p := initialPart{idDHSig: local.idDHSig, spkID: b.SignedPrekey.ID, kemID: bk.kemID, kemCipher: ct}
	copy(p.idDH[:], local.idDH.PublicKey().Bytes())
	copy(p.base[:], ek.PublicKey().Bytes())
	if b.OneTimePrekey != nil {
		p.flags |= initialHasOneTime
		p.opkID = b.OneTimePrekey.ID
	}
	if bk.kemOneTime {
		p.flags |= initialKEMIsOneTime
	}
	w := writer{}
	p.marshal(&w)
	s.initial = w.b
	return s, nil
}

// initiatorSecret computes DH1..DH4 in the initiator's order and returns
// SK = KDF(DH1 || DH2 || DH3 [|| DH4] || SS).
func initiatorSecret(idA, ek *ecdh.PrivateKey, bk *bundleKeys, ss []byte) ([32]byte, error) {
	dh1, err1 := idA.ECDH(bk.spk)
	dh2, err2 := ek.ECDH(bk.idDH)
	dh3, err3 := ek.ECDH(bk.spk)
	var dh4 []byte
	var err4 error
	if bk.opk != nil {
		dh4, err4 = ek.ECDH(bk.opk)
	}
	defer func() { clear(dh1); clear(dh2); clear(dh3); clear(dh4) }()
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
		return [32]byte{}, fmt.Errorf("%w: bundle key", ErrMalformed)
	}
	return pqxdhKDF(dh1, dh2, dh3, dh4, ss)
}

// respond runs the responder side of PQXDH for an initial message from the
// peer (remotePID, remote). It returns the new session (Bob role) and the
// local keys with the one-time prekeys consumed and the base key recorded;
// local itself is untouched. Checks run before any secret is computed.
func respond(local *LocalKeys, p *initialPart, id SessionID, remotePID []byte, remote ed25519.PublicKey, now uint64) (*session, *LocalKeys, error) {
	msg := signedMessage(remotePID, kindIdentityDH, 0, 0, p.idDH[:])
	if !ed25519.Verify(remote, msg, p.idDHSig[:]) {
		return nil, nil, fmt.Errorf("%w: %w: initiator identity-dh key", ErrAuth, ErrBadSignature)
	}
	si := local.signedIndex(p.spkID)
	if si < 0 {
		return nil, nil, fmt.Errorf("%w: signed prekey %d", ErrUnknownPrekey, p.spkID)
	}
	if local.seenBaseKey(si, &p.base) {
		return nil, nil, fmt.Errorf("%w: base key already seen", ErrReplay)
	}
	if len(local.signed[si].seen) >= MaxSeenBaseKeys {
		return nil, nil, ErrPrekeyExhausted
	}
	oi, err := local.oneTimeIndex(p)
	if err != nil {
		return nil, nil, err
	}
	dk, ki, err := local.kemFor(p)
	if err != nil {
		return nil, nil, err
	}
	sk, err := responderSecret(local, si, oi, dk, p)
	if err != nil {
		return nil, nil, err
	}
	s, err := initBob(id, &sk, local.signed[si].priv, now)
	clear(sk[:])
	if err != nil {
		return nil, nil, err
	}
	next := local.clone()
	next.recordBaseKey(si, &p.base)
	if oi >= 0 {
		next.oneTimeEC = slices.Delete(next.oneTimeEC, oi, oi+1)
	}
	if p.flags&initialKEMIsOneTime != 0 {
		next.oneTimeKEM = slices.Delete(next.oneTimeKEM, ki, ki+1)
	}
	return s, next, nil
}

// oneTimeIndex finds the one-time X25519 prekey named by p (-1 if none is
// named). An id below the counter that is gone was used: ErrReplay.
func (k *LocalKeys) oneTimeIndex(p *initialPart) (int, error) {
	if p.flags&initialHasOneTime == 0 {
		return -1, nil
	}
	i := slices.IndexFunc(k.oneTimeEC, func(o oneTimePrekey) bool { return o.id == p.opkID })
	switch {
	case i >= 0:
		return i, nil
	case p.opkID < k.nextID[kindOneTimePrekey]:
		return -1, fmt.Errorf("%w: one-time prekey %d already used", ErrReplay, p.opkID)
	default:
		return -1, fmt.Errorf("%w: one-time prekey %d", ErrUnknownPrekey, p.opkID)
	}
}

// kemFor finds the ML-KEM prekey named by p and its index in its pool.
func (k *LocalKeys) kemFor(p *initialPart) (*mlkem.DecapsulationKey768, int, error) {
	pool, kind := k.lastResort, byte(kindLastResortKEM)
	if p.flags&initialKEMIsOneTime != 0 {
		pool, kind = k.oneTimeKEM, kindOneTimeKEM
	}
	i := slices.IndexFunc(pool, func(q kemPrekey) bool { return q.id == p.kemID })
	switch {
	case i >= 0:
		return pool[i].dk, i, nil
	case kind == kindOneTimeKEM && p.kemID < k.nextID[kindOneTimeKEM]:
		return nil, -1, fmt.Errorf("%w: one-time kem prekey %d already used", ErrReplay, p.kemID)
	default:
		return nil, -1, fmt.Errorf("%w: kem prekey %d", ErrUnknownPrekey, p.kemID)
	}
}

// responderSecret computes DH1..DH4 and the KEM shared secret in the
// responder's order and returns SK.
func responderSecret(local *LocalKeys, si, oi int, dk *mlkem.DecapsulationKey768, p *initialPart) ([32]byte, error) {
	x := ecdh.X25519()
	bad := fmt.Errorf("%w: initial message keys", ErrAuth)
	idA, err1 := x.NewPublicKey(p.idDH[:])
	ekA, err2 := x.NewPublicKey(p.base[:])
	if err1 != nil || err2 != nil {
		return [32]byte{}, bad
	}
	spk := local.signed[si].priv
	dh1, err1 := spk.ECDH(idA)
	dh2, err2 := local.idDH.ECDH(ekA)
	dh3, err3 := spk.ECDH(ekA)
	var dh4 []byte
	var err4 error
	if oi >= 0 {
		dh4, err4 = local.oneTimeEC[oi].priv.ECDH(ekA)
	}
	ss, err5 := dk.Decapsulate(p.kemCipher)
	defer func() { clear(dh1); clear(dh2); clear(dh3); clear(dh4); clear(ss) }()
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || err5 != nil {
		return [32]byte{}, bad
	}
	return pqxdhKDF(dh1, dh2, dh3, dh4, ss)
}
