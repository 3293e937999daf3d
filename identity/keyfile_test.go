package identity

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

func pass(s string) PassphraseFunc { return func() ([]byte, error) { return []byte(s), nil } }

// noPass fails the test if the decoder asks for the passphrase.
func noPass(t *testing.T) PassphraseFunc {
	return func() ([]byte, error) {
		t.Helper()
		t.Error("passphrase asked for, so the key would be derived")
		return []byte("x"), nil
	}
}

func pemBytes(t testing.TB, data []byte) *pem.Block {
	t.Helper()
	b, rest := pem.Decode(data)
	if b == nil || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("not one PEM block:\n%s", data)
	}
	return b
}

func TestKeyFileRoundTrip(t *testing.T) {
	key := newKey(t)
	t.Run("encrypted", func(t *testing.T) {
		data, err := EncodePrivateKey(key, []byte("correct horse"), fastKDF)
		if err != nil {
			t.Fatal(err)
		}
		if !IsEncryptedKey(data) {
			t.Error("IsEncryptedKey = false")
		}
		b := pemBytes(t, data)
		if b.Type != "CERTCHAT ENCRYPTED PRIVATE KEY" || len(b.Headers) != 0 {
			t.Fatalf("block %q %v", b.Type, b.Headers)
		}
		// The documented layout.
		raw := b.Bytes
		if len(raw) != 1+1+4+4+1+16+24+48+16 { // PKCS#8 Ed25519 is 48 bytes
			t.Errorf("length %d", len(raw))
		}
		if raw[0] != 1 || raw[1] != 1 || binary.BigEndian.Uint32(raw[2:]) != fastKDF.Time ||
			binary.BigEndian.Uint32(raw[6:]) != fastKDF.Memory || raw[10] != fastKDF.Threads {
			t.Errorf("header % x", raw[:11])
		}
		if bytes.Contains(raw, key.Seed()) {
			t.Error("the seed is in the file in the clear")
		}
		calls := 0
		got, err := DecodePrivateKey(data, func() ([]byte, error) { calls++; return []byte("correct horse"), nil })
		if err != nil || !got.Equal(key) {
			t.Fatalf("decode: %v", err)
		}
		if calls != 1 {
			t.Errorf("passphrase asked %d times", calls)
		}
		// An independent implementation of the format opens it.
		if der := openKeyBlock(t, raw, []byte("correct horse")); der == nil {
			t.Error("the documented format does not open the file")
		}
		// Fresh salt and nonce every time.
		again, _ := EncodePrivateKey(key, []byte("correct horse"), fastKDF)
		if bytes.Equal(pemBytes(t, again).Bytes[11:51], raw[11:51]) {
			t.Error("salt and nonce repeat")
		}
	})
	t.Run("plain PKCS#8", func(t *testing.T) {
		data, err := EncodePrivateKey(key, nil, fastKDF)
		if err != nil {
			t.Fatal(err)
		}
		if IsEncryptedKey(data) {
			t.Error("IsEncryptedKey = true")
		}
		b := pemBytes(t, data)
		if b.Type != "PRIVATE KEY" {
			t.Fatalf("type %q", b.Type)
		}
		k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
		if err != nil || !key.Equal(k) {
			t.Fatalf("not PKCS#8 of the key: %v", err)
		}
		got, err := DecodePrivateKey(data, noPass(t))
		if err != nil || !got.Equal(key) {
			t.Fatalf("decode: %v", err)
		}
		got, err = DecodePrivateKey(data, nil)
		if err != nil || !got.Equal(key) {
			t.Fatalf("decode without a passphrase func: %v", err)
		}
	})
	t.Run("unicode passphrase", func(t *testing.T) {
		data, _ := EncodePrivateKey(key, []byte("pässwörd 🔑"), fastKDF)
		if _, err := DecodePrivateKey(data, pass("pässwörd 🔑")); err != nil {
			t.Fatal(err)
		}
		if _, err := DecodePrivateKey(data, pass("passwörd 🔑")); !errors.Is(err, ErrWrongPassphrase) {
			t.Fatalf("near miss: %v", err)
		}
	})
}

// openKeyBlock decrypts the documented format without the package's code.
func openKeyBlock(t *testing.T, b, passphrase []byte) []byte {
	t.Helper()
	hdr := b[:51]
	k := argon2.IDKey(passphrase, hdr[11:27], binary.BigEndian.Uint32(hdr[2:]), binary.BigEndian.Uint32(hdr[6:]), hdr[10], 32)
	aead, err := chacha20poly1305.NewX(k)
	if err != nil {
		t.Fatal(err)
	}
	der, err := aead.Open(nil, hdr[27:51], b[51:], hdr)
	if err != nil {
		return nil
	}
	return der
}

