package ratchet

import "time"

// Wire and state versions.
const (
	envelopeVersion = 1 // first byte of every envelope
	bundleVersion   = 1 // first byte of every prekey bundle
	seedVersion     = 1 // first byte of every seed offer
	stateVersion    = 1 // second byte of every serialized state blob

	envelopeInitial = 1 // envelope type: PQXDH initial (prekey) message
	envelopeNormal  = 2 // envelope type: normal ratchet message

	stateTagKeys = 'K' // first byte of a serialized LocalKeys
	stateTagSet  = 'S' // first byte of a serialized SessionSet
)

// Domain-separation labels. Every signature, KDF and associated-data string
// used by the package is listed here and nowhere else.
const (
	// ExporterLabel is the TLS 1.3 exporter label (RFC 8446 §7.5) used to
	// seed a session from a live channel. See ExporterContext.
	ExporterLabel = "EXPORTER-certchat ratchet v1"

	labelSignature   = "certchat ratchet v1 key signature\x00"
	labelPQXDH       = "certchat ratchet v1 PQXDH X25519 SHA-256 ML-KEM-768"
	labelSessionInit = "certchat ratchet v1 session init"
	labelSeed        = "certchat ratchet v1 tls seed"
	labelRoot        = "certchat ratchet v1 root"
	labelMessage     = "certchat ratchet v1 message key"
	labelAD          = "certchat ratchet v1 envelope\x00"
)

// Signature kinds: the byte after labelSignature.
const (
	kindIdentityDH    = 1
	kindSignedPrekey  = 2
	kindOneTimePrekey = 3
	kindLastResortKEM = 4
	kindOneTimeKEM    = 5
)

// Sizes in bytes.
const (
	keySize        = 32   // X25519 keys, chain/root/header/message keys
	sigSize        = 64   // Ed25519 signatures
	kemPublicSize  = 1184 // ML-KEM-768 encapsulation key
	kemCipherSize  = 1088 // ML-KEM-768 ciphertext
	kemSeedSize    = 64   // ML-KEM-768 decapsulation key seed
	sessionIDSize  = 16   // 8-byte big-endian Unix milliseconds || 8 random bytes
	exporterSize   = 32   // TLS exporter secret length
	headerSize     = keySize + 4 + 4
	xNonceSize     = 24 // XChaCha20-Poly1305 nonce
	tagSize        = 16 // Poly1305 tag
	encHeaderSize  = xNonceSize + headerSize + tagSize
	minPayloadSize = xNonceSize + tagSize // random nonce || AEAD(empty)
	maxPeerIDSize  = 256
	envelopePrefix = 1 + 1 + sessionIDSize

	// initialFixedSize is the initial part without the optional one-time
	// prekey id: IKdh, its signature, EK, SPK id, flags, KEM id, KEM ciphertext.
	initialFixedSize = keySize + sigSize + keySize + 4 + 1 + 4 + kemCipherSize
)

// Limits.
const (
	// MaxSkip is the largest number of message keys one envelope may make
	// the receiver skip (and store) in one receiving chain (Signal's MAX_SKIP).
	MaxSkip = 1000
	// MaxSkippedKeys caps the stored skipped message keys of one session;
	// the oldest are discarded first.
	MaxSkippedKeys = 2000
	// SkippedKeyMaxAge is how long a skipped message key is kept.
	SkippedKeyMaxAge = 7 * 24 * time.Hour
	// MaxRetiredChains is how many past receiving chains a session
	// remembers (header key and length) to classify late envelopes.
	MaxRetiredChains = 16
	// MaxSessionsPerPeer bounds a SessionSet: one active session plus
	// archived ones kept for receiving.
	MaxSessionsPerPeer = 5
	// ArchivedSessionMaxAge drops an archived session unused for that long.
	ArchivedSessionMaxAge = 30 * 24 * time.Hour
	// MaxClockSkew is how far in the future a peer's session id may be.
	MaxClockSkew = 24 * time.Hour

	// SignedPrekeyLifetime is when NeedsRotation starts reporting true.
	SignedPrekeyLifetime = 7 * 24 * time.Hour
	// PrekeyGracePeriod is how long a superseded signed prekey (and its
	// replay record) is kept to answer envelopes still in mailboxes.
	PrekeyGracePeriod = 30 * 24 * time.Hour
	// MaxSeenBaseKeys caps the replay record of one signed prekey; when it
	// is full, first contacts on that prekey are refused until rotation.
	MaxSeenBaseKeys = 10000
	// MaxOneTimePrekeys caps each pool of one-time prekeys (X25519, ML-KEM).
	MaxOneTimePrekeys = 500
	// maxSignedPrekeys caps stored signed prekeys (current + superseded).
	maxSignedPrekeys = 16

	// SendLease is how many message numbers of its sending chain a session
	// persists ahead at most (docs/PROTOCOL.md §12.12.1): the encoding of
	// a set holds the sending chain up to SendLease numbers past the seal
	// that took the lease, so up to SendLease-1 seals after it change
	// nothing that is persisted. Leases grow 1, 2, 4 … SendLease from a
	// session's creation or restore. A restart resumes at the lease point,
	// leaving the peer a gap of at most SendLease-1 keys (well below
	// MaxSkip), and of at most about twice the seals since the restart
	// before.
	SendLease = 64
	// SendLeaseMaxAge is how long a lease lasts at most: a seal past it
	// takes a new one (to be committed), so a session's persisted last-use
	// time is never older than this behind its last seal.
	SendLeaseMaxAge = time.Hour

	// MaxPlaintextSize is the largest plaintext Seal accepts.
	MaxPlaintextSize = 1 << 20
	// MaxEnvelopeSize is the largest envelope Open parses.
	MaxEnvelopeSize = envelopePrefix + initialFixedSize + 4 + encHeaderSize + minPayloadSize + MaxPlaintextSize
)
