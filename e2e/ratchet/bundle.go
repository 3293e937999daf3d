package ratchet

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/mlkem"
	"fmt"
	"time"
)

// Prekey is the public, signed half of a prekey: an X25519 public key (32
// bytes) or an ML-KEM-768 encapsulation key (1184 bytes).
type Prekey struct {
	ID        uint32
	Created   time.Time // whole seconds, UTC
	Public    []byte
	Signature []byte // Ed25519 over signedMessage
}

// Bundle is a peer's published prekey bundle. Parse it with ParseBundle and
// check it with VerifyBundle (InitiateFromBundle does both checks again).
type Bundle struct {
	Identity            ed25519.PublicKey
	IdentityDH          []byte // X25519 identity-DH public key
	IdentityDHSignature []byte
	SignedPrekey        Prekey  // X25519
	LastResortKEM       Prekey  // ML-KEM-768, used when no one-time KEM prekey is attached
	OneTimePrekey       *Prekey // X25519, optional
	OneTimeKEM          *Prekey // ML-KEM-768, optional
}

const (
	bundleHasOneTime    = 1 << 0
	bundleHasOneTimeKEM = 1 << 1
)

// MarshalBinary encodes the bundle:
//
//	version(1) identity(32) identity-dh(32) sig(64)
//	spk: id(4) created(8) pub(32) sig(64)
//	last-resort kem: id(4) created(8) pub(1184) sig(64)
//	flags(1) [opk: id created pub(32) sig] [one-time kem: id created pub(1184) sig]
func (b *Bundle) MarshalBinary() ([]byte, error) {
	if err := b.checkSizes(); err != nil {
		return nil, err
	}
	w := writer{}
	w.u8(bundleVersion)
	w.raw(b.Identity)
	w.raw(b.IdentityDH)
	w.raw(b.IdentityDHSignature)
	writePrekey(&w, &b.SignedPrekey)
	writePrekey(&w, &b.LastResortKEM)
	var flags byte
	if b.OneTimePrekey != nil {
		flags |= bundleHasOneTime
	}
	if b.OneTimeKEM != nil {
		flags |= bundleHasOneTimeKEM
	}
	w.u8(flags)
	if b.OneTimePrekey != nil {
		writePrekey(&w, b.OneTimePrekey)
	}
	if b.OneTimeKEM != nil {
		writePrekey(&w, b.OneTimeKEM)
	}
	return w.b, nil
}

func writePrekey(w *writer, p *Prekey) {
	w.u32(p.ID)
	w.u64(unixSec(p.Created))
	w.raw(p.Public)
	w.raw(p.Signature)
}

func (b *Bundle) checkSizes() error {
	ok := len(b.Identity) == ed25519.PublicKeySize && len(b.IdentityDH) == keySize &&
		len(b.IdentityDHSignature) == sigSize &&
		prekeySizes(&b.SignedPrekey, keySize) && prekeySizes(&b.LastResortKEM, kemPublicSize) &&
		(b.OneTimePrekey == nil || prekeySizes(b.OneTimePrekey, keySize)) &&
		(b.OneTimeKEM == nil || prekeySizes(b.OneTimeKEM, kemPublicSize))
	if !ok {
		return fmt.Errorf("%w: bundle field sizes", ErrMalformed)
	}
	return nil
}

func prekeySizes(p *Prekey, pubSize int) bool {
	return len(p.Public) == pubSize && len(p.Signature) == sigSize && p.Created.Unix() >= 0
}

