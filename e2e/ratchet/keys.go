package ratchet

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/mlkem"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"slices"
	"time"
)

// LocalKeys is one identity's long-lived key material: the X25519
// identity-DH key, signed prekeys (current and superseded, each with its
// replay record of seen initial-message base keys), ML-KEM last-resort
// prekeys and the one-time prekey pools. The Ed25519 identity private key is
// held in memory only and never serialized.
//
// A *LocalKeys is immutable: methods that change keys return a new value and
// leave the receiver untouched, so it is safe for concurrent use.
type LocalKeys struct {
	priv       ed25519.PrivateKey
	peerID     []byte
	idDH       *ecdh.PrivateKey
	idDHSig    [sigSize]byte
	nextID     [kindOneTimeKEM + 1]uint32 // next prekey id, per kind
	signed     []signedPrekey             // ascending id; the last is current
	lastResort []kemPrekey                // ascending id; the last is current
	oneTimeEC  []oneTimePrekey            // ascending id
	oneTimeKEM []kemPrekey                // ascending id; retired is always 0
}

type signedPrekey struct {
	id               uint32
	created, retired uint64 // Unix seconds; retired 0 means current
	priv             *ecdh.PrivateKey
	sig              [sigSize]byte
	seen             [][32]byte // replay record: base keys, ascending
}

type kemPrekey struct {
	id               uint32
	created, retired uint64
	dk               *mlkem.DecapsulationKey768
	sig              [sigSize]byte
}

type oneTimePrekey struct {
	id      uint32
	created uint64
	priv    *ecdh.PrivateKey
	sig     [sigSize]byte
}

// NewLocalKeys creates the key material of the identity priv, whose libp2p
// peer ID is peerID: a fresh identity-DH key, a signed prekey and an ML-KEM
// last-resort prekey. Add one-time prekeys with GenerateOneTimePrekeys.
func NewLocalKeys(priv ed25519.PrivateKey, peerID []byte, now time.Time) (*LocalKeys, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: identity private key size", ErrMalformed)
	}
	if len(peerID) == 0 || len(peerID) > maxPeerIDSize {
		return nil, fmt.Errorf("%w: peer id size", ErrMalformed)
	}
	idDH, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ratchet: generate identity-dh key: %w", err)
	}
	k := &LocalKeys{priv: priv, peerID: bytes.Clone(peerID), idDH: idDH}
	k.sign(k.idDHSig[:], kindIdentityDH, 0, 0, idDH.PublicKey().Bytes())
	if err := k.addSignedPrekeys(unixSec(now)); err != nil {
		return nil, err
	}
	return k, nil
}

// Identity returns the Ed25519 identity public key.
func (k *LocalKeys) Identity() ed25519.PublicKey {
	return k.priv.Public().(ed25519.PublicKey)
}

// PeerID returns a copy of the owner's peer ID.
func (k *LocalKeys) PeerID() []byte { return bytes.Clone(k.peerID) }

func (k *LocalKeys) sign(dst []byte, kind byte, id uint32, created uint64, pub []byte) {
	copy(dst, ed25519.Sign(k.priv, signedMessage(k.peerID, kind, id, created, pub)))
}

func (k *LocalKeys) newID(kind byte) (uint32, error) {
	id := k.nextID[kind]
	if id == ^uint32(0) {
		return 0, fmt.Errorf("ratchet: prekey ids exhausted")
	}
	k.nextID[kind]++
	return id, nil
}

// clone copies the slices a mutation may touch; keys themselves and replay
// records are shared (never modified in place).
func (k *LocalKeys) clone() *LocalKeys {
	c := *k
	c.signed = slices.Clone(k.signed)
	c.lastResort = slices.Clone(k.lastResort)
	c.oneTimeEC = slices.Clone(k.oneTimeEC)
	c.oneTimeKEM = slices.Clone(k.oneTimeKEM)
	return &c
}

// addSignedPrekeys appends a new current signed prekey and a new current
// last-resort ML-KEM prekey, marking the previous ones retired at now.
func (k *LocalKeys) addSignedPrekeys(now uint64) error {
	ec, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("ratchet: generate signed prekey: %w", err)
	}
	dk, err := mlkem.GenerateKey768()
	if err != nil {
		return fmt.Errorf("ratchet: generate kem prekey: %w", err)
	}
	spk := signedPrekey{created: now, priv: ec}
	if spk.id, err = k.newID(kindSignedPrekey); err != nil {
		return err
	}
	kem := kemPrekey{created: now, dk: dk}
	if kem.id, err = k.newID(kindLastResortKEM); err != nil {
		return err
	}
	k.sign(spk.sig[:], kindSignedPrekey, spk.id, now, ec.PublicKey().Bytes())
	k.sign(kem.sig[:], kindLastResortKEM, kem.id, now, dk.EncapsulationKey().Bytes())
	if n := len(k.signed); n > 0 {
		k.signed[n-1].retired = max(now, 1)
		k.lastResort[n-1].retired = max(now, 1)
	}
	k.signed = append(k.signed, spk)
	k.lastResort = append(k.lastResort, kem)
	return nil
}

