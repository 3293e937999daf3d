package transfer

import (
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"os"
	"sync"
)

// Source is the sender's side: the offered file, read and sealed chunk
// by chunk.
type Source struct {
	o    *Offer
	seal *Sealer
	f    *os.File
	buf  []byte
	sum  *FileSum // fed with the chunks read in order, if set
}

// OpenSource opens the file at path for offer o. A file whose size
// changed since the offer is refused; a change that keeps the size fails
// the receiver's SHA-256 check.
func OpenSource(path string, o *Offer) (*Source, error) {
	seal, err := NewSealer(o)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err == nil && st.Size() != o.Size {
		err = fmt.Errorf("%s changed since it was offered: %d bytes, not %d", path, st.Size(), o.Size)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Source{o: o, seal: seal, f: f, buf: make([]byte, ChunkSize)}, nil
}

// Chunk appends chunk i, read and sealed, to dst.
func (s *Source) Chunk(dst []byte, i int) ([]byte, error) {
	if i < 0 || i >= s.o.Chunks() {
		return nil, fmt.Errorf("chunk %d of a file of %d chunks", i, s.o.Chunks())
	}
	b := s.buf[:s.o.ChunkLen(i)]
	if n, err := s.f.ReadAt(b, int64(i)*ChunkSize); n < len(b) {
		if err == io.EOF {
			err = fmt.Errorf("it shrank since it was offered")
		}
		return nil, fmt.Errorf("read the file being sent: %w", err)
	}
	if s.sum != nil {
		s.sum.feed(i, b)
	}
	return s.seal.Seal(dst, i, b)
}

// SealSum seals sum for the end of the chunks (Sealer.SealSum).
func (s *Source) SealSum(sum [32]byte) []byte { return s.seal.SealSum(sum) }

// SumWith makes the source feed fs with the chunks it reads, when they
// come in order: a SumLater offer's SHA-256 is computed from the very
// bytes sent, without a pass of its own.
func (s *Source) SumWith(fs *FileSum) { s.sum = fs }

// Sum is the file's SHA-256: what its FileSum was fed, and the rest of
// the file read now (after a resume, or chunks asked out of order).
func (s *Source) Sum() ([32]byte, error) {
	fs := s.sum
	if fs == nil {
		fs = NewFileSum()
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for fs.next < s.o.Chunks() {
		b := s.buf[:s.o.ChunkLen(fs.next)]
		if n, err := s.f.ReadAt(b, int64(fs.next)*ChunkSize); n < len(b) {
			if err == io.EOF {
				err = fmt.Errorf("it shrank since it was offered")
			}
			return [32]byte{}, fmt.Errorf("read the file being sent: %w", err)
		}
		fs.h.Write(b)
		fs.next++
	}
	var sum [32]byte
	fs.h.Sum(sum[:0])
	return sum, nil
}

// FileSum is the SHA-256 of a file being sent, fed by its Sources with
// the chunks they read, in order; safe for concurrent use (two streams
// of one transfer may run at once).
type FileSum struct {
	mu   sync.Mutex
	h    hash.Hash
	next int // chunks hashed
}

// NewFileSum starts a file's SHA-256.
func NewFileSum() *FileSum { return &FileSum{h: sha256.New()} }

func (fs *FileSum) feed(i int, plain []byte) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if i == fs.next {
		fs.h.Write(plain)
		fs.next++
	}
}

// Close closes the file.
func (s *Source) Close() error { return s.f.Close() }
