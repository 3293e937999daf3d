package ratchet

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"testing"
)

// hmacSHA256 is HMAC-SHA256: the same as crypto/hmac for keys shorter
// than, as long as and longer than a block, messages of any length and
// split anyhow.
func TestHMACMatchesStdlib(t *testing.T) {
	for _, kl := range []int{0, 1, 31, 32, 33, 63, 64, 65, 100, 128, 200} {
		for _, ml := range []int{0, 1, 2, 31, 32, 55, 56, 63, 64, 65, 119, 128, 300, 1000} {
			key, msg := seq(byte(kl), kl), seq(byte(3*ml+1), ml)
			m := hmac.New(sha256.New, key)
			m.Write(msg)
			want := m.Sum(nil)
			for _, cut := range []int{0, ml / 3, ml / 2, ml} {
				var got [32]byte
				hmacSHA256(&got, key, msg[:cut], nil, msg[cut:])
				if !bytes.Equal(got[:], want) {
					t.Fatalf("key %d bytes, message %d bytes cut at %d: %x, crypto/hmac says %x", kl, ml, cut, got, want)
				}
			}
		}
	}
}

// hkdfSHA256 is HKDF-SHA256: the same as crypto/hkdf for any output
// length, with and without a salt.
func TestHKDFMatchesStdlib(t *testing.T) {
	for _, salt := range [][]byte{nil, seq(7, 32), seq(9, 80)} {
		for _, sl := range []int{0, 32, 100} {
			for _, n := range []int{0, 1, 31, 32, 33, 64, 96, 100, 255 * 32} {
				secret, info := seq(byte(sl), sl), []byte(fmt.Sprintf("info %d", n))
				want, err := hkdf.Key(sha256.New, secret, salt, string(info), n)
				if err != nil {
					t.Fatal(err)
				}
				got := make([]byte, n)
				if err := hkdfSHA256(got, secret, salt, info); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("salt %d bytes, secret %d bytes, %d bytes out: differs from crypto/hkdf", len(salt), sl, n)
				}
			}
		}
	}
	if err := hkdfSHA256(make([]byte, 255*32+1), nil, nil, nil); err == nil {
		t.Fatal("hkdf gave more than 255 blocks")
	}
}

// The KDFs of every message (the chain step, the message key's AEAD key)
// and of every DH ratchet step allocate nothing.
func TestKDFAllocations(t *testing.T) {
	ck, rk, dhOut := [32]byte(seq(1, 32)), [32]byte(seq(2, 32)), seq(3, 32)
	for name, f := range map[string]func(){
		"hmacSHA256":     func() { hmacSHA256(&ck, ck[:], kdfCKMessage) },
		"kdfCK":          func() { ck, _ = kdfCK(&ck) },
		"messageAEADKey": func() { ck, _ = messageAEADKey(&ck) },
		"kdfRK":          func() { rk, ck, _, _ = kdfRK(&rk, dhOut) },
		"sessionInitKeys": func() {
			rk, ck, _, _ = sessionInitKeys(&rk)
		},
	} {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %v allocations, want 0", name, n)
		}
	}
}

// Sealing on an established session allocates only what it returns and
// what the immutable set needs: the envelope, the new session and set,
// and the two ciphers. The associated data comes from a pool and the
// payload's nonce is drawn into the envelope (a group message is sealed
// once per member: each was 100 allocations a message).
func TestSealAllocations(t *testing.T) {
	alice, _ := established(t)
	plain := []byte("a group message of some length")
	n := testing.AllocsPerRun(100, func() {
		if _, _, err := alice.set.Seal(plain, t0); err != nil {
			t.Fatal(err)
		}
	})
	if n > sealAllocs {
		t.Errorf("Seal: %v allocations, want at most %d", n, sealAllocs)
	}
}

// sealAllocs: the envelope, the session's clone, the set's clone and its
// sessions, the header's and the payload's ciphers.
const sealAllocs = 6
