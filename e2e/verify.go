package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p/core/peer"
)

// verification is one handshake's checks of the peer. crypto/tls calls
// verify once it has parsed the peer's Certificate (or, when resuming,
// with the certificate stored in the ticket) and before it checks the
// peer's CertificateVerify and Finished, in both roles: these checks may
// refuse, never accept alone (see fail). An error aborts the handshake
// with a bad_certificate alert.
type verification struct {
	e        *Endpoint
	remote   peer.ID // authenticated by the libp2p transport
	expected peer.ID // the peer the client meant to dial
	client   bool
	verdict  *identity.Verdict
}

// verify runs the checks in the order docs/PROTOCOL.md gives, each with
// its own error.
func (v *verification) verify(cs tls.ConnectionState) error {
	steps := []func(tls.ConnectionState) error{
		v.checkNegotiation,
		v.checkCertificate,
		v.checkBinding,
		v.checkTrust,
	}
	for _, step := range steps {
		if err := step(cs); err != nil {
			return &HandshakeError{Peer: v.remote, Verdict: v.verdict, Err: err}
		}
	}
	return nil
}

// checkNegotiation: TLS 1.3, our application protocol and, if the policy
// requires it, the hybrid post-quantum group.
func (v *verification) checkNegotiation(cs tls.ConnectionState) error {
	if cs.Version != tls.VersionTLS13 {
		return fmt.Errorf("%w: TLS version %#x", ErrNotCertchat, cs.Version)
	}
	if cs.NegotiatedProtocol != v.e.cfg.Protocol {
		return fmt.Errorf("%w: application protocol %q", ErrNotCertchat, cs.NegotiatedProtocol)
	}
	if v.e.cfg.Policy.RequirePostQuantum && cs.CurveID != tls.X25519MLKEM768 {
		return fmt.Errorf("%w: the key exchange used %v", ErrNotPostQuantum, cs.CurveID)
	}
	return nil
}

// checkCertificate: a certificate, with an Ed25519 key, that is not a CA
// certificate (a CA may issue certificates for any name: never a peer).
func (v *verification) checkCertificate(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return ErrNoCertificate
	}
	if cs.PeerCertificates[0].PublicKeyAlgorithm != x509.Ed25519 {
		return ErrNotEd25519
	}
	return identity.CheckEndEntity(cs.PeerCertificates[0])
}

// checkBinding: the certificate's key derives the peer ID, which is not
// ours, is the peer the transport authenticated and, for the client, the
// peer it dialed.
func (v *verification) checkBinding(cs tls.ConnectionState) error {
	id, err := identity.CertPeerID(cs.PeerCertificates[0])
	if err != nil {
		return fmt.Errorf("%w: %v", ErrPeerIDBinding, err)
	}
	switch {
	case id == v.e.cfg.Identity.PeerID():
		return ErrSelfConnection
	case id != v.remote:
		return fmt.Errorf("%w: certificate for %s on a connection from %s", ErrWrongPeer, id, v.remote)
	case v.client && id != v.expected:
		return fmt.Errorf("%w: wanted %s, reached %s", ErrNotDialedPeer, v.expected, id)
	}
	return nil
}

// checkTrust: the trust store's verdict against the policy.
func (v *verification) checkTrust(cs tls.ConnectionState) error {
	verdict, err := v.e.cfg.Trust.Evaluate(cs.PeerCertificates, v.remote, v.e.now())
	if err != nil {
		return fmt.Errorf("%w: %v", ErrPeerIDBinding, err)
	}
	v.verdict = &verdict
	p := v.e.cfg.Policy
	switch verdict.State {
	case identity.StateCAVerified, identity.StateVerified, identity.StateTOFU:
		return nil
	case identity.StateExpired:
		if errors.Is(identity.CheckValidity(cs.PeerCertificates[0], v.e.now()), identity.ErrNotYetValid) {
			return ErrNotYetValid
		}
		return ErrExpired
	case identity.StateUntrusted:
		return ErrUntrusted
	case identity.StateChanged:
		if p.AcceptChanged != nil && p.AcceptChanged(v.remote) {
			return nil
		}
		return ErrKeyChanged
	case identity.StateUnknown:
		if p.AllowUnknown {
			return nil
		}
		return ErrUnknownPeer
	}
	return fmt.Errorf("%w: unknown trust state %q", ErrUntrusted, verdict.State)
}
