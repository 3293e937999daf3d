package transfer_test

import (
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/certchat/certchat/transfer"
)

// sentSumLater writes a file and offers it without its SHA-256
// (version 2): the sum comes sealed at the end.
func sentSumLater(t *testing.T, size int) (string, []byte, *transfer.Offer) {
	t.Helper()
	path, data, _ := sent(t, "later.bin", size)
	o, err := transfer.NewOfferSumLater(path)
	if err != nil {
		t.Fatal(err)
	}
	if !o.SumLater || o.SHA256 != [32]byte{} || o.Size != int64(size) {
		t.Fatalf("offer %+v", o)
	}
	return path, data, o
}

func TestOfferSumLaterRoundTrip(t *testing.T) {
	_, _, o := sentSumLater(t, 12345)
	b := o.Marshal()
	if b[0] != 2 || len(b) != 1+16+8+32+2+len(o.Name) {
		t.Fatalf("a version 2 offer of %d bytes, version %d", len(b), b[0])
	}
	got, err := transfer.ParseOffer(b)
	if err != nil {
		t.Fatal(err)
	}
	if *got != *o {
		t.Errorf("offer changed in transit: %+v", got)
	}
	sum := [32]byte{1, 2, 3}
	if w := o.WithSum(sum); w.SumLater || w.SHA256 != sum || w.ID != o.ID || w.Key != o.Key {
		t.Errorf("WithSum: %+v", w)
	}
}

// TestSumWhileSending: the sender's SHA-256 is fed by the chunks it
// reads in order, and the rest is read at the end (chunks asked out of
// order, or a resume); either way it is the file's.
func TestSumWhileSending(t *testing.T) {
	path, data, o := sentSumLater(t, 7*transfer.ChunkSize+99)
	want := sha256.Sum256(data)
	for _, order := range [][]int{{0, 1, 2, 3, 4, 5, 6, 7}, {0, 1, 5, 2}, {3, 4}, nil} {
		src, err := transfer.OpenSource(path, o)
		if err != nil {
			t.Fatal(err)
		}
		src.SumWith(transfer.NewFileSum())
		for _, i := range order {
			if _, err := src.Chunk(nil, i); err != nil {
				t.Fatal(err)
			}
		}
		got, err := src.Sum()
		src.Close()
		if err != nil || got != want {
			t.Errorf("order %v: sum %x, %v; want %x", order, got, err, want)
		}
	}
}

// receiveSumLater writes every chunk of a SumLater file to a new partial
// file in downloads.
func receiveSumLater(t *testing.T, path string, o *transfer.Offer, downloads string) *transfer.Partial {
	t.Helper()
	p, err := transfer.OpenPartial(downloads, o)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range chunks(t, path, o) {
		if err := p.Write(i, c); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// TestSumLaterChecked: a SumLater file is placed only once its sealed
// SHA-256 opened and matched; a sealed sum changed on the way, of
// another file, or a sum the content does not have, never places it.
func TestSumLaterChecked(t *testing.T) {
	path, data, o := sentSumLater(t, 3*transfer.ChunkSize+5)
	src, err := transfer.OpenSource(path, o)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	sum := sha256.Sum256(data)
	sealed := src.SealSum(sum)

	downloads := t.TempDir()
	p := receiveSumLater(t, path, o, downloads)
	if !p.Done() || p.SumKnown() {
		t.Fatalf("done %v, sum known %v before the sum came", p.Done(), p.SumKnown())
	}
	if _, err := p.Finish(downloads); !errors.Is(err, transfer.ErrIncomplete) {
		t.Fatalf("Finish without the sum = %v, want ErrIncomplete", err)
	}
	bad := append([]byte(nil), sealed...)
	bad[3] ^= 1
	other, err := transfer.NewOfferSumLater(path) // another transfer of the same file: another key
	if err != nil {
		t.Fatal(err)
	}
	osrc, err := transfer.OpenSource(path, other)
	if err != nil {
		t.Fatal(err)
	}
	defer osrc.Close()
	for name, s := range map[string][]byte{"changed": bad, "cut": sealed[:20], "empty": nil, "another transfer's": osrc.SealSum(sum)} {
		if err := p.ExpectSum(s); !errors.Is(err, transfer.ErrTampered) {
			t.Errorf("%s sealed sum: %v, want ErrTampered", name, err)
		}
	}
	if p.SumKnown() {
		t.Fatal("a sealed sum that failed its check was kept")
	}
	if err := p.ExpectSum(sealed); err != nil {
		t.Fatal(err)
	}
	got, err := p.Finish(downloads)
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, got, data)

	// A sum the file does not have (the sender lied, or its file changed
	// while it was sent): the file is discarded.
	downloads = t.TempDir()
	p = receiveSumLater(t, path, o, downloads)
	wrong := sum
	wrong[0] ^= 1
	if err := p.ExpectSum(src.SealSum(wrong)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Finish(downloads); !errors.Is(err, transfer.ErrHashMismatch) {
		t.Fatalf("Finish = %v, want ErrHashMismatch", err)
	}
	if _, err := os.Stat(filepath.Join(downloads, "later.bin")); err == nil {
		t.Fatal("a file that failed its hash was placed")
	}
}