// GenerateOneTimePrekeys returns keys with n more one-time X25519 prekeys
// and n more one-time ML-KEM prekeys. Publish them with OneTimePrekeys.
func (k *LocalKeys) GenerateOneTimePrekeys(n int, now time.Time) (*LocalKeys, error) {
	if n < 0 || len(k.oneTimeEC)+n > MaxOneTimePrekeys || len(k.oneTimeKEM)+n > MaxOneTimePrekeys {
		return nil, fmt.Errorf("ratchet: one-time prekey pool would exceed %d", MaxOneTimePrekeys)
	}
	c := k.clone()
	t := unixSec(now)
	for range n {
		if err := c.addOneTime(t); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (k *LocalKeys) addOneTime(now uint64) error {
	ec, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("ratchet: generate one-time prekey: %w", err)
	}
	dk, err := mlkem.GenerateKey768()
	if err != nil {
		return fmt.Errorf("ratchet: generate one-time kem prekey: %w", err)
	}
	opk := oneTimePrekey{created: now, priv: ec}
	if opk.id, err = k.newID(kindOneTimePrekey); err != nil {
		return err
	}
	kem := kemPrekey{created: now, dk: dk}
	if kem.id, err = k.newID(kindOneTimeKEM); err != nil {
		return err
	}
	k.sign(opk.sig[:], kindOneTimePrekey, opk.id, now, ec.PublicKey().Bytes())
	k.sign(kem.sig[:], kindOneTimeKEM, kem.id, now, dk.EncapsulationKey().Bytes())
	k.oneTimeEC = append(k.oneTimeEC, opk)
	k.oneTimeKEM = append(k.oneTimeKEM, kem)
	return nil
}

// NeedsRotation reports whether the current signed prekey is older than
// SignedPrekeyLifetime or its replay record is at least 90% full.
func (k *LocalKeys) NeedsRotation(now time.Time) bool {
	cur := &k.signed[len(k.signed)-1]
	age := time.Duration(unixSec(now)-min(cur.created, unixSec(now))) * time.Second
	return age >= SignedPrekeyLifetime || len(cur.seen) >= MaxSeenBaseKeys*9/10
}

// RotateSignedPrekeys returns keys with a new current signed prekey and
// last-resort ML-KEM prekey. Superseded ones are kept for PrekeyGracePeriod
// (with their replay records) and deleted after it.
func (k *LocalKeys) RotateSignedPrekeys(now time.Time) (*LocalKeys, error) {
	c := k.clone()
	t := unixSec(now)
	if err := c.addSignedPrekeys(t); err != nil {
		return nil, err
	}
	grace := uint64(PrekeyGracePeriod / time.Second)
	keep := func(retired uint64) bool { return retired == 0 || retired+grace > t }
	c.signed = slices.DeleteFunc(c.signed, func(p signedPrekey) bool { return !keep(p.retired) })
	c.lastResort = slices.DeleteFunc(c.lastResort, func(p kemPrekey) bool { return !keep(p.retired) })
	for len(c.signed) > maxSignedPrekeys {
		c.signed = c.signed[1:]
	}
	for len(c.lastResort) > maxSignedPrekeys {
		c.lastResort = c.lastResort[1:]
	}
	return c, nil
}

// Bundle returns the current prekey bundle without one-time prekeys. The
// relay may attach one of each one-time prekey (see OneTimePrekeys) to the
// bundles it hands out; each is signed on its own.
func (k *LocalKeys) Bundle() *Bundle {
	spk := &k.signed[len(k.signed)-1]
	kem := &k.lastResort[len(k.lastResort)-1]
	b := &Bundle{
		Identity:            k.Identity(),
		IdentityDH:          k.idDH.PublicKey().Bytes(),
		IdentityDHSignature: bytes.Clone(k.idDHSig[:]),
		SignedPrekey:        prekey(spk.id, spk.created, spk.priv.PublicKey().Bytes(), spk.sig[:]),
		LastResortKEM:       prekey(kem.id, kem.created, kem.dk.EncapsulationKey().Bytes(), kem.sig[:]),
	}
	return b
}

// OneTimePrekeys returns the public, signed halves of the unused one-time
// X25519 and ML-KEM prekeys, for upload to the relay.
func (k *LocalKeys) OneTimePrekeys() (ec, kem []Prekey) {
	for _, p := range k.oneTimeEC {
		ec = append(ec, prekey(p.id, p.created, p.priv.PublicKey().Bytes(), p.sig[:]))
	}
	for _, p := range k.oneTimeKEM {
		kem = append(kem, prekey(p.id, p.created, p.dk.EncapsulationKey().Bytes(), p.sig[:]))
	}
	return ec, kem
}

func prekey(id uint32, created uint64, pub, sig []byte) Prekey {
	return Prekey{ID: id, Created: time.Unix(int64(created), 0).UTC(), Public: pub, Signature: bytes.Clone(sig)}
}

func unixSec(t time.Time) uint64 { return uint64(max(t.Unix(), 0)) }

func unixMilli(t time.Time) uint64 { return uint64(max(t.UnixMilli(), 0)) }

// signedIndex returns the index of the signed prekey id, or -1.
func (k *LocalKeys) signedIndex(id uint32) int {
	return slices.IndexFunc(k.signed, func(p signedPrekey) bool { return p.id == id })
}

// seenBaseKey reports whether base is in the replay record of signed[i].
func (k *LocalKeys) seenBaseKey(i int, base *[32]byte) bool {
	_, found := slices.BinarySearchFunc(k.signed[i].seen, *base, cmpKey)
	return found
}

// recordBaseKey adds base to the replay record of signed[i], copying the
// record (it may be shared with the previous LocalKeys).
func (k *LocalKeys) recordBaseKey(i int, base *[32]byte) {
	seen := k.signed[i].seen
	pos, _ := slices.BinarySearchFunc(seen, *base, cmpKey)
	next := make([][32]byte, 0, len(seen)+1)
	next = append(next, seen[:pos]...)
	next = append(next, *base)
	next = append(next, seen[pos:]...)
	k.signed[i].seen = next
}

func cmpKey(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) }

