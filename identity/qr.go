package identity

import (
	"fmt"
	"strings"

	"rsc.io/qr"
)

// QRCode renders text as a QR code for a terminal, two modules per
// character cell with Unicode half blocks. Like `qrencode -t UTF8`, it draws
// light modules as blocks, so the code reads on the usual dark terminal
// background; a quiet zone of four light modules surrounds it.
func QRCode(text string) (string, error) { return qrCode(text, qr.M) }

// QRCodeCompact is QRCode at error correction level L (7 % of the code
// may be lost), for long texts shown on a screen, where nothing smudges
// the code: an invitation of 400 characters fits in 65 columns instead
// of 73.
func QRCodeCompact(text string) (string, error) { return qrCode(text, qr.L) }

func qrCode(text string, level qr.Level) (string, error) {
	code, err := qr.Encode(text, level)
	if err != nil {
		return "", fmt.Errorf("qr code: %w", err)
	}
	const quiet = 4 // modules, as the QR specification asks
	n := code.Size + 2*quiet
	light := func(x, y int) bool {
		x, y = x-quiet, y-quiet
		if x < 0 || y < 0 || x >= code.Size || y >= code.Size {
			return true
		}
		return !code.Black(x, y)
	}
	var b strings.Builder
	for y := 0; y < n; y += 2 {
		for x := 0; x < n; x++ {
			top, bottom := light(x, y), y+1 >= n || light(x, y+1)
			switch {
			case top && bottom:
				b.WriteRune('█')
			case top:
				b.WriteRune('▀')
			case bottom:
				b.WriteRune('▄')
			default:
				b.WriteRune(' ')
			}
		}
		b.WriteByte('\n')
	}
	return b.String(), nil
}

// SafetyNumberQR is what the safety-number QR code carries: the 60
// digits alone, which QR's numeric mode fits in a 25×25 code (version 2
// at level M), small enough for an 80×24 terminal.
func SafetyNumberQR(number string) string {
	return strings.ReplaceAll(number, " ", "")
}
