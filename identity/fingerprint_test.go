package identity

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"rsc.io/qr"
)

// testPub reads a public key PEM from testdata.
func testPub(t testing.TB, name string) ed25519.PublicKey {
	t.Helper()
	b, _ := pem.Decode(readFile(t, filepath.Join("testdata", name+".pub.pem")))
	if b == nil {
		t.Fatalf("%s: no PEM", name)
	}
	k, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(ed25519.PublicKey)
}

func golden(t testing.TB, name string) string {
	t.Helper()
	return strings.TrimSpace(string(readFile(t, filepath.Join("testdata", name))))
}

var fingerprintRE = regexp.MustCompile(`^[A-Z2-7]{7}(-[A-Z2-7]{7}){7}$`)

// TestFingerprintGolden checks against vectors computed independently
// (testdata/vectors.py) and against openssl on the same key.
func TestFingerprintGolden(t *testing.T) {
	for _, name := range []string{"alice", "bob"} {
		pub := testPub(t, name)
		fp := FingerprintOf(pub)
		if got, want := fp.String(), golden(t, name+".fingerprint"); got != want {
			t.Errorf("%s: fingerprint\n got %s\nwant %s", name, got, want)
		}
		t.Run(name+"/openssl", func(t *testing.T) {
			der := openssl(t, nil, "pkey", "-pubin", "-in", filepath.Join("testdata", name+".pub.pem"), "-outform", "DER")
			if sum := sha256.Sum256(der); Fingerprint(sum) != fp {
				t.Errorf("fingerprint %x, openssl pkey -pubin -outform DER | sha256sum gives %x", fp[:], sum)
			}
		})
	}
}

func TestFingerprintFormat(t *testing.T) {
	for i := 0; i < 200; i++ {
		fp := FingerprintOf(pubOf(newKey(t)))
		s := fp.String()
		if len(s) != 63 || !fingerprintRE.MatchString(s) {
			t.Fatalf("format: %q", s)
		}
		if fp.Short() != s[:15] || len(fp.Short()) != 15 {
			t.Fatalf("Short %q", fp.Short())
		}
		for _, variant := range []string{
			s,
			strings.ToLower(s),
			strings.ReplaceAll(s, "-", ""),
			strings.ReplaceAll(s, "-", " "),
			"  " + strings.ReplaceAll(strings.ToLower(s), "-", " - ") + " ",
			regroup(s, 4),
		} {
			got, err := ParseFingerprint(variant)
			if err != nil || got != fp || !got.Equal(fp) {
				t.Fatalf("ParseFingerprint(%q) = %v, %v", variant, got, err)
			}
		}
	}
	a, b := FingerprintOf(testPub(t, "alice")), FingerprintOf(testPub(t, "bob"))
	if a.Equal(b) || a == b {
		t.Error("different keys, same fingerprint")
	}
}

// regroup removes dashes and regroups in groups of n.
func regroup(s string, n int) string {
	s = strings.ReplaceAll(s, "-", "")
	var g []string
	for len(s) > n {
		g, s = append(g, s[:n]), s[n:]
	}
	return strings.Join(append(g, s), " ")
}

// TestFingerprintTypos: every single-character substitution, in every
// position (data and check characters alike), is caught.
func TestFingerprintTypos(t *testing.T) {
	for _, pub := range []ed25519.PublicKey{testPub(t, "alice"), testPub(t, "bob"), pubOf(newKey(t))} {
		s := strings.ReplaceAll(FingerprintOf(pub).String(), "-", "")
		for pos := 0; pos < len(s); pos++ {
			for _, c := range luhnAlphabet {
				if byte(c) == s[pos] {
					continue
				}
				typo := s[:pos] + string(c) + s[pos+1:]
				_, err := ParseFingerprint(typo)
				if !errors.Is(err, ErrBadFingerprint) {
					t.Fatalf("typo %c at %d (group %d) not caught: %v", c, pos, pos/14, err)
				}
				if !strings.Contains(err.Error(), "typo") {
					t.Fatalf("typo at %d: message %q does not say so", pos, err)
				}
			}
		}
	}
}

