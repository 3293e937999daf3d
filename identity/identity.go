package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"time"

	p2pcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Identity is the local user: the Ed25519 key and the certificate chain for
// it (leaf first; a CA-issued leaf may be followed by its issuers).
type Identity struct {
	key    ed25519.PrivateKey
	chain  []*x509.Certificate
	peerID peer.ID
}

// Generate makes a fresh identity with a self-signed certificate.
func Generate(name string, now time.Time, validity time.Duration) (*Identity, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	cert, err := NewSelfSigned(key, name, now, validity)
	if err != nil {
		return nil, err
	}
	return FromParts(key, []*x509.Certificate{cert})
}

// FromParts assembles an identity from a key and its certificate chain,
// checking that the leaf is for the key and binds the right peer ID.
func FromParts(key ed25519.PrivateKey, chain []*x509.Certificate) (*Identity, error) {
	if len(chain) == 0 {
		return nil, fmt.Errorf("identity has no certificate")
	}
	id, err := CertPeerID(chain[0])
	if err != nil {
		return nil, err
	}
	if !key.Public().(ed25519.PublicKey).Equal(chain[0].PublicKey) {
		return nil, ErrNotMyKey
	}
	return &Identity{key: key, chain: chain, peerID: id}, nil
}

// PeerID is the libp2p peer ID the key derives.
func (id *Identity) PeerID() peer.ID { return id.peerID }

// Name is the display name in the certificate.
func (id *Identity) Name() string { return DisplayName(id.chain[0]) }

// Certificate is the identity's leaf certificate.
func (id *Identity) Certificate() *x509.Certificate { return id.chain[0] }

// Chain is the leaf followed by any issuers.
func (id *Identity) Chain() []*x509.Certificate { return id.chain }

// PublicKey is the identity's Ed25519 public key.
func (id *Identity) PublicKey() ed25519.PublicKey { return id.key.Public().(ed25519.PublicKey) }

// Fingerprint is the human-comparable fingerprint of the key.
func (id *Identity) Fingerprint() Fingerprint { return FingerprintOf(id.PublicKey()) }

// Signer returns the identity's private key for signing (TLS
// CertificateVerify, prekey signatures).
func (id *Identity) Signer() ed25519.PrivateKey { return id.key }

// TLSCertificate is the identity for crypto/tls: chain and signer.
func (id *Identity) TLSCertificate() tls.Certificate {
	c := tls.Certificate{PrivateKey: id.key, Leaf: id.chain[0]}
	for _, x := range id.chain {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c
}

// Libp2pKey is the identity key as the libp2p host key.
func (id *Identity) Libp2pKey() (p2pcrypto.PrivKey, error) { return Libp2pKey(id.key) }

// DeriveKey derives an independent 32-byte secret for a purpose (for
// example "storage" for encryption at rest) from the identity key, so that
// every such secret is as well protected as the key file.
func (id *Identity) DeriveKey(purpose string) ([]byte, error) { return deriveKey(id.key, purpose) }