// MarshalBinary encodes the keys (without the Ed25519 private key).
func (k *LocalKeys) MarshalBinary() ([]byte, error) {
	w := writer{}
	w.u8(stateTagKeys)
	w.u8(stateVersion)
	w.vec16(k.peerID)
	w.raw(k.Identity())
	w.raw(k.idDH.Bytes())
	w.raw(k.idDHSig[:])
	for _, id := range k.nextID[kindSignedPrekey:] {
		w.u32(id)
	}
	w.u16(uint16(len(k.signed)))
	for _, p := range k.signed {
		w.u32(p.id)
		w.u64(p.created)
		w.u64(p.retired)
		w.raw(p.priv.Bytes())
		w.raw(p.sig[:])
		w.u16(uint16(len(p.seen)))
		for i := range p.seen {
			w.key(&p.seen[i])
		}
	}
	marshalKEMs(&w, k.lastResort)
	w.u16(uint16(len(k.oneTimeEC)))
	for _, p := range k.oneTimeEC {
		w.u32(p.id)
		w.u64(p.created)
		w.raw(p.priv.Bytes())
		w.raw(p.sig[:])
	}
	marshalKEMs(&w, k.oneTimeKEM)
	return w.b, nil
}

func marshalKEMs(w *writer, ks []kemPrekey) {
	w.u16(uint16(len(ks)))
	for _, p := range ks {
		w.u32(p.id)
		w.u64(p.created)
		w.u64(p.retired)
		w.raw(p.dk.Bytes())
		w.raw(p.sig[:])
	}
}

