package ratchet

import (
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// SessionID names a session on the wire: 8 bytes big-endian Unix
// milliseconds of its creation (chosen by its creator) || 8 random bytes.
// Within a SessionSet the greatest id is the active session.
type SessionID [sessionIDSize]byte

func (id SessionID) String() string { return hex.EncodeToString(id[:]) }

// Time returns the creation time encoded in the id.
func (id SessionID) Time() time.Time {
	return time.UnixMilli(int64(binary.BigEndian.Uint64(id[:8]) & (1<<63 - 1)))
}

func newSessionID(ms uint64) (SessionID, error) {
	var id SessionID
	binary.BigEndian.PutUint64(id[:8], ms)
	if _, err := rand.Read(id[8:]); err != nil {
		return id, fmt.Errorf("ratchet: session id: %w", err)
	}
	return id, nil
}

// header is the Double Ratchet header, encrypted on the wire.
type header struct {
	dh    [32]byte // sender's current ratchet public key
	pn, n uint32   // previous sending chain length, message number
}

const (
	initialHasOneTime   = 1 << 0 // a one-time X25519 prekey was used
	initialKEMIsOneTime = 1 << 1 // the KEM prekey is a one-time one
)

// initialPart is what a PQXDH initial message adds after the session id.
type initialPart struct {
	idDH      [32]byte // initiator's identity-DH public key
	idDHSig   [sigSize]byte
	base      [32]byte // initiator's ephemeral (base) key EK_A
	spkID     uint32
	flags     byte
	opkID     uint32 // present iff flags&initialHasOneTime
	kemID     uint32
	kemCipher []byte
}

func (p *initialPart) marshal(w *writer) {
	w.key(&p.idDH)
	w.raw(p.idDHSig[:])
	w.key(&p.base)
	w.u32(p.spkID)
	w.u8(p.flags)
	if p.flags&initialHasOneTime != 0 {
		w.u32(p.opkID)
	}
	w.u32(p.kemID)
	w.raw(p.kemCipher)
}

func parseInitial(r *reader) *initialPart {
	p := &initialPart{idDH: r.key("identity-dh")}
	copy(p.idDHSig[:], r.take(sigSize, "identity-dh signature"))
	p.base = r.key("base key")
	p.spkID = r.u32("signed prekey id")
	p.flags = r.u8("flags")
	if p.flags&^(initialHasOneTime|initialKEMIsOneTime) != 0 {
		r.fail("initial flags")
	}
	if p.flags&initialHasOneTime != 0 {
		p.opkID = r.u32("one-time prekey id")
	}
	p.kemID = r.u32("kem prekey id")
	p.kemCipher = r.take(kemCipherSize, "kem ciphertext")
	return p
}

// envelope is a parsed envelope; slices alias the input.
type envelope struct {
	typ        byte
	id         SessionID
	initial    *initialPart
	prefix     []byte // version .. end of initial part: the AD prefix
	encHeader  []byte
	ciphertext []byte
}

// parseEnvelope decodes:
//
//	version(1) type(1) session-id(16) [initial part] enc-header(80) payload(>=40)
func parseEnvelope(data []byte) (*envelope, error) {
	if len(data) > MaxEnvelopeSize {
		return nil, fmt.Errorf("%w: envelope too large", ErrMalformed)
	}
	r := reader{b: data}
	if v := r.u8("version"); r.err == nil && v != envelopeVersion {
		return nil, fmt.Errorf("%w: envelope version %d", ErrVersion, v)
	}
	e := &envelope{typ: r.u8("type")}
	copy(e.id[:], r.take(sessionIDSize, "session id"))
	switch {
	case r.err != nil:
	case e.typ == envelopeInitial:
		e.initial = parseInitial(&r)
	case e.typ != envelopeNormal:
		r.fail("envelope type")
	}
	e.prefix = data[:len(data)-len(r.b)]
	e.encHeader = r.take(encHeaderSize, "header")
	if r.err == nil && len(r.b) < minPayloadSize {
		r.fail("ciphertext")
	}
	e.ciphertext = r.b
	if r.err != nil {
		return nil, r.err
	}
	return e, nil
}

// PeekSessionID returns the session id of an envelope and whether it is an
// initial (first-contact) message, without any cryptographic check. The
// relay and the node may use it for routing; it proves nothing.
func PeekSessionID(envelope []byte) (SessionID, bool, error) {
	e, err := parseEnvelope(envelope)
	if err != nil {
		return SessionID{}, false, err
	}
	return e.id, e.typ == envelopeInitial, nil
}

// appendAssociatedData appends to dst the AD of the header AEAD up to the
// envelope prefix (which the caller appends); the payload AEAD uses the
// AD followed by the encrypted header:
//
//	labelAD || vec16(sender peer ID) || vec16(recipient peer ID) ||
//	sender identity (32) || recipient identity (32) || envelope prefix
func appendAssociatedData(dst, senderPID, recipientPID []byte, sender, recipient ed25519.PublicKey) []byte {
	w := writer{b: dst}
	w.raw([]byte(labelAD))
	w.vec16(senderPID)
	w.vec16(recipientPID)
	w.raw(sender)
	w.raw(recipient)
	return w.b
}

// sealHeader encrypts h under the header key hk and appends nonce(24) ||
// AEAD(h) to dst.
func sealHeader(dst []byte, hk *[32]byte, h *header, ad []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(hk[:])
	if err != nil {
		return nil, fmt.Errorf("ratchet: header cipher: %w", err)
	}
	n := len(dst)
	dst = slices.Grow(dst, encHeaderSize)[:n+xNonceSize+headerSize]
	nonce, plain := dst[n:n+xNonceSize], dst[n+xNonceSize:]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("ratchet: header nonce: %w", err)
	}
	copy(plain, h.dh[:])
	binary.BigEndian.PutUint32(plain[32:], h.pn)
	binary.BigEndian.PutUint32(plain[36:], h.n)
	return aead.Seal(dst[:n+xNonceSize], nonce, plain, ad), nil // in place
}

