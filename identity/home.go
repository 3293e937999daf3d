package identity

import (
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Home is the folder holding an identity and everything certchat keeps:
//
//	identity.key   the Ed25519 key, encrypted unless the user opted out (0600)
//	identity.crt   the certificate chain, leaf first (PEM)
//	trust.json     contacts and trusted CA roots
//
// and, written by other packages, the message database, the config and logs.
type Home struct {
	Dir string
}

// EnvHome names the environment variable that overrides the default home.
const EnvHome = "CERTCHAT_HOME"

// DefaultHomeDir is $CERTCHAT_HOME, else certchat under the user's config
// folder (~/.config/certchat on Linux).
func DefaultHomeDir() (string, error) {
	if d := os.Getenv(EnvHome); d != "" {
		return d, nil
	}
	cfg, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find a home folder: %w (set --home or %s)", err, EnvHome)
	}
	return filepath.Join(cfg, "certchat"), nil
}

// Path names a file in the home.
func (h Home) Path(name string) string { return filepath.Join(h.Dir, name) }

// KeyPath, CertPath and TrustPath name the identity's files.
func (h Home) KeyPath() string   { return h.Path("identity.key") }
func (h Home) CertPath() string  { return h.Path("identity.crt") }
func (h Home) TrustPath() string { return h.Path("trust.json") }

// HasIdentity reports whether the home holds an identity key.
func (h Home) HasIdentity() bool {
	_, err := os.Stat(h.KeyPath())
	return err == nil
}

// Ensure creates the home folder, private to the user.
func (h Home) Ensure() error {
	if err := os.MkdirAll(h.Dir, 0o700); err != nil {
		return fmt.Errorf("create home %s: %w", h.Dir, err)
	}
	return nil
}

// Init creates a new identity with a self-signed certificate. The key is
// encrypted with passphrase unless passphrase is nil (an explicit opt-out).
// It refuses to replace an existing identity.
func (h Home) Init(name string, passphrase []byte, params KDFParams, now time.Time) (*Identity, error) {
	if h.HasIdentity() {
		return nil, fmt.Errorf("%w in %s", ErrIdentityExists, h.Dir)
	}
	id, err := Generate(name, now, DefaultValidity)
	if err != nil {
		return nil, err
	}
	keyPEM, err := EncodePrivateKey(id.key, passphrase, params)
	if err != nil {
		return nil, err
	}
	if err := h.Ensure(); err != nil {
		return nil, err
	}
	unlock, err := lockFile(h.Path(".identity.lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()
	if h.HasIdentity() {
		return nil, fmt.Errorf("%w in %s", ErrIdentityExists, h.Dir)
	}
	// The certificate goes first: a crash in between leaves no key, so the
	// home still reads as empty and init can run again.
	if err := WriteFileAtomic(h.CertPath(), EncodeCertificatesPEM(id.chain...), 0o644); err != nil {
		return nil, err
	}
	if err := WriteFileAtomic(h.KeyPath(), keyPEM, 0o600); err != nil {
		return nil, err
	}
	return id, nil
}

// Load opens the identity, asking for the passphrase if the key is encrypted.
func (h Home) Load(passphrase PassphraseFunc) (*Identity, error) {
	keyPEM, err := ReadFileLimited(h.KeyPath(), maxKeyFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w (home %s)", ErrNoIdentity, h.Dir)
	}
	if err != nil {
		return nil, err
	}
	key, err := DecodePrivateKey(keyPEM, passphrase)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", h.KeyPath(), err)
	}
	chain, err := h.LoadChain()
	if err != nil {
		return nil, err
	}
	id, err := FromParts(key, chain)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", h.CertPath(), err)
	}
	return id, nil
}

// LoadChain reads the identity's certificate chain without the private
// key, so that showing or sharing the identity needs no passphrase.
func (h Home) LoadChain() ([]*x509.Certificate, error) {
	if !h.HasIdentity() {
		return nil, fmt.Errorf("%w (home %s)", ErrNoIdentity, h.Dir)
	}
	certPEM, err := ReadFileLimited(h.CertPath(), maxPEMInput)
	if err != nil {
		return nil, fmt.Errorf("identity certificate: %w", err)
	}
	chain, err := ParseCertificatesPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", h.CertPath(), err)
	}
	if _, err := CertPeerID(chain[0]); err != nil {
		return nil, fmt.Errorf("%s: %w", h.CertPath(), err)
	}
	return chain, nil
}

// TrustStore opens the home's trust store.
func (h Home) TrustStore() (*TrustStore, error) {
	if err := h.Ensure(); err != nil {
		return nil, err
	}
	return OpenTrustStore(h.TrustPath())
}

// ImportCertificate replaces the identity's certificate with one for the
// same key, typically issued by a CA from `chat csr`, given as a chain
// (leaf first). A certificate for another key is refused with ErrNotMyKey,
// a CA certificate (CA:TRUE, keyCertSign, cRLSign) with ErrCACertificate.
// A CA-issued certificate must be issued directly by a root the trust
// store holds, as peers require (docs/PROTOCOL.md §2); only the leaf is
// stored, since peers ignore any other certificate.
func (h Home) ImportCertificate(chain []*x509.Certificate, trust *TrustStore, now time.Time) ([]*x509.Certificate, error) {
	current, err := h.LoadChain()
	if err != nil {
		return nil, err
	}
	if len(chain) == 0 {
		return nil, errors.New("no certificate to import")
	}
	leaf := chain[0]
	if _, err := CertPeerID(leaf); err != nil {
		return nil, err
	}
	if !current[0].PublicKey.(ed25519.PublicKey).Equal(leaf.PublicKey) {
		return nil, ErrNotMyKey
	}
	if err := CheckEndEntity(leaf); err != nil {
		return nil, fmt.Errorf("%w: peers refuse it; have the request signed again with CA:FALSE (`chat ca sign`, or the README's openssl command)", err)
	}
	if err := CheckValidity(leaf, now); err != nil {
		return nil, err
	}
	if !isSelfIssued(leaf) {
		roots, err := trust.Roots()
		if err != nil {
			return nil, err
		}
		if _, ok := verifyAgainst(leaf, roots, now); !ok {
			return nil, fmt.Errorf("cannot verify the certificate: its issuer %q is not a CA you trust (run `chat trust add-ca FILE` first)", IssuerName(leaf))
		}
	}
	if err := WriteFileAtomic(h.CertPath(), EncodeCertificatesPEM(leaf), 0o644); err != nil {
		return nil, err
	}
	return []*x509.Certificate{leaf}, nil
}