// UnmarshalLocalKeys decodes keys encoded by MarshalBinary; priv must be the
// identity private key they belong to (ErrIdentityMismatch otherwise).
func UnmarshalLocalKeys(data []byte, priv ed25519.PrivateKey) (*LocalKeys, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: identity private key size", ErrMalformed)
	}
	r := reader{b: data}
	if err := stateHeader(&r, stateTagKeys); err != nil {
		return nil, err
	}
	k := &LocalKeys{priv: priv}
	k.peerID = bytes.Clone(r.vec16(1, maxPeerIDSize, "peer id"))
	identity := r.take(ed25519.PublicKeySize, "identity")
	k.idDH = x25519Private(&r, "identity-dh key")
	copy(k.idDHSig[:], r.take(sigSize, "identity-dh signature"))
	for i := kindSignedPrekey; i <= kindOneTimeKEM; i++ {
		k.nextID[i] = r.u32("next id")
	}
	k.signed = unmarshalSigned(&r)
	k.lastResort = unmarshalKEMs(&r, maxSignedPrekeys, true)
	n := r.count(MaxOneTimePrekeys, "one-time prekeys")
	for range n {
		p := oneTimePrekey{id: r.u32("id"), created: r.u64("created")}
		p.priv = x25519Private(&r, "one-time prekey")
		copy(p.sig[:], r.take(sigSize, "signature"))
		k.oneTimeEC = append(k.oneTimeEC, p)
	}
	k.oneTimeKEM = unmarshalKEMs(&r, MaxOneTimePrekeys, false)
	if err := r.done(); err != nil {
		return nil, err
	}
	if err := k.check(); err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(identity, k.Identity()) != 1 {
		return nil, ErrIdentityMismatch
	}
	return k, nil
}

func stateHeader(r *reader, tag byte) error {
	if t := r.u8("state tag"); r.err == nil && t != tag {
		r.fail("state tag")
	}
	if v := r.u8("state version"); r.err == nil && v != stateVersion {
		return fmt.Errorf("%w: state version %d", ErrVersion, v)
	}
	return r.err
}

func x25519Private(r *reader, what string) *ecdh.PrivateKey {
	b := r.take(keySize, what)
	if r.err != nil {
		return nil
	}
	k, err := ecdh.X25519().NewPrivateKey(b)
	if err != nil {
		r.fail(what)
		return nil
	}
	return k
}

func unmarshalSigned(r *reader) []signedPrekey {
	n := r.count(maxSignedPrekeys, "signed prekeys")
	out := make([]signedPrekey, 0, n)
	for range n {
		p := signedPrekey{id: r.u32("id"), created: r.u64("created"), retired: r.u64("retired")}
		p.priv = x25519Private(r, "signed prekey")
		copy(p.sig[:], r.take(sigSize, "signature"))
		m := r.count(MaxSeenBaseKeys, "replay record")
		for range m {
			p.seen = append(p.seen, r.key("base key"))
		}
		for i := 1; i < len(p.seen); i++ {
			if cmpKey(p.seen[i-1], p.seen[i]) >= 0 {
				r.fail("replay record order")
			}
		}
		out = append(out, p)
	}
	return out
}

func unmarshalKEMs(r *reader, max int, signed bool) []kemPrekey {
	n := r.count(max, "kem prekeys")
	out := make([]kemPrekey, 0, n)
	for range n {
		p := kemPrekey{id: r.u32("id"), created: r.u64("created"), retired: r.u64("retired")}
		seed := r.take(kemSeedSize, "kem seed")
		copy(p.sig[:], r.take(sigSize, "signature"))
		if r.err != nil {
			return nil
		}
		dk, err := mlkem.NewDecapsulationKey768(seed)
		if err != nil || (!signed && p.retired != 0) {
			r.fail("kem prekey")
			return nil
		}
		p.dk = dk
		out = append(out, p)
	}
	return out
}

// check enforces the invariants MarshalBinary relies on: ids ascending and
// below the next-id counters, exactly the last signed and last-resort
// prekeys current.
func (k *LocalKeys) check() error {
	bad := fmt.Errorf("%w: key state invariants", ErrMalformed)
	if len(k.signed) == 0 || len(k.lastResort) != len(k.signed) {
		return bad
	}
	for i, p := range k.signed {
		last := i == len(k.signed)-1
		if (p.retired == 0) != last || (k.lastResort[i].retired == 0) != last {
			return bad
		}
	}
	ok := ascending(k.nextID[kindSignedPrekey], len(k.signed), func(i int) uint32 { return k.signed[i].id }) &&
		ascending(k.nextID[kindLastResortKEM], len(k.lastResort), func(i int) uint32 { return k.lastResort[i].id }) &&
		ascending(k.nextID[kindOneTimePrekey], len(k.oneTimeEC), func(i int) uint32 { return k.oneTimeEC[i].id }) &&
		ascending(k.nextID[kindOneTimeKEM], len(k.oneTimeKEM), func(i int) uint32 { return k.oneTimeKEM[i].id })
	if !ok {
		return bad
	}
	return nil
}

func ascending(next uint32, n int, id func(int) uint32) bool {
	for i := range n {
		if id(i) >= next || (i > 0 && id(i) <= id(i-1)) {
			return false
		}
	}
	return true
}
