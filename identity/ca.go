package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// DefaultCAValidity is how long a new CA root is valid.
const DefaultCAValidity = 10 * 365 * 24 * time.Hour

// CA is a certificate authority a group uses to vouch for its members'
// identities: an Ed25519 root that issues identity certificates from CSRs.
type CA struct {
	Cert *x509.Certificate
	Key  ed25519.PrivateKey
}

// NewCA creates a self-signed Ed25519 root. It may issue only end-entity
// certificates (path length 0).
func NewCA(name string, now time.Time, validity time.Duration) (*CA, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	if validity <= 0 {
		validity = DefaultCAValidity
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          keyID(pub),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		return nil, fmt.Errorf("create ca certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key}, nil
}

// CheckCA verifies that a certificate can serve as a trusted root: a CA
// certificate, self-signed, with an Ed25519 key, and no name constraints
// (ErrNameConstraints).
func CheckCA(cert *x509.Certificate) error {
	if err := CheckAnchor(cert); err != nil {
		return err
	}
	if err := cert.CheckSignatureFrom(cert); err != nil {
		return fmt.Errorf("CA %q is not a self-signed root (to trust an intermediate CA itself, add it with --intermediate): %w", SanitizeName(cert.Subject.CommonName), err)
	}
	return nil
}

// CheckAnchor checks a CA certificate that the trust store may hold: a
// root (CheckCA), or an intermediate CA the user chose to trust itself
// (TrustStore.AddIntermediate). Either way, CA-verified means issued
// directly by it.
func CheckAnchor(cert *x509.Certificate) error {
	if !cert.IsCA || !cert.BasicConstraintsValid {
		return fmt.Errorf("%q is not a CA certificate (basic constraints CA:TRUE missing)", SanitizeName(cert.Subject.CommonName))
	}
	if cert.PublicKeyAlgorithm != x509.Ed25519 {
		return fmt.Errorf("CA %q: %w", SanitizeName(cert.Subject.CommonName), ErrNotEd25519)
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return fmt.Errorf("CA %q may not sign certificates (key usage keyCertSign missing)", SanitizeName(cert.Subject.CommonName))
	}
	if hasNameConstraints(cert) {
		return fmt.Errorf("CA %q: %w", SanitizeName(cert.Subject.CommonName), ErrNameConstraints)
	}
	return nil
}

// hasNameConstraints reports whether a certificate carries the name
// constraints extension (RFC 5280 §4.2.1.10), whatever it constrains.
//
// They cannot do what they promise for certchat. What a certificate names
// is its CN, which name constraints do not cover; its SAN is the URI
// libp2p:peer:<id>, which has no host, and crypto/x509 refuses to match
// a URI without a host against constraints of any type (URI, DNS, e-mail
// or IP): a constrained root would verify nobody, silently. It is refused
// when added instead, with a sentence that says why.
func hasNameConstraints(cert *x509.Certificate) bool {
	for _, e := range cert.Extensions {
		if e.Id.Equal(oidNameConstraints) {
			return true
		}
	}
	return false
}

var oidNameConstraints = asn1.ObjectIdentifier{2, 5, 29, 30}

// Issue signs an identity certificate for the key in a verified CSR. The
// subject is the CSR's common name; the extensions are the CA's own choice
// (it ignores those requested), including the peer ID SAN derived from the
// key. The certificate never outlives the CA.
func (ca *CA) Issue(csr *x509.CertificateRequest, now time.Time, validity time.Duration) (*x509.Certificate, error) {
	pub, ok := csr.PublicKey.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("csr: %w", ErrNotEd25519)
	}
	tmpl, err := leafTemplate(pub, csr.Subject.CommonName, now, validity)
	if err != nil {
		return nil, err
	}
	if err := CheckName(csr.Subject.CommonName); err != nil {
		return nil, fmt.Errorf("csr subject: %w", err)
	}
	// An expired CA would issue a certificate that ends before it starts.
	if err := CheckValidity(ca.Cert, now); err != nil {
		return nil, fmt.Errorf("ca %q: %w", SanitizeName(ca.Cert.Subject.CommonName), err)
	}
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("issue certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

// Object identifiers of the extensions RequestedCA looks for.
var (
	oidBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidKeyUsage         = asn1.ObjectIdentifier{2, 5, 29, 15}
)

// RequestedCA says what a CSR asks for that would make its certificate a
// CA: "basicConstraints CA:TRUE", "keyUsage keyCertSign", "keyUsage
// cRLSign", joined by ", "; "" if nothing. Issue ignores it all; a CA admin
// may want to know that a member asked.
func RequestedCA(csr *x509.CertificateRequest) string {
	var asked []string
	for _, ext := range csr.Extensions {
		switch {
		case ext.Id.Equal(oidBasicConstraints):
			var bc struct {
				IsCA bool `asn1:"optional"`
			}
			if _, err := asn1.Unmarshal(ext.Value, &bc); err != nil {
				asked = append(asked, "an unreadable basicConstraints")
			} else if bc.IsCA {
				asked = append(asked, "basicConstraints CA:TRUE")
			}
		case ext.Id.Equal(oidKeyUsage):
			var ku asn1.BitString
			if _, err := asn1.Unmarshal(ext.Value, &ku); err != nil {
				asked = append(asked, "an unreadable keyUsage")
				continue
			}
			if ku.At(5) == 1 { // keyCertSign (RFC 5280 §4.2.1.3)
				asked = append(asked, "keyUsage keyCertSign")
			}
			if ku.At(6) == 1 { // cRLSign
				asked = append(asked, "keyUsage cRLSign")
			}
		}
	}
	return strings.Join(asked, ", ")
}

// NewCSR makes a PKCS#10 request for the identity key: CN = name and the
// peer ID SAN, signed by the key. It returns PEM.
func NewCSR(key ed25519.PrivateKey, name string) ([]byte, error) {
	pub := key.Public().(ed25519.PublicKey)
	id, err := PeerIDFromKey(pub)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: name},
		URIs:    []*url.URL{PeerURI(id)},
	}, key)
	if err != nil {
		return nil, fmt.Errorf("create csr: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// ParseCSR parses a PEM CSR and checks its signature, its key type and its
// peer ID SAN, if it has one.
func ParseCSR(data []byte) (*x509.CertificateRequest, error) {
	if len(data) > maxPEMInput {
		return nil, fmt.Errorf("csr file is larger than %d bytes", maxPEMInput)
	}
	block, _ := pem.Decode(data)
	if block == nil || (block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST") {
		return nil, fmt.Errorf("no PEM CERTIFICATE REQUEST found")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse csr: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("csr signature: %w", err)
	}
	pub, ok := csr.PublicKey.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("csr: %w", ErrNotEd25519)
	}
	id, err := PeerIDFromKey(pub)
	if err != nil {
		return nil, err
	}
	if err := checkPeerURIs(csr.URIs, id); err != nil {
		return nil, fmt.Errorf("csr: %w", err)
	}
	return csr, nil
}
