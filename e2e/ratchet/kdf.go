package ratchet

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
)

// hkdfSHA256 is HKDF-SHA256 (RFC 5869); a nil salt means 32 zero bytes.
func hkdfSHA256(secret, salt []byte, info string, n int) ([]byte, error) {
	out, err := hkdf.Key(sha256.New, secret, salt, info, n)
	if err != nil {
		return nil, fmt.Errorf("ratchet: hkdf: %w", err)
	}
	return out, nil
}

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
	out, err := hkdfSHA256(dhOut, rk[:], labelRoot, 3*keySize)
	if err != nil {
		return root, chain, nextHeader, err
	}
	split32(out, &root, &chain, &nextHeader)
	return root, chain, nextHeader, nil
}

// kdfCK is KDF_CK: message key = HMAC-SHA256(ck, 0x01), next chain key =
// HMAC-SHA256(ck, 0x02).
func kdfCK(ck *[32]byte) (next, mk [32]byte) {
	m := hmac.New(sha256.New, ck[:])
	m.Write([]byte{0x01})
	m.Sum(mk[:0])
	m.Reset()
	m.Write([]byte{0x02})
	m.Sum(next[:0])
	return next, mk
}

// messageAEADKey expands a message key into the XChaCha20-Poly1305 key:
// HKDF-SHA256(IKM = mk, salt = 32 zero bytes, info = labelMessage, 32).
// The nonce is random and sent with the payload rather than derived: a
// caller that seals twice from the same (rolled-back) state then reuses the
// key but never a key-nonce pair.
func messageAEADKey(mk *[32]byte) (key [32]byte, err error) {
	out, err := hkdfSHA256(mk[:], nil, labelMessage, keySize)
	if err != nil {
		return key, err
	}
	split32(out, &key)
	return key, nil
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
	out, err := hkdfSHA256(km, nil, labelPQXDH, keySize)
	clear(km)
	if err != nil {
		return sk, err
	}
	split32(out, &sk)
	return sk, nil
}

// sessionInitKeys expands a session secret SK (from PQXDH or a TLS seed)
// into the first root key and the two shared header keys of the Double
// Ratchet with header encryption: HKDF-SHA256(IKM = SK, salt = 32 zero
// bytes, info = labelSessionInit), 96 bytes = RK || HKa || NHKb.
func sessionInitKeys(sk *[32]byte) (rk, hka, nhkb [32]byte, err error) {
	out, err := hkdfSHA256(sk[:], nil, labelSessionInit, 3*keySize)
	if err != nil {
		return rk, hka, nhkb, err
	}
	split32(out, &rk, &hka, &nhkb)
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
	out, err := hkdfSHA256(exporter, nil, string(w.b), keySize)
	if err != nil {
		return sk, err
	}
	split32(out, &sk)
	return sk, nil
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
