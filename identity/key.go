package identity

import (
	"crypto"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"

	p2pcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// PeerIDFromKey derives the libp2p peer ID of an Ed25519 public key. Ed25519
// peer IDs use the identity multihash, so they embed the whole key.
func PeerIDFromKey(pub ed25519.PublicKey) (peer.ID, error) {
	if len(pub) != ed25519.PublicKeySize {
		return "", ErrNotEd25519
	}
	pk, err := p2pcrypto.UnmarshalEd25519PublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("peer id: %w", err)
	}
	return peer.IDFromPublicKey(pk)
}

// PeerIDFromPublicKey is PeerIDFromKey for a crypto.PublicKey of unknown type.
func PeerIDFromPublicKey(pub crypto.PublicKey) (peer.ID, error) {
	k, ok := pub.(ed25519.PublicKey)
	if !ok {
		return "", ErrNotEd25519
	}
	return PeerIDFromKey(k)
}

// KeyFromPeerID extracts the Ed25519 public key a peer ID embeds. A peer ID
// alone is therefore enough to pin a contact's key.
func KeyFromPeerID(id peer.ID) (ed25519.PublicKey, error) {
	if err := id.Validate(); err != nil {
		return nil, fmt.Errorf("peer id: %w", err)
	}
	pk, err := id.ExtractPublicKey()
	if err != nil {
		return nil, fmt.Errorf("peer id %s does not embed a key: %w", id, err)
	}
	if pk.Type() != p2pcrypto.Ed25519 {
		return nil, fmt.Errorf("peer id %s: %w", id, ErrNotEd25519)
	}
	raw, err := pk.Raw()
	if err != nil {
		return nil, fmt.Errorf("peer id %s: %w", id, err)
	}
	// Protobuf decoding is lenient, so other bytes can wrap the same key;
	// only the id the key derives is the peer's.
	if canonical, err := PeerIDFromKey(raw); err != nil || canonical != id {
		return nil, fmt.Errorf("peer id %s is not the canonical id of the key it embeds", id)
	}
	return ed25519.PublicKey(raw), nil
}

// ParsePeerID parses a textual peer ID and checks that it is an Ed25519 one.
func ParsePeerID(s string) (peer.ID, error) {
	id, err := peer.Decode(s)
	if err != nil {
		return "", fmt.Errorf("%q is not a peer id: %w", s, err)
	}
	if _, err := KeyFromPeerID(id); err != nil {
		return "", err
	}
	return id, nil
}

// Libp2pKey converts the identity key for use as the libp2p host key.
func Libp2pKey(key ed25519.PrivateKey) (p2pcrypto.PrivKey, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, ErrNotEd25519
	}
	return p2pcrypto.UnmarshalEd25519PrivateKey(key)
}

// deriveKey derives a purpose-bound 32-byte key from the identity's private
// seed with HKDF-SHA256 (RFC 5869). Each purpose string gives an independent key.
func deriveKey(key ed25519.PrivateKey, purpose string) ([]byte, error) {
	return hkdf.Key(sha256.New, key.Seed(), nil, "certchat derived key v1: "+purpose, 32)
}
