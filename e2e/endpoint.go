package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Verifier decides how far a peer's certificate chain is trusted for a
// peer ID. identity.TrustStore is the implementation.
type Verifier interface {
	Evaluate(chain []*x509.Certificate, remote peer.ID, now time.Time) (identity.Verdict, error)
}

// Policy is what the application lets through beyond trusted peers.
type Policy struct {
	// AllowUnknown accepts peers not in the contacts (state unknown): the
	// first contact. The application then asks the user to accept or
	// reject, and the session reports the state.
	AllowUnknown bool
	// AcceptChanged reports whether the user accepted a changed key for
	// this peer. Nil accepts none: a changed key fails with ErrKeyChanged.
	AcceptChanged func(peer.ID) bool
	// MaxTicketAge bounds resumption; zero means DefaultMaxTicketAge and a
	// negative value disables resumption.
	MaxTicketAge time.Duration
	// RequirePostQuantum refuses a handshake whose key exchange is not
	// the hybrid X25519MLKEM768 (a peer offering X25519 only) with
	// ErrNotPostQuantum. Without it such a session is accepted and
	// reports Info.PostQuantum false.
	RequirePostQuantum bool
}

// Config sets up an Endpoint.
type Config struct {
	Identity *identity.Identity
	Trust    Verifier
	Policy   Policy
	// Protocol is the ALPN value; empty means ALPNChat.
	Protocol string
	// HandshakeTimeout bounds each handshake; zero means the default.
	HandshakeTimeout time.Duration
	// MaxHalfOpen caps concurrent responder handshakes; zero means the
	// default. Within it, MaxHalfOpenPerPeer, MaxHalfOpenPerIP and
	// MaxHalfOpenRelayed apply.
	MaxHalfOpen int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// KeyLogWriter, if set, receives TLS secrets in NSS key log format.
	// For debugging with Wireshark only: it defeats the encryption.
	KeyLogWriter io.Writer
}

// Endpoint runs handshakes for one local identity. It is safe for
// concurrent use; it keeps the client's session tickets and the responder's
// ticket keys, so resumption works across streams.
type Endpoint struct {
	cfg      Config
	now      func() time.Time
	cert     tls.Certificate
	base     *tls.Config
	server   *tls.Config
	cache    *ticketCache
	halfOpen *halfOpen
	tickets  ticketKeys // the responder's ticket keys, rotated (resume.go)
}

