package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// Private key files.
//
// Unencrypted keys (only when the user opts out explicitly) are standard
// PKCS#8 "PRIVATE KEY" PEM, readable by openssl. Encrypted keys are PEM
// blocks of type "CERTCHAT ENCRYPTED PRIVATE KEY" whose bytes are
//
//	version    1 byte   = 1
//	kdf        1 byte   = 1 (Argon2id, RFC 9106)
//	time       4 bytes  big-endian Argon2id passes
//	memory     4 bytes  big-endian Argon2id memory in KiB
//	threads    1 byte   Argon2id parallelism
//	salt       16 bytes random
//	nonce      24 bytes random
//	ciphertext XChaCha20-Poly1305(key, nonce, PKCS#8 DER, ad = all bytes above)
//
// key = Argon2id(passphrase, salt, time, memory, threads, 32). The header is
// authenticated, so changing a parameter is detected like a wrong passphrase.
const (
	pemEncryptedKey = "CERTCHAT ENCRYPTED PRIVATE KEY"
	pemPlainKey     = "PRIVATE KEY"

	keyFileVersion = 1
	kdfArgon2id    = 1
	keyHeaderLen   = 1 + 1 + 4 + 4 + 1 + 16 + chacha20poly1305.NonceSizeX
	maxKeyFile     = 64 << 10
)

// KDFParams are Argon2id parameters.
type KDFParams struct {
	Time    uint32
	Memory  uint32 // KiB
	Threads uint8
}

// DefaultKDF is RFC 9106's second recommended option (64 MiB, 3 passes, 4 lanes).
var DefaultKDF = KDFParams{Time: 3, Memory: 64 << 10, Threads: 4}

// Bounds on parameters read from a file, so that a crafted file cannot make
// us allocate without limit or spin for hours.
const (
	maxKDFMemory = 1 << 20 // 1 GiB in KiB
	maxKDFTime   = 64
)

// plausible reports whether the parameters are within the bounds above.
func (p KDFParams) plausible() bool {
	return p.Time != 0 && p.Time <= maxKDFTime && p.Threads != 0 && p.Memory >= 8*uint32(p.Threads) && p.Memory <= maxKDFMemory
}

// PassphraseFunc supplies a passphrase when one is needed. It is called at
// most once per key file.
type PassphraseFunc func() ([]byte, error)

// EncodePrivateKey writes key as PEM: encrypted under passphrase with
// params, or plain PKCS#8 when passphrase is nil.
func EncodePrivateKey(key ed25519.PrivateKey, passphrase []byte, params KDFParams) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	if passphrase == nil {
		return pem.EncodeToMemory(&pem.Block{Type: pemPlainKey, Bytes: der}), nil
	}
	if len(passphrase) == 0 {
		return nil, errors.New("passphrase is empty: choose one, or opt out of encryption explicitly")
	}
	// Parameters the decoder would refuse make a key file nobody can open
	// (and zero time or threads make Argon2id panic).
	if !params.plausible() {
		return nil, fmt.Errorf("key derivation parameters %+v are out of bounds", params)
	}
	hdr := make([]byte, keyHeaderLen)
	hdr[0], hdr[1] = keyFileVersion, kdfArgon2id
	binary.BigEndian.PutUint32(hdr[2:], params.Time)
	binary.BigEndian.PutUint32(hdr[6:], params.Memory)
	hdr[10] = params.Threads
	if _, err := rand.Read(hdr[11:]); err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(argon2.IDKey(passphrase, hdr[11:27], params.Time, params.Memory, params.Threads, 32))
	if err != nil {
		return nil, err
	}
	out := aead.Seal(bytes.Clone(hdr), hdr[27:], der, hdr)
	return pem.EncodeToMemory(&pem.Block{Type: pemEncryptedKey, Bytes: out}), nil
}

// IsEncryptedKey reports whether a PEM key file is passphrase-protected.
func IsEncryptedKey(data []byte) bool {
	block, _ := pem.Decode(data)
	return block != nil && block.Type == pemEncryptedKey
}

// DecodePrivateKey reads a key file written by EncodePrivateKey. It asks
// for the passphrase only if the key is encrypted.
func DecodePrivateKey(data []byte, passphrase PassphraseFunc) (ed25519.PrivateKey, error) {
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("%w: key file too large", ErrCorrupt)
	}
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM key found", ErrCorrupt)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: data after the key", ErrCorrupt)
	}
	der := block.Bytes
	switch block.Type {
	case pemPlainKey:
	case pemEncryptedKey:
		var err error
		if der, err = decryptKeyBlock(block.Bytes, passphrase); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%w: unexpected PEM block %q", ErrCorrupt, block.Type)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, ErrNotEd25519
	}
	return key, nil
}

func decryptKeyBlock(b []byte, passphrase PassphraseFunc) ([]byte, error) {
	if len(b) < keyHeaderLen+chacha20poly1305.Overhead {
		return nil, fmt.Errorf("%w: encrypted key is truncated", ErrCorrupt)
	}
	if b[0] != keyFileVersion || b[1] != kdfArgon2id {
		return nil, fmt.Errorf("%w: unknown key file version %d/%d", ErrCorrupt, b[0], b[1])
	}
	p := KDFParams{
		Time:    binary.BigEndian.Uint32(b[2:]),
		Memory:  binary.BigEndian.Uint32(b[6:]),
		Threads: b[10],
	}
	if !p.plausible() {
		return nil, fmt.Errorf("%w: implausible key derivation parameters", ErrCorrupt)
	}
	if passphrase == nil {
		return nil, ErrPassphraseRequired
	}
	pass, err := passphrase()
	if err != nil {
		return nil, err
	}
	if len(pass) == 0 {
		return nil, ErrPassphraseRequired
	}
	hdr := b[:keyHeaderLen]
	aead, err := chacha20poly1305.NewX(argon2.IDKey(pass, hdr[11:27], p.Time, p.Memory, p.Threads, 32))
	if err != nil {
		return nil, err
	}
	der, err := aead.Open(nil, hdr[27:], b[keyHeaderLen:], hdr)
	if err != nil {
		return nil, ErrWrongPassphrase
	}
	return der, nil
}
