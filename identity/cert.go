package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/peer"
)

// The peer ID binding. Every certificate certchat makes carries the libp2p
// peer ID of its key as a URI subject alternative name of the form
//
//	libp2p:peer:<base58 peer ID>
//
// Because an Ed25519 peer ID embeds the key, the key alone determines the peer
// ID; the SAN states it for people and for CAs that sign it. A certificate
// that carries such a SAN must name exactly the peer ID its key derives, and
// may carry at most one. A CA that signed a request without carrying its SAN
// over gives a certificate with no such SAN; it is accepted, since its key
// still derives the peer ID.
const peerURIScheme = "libp2p"

const peerURIPrefix = "peer:"

// Defaults for certificates.
const (
	DefaultValidity = 365 * 24 * time.Hour
	// clockSkew backdates NotBefore so that peers with slightly wrong clocks
	// accept a certificate made a moment ago.
	clockSkew = time.Hour
	// MaxNameLength bounds display names, in characters.
	MaxNameLength = 64
	// maxPEMInput bounds any PEM file we read.
	maxPEMInput = 1 << 20
)

// PeerURI is the URI SAN that binds a peer ID into a certificate.
func PeerURI(id peer.ID) *url.URL {
	return &url.URL{Scheme: peerURIScheme, Opaque: peerURIPrefix + id.String()}
}

// CertPeerID checks a certificate's key and peer ID binding and returns the
// peer ID. The key must be Ed25519; libp2p URI SANs, if any, must be exactly
// one and name the peer ID the key derives.
func CertPeerID(cert *x509.Certificate) (peer.ID, error) {
	id, err := PeerIDFromPublicKey(cert.PublicKey)
	if err != nil {
		return "", err
	}
	if err := checkPeerURIs(cert.URIs, id); err != nil {
		return "", err
	}
	return id, nil
}

// checkPeerURIs is the binding rule for certificates and CSRs alike: at
// most one libp2p URI SAN, and it names exactly id.
func checkPeerURIs(uris []*url.URL, id peer.ID) error {
	var named []*url.URL
	for _, u := range uris {
		if u.Scheme == peerURIScheme {
			named = append(named, u)
		}
	}
	switch {
	case len(named) > 1:
		return fmt.Errorf("%w: it names %d peer ids", ErrPeerIDMismatch, len(named))
	case len(named) == 1 && named[0].String() != PeerURI(id).String():
		return ErrPeerIDMismatch
	}
	return nil
}

// CheckEndEntity refuses a certificate that is a CA: basicConstraints
// CA:TRUE, or key usage keyCertSign or cRLSign. Such a certificate may
// issue certificates for any name, so it is never a peer's identity, nor
// one's own (docs/PROTOCOL.md §1, §2).
func CheckEndEntity(cert *x509.Certificate) error {
	name := SanitizeName(cert.Subject.CommonName)
	switch {
	case cert.BasicConstraintsValid && cert.IsCA:
		return fmt.Errorf("%w: %q has basicConstraints CA:TRUE", ErrCACertificate, name)
	case cert.KeyUsage&x509.KeyUsageCertSign != 0:
		return fmt.Errorf("%w: %q has key usage keyCertSign", ErrCACertificate, name)
	case cert.KeyUsage&x509.KeyUsageCRLSign != 0:
		return fmt.Errorf("%w: %q has key usage cRLSign", ErrCACertificate, name)
	}
	return nil
}

// CheckValidity reports whether now lies within the certificate's validity.
func CheckValidity(cert *x509.Certificate, now time.Time) error {
	if now.Before(cert.NotBefore) {
		return fmt.Errorf("%w (from %s)", ErrNotYetValid, cert.NotBefore.UTC().Format(time.DateTime))
	}
	if now.After(cert.NotAfter) {
		return fmt.Errorf("%w (on %s)", ErrExpired, cert.NotAfter.UTC().Format(time.DateTime))
	}
	return nil
}

// CheckName validates a display name a user chose.
func CheckName(name string) error {
	if strings.TrimSpace(name) == "" {
		return errors.New("name is empty")
	}
	if !utf8.ValidString(name) {
		return errors.New("name is not valid UTF-8")
	}
	if utf8.RuneCountInString(name) > MaxNameLength {
		return fmt.Errorf("name is longer than %d characters", MaxNameLength)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("name contains the unprintable character %U", r)
		}
	}
	return nil
}

