package transfer_test

import (
	"crypto/sha256"
	"testing"

	"github.com/certchat/certchat/transfer"
)

// BenchmarkSealChunk and BenchmarkOpenChunk: the cost of the per-chunk
// check on each side, per 64 KiB chunk.
func BenchmarkSealChunk(b *testing.B) {
	o := &transfer.Offer{Size: 1 << 30}
	s, err := transfer.NewSealer(o)
	if err != nil {
		b.Fatal(err)
	}
	plain := make([]byte, transfer.ChunkSize)
	out := make([]byte, 0, transfer.ChunkSize+transfer.Overhead)
	b.SetBytes(transfer.ChunkSize)
	for i := 0; b.Loop(); i++ {
		if out, err = s.Seal(out[:0], i%o.Chunks(), plain); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenChunk(b *testing.B) {
	o := &transfer.Offer{Size: 1 << 30}
	s, err := transfer.NewSealer(o)
	if err != nil {
		b.Fatal(err)
	}
	sealed, err := s.Seal(nil, 7, make([]byte, transfer.ChunkSize))
	if err != nil {
		b.Fatal(err)
	}
	out := make([]byte, 0, transfer.ChunkSize)
	b.SetBytes(transfer.ChunkSize)
	for b.Loop() {
		if out, err = s.Open(out[:0], 7, sealed); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReceive: the receiver's whole disk path for a 64 MiB file:
// open each chunk, write it, hash it, fsync every SyncEvery chunks, check
// and place the file.
func BenchmarkReceive(b *testing.B) {
	path, _, o := sent(b, "bench.bin", 64<<20)
	cs := chunks(b, path, o)
	b.SetBytes(o.Size)
	for b.Loop() {
		downloads := b.TempDir()
		p, err := transfer.OpenPartial(downloads, o)
		if err != nil {
			b.Fatal(err)
		}
		for i, c := range cs {
			if err := p.Write(i, c); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := p.Finish(downloads); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHashChunk: the whole-file SHA-256, per 64 KiB chunk (on each
// side: the sender's offer and the receiver's check).
func BenchmarkHashChunk(b *testing.B) {
	h := sha256.New()
	plain := make([]byte, transfer.ChunkSize)
	b.SetBytes(transfer.ChunkSize)
	for b.Loop() {
		h.Write(plain)
	}
}
