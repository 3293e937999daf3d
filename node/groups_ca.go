package node

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/certchat/certchat/group"
	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Groups bound to a CA (PROTOCOL §14.5): the create names the SHA-256 of
// the CA certificate's SubjectPublicKeyInfo. An admin's node adds only
// peers whose certificate that CA issued; every member's node flags a
// member whose certificate has expired, or whose CA it no longer trusts.

var (
	// ErrNotFromGroupCA: the peer's certificate was not issued by the
	// group's CA (or none was seen yet).
	ErrNotFromGroupCA = errors.New("has no certificate from the group's CA")
	// ErrGroupCAUntrusted: the group's CA is not among the trusted roots.
	ErrGroupCAUntrusted = errors.New("the group's CA is not among the CAs you trust")
	// ErrMemberCertExpired: the member's certificate is out of its
	// validity period.
	ErrMemberCertExpired = errors.New("certificate expired")
)

// CAHash is what a CA-bound group names its CA by: the SHA-256 of the CA
// certificate's SubjectPublicKeyInfo.
func CAHash(cert *x509.Certificate) []byte {
	h := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return h[:]
}

// TrustedCA is what a group bound to the trusted CA named s (its name
// or fingerprint, identity.TrustStore.FindCA) names it by: CreateCA's ca.
func (g *Groups) TrustedCA(s string) ([]byte, error) {
	cert, err := g.trust.FindCA(s)
	if err != nil {
		return nil, err
	}
	return CAHash(cert), nil
}

// trustedCAName is the name of the trusted CA that ca names (CAHash), or
// "" if none does (any more).
func trustedCAName(t *identity.TrustStore, ca []byte) string {
	roots, err := t.Roots()
	if err != nil {
		return ""
	}
	if r := groupRoot(roots, ca); r != nil {
		return identity.DisplayName(r)
	}
	return ""
}

// groupRoot is the CA of anchors that ca (a group's CAHash) names, or nil.
func groupRoot(anchors []*x509.Certificate, ca []byte) *x509.Certificate {
	var root *x509.Certificate
	for _, r := range anchors {
		if bytes.Equal(CAHash(r), ca) {
			root = r
		}
	}
	return root
}

// memberCA says whether p holds, now, a valid certificate from the
// trusted CA that ca names; nil if so.
func (g *Groups) memberCA(p peer.ID, ca []byte) error {
	_, err := g.memberIssuer(p, ca)
	return err
}

// memberIssuer names the group's CA that vouches for p's certificate
// ("Acme Root", or "Acme Root (through Acme Team CA)"), or says why none
// does. The certificate qualifies if the group's CA, a trusted root,
// issued it directly, or if an intermediate CA the user trusts explicitly
// (TrustStore.AddIntermediate) issued it and that intermediate chains to
// the group's CA (crypto/x509: every CA on the path with CA:TRUE,
// keyCertSign when it has key usages, path lengths honoured). An
// intermediate only the peer presents is not enough (PROTOCOL §2: a
// certificate is CA-verified only when issued directly by a CA the user
// trusts).
func (g *Groups) memberIssuer(p peer.ID, ca []byte) (string, error) {
	anchors, err := g.trust.Roots()
	if err != nil {
		return "", err
	}
	root := groupRoot(anchors, ca)
	if root == nil {
		return "", ErrGroupCAUntrusted
	}
	var cert *x509.Certificate
	if p == g.host.ID() {
		cert = g.id.Certificate()
	} else if c, ok := g.book.certificate(p); ok {
		cert = c
	} else {
		return "", fmt.Errorf("%w (no certificate seen yet: connect first)", ErrNotFromGroupCA)
	}
	now := g.cfg.Now()
	direct := cert.CheckSignatureFrom(root) == nil
	if direct && (now.After(cert.NotAfter) || now.Before(cert.NotBefore)) {
		return "", ErrMemberCertExpired
	}
	rootName := identity.SanitizeName(root.Subject.CommonName)
	if direct {
		return rootName, nil
	}
	via, err := throughIntermediate(cert, root, anchors, now)
	if err != nil {
		return "", err
	}
	return rootName + " (through " + via + ")", nil
}

// throughIntermediate verifies that cert chains to root through CAs of
// anchors (the trust store's: never what a peer presents) and names the
// one that issued it.
func throughIntermediate(cert, root *x509.Certificate, anchors []*x509.Certificate, now time.Time) (string, error) {
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root)
	for _, a := range anchors {
		if !a.Equal(root) {
			inter.AddCert(a)
		}
	}
	chains, verr := cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	for _, ch := range chains {
		ok := len(ch) >= 3
		for _, c := range ch[1 : len(ch)-1] {
			if !c.IsCA || !c.BasicConstraintsValid || c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageCertSign == 0 {
				ok = false
			}
		}
		if ok {
			return identity.SanitizeName(ch[1].Subject.CommonName), nil
		}
	}
	issuer := identity.SanitizeName(cert.Issuer.CommonName)
	var invalid x509.CertificateInvalidError
	switch {
	case bytes.Equal(cert.RawIssuer, cert.RawSubject) && cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature) == nil:
		return "", fmt.Errorf("%w (its certificate is self-signed: the CA must issue it one, from its `chat csr` with `chat ca sign`)", ErrNotFromGroupCA)
	case errors.As(verr, &invalid) && invalid.Reason == x509.Expired:
		return "", ErrMemberCertExpired
	case errors.As(verr, &invalid) && invalid.Reason == x509.TooManyIntermediates:
		return "", fmt.Errorf("%w (issued by %s, below the group's CA deeper than its path length allows)", ErrNotFromGroupCA, issuer)
	case verr != nil && !slices.ContainsFunc(anchors, func(a *x509.Certificate) bool { return cert.CheckSignatureFrom(a) == nil }):
		return "", fmt.Errorf("%w (issued by %s; if that is an intermediate CA of the group's CA, trust it with `chat trust add-ca --intermediate`)", ErrNotFromGroupCA, issuer)
	}
	return "", fmt.Errorf("%w (issued by %s, which does not chain to the group's CA: %v)", ErrNotFromGroupCA, issuer, verr)
}

// Issuers names, for each member of a group bound to a CA, the CA that
// vouches for it ("Acme Root", or "Acme Root (through Acme Team CA)"); a
// member without one is in Flags instead. Empty for other groups.
func (g *Groups) Issuers(id group.ID) map[peer.ID]string {
	s, ok := g.state(id)
	if !ok || s.CA == nil {
		return nil
	}
	out := map[peer.ID]string{}
	for _, p := range s.Members {
		if name, err := g.memberIssuer(p, s.CA); err == nil {
			out[p] = name
		}
	}
	return out
}

// checkCAMembers refuses, for a CA-bound group, members without a
// certificate from its CA.
func (g *Groups) checkCAMembers(ca []byte, members []peer.ID) error {
	if ca == nil {
		return nil
	}
	for _, p := range members {
		if err := g.memberCA(p, ca); err != nil {
			return fmt.Errorf("%s cannot join a group bound to a CA: %w", userName(g.trust, g.host.ID(), p), err)
		}
	}
	return nil
}

// Flags lists, for a group bound to a CA, the members whose
// certificate no longer qualifies (expired, CA removed from trust), with
// the reason. Empty for other groups.
func (g *Groups) Flags(id group.ID) map[peer.ID]error {
	s, ok := g.state(id)
	if !ok || s.CA == nil {
		return nil
	}
	out := map[peer.ID]error{}
	for _, p := range s.Members {
		if err := g.memberCA(p, s.CA); err != nil {
			out[p] = err
		}
	}
	return out
}