// DisplayName is the certificate's subject common name made safe to print on
// a terminal: control and formatting characters dropped, length bounded.
// Names come from peers and must never carry escape sequences.
func DisplayName(cert *x509.Certificate) string {
	return SanitizeName(cert.Subject.CommonName)
}

// SanitizeName makes an untrusted name safe to show.
func SanitizeName(s string) string {
	if p := printableName(s); p != "" {
		return p
	}
	return "(no name)"
}

// printableName is s without unprintable characters, bounded in length.
func printableName(s string) string {
	var b strings.Builder
	n := 0
	for _, r := range strings.ToValidUTF8(s, "?") {
		if n == MaxNameLength {
			break
		}
		if unicode.IsPrint(r) {
			b.WriteRune(r)
			n++
		}
	}
	return b.String()
}

// NewSelfSigned makes a self-signed identity certificate for key.
func NewSelfSigned(key ed25519.PrivateKey, name string, now time.Time, validity time.Duration) (*x509.Certificate, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	pub := key.Public().(ed25519.PublicKey)
	tmpl, err := leafTemplate(pub, name, now, validity)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		return nil, fmt.Errorf("create certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

// leafTemplate is the template for every identity certificate, self-signed
// or CA-issued: v3, CN = name, the peer ID URI SAN, key usage for signatures
// and TLS in both directions (a peer is client and server).
func leafTemplate(pub ed25519.PublicKey, name string, now time.Time, validity time.Duration) (*x509.Certificate, error) {
	id, err := PeerIDFromKey(pub)
	if err != nil {
		return nil, err
	}
	if validity <= 0 {
		validity = DefaultValidity
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	return &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{PeerURI(id)},
		SubjectKeyId:          keyID(pub),
	}, nil
}

func randomSerial() (*big.Int, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	b[0] &= 0x7f // positive
	b[0] |= 0x40 // and always 16 bytes long
	return new(big.Int).SetBytes(b), nil
}

// keyID is the subject key identifier: the first 20 bytes of SHA-256 of the key.
func keyID(pub ed25519.PublicKey) []byte {
	sum := sha256.Sum256(pub)
	return sum[:20]
}

// ParseCertificatesPEM parses one or more PEM CERTIFICATE blocks. Anything
// else in the input, apart from whitespace and text before a block (as
// openssl writes), is an error.
func ParseCertificatesPEM(data []byte) ([]*x509.Certificate, error) {
	if len(data) > maxPEMInput {
		return nil, fmt.Errorf("certificate file is larger than %d bytes", maxPEMInput)
	}
	var certs []*x509.Certificate
	rest := data
	for {
		block, r := pem.Decode(rest)
		if block == nil {
			break
		}
		rest = r
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("unexpected PEM block %q: want CERTIFICATE", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		certs = append(certs, c)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: data after the last certificate", ErrCorrupt)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return certs, nil
}

// EncodeCertificatesPEM writes certificates as PEM, leaf first.
func EncodeCertificatesPEM(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// IssuerName describes who vouches for a certificate: "self-signed" or the
// issuer's common name.
func IssuerName(cert *x509.Certificate) string {
	if isSelfIssued(cert) {
		return "self-signed"
	}
	if cn := cert.Issuer.CommonName; cn != "" {
		return SanitizeName(cn)
	}
	return SanitizeName(cert.Issuer.String())
}

func isSelfIssued(cert *x509.Certificate) bool {
	if !bytes.Equal(cert.RawIssuer, cert.RawSubject) {
		return false
	}
	return cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature) == nil
}

const zwj = '\u200d' // zero-width joiner: glues emoji sequences

// SanitizeText makes untrusted text (a message body, a peer's error
// message) safe to show on a terminal. Invalid UTF-8 becomes
// U+FFFD; tabs and other spaces become plain spaces; control and format
// characters (escape sequences, bidi overrides) are dropped, except newlines
// when keepNewlines is set (else they become spaces) and the zero-width
// joiner; anything else unprintable becomes U+FFFD.
func SanitizeText(s string, keepNewlines bool) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		switch {
		case r == '\n' || r == '\u2028' || r == '\u2029':
			if keepNewlines {
				b.WriteByte('\n')
			} else {
				b.WriteByte(' ')
			}
		case r == '\t' || unicode.Is(unicode.Zs, r):
			b.WriteByte(' ')
		case r == zwj:
			b.WriteRune(r)
		case unicode.IsControl(r) || unicode.Is(unicode.Cf, r):
			// dropped
		case unicode.IsPrint(r):
			b.WriteRune(r)
		default:
			b.WriteRune('\uFFFD')
		}
	}
	return b.String()
}
