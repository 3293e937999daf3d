package transfer

import (
	"fmt"
	"io"
	"os"
)

// Source is the sender's side: the offered file, read and sealed chunk
// by chunk.
type Source struct {
	o    *Offer
	seal *Sealer
	f    *os.File
	buf  []byte
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
	return s.seal.Seal(dst, i, b)
}

// Close closes the file.
func (s *Source) Close() error { return s.f.Close() }
