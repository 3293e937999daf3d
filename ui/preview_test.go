package ui

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certchat/certchat/identity"
	"github.com/gdamore/tcell/v2"
)

// halves is a w×h image, red on the left half, blue on the right.
func halves(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := color.RGBA{255, 0, 0, 255}
			if x >= w/2 {
				c = color.RGBA{0, 0, 255, 255}
			}
			img.Set(x, y, c)
		}
	}
	return img
}

func encoded(t testing.TB, format string, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	var err error
	switch format {
	case "png":
		err = png.Encode(&b, img)
	case "gif":
		err = gif.Encode(&b, img, nil)
	case "jpeg":
		err = jpeg.Encode(&b, img, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// hostilePNG claims w×h pixels in a well-formed header (its CRC right).
func hostilePNG(t testing.TB, w, h uint32) []byte {
	b := encoded(t, "png", halves(2, 2))
	binary.BigEndian.PutUint32(b[16:], w)
	binary.BigEndian.PutUint32(b[20:], h)
	binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29]))
	return b
}

func hostileGIF(t testing.TB, w, h uint16) []byte {
	b := encoded(t, "gif", halves(2, 2))
	binary.LittleEndian.PutUint16(b[6:], w)
	binary.LittleEndian.PutUint16(b[8:], h)
	return b
}

func hostileJPEG(t testing.TB, w, h uint16) []byte {
	b := encoded(t, "jpeg", halves(16, 16))
	i := bytes.Index(b, []byte{0xff, 0xc0})
	if i < 0 {
		t.Fatal("no SOF0 in the JPEG")
	}
	binary.BigEndian.PutUint16(b[i+5:], h)
	binary.BigEndian.PutUint16(b[i+7:], w)
	return b
}

// A header announcing a huge image is refused before anything is
// decoded; broken files are refused, never a panic.
func TestPreviewRefusesHostileFiles(t *testing.T) {
	t.Parallel()
	small := encoded(t, "png", halves(40, 20))
	for _, tc := range []struct {
		name string
		data []byte
		size int64  // 0: len(data)
		want string // in the error
	}{
		{"png 100000×100000", hostilePNG(t, 100000, 100000), 0, "too large"},
		{"png 9000×1", hostilePNG(t, 9000, 1), 0, "too large"},
		{"png 5000×5000 (25 Mpx)", hostilePNG(t, 5000, 5000), 0, "too large"},
		{"png 0×10", hostilePNG(t, 0, 10), 0, ""},
		{"png 2^31×2^31", hostilePNG(t, 1<<31-1, 1<<31-1), 0, ""}, // the decoder refuses it itself
		{"gif 65535×65535", hostileGIF(t, 65535, 65535), 0, "too large"},
		{"jpeg 60000×60000", hostileJPEG(t, 60000, 60000), 0, "too large"},
		{"png cut after its header", small[:40], 0, ""},
		{"png with a bad CRC", func() []byte { b := bytes.Clone(small); b[30] ^= 1; return b }(), 0, ""},
		{"not an image", []byte("hello, this is text"), 0, ""},
		{"empty", nil, 0, ""},
		{"a file over 64 MiB", small, previewMaxFile + 1, "the file has"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			size := tc.size
			if size == 0 {
				size = int64(len(tc.data))
			}
			p, err := decodePreview(bytes.NewReader(tc.data), size)
			if !errors.Is(err, errNoPreview) || p != nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("decoded (%v, %v), want errNoPreview (%q)", p, err, tc.want)
			}
		})
	}
}

