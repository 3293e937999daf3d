package ui

import (
	"bufio"
	"errors"
	"fmt"
	"image"
	_ "image/gif"  // previews of GIF files
	_ "image/jpeg" // and JPEG
	_ "image/png"  // and PNG
	"io"
	"os"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/store"
	"github.com/gdamore/tcell/v2"
)

// A received image shows a small preview under its offer, drawn with
// half blocks ("▀": the upper pixel as the colour, the lower as the
// background), as tview's Image widget draws; the conversation is rows
// of styled text, not widgets, so the rows are made here. The file is
// decoded only once it is verified and placed, off the event loop, and
// only when its header says it is small enough: the bytes come from a
// peer.

const (
	// previewMaxFile is the largest file decoded for a preview.
	previewMaxFile = 64 << 20
	// previewMaxSide and previewMaxPixels bound the image its header
	// announces: decoding allocates about 4 bytes per pixel (64 MiB).
	previewMaxSide   = 8000
	previewMaxPixels = 16 << 20
	// previewCols and previewRows bound the preview on screen: each
	// cell shows two pixels, one above the other.
	previewCols = 24
	previewRows = 8
)

// errNoPreview: the file is not an image decoded for a preview.
var errNoPreview = errors.New("no preview")

// preview is an image scaled down to at most previewCols ×
// 2·previewRows pixels.
type preview struct {
	w, h int
	px   []tcell.Color // row by row; h is even
}

// previewable says whether a received file of this type gets a preview.
func previewable(kind string) bool {
	switch kind {
	case "image/png", "image/jpeg", "image/gif":
		return true
	}
	return false
}

// loadPreview decodes a received image's preview off the event loop and
// shows it under its offer.
func (u *transfers) loadPreview(fv *fileView) {
	f := fv.info
	if f.Direction != store.Incoming || f.State != store.TransferDone || f.Path == "" || !previewable(fv.kind) || fv.preview != nil {
		return
	}
	id, path := f.ID, f.Path
	u.spawn(func() {
		p, err := previewFile(path)
		if err != nil {
			u.log.Debug("no preview", "file", path, "err", err)
			return
		}
		u.post(func() {
			if fv := u.files[id]; fv != nil {
				fv.preview = p
				u.conv.fileChanged(e2e.MessageID(id))
			}
		})
	})
}

// previewFile decodes the image at path for a preview.
func previewFile(path string) (*preview, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	return decodePreview(fh, st.Size())
}

// decodePreview reads an image of size bytes from r, checking its
// header's dimensions before decoding it.
func decodePreview(r io.ReadSeeker, size int64) (*preview, error) {
	if size > previewMaxFile {
		return nil, fmt.Errorf("%w: the file has %d bytes (at most %d)", errNoPreview, size, previewMaxFile)
	}
	cfg, format, err := image.DecodeConfig(bufio.NewReader(r))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNoPreview, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width > previewMaxSide || cfg.Height > previewMaxSide || cfg.Width*cfg.Height > previewMaxPixels {
		return nil, fmt.Errorf("%w: a %s of %d×%d pixels is too large", errNoPreview, format, cfg.Width, cfg.Height)
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	img, _, err := image.Decode(bufio.NewReader(io.LimitReader(r, size)))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNoPreview, err)
	}
	return scalePreview(img), nil
}

// scalePreview scales img down to fit previewCols × 2·previewRows
// pixels, keeping its shape; each pixel averages up to 4×4 samples of
// its area.
func scalePreview(img image.Image) *preview {
	b := img.Bounds()
	sw, sh := b.Dx(), b.Dy()
	w, h := sw, sh
	if w > previewCols {
		w, h = previewCols, max(1, sh*previewCols/sw)
	}
	if h > 2*previewRows {
		w, h = max(1, sw*2*previewRows/sh), 2*previewRows
	}
	w, h = min(w, previewCols), min(h, 2*previewRows)
	p := &preview{w: w, h: h + h%2}
	p.px = make([]tcell.Color, p.w*p.h)
	for i := range p.px {
		p.px[i] = tcell.ColorDefault
	}
	for y := range h {
		for x := range w {
			x0, x1 := b.Min.X+x*sw/w, b.Min.X+max((x+1)*sw/w, x*sw/w+1)
			y0, y1 := b.Min.Y+y*sh/h, b.Min.Y+max((y+1)*sh/h, y*sh/h+1)
			var r, g, bl, n uint64
			for sy := 0; sy < 4; sy++ {
				for sx := 0; sx < 4; sx++ {
					pr, pg, pb, _ := img.At(x0+(x1-x0)*sx/4, y0+(y1-y0)*sy/4).RGBA()
					r, g, bl, n = r+uint64(pr), g+uint64(pg), bl+uint64(pb), n+1
				}
			}
			p.px[y*p.w+x] = tcell.NewRGBColor(int32(r/n>>8), int32(g/n>>8), int32(bl/n>>8))
		}
	}
	return p
}

// rows draws the preview as rows of half blocks after pad.
func (p *preview) rows(pad string, padStyle tcell.Style) []line {
	var out []line
	for y := 0; y < p.h; y += 2 {
		l := line{{pad, padStyle}}
		for x := range p.w {
			top, bottom := p.px[y*p.w+x], p.px[(y+1)*p.w+x]
			l = append(l, span{"▀", tcell.StyleDefault.Foreground(top).Background(bottom)})
		}
		out = append(out, l)
	}
	return out
}
