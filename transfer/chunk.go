package transfer

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// Overhead is what sealing adds to a chunk: the AEAD tag.
const Overhead = 16

const (
	chunkLabel = "certchat file chunk v1"
	sumLabel   = "certchat file sum v1"
)

// SumSealed is the size of a sealed SHA-256 (SealSum).
const SumSealed = 32 + Overhead

// Sealer seals and opens one file's chunks: AES-256-GCM under a key
// derived from the offer's, the chunk's index as the nonce, and the
// file's ID, the index and the file's size as associated data, so that a
// chunk opens only as itself, at its place, in its file (PROTOCOL §15.2).
type Sealer struct {
	o    *Offer
	aead cipher.AEAD
}

// NewSealer derives the chunk key from the offer.
func NewSealer(o *Offer) (*Sealer, error) {
	key, err := hkdf.Key(sha256.New, o.Key[:], o.ID[:], chunkLabel, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{o: o, aead: aead}, nil
}

func (s *Sealer) nonceAD(i int) (nonce, ad []byte) {
	nonce = binary.BigEndian.AppendUint64(make([]byte, 4, 12), uint64(i))
	ad = append([]byte(chunkLabel), s.o.ID[:]...)
	ad = binary.BigEndian.AppendUint64(ad, uint64(i))
	ad = binary.BigEndian.AppendUint64(ad, uint64(s.o.Size))
	return nonce, ad
}

// Seal appends chunk i, sealed, to dst.
func (s *Sealer) Seal(dst []byte, i int, plain []byte) ([]byte, error) {
	if i < 0 || i >= s.o.Chunks() || len(plain) != s.o.ChunkLen(i) {
		return nil, fmt.Errorf("chunk %d of %d bytes does not belong to a file of %d bytes", i, len(plain), s.o.Size)
	}
	nonce, ad := s.nonceAD(i)
	return s.aead.Seal(dst, nonce, plain, ad), nil
}

// Open appends chunk i's plaintext to dst, or fails with ErrTampered.
func (s *Sealer) Open(dst []byte, i int, sealed []byte) ([]byte, error) {
	if i < 0 || i >= s.o.Chunks() {
		return nil, fmt.Errorf("%w: chunk %d of a file of %d", ErrMalformed, i, s.o.Chunks())
	}
	if len(sealed) != s.o.ChunkLen(i)+Overhead {
		return nil, fmt.Errorf("%w: chunk %d has %d bytes, not %d", ErrTampered, i, len(sealed), s.o.ChunkLen(i)+Overhead)
	}
	nonce, ad := s.nonceAD(i)
	out, err := s.aead.Open(dst, nonce, sealed, ad)
	if err != nil {
		return nil, fmt.Errorf("%w: chunk %d", ErrTampered, i)
	}
	return out, nil
}

// SealSum seals the file's SHA-256 for the end of a SumLater transfer:
// under the chunk key, with a nonce no chunk uses (its first four bytes
// are 1, a chunk's 0) and its own associated data, so that it opens only
// as this file's sum.
func (s *Sealer) SealSum(sum [32]byte) []byte {
	nonce, ad := s.sumNonceAD()
	return s.aead.Seal(nil, nonce, sum[:], ad)
}

// OpenSum opens what SealSum sealed, or fails with ErrTampered.
func (s *Sealer) OpenSum(sealed []byte) ([32]byte, error) {
	var sum [32]byte
	if len(sealed) != SumSealed {
		return sum, fmt.Errorf("%w: a sealed SHA-256 of %d bytes", ErrTampered, len(sealed))
	}
	nonce, ad := s.sumNonceAD()
	if _, err := s.aead.Open(sum[:0], nonce, sealed, ad); err != nil {
		return sum, fmt.Errorf("%w: the file's SHA-256", ErrTampered)
	}
	return sum, nil
}

func (s *Sealer) sumNonceAD() (nonce, ad []byte) {
	nonce = binary.BigEndian.AppendUint64([]byte{0, 0, 0, 1}, 0)
	ad = append([]byte(sumLabel), s.o.ID[:]...)
	ad = binary.BigEndian.AppendUint64(ad, uint64(s.o.Size))
	return nonce, ad
}
