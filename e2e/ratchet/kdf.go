package ratchet

import (
	"bytes"
	"crypto/sha256"
	"fmt"
)

// The KDFs below compose HMAC-SHA256 (RFC 2104) from crypto/sha256 instead
// of calling crypto/hmac and crypto/hkdf, which allocate a keyed state
// (two digests, its pads and a saved copy of each) for every key: here
// every key is used once or twice (a chain key, a message key, a root
// key), so none of that state can be reused, and sealing one message cost
// about 2 KB of garbage in the KDFs alone. hmacSHA256 keeps its state on
// the stack: a seal allocates nothing in its KDFs. TestHMACMatchesStdlib
// and TestHKDFMatchesStdlib compare both with crypto/hmac and crypto/hkdf
// for many keys, inputs and lengths; the known-answer tests pin the KDFs.

// hmacSHA256 sets out to HMAC-SHA256(key, the concatenation of msg),
// without allocating.
func hmacSHA256(out *[sha256.Size]byte, key []byte, msg ...[]byte) {
	var k0 [sha256.BlockSize]byte // K0 of FIPS 198-1: the key, padded or hashed
	if len(key) > sha256.BlockSize {
		sum := sha256.Sum256(key)
		copy(k0[:], sum[:])
		clear(sum[:])
	} else {
		copy(k0[:], key)
	}
	for i := range k0 {
		k0[i] ^= 0x36 // ipad
	}
	h := sha256.New()
	h.Write(k0[:])
	for _, m := range msg {
		h.Write(m)
	}
	var inner [sha256.Size]byte
	h.Sum(inner[:0])
	for i := range k0 {
		k0[i] ^= 0x36 ^ 0x5c // opad
	}
	h.Reset()
	h.Write(k0[:])
	h.Write(inner[:])
	h.Sum(out[:0])
	h.Reset()
	clear(k0[:])
	clear(inner[:])
}

// hkdfSHA256 fills out with HKDF-SHA256 (RFC 5869) of secret with salt and
// info; a nil salt means 32 zero bytes (HMAC pads a shorter key with
// zeros: the same key). It does not allocate.
func hkdfSHA256(out, secret, salt, info []byte) error {
	if len(out) > 255*sha256.Size {
		return fmt.Errorf("ratchet: hkdf: %d bytes asked, at most %d", len(out), 255*sha256.Size)
	}
	var prk, t [sha256.Size]byte
	hmacSHA256(&prk, salt, secret) // Extract
	ctr := [1]byte{0}
	prev := t[:0]
	for len(out) > 0 { // Expand: T(i) = HMAC(PRK, T(i-1) || info || i)
		ctr[0]++
		hmacSHA256(&t, prk[:], prev, info, ctr[:])
		out = out[copy(out, t[:]):]
		prev = t[:]
	}
	clear(prk[:])
	clear(t[:])
	return nil
}

// The KDF labels as byte slices, so that passing them allocates nothing.
var (
	infoRoot        = []byte(labelRoot)
	infoMessage     = []byte(labelMessage)
	infoPQXDH       = []byte(labelPQXDH)
	infoSessionInit = []byte(labelSessionInit)
	kdfCKMessage    = []byte{0x01}
	kdfCKChain      = []byte{0x02}
)

// split32 copies 32-byte keys out of b.
func split32(b []byte, keys ...*[32]byte) {
	for i, k := range keys {
		copy(k[:], b[i*keySize:])
	}
	clear(b)
}

// kdfRK is KDF_RK of the Double Ratchet with header encryption: HKDF-SHA256
// with salt = root key, IKM = DH output, info = labelRoot, 96 bytes split
// into the next root key, a chain key and a next header key.
func kdfRK(rk *[32]byte, dhOut []byte) (root, chain, nextHeader [32]byte, err error) {
	var out [3 * keySize]byte
	if err := hkdfSHA256(out[:], dhOut, rk[:], infoRoot); err != nil {
		return root, chain, nextHeader, err
	}
	split32(out[:], &root, &chain, &nextHeader)
	return root, chain, nextHeader, nil
}

