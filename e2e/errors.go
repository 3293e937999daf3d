package e2e

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Errors callers branch on. Each failure of the handshake or the channel
// maps to exactly one of them; see docs/PROTOCOL.md, "Failures".
var (
	// The peer's certificate and identity.
	ErrNoCertificate  = errors.New("the peer sent no certificate")
	ErrNotEd25519     = identity.ErrNotEd25519
	ErrCACertificate  = identity.ErrCACertificate
	ErrPeerIDBinding  = errors.New("the peer's certificate does not bind its own peer id")
	ErrWrongPeer      = errors.New("the certificate belongs to a different peer than the connection")
	ErrNotDialedPeer  = errors.New("reached a different peer than the one dialed")
	ErrSelfConnection = errors.New("the peer presented our own certificate (a self-connection or a reflection)")
	ErrExpired        = identity.ErrExpired
	ErrNotYetValid    = identity.ErrNotYetValid
	ErrUntrusted      = errors.New("the peer's key is rejected in your contacts")
	ErrUnknownPeer    = errors.New("the peer is not in your contacts")
	ErrKeyChanged     = errors.New("KEY CHANGED: this peer claims a known name with a different key")

	// The handshake and the channel.
	ErrRejected         = errors.New("the peer refused our certificate (it may not trust us yet)")
	ErrTampered         = errors.New("data on the connection was corrupted or tampered with")
	ErrNotCertchat      = errors.New("the peer does not speak the certchat protocol")
	ErrTruncated        = errors.New("the connection ended without a proper close")
	ErrHandshakeTimeout = errors.New("the handshake timed out")
	ErrBusy             = errors.New("too many handshakes in progress; try again shortly")
	ErrNotPostQuantum   = errors.New("the peer offered no post-quantum key exchange (X25519MLKEM768), which your settings require")

	// Frames.
	ErrFrameTooLarge = errors.New("frame larger than the protocol allows")
	ErrMalformed     = errors.New("malformed frame")
	ErrUnknownFrame  = errors.New("unknown critical frame type")
	ErrClosed        = errors.New("session closed")
)

// HandshakeError is a failed handshake: which peer, which check, and, when
// one of our checks refused the certificate after evaluating it, the
// verdict (the UI shows a changed key's new fingerprint from it). A
// handshake that failed after our checks passed (a bad CertificateVerify,
// tampering, a timeout) carries no verdict.
type HandshakeError struct {
	Peer    peer.ID
	Verdict *identity.Verdict
	Err     error
}

func (e *HandshakeError) Error() string {
	if e.Peer == "" {
		return "handshake: " + e.Err.Error()
	}
	return fmt.Sprintf("handshake with %s: %s", identity.ShortID(e.Peer), e.Err)
}

func (e *HandshakeError) Unwrap() error { return e.Err }

// TLS alert codes (RFC 8446 §6) we classify.
const (
	alertCloseNotify       = 0
	alertUnexpectedMessage = 10
	alertBadRecordMAC      = 20
	alertRecordOverflow    = 22
	alertHandshakeFailure  = 40
	alertBadCertificate    = 42
	alertUnsupportedCert   = 43
	alertCertificateRevokd = 44
	alertCertificateExpird = 45
	alertCertificateUnknwn = 46
	alertIllegalParameter  = 47
	alertUnknownCA         = 48
	alertAccessDenied      = 49
	alertDecodeError       = 50
	alertDecryptError      = 51
	alertProtocolVersion   = 70
	alertInsufficientSec   = 71
	alertNoAppProtocol     = 120
	alertCertificateReq    = 116
)

// isTimeout recognises a deadline error: os.ErrDeadlineExceeded from a
// net.Conn, or a transport's own (a yamux stream's "i/o deadline reached")
// that says so through net.Error.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// alertOf finds the TLS alert in an error from crypto/tls: one the peer
// sent (remote) or one we sent (local).
func alertOf(err error) (code uint8, remote, ok bool) {
	var ae tls.AlertError
	if errors.As(err, &ae) {
		return uint8(ae), true, true
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || (oe.Op != "local error" && oe.Op != "remote error") {
		return 0, false, false
	}
	msg := oe.Err.Error()
	for c := 0; c < 256; c++ {
		if tls.AlertError(c).Error() == msg {
			return uint8(c), oe.Op == "remote error", true
		}
	}
	return 0, false, false
}

// classify maps an error from crypto/tls to our sentinel errors. During
// the handshake a version or application protocol mismatch means the peer
// does not speak certchat; once the handshake is done the peer has shown
// that it does, and the same alerts mean damaged data (crypto/tls answers
// a record with a bad header with protocol_version).
func classify(err error, handshakeDone bool) error {
	var rh tls.RecordHeaderError
	if errors.As(err, &rh) {
		// Not an alert, but a record whose header makes no sense.
		if !handshakeDone && (rh.Conn != nil || rh.RecordHeader[0] == 0x80) {
			// The peer's first record is not TLS (crypto/tls sets Conn
			// so that a server can answer HTTP), or is SSLv2.
			return ErrNotCertchat
		}
		return ErrTampered
	}
	code, remote, ok := alertOf(err)
	if !ok {
		return nil
	}
	switch code {
	case alertBadCertificate, alertUnsupportedCert, alertCertificateRevokd, alertCertificateExpird,
		alertCertificateUnknwn, alertUnknownCA, alertAccessDenied, alertCertificateReq:
		if remote {
			return ErrRejected
		}
	case alertProtocolVersion, alertNoAppProtocol, alertInsufficientSec:
		if handshakeDone {
			return ErrTampered
		}
		return ErrNotCertchat
	case alertBadRecordMAC, alertDecryptError, alertDecodeError, alertIllegalParameter,
		alertUnexpectedMessage, alertHandshakeFailure, alertRecordOverflow:
		return ErrTampered
	}
	return nil
}
