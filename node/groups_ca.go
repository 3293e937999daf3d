package node

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"

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

// memberCA says whether p holds, now, a valid certificate issued directly
// by the trusted root that ca names; nil if so.
func (g *Groups) memberCA(p peer.ID, ca []byte) error {
	roots, err := g.trust.Roots()
	if err != nil {
		return err
	}
	var root *x509.Certificate
	for _, r := range roots {
		if bytes.Equal(CAHash(r), ca) {
			root = r
		}
	}
	if root == nil {
		return ErrGroupCAUntrusted
	}
	if p == g.host.ID() {
		return checkIssued(g.id.Certificate(), root, g.core)
	}
	cert, ok := g.book.certificate(p)
	if !ok {
		return fmt.Errorf("%w (no certificate seen yet: connect first)", ErrNotFromGroupCA)
	}
	return checkIssued(cert, root, g.core)
}

func checkIssued(cert, root *x509.Certificate, n *core) error {
	if err := cert.CheckSignatureFrom(root); err != nil {
		return fmt.Errorf("%w (issued by %s)", ErrNotFromGroupCA, identity.SanitizeName(cert.Issuer.CommonName))
	}
	if now := n.cfg.Now(); now.After(cert.NotAfter) || now.Before(cert.NotBefore) {
		return ErrMemberCertExpired
	}
	return nil
}

// checkCAMembers refuses, for a CA-bound group, members without a
// certificate from its CA.
func (g *Groups) checkCAMembers(ca []byte, members []peer.ID) error {
	if ca == nil {
		return nil
	}
	for _, p := range members {
		if err := g.memberCA(p, ca); err != nil {
			return fmt.Errorf("%s cannot join a group bound to a CA: %w", identity.ShortID(p), err)
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