// sealKeyBlock writes the documented format around any DER.
func sealKeyBlock(t *testing.T, der, passphrase []byte, p KDFParams) []byte {
	t.Helper()
	hdr := make([]byte, 51)
	hdr[0], hdr[1] = 1, 1
	binary.BigEndian.PutUint32(hdr[2:], p.Time)
	binary.BigEndian.PutUint32(hdr[6:], p.Memory)
	hdr[10] = p.Threads
	rand.Read(hdr[11:])
	aead, _ := chacha20poly1305.NewX(argon2.IDKey(passphrase, hdr[11:27], p.Time, p.Memory, p.Threads, 32))
	return pem.EncodeToMemory(&pem.Block{Type: "CERTCHAT ENCRYPTED PRIVATE KEY", Bytes: aead.Seal(hdr, hdr[27:], der, hdr)})
}

func TestKeyFilePassphraseErrors(t *testing.T) {
	key := newKey(t)
	data, _ := EncodePrivateKey(key, []byte("right"), fastKDF)
	if _, err := DecodePrivateKey(data, pass("wrong")); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("wrong passphrase: %v", err)
	}
	if _, err := DecodePrivateKey(data, pass("Right")); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("wrong case: %v", err)
	}
	if _, err := DecodePrivateKey(data, pass("right ")); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("trailing space: %v", err)
	}
	if _, err := DecodePrivateKey(data, nil); !errors.Is(err, ErrPassphraseRequired) {
		t.Errorf("no passphrase func: %v", err)
	}
	if _, err := DecodePrivateKey(data, pass("")); !errors.Is(err, ErrPassphraseRequired) {
		t.Errorf("empty passphrase: %v", err)
	}
	boom := errors.New("no tty")
	if _, err := DecodePrivateKey(data, func() ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Errorf("passphrase func error: %v", err)
	}
	if _, err := EncodePrivateKey(key, []byte{}, fastKDF); err == nil {
		t.Error("encrypting with an empty passphrase must be refused (nil is the opt-out)")
	}
}

func TestKeyFileTruncation(t *testing.T) {
	key := newKey(t)
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"encrypted", must(EncodePrivateKey(key, []byte("pw"), fastKDF))},
		{"plain", must(EncodePrivateKey(key, nil, fastKDF))},
	} {
		t.Run(tc.name+"/text", func(t *testing.T) {
			for n := 0; n < len(tc.data); n++ {
				got, err := DecodePrivateKey(tc.data[:n], pass("pw"))
				if err == nil {
					// Only the final newline may go: the PEM is still whole.
					if n != len(tc.data)-1 || !got.Equal(key) {
						t.Fatalf("truncated to %d of %d bytes: accepted", n, len(tc.data))
					}
					continue
				}
				if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrWrongPassphrase) {
					t.Fatalf("truncated to %d bytes: %v", n, err)
				}
			}
		})
		t.Run(tc.name+"/bytes", func(t *testing.T) {
			b := pemBytes(t, tc.data)
			for n := 0; n < len(b.Bytes); n++ {
				trunc := pem.EncodeToMemory(&pem.Block{Type: b.Type, Bytes: b.Bytes[:n]})
				_, err := DecodePrivateKey(trunc, pass("pw"))
				if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrWrongPassphrase) {
					t.Fatalf("payload truncated to %d bytes: %v", n, err)
				}
				if tc.name == "encrypted" && n < 51+16 && !errors.Is(err, ErrCorrupt) {
					t.Fatalf("payload truncated to %d bytes, inside the header: %v", n, err)
				}
			}
		})
	}
}

func TestKeyFileTamper(t *testing.T) {
	key := newKey(t)
	data, _ := EncodePrivateKey(key, []byte("pw"), fastKDF)
	b := pemBytes(t, data)
	region := func(i int) string {
		switch {
		case i < 2:
			return "version"
		case i < 11:
			return "kdf params"
		case i < 27:
			return "salt"
		case i < 51:
			return "nonce"
		case i < len(b.Bytes)-16:
			return "ciphertext"
		}
		return "tag"
	}
	for i := range b.Bytes {
		for _, mask := range []byte{0x01, 0x80} {
			if i >= 6 && i < 10 && mask == 0x80 {
				continue // memory: up to 1 GiB would be derived; 0x01 covers it
			}
			mod := bytes.Clone(b.Bytes)
			mod[i] ^= mask
			_, err := DecodePrivateKey(pem.EncodeToMemory(&pem.Block{Type: b.Type, Bytes: mod}), pass("pw"))
			want := ErrWrongPassphrase
			switch region(i) {
			case "version":
				want = ErrCorrupt
			case "kdf params":
				if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrWrongPassphrase) {
					t.Errorf("byte %d (%s) ^%#x: %v", i, region(i), mask, err)
				}
				continue
			}
			if !errors.Is(err, want) {
				t.Errorf("byte %d (%s) ^%#x: %v, want %v", i, region(i), mask, err, want)
			}
		}
	}
	// The PEM type is part of the format too.
	swapped := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: b.Bytes})
	if _, err := DecodePrivateKey(swapped, pass("pw")); !errors.Is(err, ErrCorrupt) {
		t.Errorf("encrypted bytes labelled plain: %v", err)
	}
}