// kdfCK is KDF_CK: message key = HMAC-SHA256(ck, 0x01), next chain key =
// HMAC-SHA256(ck, 0x02).
func kdfCK(ck *[32]byte) (next, mk [32]byte) {
	hmacSHA256(&mk, ck[:], kdfCKMessage)
	hmacSHA256(&next, ck[:], kdfCKChain)
	return next, mk
}

// advanceCK is the chain key steps KDF_CK steps after ck, without the
// message keys (which are never made).
func advanceCK(ck [32]byte, steps uint32) [32]byte {
	var next [32]byte
	for range steps {
		hmacSHA256(&next, ck[:], kdfCKChain)
		ck = next
	}
	clear(next[:])
	return ck
}

// messageAEADKey expands a message key into the XChaCha20-Poly1305 key:
// HKDF-SHA256(IKM = mk, salt = 32 zero bytes, info = labelMessage, 32).
// The nonce is random and sent with the payload rather than derived: a
// caller that seals twice from the same (rolled-back) state then reuses the
// key but never a key-nonce pair.
func messageAEADKey(mk *[32]byte) (key [32]byte, err error) {
	err = hkdfSHA256(key[:], mk[:], nil, infoMessage)
	return key, err
}

// pqxdhKDF is the PQXDH KDF: HKDF-SHA256 with salt = 32 zero bytes, IKM =
// 32 0xFF bytes || DH1 || DH2 || DH3 [|| DH4] || SS, info = labelPQXDH.
func pqxdhKDF(dh1, dh2, dh3, dh4, ss []byte) ([32]byte, error) {
	var sk [32]byte
	km := make([]byte, 0, 6*keySize)
	km = append(km, bytes.Repeat([]byte{0xff}, keySize)...)
	km = append(km, dh1...)
	km = append(km, dh2...)
	km = append(km, dh3...)
	km = append(km, dh4...)
	km = append(km, ss...)
	err := hkdfSHA256(sk[:], km, nil, infoPQXDH)
	clear(km)
	return sk, err
}

// sessionInitKeys expands a session secret SK (from PQXDH or a TLS seed)
// into the first root key and the two shared header keys of the Double
// Ratchet with header encryption: HKDF-SHA256(IKM = SK, salt = 32 zero
// bytes, info = labelSessionInit), 96 bytes = RK || HKa || NHKb.
func sessionInitKeys(sk *[32]byte) (rk, hka, nhkb [32]byte, err error) {
	var out [3 * keySize]byte
	if err := hkdfSHA256(out[:], sk[:], nil, infoSessionInit); err != nil {
		return rk, hka, nhkb, err
	}
	split32(out[:], &rk, &hka, &nhkb)
	return rk, hka, nhkb, nil
}

// seedSecret derives SK from a TLS exporter secret: HKDF-SHA256(IKM =
// exporter secret, salt = 32 zero bytes, info = labelSeed || session id ||
// vec16(initiator peer ID) || vec16(responder peer ID) || responder ratchet
// public key), 32 bytes.
func seedSecret(exporter []byte, id SessionID, initiator, responder, ratchetPub []byte) ([32]byte, error) {
	var sk [32]byte
	w := writer{b: []byte(labelSeed)}
	w.raw(id[:])
	w.vec16(initiator)
	w.vec16(responder)
	w.raw(ratchetPub)
	err := hkdfSHA256(sk[:], exporter, nil, w.b)
	return sk, err
}

// signedMessage is what an identity key signs for one of its X25519 or
// ML-KEM keys: labelSignature || vec16(owner peer ID) || kind || id (u32) ||
// created (u64 Unix seconds) || public key.
func signedMessage(peerID []byte, kind byte, id uint32, created uint64, pub []byte) []byte {
	w := writer{b: make([]byte, 0, len(labelSignature)+2+len(peerID)+1+4+8+len(pub))}
	w.raw([]byte(labelSignature))
	w.vec16(peerID)
	w.u8(kind)
	w.u32(id)
	w.u64(created)
	w.raw(pub)
	return w.b
}