// openHeader decrypts an encrypted header with hk; ok is false when hk is
// not the key it was sealed with (or anything was tampered with).
func openHeader(hk *[32]byte, enc, ad []byte) (h header, ok bool) {
	aead, err := chacha20poly1305.NewX(hk[:])
	if err != nil || len(enc) != encHeaderSize {
		return h, false
	}
	var buf [headerSize]byte
	plain, err := aead.Open(buf[:0], enc[:xNonceSize], enc[xNonceSize:], ad)
	if err != nil {
		return h, false
	}
	copy(h.dh[:], plain)
	h.pn = binary.BigEndian.Uint32(plain[32:])
	h.n = binary.BigEndian.Uint32(plain[36:])
	return h, true
}

// sealPayload encrypts plaintext with the message key mk and appends
// nonce || AEAD(plaintext) to dst, with a random nonce (see messageAEADKey).
// The nonce is drawn into its place in dst: nothing else is allocated
// when dst has room.
func sealPayload(dst []byte, mk *[32]byte, plaintext, ad []byte) ([]byte, error) {
	n := len(dst)
	dst = slices.Grow(dst, xNonceSize)[:n+xNonceSize]
	if _, err := rand.Read(dst[n:]); err != nil {
		return nil, fmt.Errorf("ratchet: payload nonce: %w", err)
	}
	return sealPayloadNonce(dst[:n], mk, (*[xNonceSize]byte)(dst[n:]), plaintext, ad)
}

func sealPayloadNonce(dst []byte, mk *[32]byte, nonce *[xNonceSize]byte, plaintext, ad []byte) ([]byte, error) {
	aead, err := payloadAEAD(mk)
	if err != nil {
		return nil, err
	}
	return aead.Seal(append(dst, nonce[:]...), nonce[:], plaintext, ad), nil
}

// openPayload decrypts nonce || AEAD(plaintext) with the message key mk.
func openPayload(mk *[32]byte, payload, ad []byte) ([]byte, error) {
	aead, err := payloadAEAD(mk)
	if err != nil {
		return nil, err
	}
	if len(payload) < minPayloadSize {
		return nil, fmt.Errorf("%w: payload", ErrAuth)
	}
	plain, err := aead.Open(nil, payload[:xNonceSize], payload[xNonceSize:], ad)
	if err != nil {
		return nil, fmt.Errorf("%w: payload", ErrAuth)
	}
	return plain, nil
}

func payloadAEAD(mk *[32]byte) (cipher.AEAD, error) {
	key, err := messageAEADKey(mk)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(key[:])
	clear(key[:])
	if err != nil {
		return nil, fmt.Errorf("ratchet: payload cipher: %w", err)
	}
	return aead, nil
}

// appendPrefix appends version, type, session id and the initial part.
func appendPrefix(b []byte, id SessionID, initial []byte) []byte {
	w := writer{b: b}
	w.u8(envelopeVersion)
	if initial != nil {
		w.u8(envelopeInitial)
	} else {
		w.u8(envelopeNormal)
	}
	w.raw(id[:])
	w.raw(initial)
	return w.b
}