func TestKeyFileKDFBounds(t *testing.T) {
	// A header with these parameters and a bogus ciphertext.
	block := func(version, kdf byte, p KDFParams) []byte {
		b := make([]byte, 51+64)
		b[0], b[1] = version, kdf
		binary.BigEndian.PutUint32(b[2:], p.Time)
		binary.BigEndian.PutUint32(b[6:], p.Memory)
		b[10] = p.Threads
		return pem.EncodeToMemory(&pem.Block{Type: "CERTCHAT ENCRYPTED PRIVATE KEY", Bytes: b})
	}
	absurd := []struct {
		name   string
		v, kdf byte
		p      KDFParams
	}{
		{"version 0", 0, 1, fastKDF},
		{"version 2", 2, 1, fastKDF},
		{"kdf 0", 1, 0, fastKDF},
		{"kdf 2 (scrypt?)", 1, 2, fastKDF},
		{"time 0", 1, 1, KDFParams{0, 64, 1}},
		{"time 65", 1, 1, KDFParams{maxKDFTime + 1, 64, 1}},
		{"time max", 1, 1, KDFParams{^uint32(0), 64, 1}},
		{"memory 0", 1, 1, KDFParams{1, 0, 1}},
		{"memory below 8 per lane", 1, 1, KDFParams{1, 8*4 - 1, 4}},
		{"memory 1 GiB + 1 KiB", 1, 1, KDFParams{1, maxKDFMemory + 1, 1}},
		{"memory 4 TiB", 1, 1, KDFParams{1, ^uint32(0), 1}},
		{"threads 0", 1, 1, KDFParams{1, 64, 0}},
		{"threads 255 with little memory", 1, 1, KDFParams{1, 64, 255}},
	}
	for _, tc := range absurd {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodePrivateKey(block(tc.v, tc.kdf, tc.p), noPass(t))
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%v, want ErrCorrupt", err)
			}
		})
	}
	// The bounds themselves pass the check: without a passphrase func the
	// decoder stops right after it, before deriving anything.
	for _, p := range []KDFParams{{maxKDFTime, maxKDFMemory, 1}, {1, 8, 1}, {1, 8 * 255, 255}, DefaultKDF} {
		if _, err := DecodePrivateKey(block(1, 1, p), nil); !errors.Is(err, ErrPassphraseRequired) {
			t.Errorf("params %+v: %v, want them accepted", p, err)
		}
	}
	// The encoder refuses to write what the decoder would refuse.
	key := newKey(t)
	for _, p := range []KDFParams{{0, 64, 1}, {maxKDFTime + 1, 64, 1}, {1, 64, 0}, {1, 7, 1}, {1, maxKDFMemory + 1, 1}} {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("EncodePrivateKey(%+v) panicked: %v", p, r)
				}
			}()
			if _, err := EncodePrivateKey(key, []byte("pw"), p); err == nil {
				t.Errorf("EncodePrivateKey(%+v) wrote a key file the decoder refuses", p)
			}
		}()
	}
}

func TestKeyFileMalformed(t *testing.T) {
	key := newKey(t)
	plain := must(EncodePrivateKey(key, nil, fastKDF))
	enc := must(EncodePrivateKey(key, []byte("pw"), fastKDF))
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	sec1, _ := x509.MarshalECPrivateKey(ec)
	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrCorrupt},
		{"not PEM", []byte("hello"), ErrCorrupt},
		{"certificate", EncodeCertificatesPEM(selfSigned(t, key, "A")), ErrCorrupt},
		{"SEC1 EC key", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}), ErrCorrupt},
		{"PKCS#8 ECDSA key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}), ErrNotEd25519},
		{"encrypted ECDSA key", sealKeyBlock(t, ecDER, []byte("pw"), fastKDF), ErrNotEd25519},
		{"encrypted garbage", sealKeyBlock(t, []byte("not DER"), []byte("pw"), fastKDF), ErrCorrupt},
		{"plain garbage", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("junk")}), ErrCorrupt},
		{"two keys", append(bytes.Clone(plain), plain...), ErrCorrupt},
		{"junk after the key", append(bytes.Clone(enc), "x"...), ErrCorrupt},
		{"too large", append(bytes.Clone(plain), bytes.Repeat([]byte(" "), maxKeyFile)...), ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodePrivateKey(tc.data, pass("pw"))
			if !errors.Is(err, tc.want) {
				t.Fatalf("%v, want %v", err, tc.want)
			}
		})
	}
	// Accepted variations.
	for name, data := range map[string][]byte{
		"text before the block": append([]byte("my key\n"), plain...),
		"CRLF":                  []byte(strings.ReplaceAll(string(enc), "\n", "\r\n")),
		"trailing blank lines":  append(bytes.Clone(enc), "\n\n  \n"...),
		"documented format":     sealKeyBlock(t, must(x509.MarshalPKCS8PrivateKey(key)), []byte("pw"), fastKDF),
	} {
		got, err := DecodePrivateKey(data, pass("pw"))
		if err != nil || !got.Equal(key) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// The key must be usable.
	got, _ := DecodePrivateKey(enc, pass("pw"))
	if !ed25519.Verify(pubOf(key), []byte("m"), ed25519.Sign(got, []byte("m"))) {
		t.Error("decoded key does not sign like the original")
	}
}