// ParseBundle decodes a bundle strictly (exact length, known version and
// flags, valid ML-KEM encapsulation keys). It does not check signatures.
func ParseBundle(data []byte) (*Bundle, error) {
	r := reader{b: data}
	if v := r.u8("version"); r.err == nil && v != bundleVersion {
		return nil, fmt.Errorf("%w: bundle version %d", ErrVersion, v)
	}
	b := &Bundle{
		Identity:            ed25519.PublicKey(bytes.Clone(r.take(ed25519.PublicKeySize, "identity"))),
		IdentityDH:          bytes.Clone(r.take(keySize, "identity-dh")),
		IdentityDHSignature: bytes.Clone(r.take(sigSize, "identity-dh signature")),
		SignedPrekey:        readPrekey(&r, keySize),
		LastResortKEM:       readPrekey(&r, kemPublicSize),
	}
	flags := r.u8("flags")
	if flags&^(bundleHasOneTime|bundleHasOneTimeKEM) != 0 {
		r.fail("bundle flags")
	}
	if flags&bundleHasOneTime != 0 {
		p := readPrekey(&r, keySize)
		b.OneTimePrekey = &p
	}
	if flags&bundleHasOneTimeKEM != 0 {
		p := readPrekey(&r, kemPublicSize)
		b.OneTimeKEM = &p
	}
	if err := r.done(); err != nil {
		return nil, err
	}
	for _, p := range []*Prekey{&b.LastResortKEM, b.OneTimeKEM} {
		if p != nil {
			if _, err := mlkem.NewEncapsulationKey768(p.Public); err != nil {
				return nil, fmt.Errorf("%w: kem prekey", ErrMalformed)
			}
		}
	}
	return b, nil
}

func readPrekey(r *reader, pubSize int) Prekey {
	p := Prekey{ID: r.u32("prekey id")}
	created := r.u64("prekey created")
	if created > 1<<62 {
		r.fail("prekey created")
	}
	p.Created = time.Unix(int64(created), 0).UTC()
	p.Public = bytes.Clone(r.take(pubSize, "prekey"))
	p.Signature = bytes.Clone(r.take(sigSize, "prekey signature"))
	return p
}

// VerifyBundle checks that b belongs to identity and peerID: the identity
// key matches and every key in the bundle carries a valid signature by it
// (ErrBadSignature otherwise). Never send to a bundle that fails.
func VerifyBundle(b *Bundle, identity ed25519.PublicKey, peerID []byte) error {
	if b == nil {
		return fmt.Errorf("%w: no bundle", ErrMalformed)
	}
	if err := b.checkSizes(); err != nil {
		return err
	}
	if len(identity) != ed25519.PublicKeySize || !bytes.Equal(b.Identity, identity) {
		return fmt.Errorf("%w: bundle identity", ErrIdentityMismatch)
	}
	checks := []struct {
		kind byte
		p    *Prekey
	}{
		{kindIdentityDH, &Prekey{Public: b.IdentityDH, Signature: b.IdentityDHSignature, Created: time.Unix(0, 0)}},
		{kindSignedPrekey, &b.SignedPrekey},
		{kindLastResortKEM, &b.LastResortKEM},
		{kindOneTimePrekey, b.OneTimePrekey},
		{kindOneTimeKEM, b.OneTimeKEM},
	}
	for _, c := range checks {
		if c.p == nil {
			continue
		}
		msg := signedMessage(peerID, c.kind, c.p.ID, unixSec(c.p.Created), c.p.Public)
		if !ed25519.Verify(identity, msg, c.p.Signature) {
			return fmt.Errorf("%w: bundle key kind %d", ErrBadSignature, c.kind)
		}
	}
	return nil
}

// bundleKeys are the parsed public keys of a verified bundle.
type bundleKeys struct {
	idDH, spk, opk *ecdh.PublicKey
	kem            *mlkem.EncapsulationKey768
	kemID          uint32
	kemOneTime     bool
}

func (b *Bundle) keys() (*bundleKeys, error) {
	x := ecdh.X25519()
	var k bundleKeys
	var err1, err2, err3, err4 error
	k.idDH, err1 = x.NewPublicKey(b.IdentityDH)
	k.spk, err2 = x.NewPublicKey(b.SignedPrekey.Public)
	if b.OneTimePrekey != nil {
		k.opk, err3 = x.NewPublicKey(b.OneTimePrekey.Public)
	}
	kp := &b.LastResortKEM
	if b.OneTimeKEM != nil {
		kp, k.kemOneTime = b.OneTimeKEM, true
	}
	k.kemID = kp.ID
	k.kem, err4 = mlkem.NewEncapsulationKey768(kp.Public)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
		return nil, fmt.Errorf("%w: bundle keys", ErrMalformed)
	}
	return &k, nil
}