// NewEndpoint checks the configuration and prepares TLS settings.
func NewEndpoint(cfg Config) (*Endpoint, error) {
	if cfg.Identity == nil || cfg.Trust == nil {
		return nil, errors.New("e2e: endpoint needs an identity and a trust store")
	}
	if cfg.Protocol == "" {
		cfg.Protocol = ALPNChat
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.MaxHalfOpen <= 0 {
		cfg.MaxHalfOpen = DefaultMaxHalfOpen
	}
	if cfg.Policy.MaxTicketAge == 0 {
		cfg.Policy.MaxTicketAge = DefaultMaxTicketAge
	}
	caps := halfOpenCaps{
		total:   cfg.MaxHalfOpen,
		perPeer: MaxHalfOpenPerPeer,
		perIP:   MaxHalfOpenPerIP,
		relayed: MaxHalfOpenRelayed,
	}
	e := &Endpoint{
		cfg:      cfg,
		now:      cfg.Now,
		cert:     cfg.Identity.TLSCertificate(),
		halfOpen: newHalfOpen(caps),
	}
	if e.now == nil {
		e.now = time.Now
	}
	e.cache = newTicketCache(clientCacheSize, cfg.Policy.MaxTicketAge, e.now)
	e.base = e.tlsConfig()
	e.server = e.base.Clone()
	// Request, and let VerifyConnection require: it refuses a missing
	// certificate with ErrNoCertificate, where crypto/tls's own check
	// (RequireAnyClientCert) fails with an error we could only match by
	// its text. VerifyConnection runs on every handshake, full or resumed,
	// with or without a client certificate.
	e.server.ClientAuth = tls.RequestClientCert
	e.server.WrapSession = e.wrapSession
	e.server.UnwrapSession = e.unwrapSession
	// Explicit ticket keys, rotated on the endpoint's clock (resume.go);
	// a new process has new keys.
	if err := e.rotateTicketKeys(e.now()); err != nil {
		return nil, err
	}
	return e, nil
}

// tlsConfig is the configuration both roles share (docs/PROTOCOL.md, "TLS
// configuration"). Certificates are verified by VerifyConnection, which
// crypto/tls calls after full and resumed handshakes alike.
func (e *Endpoint) tlsConfig() *tls.Config {
	c := &tls.Config{
		MinVersion:             tls.VersionTLS13,
		MaxVersion:             tls.VersionTLS13,
		CurvePreferences:       Groups,
		Certificates:           []tls.Certificate{e.cert},
		NextProtos:             []string{e.cfg.Protocol},
		InsecureSkipVerify:     true, // replaced by VerifyConnection below
		SessionTicketsDisabled: e.cfg.Policy.MaxTicketAge < 0,
		Time:                   e.now,
		KeyLogWriter:           e.cfg.KeyLogWriter,
	}
	if !c.SessionTicketsDisabled {
		c.ClientSessionCache = e.cache
	}
	return c
}

// Identity is the endpoint's local identity.
func (e *Endpoint) Identity() *identity.Identity { return e.cfg.Identity }

// Client runs the initiator's handshake on conn, whose transport
// authenticated remote, towards the peer the caller meant to reach.
func (e *Endpoint) Client(ctx context.Context, conn Conn, remote, expected peer.ID) (*Session, error) {
	cfg := e.base.Clone()
	v := &verification{e: e, remote: remote, expected: expected, client: true}
	cfg.VerifyConnection = v.verify
	nc := newNetConn(conn, e.cfg.Identity.PeerID(), expected)
	return e.handshake(ctx, tls.Client(nc, cfg), nc, v)
}

// Server runs the responder's handshake on conn, whose transport
// authenticated remote, from an unknown origin: it is ServerFrom with the
// zero Origin, so only the per-peer and global caps apply. A responder
// that accepts streams from a network uses ServerFrom.
func (e *Endpoint) Server(ctx context.Context, conn Conn, remote peer.ID) (*Session, error) {
	return e.ServerFrom(ctx, conn, remote, Origin{})
}

// ServerFrom runs the responder's handshake on conn, whose transport
// authenticated remote, arriving from the network origin from. It closes
// conn and refuses with ErrBusy when MaxHalfOpen handshakes are already
// running, or MaxHalfOpenPerPeer with remote, MaxHalfOpenPerIP from the
// origin's address, or MaxHalfOpenRelayed through relays (for a relayed
// origin).
func (e *Endpoint) ServerFrom(ctx context.Context, conn Conn, remote peer.ID, from Origin) (*Session, error) {
	release, err := e.halfOpen.acquire(remote, from)
	if err != nil {
		conn.Close()
		return nil, &HandshakeError{Peer: remote, Err: err}
	}
	defer release()
	cfg := e.server.Clone()
	v := &verification{e: e, remote: remote}
	cfg.VerifyConnection = v.verify
	nc := newNetConn(conn, e.cfg.Identity.PeerID(), remote)
	return e.handshake(ctx, tls.Server(nc, cfg), nc, v)
}

func (e *Endpoint) handshake(ctx context.Context, tc *tls.Conn, nc *netConn, v *verification) (*Session, error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.HandshakeTimeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	tc.NetConn().SetDeadline(deadline)
	nc.startHandshake()
	err := tc.HandshakeContext(ctx)
	if err == nil {
		sess := newSession(tc, nc, *v.verdict)
		if err = sess.confirm(v.client); err == nil {
			if err = nc.flush(); err == nil {
				tc.NetConn().SetDeadline(time.Time{})
				return sess, nil
			}
		}
	}
	nc.flush() // the alert crypto/tls wrote, if any
	tc.Close()
	return nil, v.fail(ctx, err)
}

// fail turns a handshake error into a HandshakeError with our sentinel.
//
// crypto/tls runs our checks (VerifyConnection) before it checks the
// peer's CertificateVerify, so a verdict is about a certificate whose key
// the peer has not yet proven it holds. Only a refusal by our checks
// carries it (theirs, returned as is); any later failure, a bad signature
// first, carries none, so nothing is decided on a certificate alone.
func (v *verification) fail(ctx context.Context, err error) error {
	he := &HandshakeError{Peer: v.remote}
	var ours *HandshakeError
	switch {
	case errors.As(err, &ours):
		return ours
	case ctx.Err() != nil || isTimeout(err):
		// The stream's deadline is the context's, and may fire first.
		he.Err = ErrHandshakeTimeout
	case errors.Is(err, ErrNotCertchat), errors.Is(err, ErrTruncated), errors.Is(err, ErrFrameTooLarge):
		he.Err = err // ours, from reading the ready frame
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		he.Err = fmt.Errorf("%w during the handshake", ErrTruncated)
	default:
		if c := classify(err, false); c != nil {
			he.Err = c
		} else {
			he.Err = fmt.Errorf("%w: %v", ErrTampered, err)
		}
	}
	return he
}
