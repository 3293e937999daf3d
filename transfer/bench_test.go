package transfer_test

import (
	"crypto/sha256"
	"os"
	"syscall"
	"testing"
	"time"

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
// and place the file; written past the page cache (Linux, direct) and
// through it (pagecache), interleaved with -count. cpu-ms/MiB is the
// process's CPU time (getrusage), steadier than wall time on a shared
// machine.
func BenchmarkReceive(b *testing.B) {
	path, _, o := sent(b, "bench.bin", 64<<20)
	cs := chunks(b, path, o)
	for _, direct := range []bool{true, false} {
		name := "direct"
		if !direct {
			name = "pagecache"
		}
		b.Run(name, func(b *testing.B) {
			transfer.SetDirectForTest(direct)
			defer transfer.SetDirectForTest(true)
			receive(b, o, cs)
		})
	}
}

func receive(b *testing.B, o *transfer.Offer, cs [][]byte) {
	b.SetBytes(o.Size)
	c0 := cpuTime()
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
		os.RemoveAll(downloads)
	}
	b.ReportMetric(float64((cpuTime()-c0).Microseconds())/1000/float64(b.N)/float64(o.Size>>20), "cpu-ms/MiB")
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

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