// TestFingerprintConfusables: 0, 1 and 8 read as O, I and B.
func TestFingerprintConfusables(t *testing.T) {
	seen := map[byte]bool{}
	for i := 0; i < 500 && len(seen) < 3; i++ {
		fp := FingerprintOf(pubOf(newKey(t)))
		s := fp.String()
		for from, to := range map[byte]string{'O': "0", 'I': "1", 'B': "8"} {
			if strings.IndexByte(s, from) < 0 {
				continue
			}
			seen[from] = true
			got, err := ParseFingerprint(strings.ReplaceAll(s, string(from), to))
			if err != nil || got != fp {
				t.Fatalf("%c typed as %s: %v", from, to, err)
			}
		}
	}
	if len(seen) != 3 {
		t.Fatalf("no fingerprint with all of O, I, B in 500 tries")
	}
}

func TestParseFingerprintRejects(t *testing.T) {
	s := FingerprintOf(testPub(t, "alice")).String()
	flat := strings.ReplaceAll(s, "-", "")
	for name, in := range map[string]string{
		"empty":               "",
		"short one":           flat[:55],
		"long one":            flat + "A",
		"only data, no check": flat[:13] + flat[14:27] + flat[28:41] + flat[42:55],
		"9 is not base32":     strings.Replace(flat, flat[:1], "9", 1),
		"padding":             flat[:55] + "=",
		"other separator":     strings.ReplaceAll(s, "-", ":"),
		"dotless i for I":     strings.ReplaceAll(flat, "I", "ı"),
		"long s for S":        strings.ReplaceAll(flat, "S", "ſ"),
		"dotless i, grouped":  strings.ReplaceAll(s, "I", "ı"),
		"fullwidth letters":   "ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＡＢＣＤＥＦＧＨＩＪＫＬＭＮＡＢＣＤＥＦＧＨＩＪＫＬＭＮＡＢＣＤＥＦＧＨＩＪＫＬＭＮ",
		"hex sha256":          strings.Repeat("ab", 32),
	} {
		if _, err := ParseFingerprint(in); !errors.Is(err, ErrBadFingerprint) {
			t.Errorf("%s: %q accepted (%v)", name, in, err)
		}
	}
	// Non-zero unused bits in the last character, with a check character
	// that fits them: the same 32 bytes, but not the string shown.
	last := strings.IndexByte(luhnAlphabet, flat[54])
	g := flat[42:54] + string(luhnAlphabet[last^1])
	if _, err := ParseFingerprint(flat[:42] + g + string(luhn32(g))); !errors.Is(err, ErrBadFingerprint) {
		t.Errorf("non-canonical base32 accepted: %v", err)
	}
	// Whole groups moved keep their check characters: that is another,
	// well-formed fingerprint, which comparing with the key then refuses.
	swapped, err := ParseFingerprint(flat[14:28] + flat[:14] + flat[28:])
	if err != nil || swapped == FingerprintOf(testPub(t, "alice")) {
		t.Errorf("groups swapped: %v", err)
	}
}

var safetyRE = regexp.MustCompile(`^\d{5}( \d{5}){11}$`)

func TestSafetyNumber(t *testing.T) {
	alice, bob := testPub(t, "alice"), testPub(t, "bob")
	ab, err := SafetyNumber(alice, bob)
	if err != nil {
		t.Fatal(err)
	}
	if want := golden(t, "alice-bob.safety"); ab != want {
		t.Errorf("safety number\n got %s\nwant %s", ab, want)
	}
	ba, _ := SafetyNumber(bob, alice)
	if ab != ba {
		t.Errorf("order matters: %s vs %s", ab, ba)
	}
	if !safetyRE.MatchString(ab) || len(ab) != 71 {
		t.Errorf("format %q", ab)
	}
	carol := testPub(t, "carol")
	ac, _ := SafetyNumber(alice, carol)
	if want := golden(t, "alice-carol.safety"); ac != want {
		t.Errorf("safety number with carol\n got %s\nwant %s", ac, want)
	}
	bc, _ := SafetyNumber(bob, carol)
	if !safetyRE.MatchString(ac) || ac == ab || bc == ab || ac == bc {
		t.Errorf("pairs share numbers: %s %s %s", ab, ac, bc)
	}
	if _, err := SafetyNumber(alice, make([]byte, 31)); err == nil {
		t.Error("short key accepted")
	}
	if _, err := SafetyNumber(nil, bob); err == nil {
		t.Error("nil key accepted")
	}
}