// Each format decodes and scales down keeping its shape.
func TestPreviewScales(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		format     string
		w, h       int
		pw, ph     int
		exactColor bool
	}{
		{"png", 40, 20, 24, 12, true},
		{"png", 10, 100, 1, 16, true},
		{"png", 3, 3, 3, 4, true}, // a row of padding below
		{"gif", 48, 16, 24, 8, true},
		{"jpeg", 64, 32, 24, 12, false},
	} {
		data := encoded(t, tc.format, halves(tc.w, tc.h))
		p, err := decodePreview(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatalf("%s %d×%d: %v", tc.format, tc.w, tc.h, err)
		}
		if p.w != tc.pw || p.h != tc.ph {
			t.Fatalf("%s %d×%d: preview %d×%d, want %d×%d", tc.format, tc.w, tc.h, p.w, p.h, tc.pw, tc.ph)
		}
		if p.w < 2 {
			continue
		}
		left, right := p.px[0].RGB, p.px[p.w-1].RGB
		lr, _, lb := left()
		rr, _, rb := right()
		if lr < 200 || lb > 55 || rb < 200 || rr > 55 {
			t.Fatalf("%s: left %06x, right %06x: want red then blue", tc.format, p.px[0].Hex(), p.px[p.w-1].Hex())
		}
	}
}

// FuzzDecodePreview: whatever the bytes, a preview within its bounds or
// errNoPreview, never a panic.
func FuzzDecodePreview(f *testing.F) {
	for _, format := range []string{"png", "gif", "jpeg"} {
		f.Add(encoded(f, format, halves(12, 6)))
	}
	f.Add(hostilePNG(f, 100000, 100000))
	f.Add(hostileGIF(f, 65535, 65535))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := decodePreview(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		if p.w < 1 || p.w > previewCols || p.h < 2 || p.h > 2*previewRows || p.h%2 != 0 || len(p.px) != p.w*p.h {
			t.Fatalf("a preview of %d×%d (%d pixels)", p.w, p.h, len(p.px))
		}
	})
}

// A received PNG shows a small preview under its path, in its colours
// (one that only looks like a PNG shows its type and size alone:
// TestFileOfferInWindow).
func TestFileImagePreviewInWindow(t *testing.T) {
	t.Parallel()
	alice, bob := newPeer(t, "alice", 0), newPeer(t, "bob", 0)
	alice.pin(bob.peerID(), "bob", identity.StateTOFU)
	bob.pin(alice.peerID(), "alice", identity.StateTOFU)
	w := openWindow(t, alice.start(), 160, 40, Options{})
	bob.start()
	introduce(bob, alice)
	dir := t.TempDir()
	path := filepath.Join(dir, "halves.png")
	if err := os.WriteFile(path, encoded(t, "png", halves(40, 20)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.n.Files().Send(alice.peerID(), path); err != nil {
		t.Fatal(err)
	}
	w.tabUntil(" bob  ")
	w.waitText("bob: [file] halves.png", "offered: /accept to receive it")
	w.enter("/accept")
	s := w.waitFor("the preview", func(s string) bool { return strings.Contains(s, strings.Repeat("▀", 24)) })
	if !strings.Contains(s, "(image/png, ") {
		t.Fatalf("no type and size:\n%s", s)
	}
	_, y, _ := findIn(s, strings.Repeat("▀", 24), false)
	x := strings.Index(strings.Split(s, "\n")[y], "▀")
	x = len([]rune(strings.Split(s, "\n")[y][:x]))
	var left, right tcell.Style
	rows := 0
	w.do(func() {
		cells, width, height := w.scr.GetContents()
		left, right = cells[y*width+x].Style, cells[y*width+x+23].Style
		for r := y; r < height && string(cells[r*width+x].Runes) == "▀"; r++ {
			rows++
		}
	})
	if fg, bg, _ := left.Decompose(); fg.Hex() != 0xff0000 || bg.Hex() != 0xff0000 {
		t.Errorf("the left of the preview is %06x on %06x, want red", fg.Hex(), bg.Hex())
	}
	if fg, bg, _ := right.Decompose(); fg.Hex() != 0x0000ff || bg.Hex() != 0x0000ff {
		t.Errorf("the right of the preview is %06x on %06x, want blue", fg.Hex(), bg.Hex())
	}
	if rows != 6 {
		t.Errorf("the preview has %d rows, want 6 (40×20 pixels scaled to 24×12)", rows)
	}
}
