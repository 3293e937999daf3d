package transfer_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/certchat/certchat/transfer"
)

// sent writes a file of size random bytes and offers it.
func sent(t testing.TB, name string, size int) (string, []byte, *transfer.Offer) {
	t.Helper()
	data := make([]byte, size)
	rand.Read(data)
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o755); err != nil {
		t.Fatal(err)
	}
	o, err := transfer.NewOffer(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, data, o
}

// chunks seals every chunk of the file at path.
func chunks(t testing.TB, path string, o *transfer.Offer) [][]byte {
	t.Helper()
	src, err := transfer.OpenSource(path, o)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var out [][]byte
	for i := range o.Chunks() {
		c, err := src.Chunk(nil, i)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

func TestTransferOutOfOrder(t *testing.T) {
	path, data, o := sent(t, "report.pdf", 5*transfer.ChunkSize+123)
	cs := chunks(t, path, o)
	downloads := t.TempDir()
	p, err := transfer.OpenPartial(downloads, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{3, 0, 5, 1, 4, 2, 2} {
		if err := p.Write(i, cs[i]); err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
	}
	got, err := p.Finish(downloads)
	if err != nil {
		t.Fatal(err)
	}
	if got != filepath.Join(downloads, "report.pdf") {
		t.Errorf("placed at %s", got)
	}
	checkFile(t, got, data)
	if left, _ := os.ReadDir(filepath.Join(downloads, transfer.PartialDir)); len(left) != 0 {
		t.Errorf("the partial folder still holds %d files", len(left))
	}
}

// checkFile checks content and that the file is private and not
// executable, whatever the sender's mode.
// finishMissing writes every chunk p still misses from cs, places the
// file and checks it holds data; it returns where the file was placed.
func finishMissing(t *testing.T, p *transfer.Partial, cs [][]byte, downloads string, data []byte) string {
	t.Helper()
	for _, r := range p.Missing() {
		for i := r[0]; i < r[1]; i++ {
			if err := p.Write(i, cs[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	got, err := p.Finish(downloads)
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, got, data)
	return got
}

func checkFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from what was sent", path)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", path, st.Mode().Perm())
	}
}

func TestNeverOverwrites(t *testing.T) {
	downloads := t.TempDir()
	for _, name := range []string{"notes.txt", "notes (2).txt"} {
		if err := os.WriteFile(filepath.Join(downloads, name), []byte("mine"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path, data, o := sent(t, "../notes.txt", 100)
	o.Name = "../notes.txt"
	p, err := transfer.OpenPartial(downloads, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Write(0, chunks(t, path, o)[0]); err != nil {
		t.Fatal(err)
	}
	got, err := p.Finish(downloads)
	if err != nil {
		t.Fatal(err)
	}
	if got != filepath.Join(downloads, "notes (3).txt") {
		t.Errorf("placed at %s, want notes (3).txt", got)
	}
	checkFile(t, got, data)
	for _, name := range []string{"notes.txt", "notes (2).txt"} {
		if b, _ := os.ReadFile(filepath.Join(downloads, name)); string(b) != "mine" {
			t.Errorf("%s was overwritten", name)
		}
	}
}

func TestTamperedChunk(t *testing.T) {
	path, data, o := sent(t, "a.bin", 3*transfer.ChunkSize)
	cs := chunks(t, path, o)
	_, _, other := sent(t, "b.bin", 3*transfer.ChunkSize)
	p, err := transfer.OpenPartial(t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	flipped := slices.Clone(cs[1])
	flipped[100] ^= 1
	for _, tc := range []struct {
		name  string
		i     int
		chunk []byte
	}{
		{"a flipped byte", 1, flipped},
		{"a chunk at another place", 1, cs[2]},
		{"a cut chunk", 1, cs[1][:len(cs[1])-1]},
		{"a chunk of another file", 1, func() []byte {
			s, _ := transfer.NewSealer(other)
			c, _ := s.Seal(nil, 1, data[transfer.ChunkSize:2*transfer.ChunkSize])
			return c
		}()},
	} {
		if err := p.Write(tc.i, tc.chunk); !errors.Is(err, transfer.ErrTampered) {
			t.Errorf("%s: %v, want ErrTampered", tc.name, err)
		}
		if p.Has(tc.i) {
			t.Fatalf("%s: written as good", tc.name)
		}
	}
	// The good chunk, fetched again, is taken.
	for i, c := range cs {
		if err := p.Write(i, c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.Finish(t.TempDir()); err != nil {
		t.Fatal(err)
	}
}

func TestHashMismatchDiscards(t *testing.T) {
	path, _, o := sent(t, "a.bin", 2*transfer.ChunkSize)
	cs := chunks(t, path, o)
	o.SHA256[0] ^= 1 // the sender's file changed after its hash, or lied
	downloads := t.TempDir()
	p, err := transfer.OpenPartial(downloads, o)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cs {
		if err := p.Write(i, c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.Finish(downloads); !errors.Is(err, transfer.ErrHashMismatch) {
		t.Fatalf("Finish = %v, want ErrHashMismatch", err)
	}
	entries, _ := os.ReadDir(downloads)
	for _, e := range entries {
		if e.Name() != transfer.PartialDir {
			t.Errorf("a file that failed its hash was placed: %s", e.Name())
		}
	}
}

func TestEmptyFile(t *testing.T) {
	_, _, o := sent(t, "empty", 0)
	downloads := t.TempDir()
	p, err := transfer.OpenPartial(downloads, o)
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.Finish(downloads)
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, got, nil)
}

func TestResumeAfterClose(t *testing.T) {
	path, data, o := sent(t, "big.bin", 40*transfer.ChunkSize+7)
	cs := chunks(t, path, o)
	downloads := t.TempDir()
	p, err := transfer.OpenPartial(downloads, o)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(cs); i += 2 {
		if err := p.Write(i, cs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p, err = transfer.OpenPartial(downloads, o)
	if err != nil {
		t.Fatal(err)
	}
	missing := p.Missing()
	if len(missing) != 20 || missing[0] != [2]int{1, 2} {
		t.Fatalf("after a restart, missing %v", missing)
	}
	finishMissing(t, p, cs, downloads, data)
}

// TestDamagedState: a torn or altered state slot is not trusted: the
// other slot's older state is used, and with both damaged the transfer
// starts from nothing; either way the file still ends right.
func TestDamagedState(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(b []byte)
		chunks int
	}{
		{"none", func([]byte) {}, transfer.SyncEvery + 1},
		{"the newer slot", func(b []byte) { b[len(b)/4] ^= 0xff }, transfer.SyncEvery},
		{"the older slot", func(b []byte) { b[3*len(b)/4] ^= 0xff }, transfer.SyncEvery + 1},
		{"both slots", func(b []byte) { b[len(b)/4] ^= 0xff; b[3*len(b)/4] ^= 0xff }, 0},
		{"torn short", func(b []byte) { clear(b[len(b)/4:]) }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, data, o := sent(t, "a.bin", (transfer.SyncEvery+4)*transfer.ChunkSize)
			cs := chunks(t, path, o)
			downloads := t.TempDir()
			p, err := transfer.OpenPartial(downloads, o)
			if err != nil {
				t.Fatal(err)
			}
			for i := range transfer.SyncEvery + 1 { // a save at SyncEvery, another at Close
				if err := p.Write(i, cs[i]); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			state := filepath.Join(downloads, transfer.PartialDir, o.ID.String()+".state")
			b, err := os.ReadFile(state)
			if err != nil {
				t.Fatal(err)
			}
			tc.damage(b)
			if err := os.WriteFile(state, b, 0o600); err != nil {
				t.Fatal(err)
			}
			p, err = transfer.OpenPartial(downloads, o)
			if err != nil {
				t.Fatal(err)
			}
			if want := int64(tc.chunks) * transfer.ChunkSize; p.Held() != want {
				t.Fatalf("held %d bytes after the damage, want %d", p.Held(), want)
			}
			for i, c := range cs {
				if err := p.Write(i, c); err != nil {
					t.Fatal(err)
				}
			}
			got, err := p.Finish(downloads)
			if err != nil {
				t.Fatal(err)
			}
			checkFile(t, got, data)
		})
	}
}

func TestOfferRoundTrip(t *testing.T) {
	_, _, o := sent(t, "x.txt", 12345)
	got, err := transfer.ParseOffer(o.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if *got != *o {
		t.Errorf("offer changed in transit: %+v", got)
	}
}

func FuzzParseOffer(f *testing.F) {
	o := &transfer.Offer{Name: "../../.bashrc", Size: 1 << 20}
	f.Add(o.Marshal())
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := transfer.ParseOffer(b)
		if err != nil {
			return
		}
		if o.Size < 0 || o.Size > transfer.MaxFileSize {
			t.Fatalf("size %d accepted", o.Size)
		}
		if !bytes.Equal(o.Marshal(), b) {
			t.Fatal("an offer re-encodes differently")
		}
	})
}