// Every group depends on both keys: two chats of one person share no
// group position but by chance (1 in 100000 per group). With fixed keys
// the check is reproducible; a scheme of per-key halves fails it at once.
func TestSafetyNumberGroupsDependOnBoth(t *testing.T) {
	alice := pubOf(seededKey("alice"))
	var numbers [][]string
	for i := range 12 {
		n, err := SafetyNumber(alice, pubOf(seededKey(fmt.Sprintf("peer %d", i))))
		if err != nil {
			t.Fatal(err)
		}
		numbers = append(numbers, strings.Fields(n))
	}
	for i := range numbers {
		for j := i + 1; j < len(numbers); j++ {
			for g := range numbers[i] {
				if numbers[i][g] == numbers[j][g] {
					t.Errorf("alice's chats %d and %d share group %d: %s", i, j, g+1, numbers[i][g])
				}
			}
		}
	}
}

func TestSafetyNumberQR(t *testing.T) {
	ab, _ := SafetyNumber(testPub(t, "alice"), testPub(t, "bob"))
	flat := strings.ReplaceAll(ab, " ", "")
	if got := SafetyNumberQR(ab); got != flat {
		t.Errorf("QR text %q, want the 60 digits", got)
	}
}

func TestQRCode(t *testing.T) {
	ab, _ := SafetyNumber(testPub(t, "alice"), testPub(t, "bob"))
	text := SafetyNumberQR(ab)
	out, err := QRCode(text)
	if err != nil {
		t.Fatal(err)
	}
	code, _ := qr.Encode(text, qr.M)
	const quiet = 4 // modules, as the QR specification asks
	n := code.Size + 2*quiet
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != (n+1)/2 {
		t.Fatalf("%d lines, want %d for a %d-module code", len(lines), (n+1)/2, code.Size)
	}
	if code.Size != 25 {
		t.Errorf("size %d: 60 digits in numeric mode make a 25-module code, which fits an 80x24 terminal", code.Size)
	}
	// Decode the half blocks back into modules and compare.
	for y, line := range lines {
		if utf8.RuneCountInString(line) != n {
			t.Fatalf("line %d: %d cells, want %d", y, utf8.RuneCountInString(line), n)
		}
		for x, r := range []rune(line) {
			var top, bottom bool // light?
			switch r {
			case '█':
				top, bottom = true, true
			case '▀':
				top = true
			case '▄':
				bottom = true
			case ' ':
			default:
				t.Fatalf("line %d: unexpected %q", y, r)
			}
			for dy, light := range []bool{top, bottom} {
				mx, my := x-quiet, 2*y+dy-quiet
				wantLight := mx < 0 || my < 0 || mx >= code.Size || my >= code.Size || !code.Black(mx, my)
				if 2*y+dy >= n {
					wantLight = true
				}
				if light != wantLight {
					t.Fatalf("module (%d,%d): light=%v, want %v", mx, my, light, wantLight)
				}
			}
		}
	}
	// The quiet zone: the first line is all light.
	if strings.Trim(lines[0], "█") != "" {
		t.Errorf("no quiet zone on top: %q", lines[0])
	}
	if _, err := QRCode(strings.Repeat("x", 5000)); err == nil {
		t.Error("a text too long for any QR code was accepted")
	}
}

// BenchmarkSafetyNumber: one safety number, 5201 SHA-512 rounds; the
// window computes it off the event loop.
func BenchmarkSafetyNumber(b *testing.B) {
	alice, bob := pubOf(seededKey("alice")), pubOf(seededKey("bob"))
	for b.Loop() {
		if _, err := SafetyNumber(alice, bob); err != nil {
			b.Fatal(err)
		}
	}
}
