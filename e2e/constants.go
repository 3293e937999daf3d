package e2e

import (
	"crypto/tls"
	"time"
)

// Protocol constants, in one place. docs/PROTOCOL.md explains each.
const (
	// ProtocolChat is the libp2p protocol ID of chat streams. The major
	// version changes only with an incompatible change of this protocol.
	ProtocolChat = "/certchat/chat/1.0.0"

	// ALPN binds the application protocol into the TLS handshake, so a
	// handshake made for one certchat protocol cannot be used for another.
	ALPNChat = "certchat-chat/1"

	// ExporterSessionID labels the RFC 8446 §7.5 exporter that names a
	// session (for logs and the /whois command; not a secret).
	ExporterSessionID = "EXPORTER-certchat session id v1"

	// DefaultHandshakeTimeout bounds a whole handshake.
	DefaultHandshakeTimeout = 10 * time.Second

	// DefaultMaxHalfOpen caps concurrent handshakes a responder runs.
	DefaultMaxHalfOpen = 64

	// MaxHalfOpenPerPeer caps the responder's concurrent handshakes with
	// one remote peer ID, MaxHalfOpenPerIP those from one IPv4 address or
	// IPv6 /64 (a relay's, for relayed streams), and MaxHalfOpenRelayed
	// all those that came through relays: one peer or one address cannot
	// take every place (Origin).
	MaxHalfOpenPerPeer = 4
	MaxHalfOpenPerIP   = 16
	MaxHalfOpenRelayed = 32

	// DefaultMaxTicketAge is how old a session ticket may be and still
	// resume. Older tickets give a full handshake.
	DefaultMaxTicketAge = 12 * time.Hour

	// TicketKeyRotation is how long a responder seals session tickets
	// under one key before it makes a new one. Each key is kept, to open
	// the tickets it sealed, for MaxTicketAge after its last use, then
	// dropped: with the defaults at most three keys are held, and a
	// ticket resumes across a rotation.
	TicketKeyRotation = 6 * time.Hour

	// clientCacheSize bounds the tickets a client remembers (one per peer).
	clientCacheSize = 512

	// maxKeptBuffer bounds the receive buffer a session keeps between
	// frames.
	maxKeptBuffer = 64 << 10

	// MaxFramePayload bounds a frame's payload, checked before allocating.
	MaxFramePayload = 256 << 10

	// MaxTextBytes bounds a text message's UTF-8 body.
	MaxTextBytes = 64 << 10

	// MaxCloseReason bounds the reason in a close frame.
	MaxCloseReason = 256

	// frameHeaderLen is type (1 byte) + payload length (4 bytes).
	frameHeaderLen = 5
)

// Groups are the TLS 1.3 key exchange groups, in preference order: the
// hybrid post-quantum X25519MLKEM768 first, X25519 as the fallback.
var Groups = []tls.CurveID{tls.X25519MLKEM768, tls.X25519}

// ticketExtraTag marks our record in tls.SessionState.Extra.
const ticketExtraTag = "certchat-ticket-v1:"
