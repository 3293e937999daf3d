package identity

import "errors"

// Sentinel errors that callers branch on. Messages are lowercase and say what
// the user can do.
var (
	// ErrNotEd25519 means a key or certificate uses another algorithm.
	ErrNotEd25519 = errors.New("not an Ed25519 key: certchat identities use Ed25519 only")
	// ErrPeerIDMismatch means a certificate names a peer ID its key does not derive.
	ErrPeerIDMismatch = errors.New("certificate's peer ID does not match its key")
	// ErrCACertificate means a certificate that may issue certificates
	// (basicConstraints CA:TRUE, or key usage keyCertSign or cRLSign) was
	// offered as a peer's identity: a CA is never a peer.
	ErrCACertificate = errors.New("a CA certificate is not a peer identity")

	// ErrNameConstraints refuses a CA root with name constraints, which
	// certchat does not support (CheckCA).
	ErrNameConstraints = errors.New("it has name constraints, which certchat does not support: a CA is trusted for every name or not at all (ask for a root without them)")
	// ErrNotMyKey means a certificate offered for import is for another key.
	ErrNotMyKey = errors.New("certificate is for a different key than this identity's")
	// ErrWrongPassphrase means the key file could not be opened with the passphrase.
	ErrWrongPassphrase = errors.New("wrong passphrase, or the key file is corrupted")
	// ErrCorrupt means a stored file is truncated or malformed.
	ErrCorrupt = errors.New("file is corrupted or truncated")
	// ErrNoIdentity means the home folder holds no identity yet.
	ErrNoIdentity = errors.New("no identity here yet: run `chat init`")
	// ErrIdentityExists means init would overwrite an identity.
	ErrIdentityExists = errors.New("an identity already exists here")
	// ErrPassphraseRequired means the key is encrypted and no passphrase was given.
	ErrPassphraseRequired = errors.New("the identity key is encrypted: give a passphrase (prompt, CERTCHAT_PASSPHRASE or --passphrase-file)")
	// ErrBadFingerprint means a typed fingerprint has a typo or wrong length.
	ErrBadFingerprint = errors.New("not a valid fingerprint")
	// ErrNotYetValid and ErrExpired report certificate validity dates.
	ErrNotYetValid = errors.New("certificate is not valid yet")
	ErrExpired     = errors.New("certificate has expired")
	// ErrUnknownContact means no contact has that peer ID or name.
	ErrUnknownContact = errors.New("no such contact")
	// ErrUnknownCA means no trusted CA has that name or fingerprint.
	ErrUnknownCA = errors.New("no CA you trust")
	// ErrNameTaken: another contact's label reads the same (NameKey).
	ErrNameTaken = errors.New("another contact has that name")
)
