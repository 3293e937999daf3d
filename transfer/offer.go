package transfer

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"unicode/utf8"
)

// Sizes of a transfer.
const (
	// ChunkSize is the size of every chunk but the last: small enough
	// that a chunk and its frame fit the channel's frames (PROTOCOL §7),
	// large enough that per-chunk costs vanish.
	ChunkSize = 64 << 10
	// MaxFileSize is the largest file offered or accepted (1 TiB).
	MaxFileSize = 1 << 40
	// MaxOfferName bounds the name an offer carries, in bytes.
	MaxOfferName = 1024
	offerV1      = 1 // the offer carries the file's SHA-256
	offerV2      = 2 // the SHA-256 comes sealed at the end of the chunks
)

// ID names one transfer.
type ID [16]byte

// String is the ID in hex, as the daemon and the window show it.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// ParseID reads an ID written by String.
func ParseID(s string) (ID, error) {
	var id ID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("%w: transfer id %q", ErrMalformed, s)
	}
	copy(id[:], b)
	return id, nil
}

// Offer announces a file: it travels inside the Double Ratchet, so its
// key reaches only the recipient, and everything the receiver checks
// comes from it.
type Offer struct {
	ID     ID
	Name   string   // the sender's name for the file: CleanName before use
	Size   int64    // bytes
	SHA256 [32]byte // of the whole file; zero while SumLater
	Key    [32]byte // seals the chunks (never logged, never shown)
	// SumLater: the offer does not carry the SHA-256 (version 2); the
	// sender computes it while it reads the file for sending and seals
	// it into the end of the chunks (Sealer.SealSum), and the receiver
	// checks the file against that before it is done.
	SumLater bool
}

// NewOffer reads the file at path once, for its size and SHA-256, and
// makes an offer with a fresh ID and key.
func NewOffer(path string) (*Offer, error) {
	f, o, err := openOffered(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	n, err := io.CopyBuffer(h, struct{ io.Reader }{f}, buf)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	o.Size = n
	h.Sum(o.SHA256[:0])
	return o, nil
}

// NewOfferSumLater makes an offer of the file at path without reading
// it: its SHA-256 is computed while it is sent, and travels sealed at
// the end of the chunks (SumLater). A large file then starts at once,
// and is read once instead of twice.
func NewOfferSumLater(path string) (*Offer, error) {
	f, o, err := openOffered(path)
	if err != nil {
		return nil, err
	}
	o.SumLater = true
	return o, f.Close()
}

// openOffered opens a file to offer and makes its offer: the name, the
// size it has now, a fresh ID and key.
func openOffered(path string) (*os.File, *Offer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	switch {
	case err != nil:
	case !st.Mode().IsRegular():
		err = fmt.Errorf("%s is not a regular file", path)
	case st.Size() > MaxFileSize:
		err = fmt.Errorf("%w: %s is %d bytes (at most %d)", ErrTooLarge, path, st.Size(), int64(MaxFileSize))
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	o := &Offer{Name: st.Name(), Size: st.Size()}
	if _, err := rand.Read(o.ID[:]); err != nil {
		f.Close()
		return nil, nil, err
	}
	if _, err := rand.Read(o.Key[:]); err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, o, nil
}

// WithSum is the offer with its SHA-256 known: what either side keeps
// of a SumLater offer once the sum is computed or has arrived.
func (o *Offer) WithSum(sum [32]byte) *Offer {
	n := *o
	n.SHA256, n.SumLater = sum, false
	return &n
}

// Fresh is another offer of the same file (name, size, SHA-256) with a
// new ID and key: to offer one file to several recipients without
// reading it again, each transfer apart.
// A SumLater offer stays one: each transfer's sum is computed as it is
// sent.
func (o *Offer) Fresh() (*Offer, error) {
	n := *o
	if _, err := rand.Read(n.ID[:]); err != nil {
		return nil, err
	}
	if _, err := rand.Read(n.Key[:]); err != nil {
		return nil, err
	}
	return &n, nil
}

// Chunks is how many chunks the file has; an empty file has none.
func (o *Offer) Chunks() int { return int((o.Size + ChunkSize - 1) / ChunkSize) }

// ChunkLen is the plaintext length of chunk i.
func (o *Offer) ChunkLen(i int) int {
	if i == o.Chunks()-1 {
		return int(o.Size - int64(i)*ChunkSize)
	}
	return ChunkSize
}

// Marshal encodes the offer (PROTOCOL §15.1): version 1 with the
// SHA-256, version 2 (SumLater) without.
func (o *Offer) Marshal() []byte {
	b := []byte{offerV1}
	if o.SumLater {
		b[0] = offerV2
	}
	b = append(b, o.ID[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(o.Size))
	if !o.SumLater {
		b = append(b, o.SHA256[:]...)
	}
	b = append(b, o.Key[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(o.Name)))
	return append(b, o.Name...)
}

// ParseOffer reads an offer from untrusted bytes.
func ParseOffer(b []byte) (*Offer, error) {
	if len(b) < 1 || b[0] != offerV1 && b[0] != offerV2 {
		return nil, fmt.Errorf("%w: not an offer of a version this reads", ErrMalformed)
	}
	o := &Offer{SumLater: b[0] == offerV2}
	fixed := 1 + 16 + 8 + 32 + 32 + 2
	if o.SumLater {
		fixed -= 32
	}
	if len(b) < fixed {
		return nil, fmt.Errorf("%w: an offer of %d bytes", ErrMalformed, len(b))
	}
	copy(o.ID[:], b[1:17])
	size := binary.BigEndian.Uint64(b[17:25])
	at := 25
	if !o.SumLater {
		at += copy(o.SHA256[:], b[at:])
	}
	at += copy(o.Key[:], b[at:])
	n := int(binary.BigEndian.Uint16(b[at:]))
	if size > MaxFileSize {
		return nil, fmt.Errorf("%w: %d bytes offered", ErrTooLarge, size)
	}
	if n > MaxOfferName || len(b) != fixed+n {
		return nil, fmt.Errorf("%w: the offer's name", ErrMalformed)
	}
	o.Size = int64(size)
	o.Name = string(b[fixed:])
	if !utf8.ValidString(o.Name) {
		return nil, fmt.Errorf("%w: the offer's name is not UTF-8", ErrMalformed)
	}
	return o, nil
}
