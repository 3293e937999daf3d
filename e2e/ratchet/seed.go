package ratchet

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"fmt"
	"time"
)

// seedOfferSize is version(1) || session id(16) || ratchet public key(32).
const seedOfferSize = 1 + sessionIDSize + keySize

// ExporterContext returns the TLS exporter context for seeding a session
// between peers a and b: vec16(smaller peer ID) || vec16(larger peer ID),
// compared bytewise. Export exporterSize (32) bytes with ExporterLabel.
func ExporterContext(a, b []byte) []byte {
	if bytes.Compare(a, b) > 0 {
		a, b = b, a
	}
	w := writer{}
	w.vec16(a)
	w.vec16(b)
	return w.b
}

// SeedResponder is run by the TLS server of a live channel with no ratchet
// session: it creates a session (Bob role) from the 32-byte exporter secret
// and returns the seed offer to send to the client over the channel. The
// new session cannot Seal until the client's first envelope is opened.
func (s *SessionSet) SeedResponder(exporterSecret []byte, now time.Time) (offer []byte, next *SessionSet, err error) {
	if len(exporterSecret) != exporterSize {
		return nil, nil, fmt.Errorf("%w: exporter secret size", ErrMalformed)
	}
	id, err := newSessionID(s.nextSessionTime(now))
	if err != nil {
		return nil, nil, err
	}
	pair, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("ratchet: ratchet key: %w", err)
	}
	pub := pair.PublicKey().Bytes()
	sk, err := seedSecret(exporterSecret, id, s.remotePID, s.localPID, pub)
	if err != nil {
		return nil, nil, err
	}
	sess, err := initBob(id, &sk, pair, unixSec(now))
	clear(sk[:])
	if err != nil {
		return nil, nil, err
	}
	w := writer{}
	w.u8(seedVersion)
	w.raw(id[:])
	w.raw(pub)
	return w.b, s.with(sess), nil
}

// SeedInitiator is run by the TLS client: it creates a session (Alice role)
// from the exporter secret and the server's seed offer, and seals on it
// the envelope that confirms it, with an empty plaintext: send it at once,
// the server cannot send until it opens it. The confirmation is sealed on
// the new session even when another is active: a newer responder session
// of ours (a seed we offered on a channel that crossed this one) has no
// sending chain until the peer takes our offer. next must be committed
// before the confirmation leaves.
func (s *SessionSet) SeedInitiator(exporterSecret, offer []byte, now time.Time) (confirm []byte, next *SessionSet, err error) {
	if len(exporterSecret) != exporterSize {
		return nil, nil, fmt.Errorf("%w: exporter secret size", ErrMalformed)
	}
	id, pub, err := ParseSeedOffer(offer)
	if err != nil {
		return nil, nil, err
	}
	if err := s.acceptPeerSessionID(id, now); err != nil {
		return nil, nil, err
	}
	sk, err := seedSecret(exporterSecret, id, s.localPID, s.remotePID, pub)
	if err != nil {
		return nil, nil, err
	}
	sess, err := initAlice(id, &sk, pub, unixSec(now))
	clear(sk[:])
	if err != nil {
		return nil, nil, err
	}
	confirm, next, _, err = s.sealOn(sess, nil, now)
	return confirm, next, err
}

// ParseSeedOffer strictly decodes a seed offer.
func ParseSeedOffer(offer []byte) (SessionID, []byte, error) {
	var id SessionID
	r := reader{b: offer}
	if v := r.u8("version"); r.err == nil && v != seedVersion {
		return id, nil, fmt.Errorf("%w: seed offer version %d", ErrVersion, v)
	}
	copy(id[:], r.take(sessionIDSize, "session id"))
	pub := bytes.Clone(r.take(keySize, "ratchet key"))
	if err := r.done(); err != nil {
		return id, nil, err
	}
	if _, err := ecdh.X25519().NewPublicKey(pub); err != nil {
		return id, nil, fmt.Errorf("%w: ratchet key", ErrMalformed)
	}
	return id, pub, nil
}
