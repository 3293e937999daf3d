package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"strings"
)

// Fingerprint identifies an identity key for people to compare: SHA-256 of
// the key's DER SubjectPublicKeyInfo, the usual public-key pin, so that
//
//	openssl pkey -pubin -outform DER | sha256sum
//
// over the same key gives the same 32 bytes.
//
// Its text form follows syncthing's device IDs: the 32 bytes in base32
// (RFC 4648, no padding, 52 characters) are cut into four groups of 13, each
// followed by a Luhn mod 32 check character, and the 56 characters are shown
// in eight groups of seven joined by dashes:
//
//	MFRGGZD-ZMFRGGZ-DMFRGGZ-DMFRGGA-ZDMFRGG-ZDMFRGG-ZDMFRGG-ZDMFRGQ
//
// Parsing is case-insensitive, ignores spaces and dashes, reads 0, 1 and 8
// as O, I and B, and rejects a typo in any group by its check character.
type Fingerprint [32]byte

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

const luhnAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

// FingerprintOf computes the fingerprint of an Ed25519 public key.
func FingerprintOf(pub ed25519.PublicKey) Fingerprint {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		// Only reachable with a key of the wrong length: a programming error.
		panic("identity: fingerprint of invalid key: " + err.Error())
	}
	return sha256.Sum256(der)
}

// String is the full 63-character form with check characters.
func (f Fingerprint) String() string {
	s := b32.EncodeToString(f[:])
	var withCheck strings.Builder
	for i := 0; i < 4; i++ {
		g := s[i*13 : (i+1)*13]
		withCheck.WriteString(g)
		withCheck.WriteByte(luhn32(g))
	}
	c := withCheck.String()
	groups := make([]string, 0, 8)
	for i := 0; i < len(c); i += 7 {
		groups = append(groups, c[i:i+7])
	}
	return strings.Join(groups, "-")
}

// Short is the first two groups, for status bars and lists. It identifies
// a key well enough to spot a change, not to verify one.
func (f Fingerprint) Short() string { return f.String()[:15] }

// Equal compares in constant time.
func (f Fingerprint) Equal(g Fingerprint) bool { return subtle.ConstantTimeCompare(f[:], g[:]) == 1 }

// ParseFingerprint reads the text form, checking every check character.
func ParseFingerprint(s string) (Fingerprint, error) {
	var f Fingerprint
	// ASCII only: strings.ToUpper would also turn "ı" into I and "ſ" into S.
	s = strings.Map(func(r rune) rune {
		if 'a' <= r && r <= 'z' {
			return r - 'a' + 'A'
		}
		return r
	}, s)
	s = strings.NewReplacer("-", "", " ", "", "0", "O", "1", "I", "8", "B").Replace(s)
	if len(s) != 56 {
		return f, fmt.Errorf("%w: want 56 characters without dashes, got %d", ErrBadFingerprint, len(s))
	}
	var data strings.Builder
	for i := 0; i < 4; i++ {
		g := s[i*14 : i*14+13]
		for j := 0; j < len(g); j++ {
			if strings.IndexByte(luhnAlphabet, g[j]) < 0 {
				return f, fmt.Errorf("%w: %q is not a base32 character", ErrBadFingerprint, g[j])
			}
		}
		if luhn32(g) != s[i*14+13] {
			return f, fmt.Errorf("%w: typo in characters %d to %d", ErrBadFingerprint, i*14+1, i*14+14)
		}
		data.WriteString(g)
	}
	// The last character carries four unused bits; they must be zero, or
	// several strings (each with valid check characters) would name one key.
	raw, err := b32.DecodeString(data.String())
	if err != nil || len(raw) != 32 || b32.EncodeToString(raw) != data.String() {
		return f, fmt.Errorf("%w: bad base32", ErrBadFingerprint)
	}
	copy(f[:], raw)
	return f, nil
}

// luhn32 is the Luhn mod N check character for N = 32 over the base32
// alphabet: from the rightmost character leftwards, code points are
// multiplied alternately by 2 and 1, each product's base-32 digits summed.
func luhn32(s string) byte {
	const n = 32
	factor, sum := 2, 0
	for i := len(s) - 1; i >= 0; i-- {
		addend := factor * strings.IndexByte(luhnAlphabet, s[i])
		sum += addend/n + addend%n
		factor = 3 - factor
	}
	return luhnAlphabet[(n-sum%n)%n]
}

// Safety numbers.
//
// A safety number lets two people check, by reading digits aloud or
// scanning a code, that each holds the other's real key. Every digit
// depends on both keys, so comparing any group proves something about this
// pair (with per-key halves, as Signal's numeric fingerprints have, half
// of every number a person shows is the same in all their chats, and
// comparing it proves nothing about the other side).
//
// The two Ed25519 keys are ordered bytewise (lo, hi), so both people get
// the same number. h = SHA-512(safetyLabel || lo || peerID(lo) || hi ||
// peerID(hi)), then 5200 times h = SHA-512(h || lo || hi), which makes a
// search for a key pair with a chosen number 5200 times as costly. The
// first 60 bytes of h, as twelve 5-byte big-endian integers each mod
// 100000, give twelve groups of five digits.
const (
	safetyIterations = 5200
	safetyLabel      = "certchat safety number v2\x00"
)

// SafetyNumber is the pairwise number for two keys, as 12 groups of 5 digits.
func SafetyNumber(a, b ed25519.PublicKey) (string, error) {
	ida, err := PeerIDFromKey(a)
	if err != nil {
		return "", err
	}
	idb, err := PeerIDFromKey(b)
	if err != nil {
		return "", err
	}
	if bytes.Compare(a, b) > 0 {
		a, b, ida, idb = b, a, idb, ida
	}
	h := sha512.New()
	h.Write([]byte(safetyLabel))
	h.Write(a)
	h.Write([]byte(ida))
	h.Write(b)
	h.Write([]byte(idb))
	sum := h.Sum(nil)
	for i := 0; i < safetyIterations; i++ {
		h.Reset()
		h.Write(sum)
		h.Write(a)
		h.Write(b)
		sum = h.Sum(sum[:0])
	}
	groups := make([]string, 0, 12)
	for i := 0; i < 60; i += 5 {
		var chunk [8]byte
		copy(chunk[3:], sum[i:i+5])
		groups = append(groups, fmt.Sprintf("%05d", binary.BigEndian.Uint64(chunk[:])%100000))
	}
	return strings.Join(groups, " "), nil
}
