package ratchet

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/mlkem"
	"crypto/mlkem/mlkemtest"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

var update = flag.Bool("update", false, "rewrite testdata/kat.json from the current derivations")

// vector is one known-answer test: fixed inputs and the outputs they give.
// Byte strings are hex.
type vector struct {
	Name    string            `json:"name"`
	Inputs  map[string]string `json:"inputs"`
	Outputs map[string]string `json:"outputs"`
}

// seq returns n bytes start, start+1, ... (mod 256).
func seq(start byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

func hx(b []byte) string { return hex.EncodeToString(b) }

func x25519(t *testing.T, scalar []byte) *ecdh.PrivateKey {
	k, err := ecdh.X25519().NewPrivateKey(scalar)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func computeVectors(t *testing.T) []vector {
	var vs []vector
	add := func(name string, in, out map[string]string) {
		vs = append(vs, vector{Name: name, Inputs: in, Outputs: out})
	}

	rk, dhOut := [32]byte(seq(0x00, 32)), seq(0x20, 32)
	root, chain, nhk, err := kdfRK(&rk, dhOut)
	if err != nil {
		t.Fatal(err)
	}
	add("KDF_RK", map[string]string{"root_key": hx(rk[:]), "dh_out": hx(dhOut)},
		map[string]string{"root_key": hx(root[:]), "chain_key": hx(chain[:]), "next_header_key": hx(nhk[:])})

	ck := [32]byte(seq(0x40, 32))
	next, mk := kdfCK(&ck)
	add("KDF_CK", map[string]string{"chain_key": hx(ck[:])},
		map[string]string{"message_key": hx(mk[:]), "next_chain_key": hx(next[:])})

	mk = [32]byte(seq(0x60, 32))
	key, err := messageAEADKey(&mk)
	if err != nil {
		t.Fatal(err)
	}
	nonce := [xNonceSize]byte(seq(0x70, xNonceSize))
	payload, err := sealPayloadNonce(nil, &mk, &nonce, []byte("certchat"), []byte("associated data"))
	if err != nil {
		t.Fatal(err)
	}
	add("message key to XChaCha20-Poly1305 payload", map[string]string{"message_key": hx(mk[:]), "nonce": hx(nonce[:]),
		"plaintext": hx([]byte("certchat")), "ad": hx([]byte("associated data"))},
		map[string]string{"aead_key": hx(key[:]), "payload": hx(payload)})

	dhs := [][]byte{seq(0x80, 32), seq(0x90, 32), seq(0xa0, 32), seq(0xb0, 32)}
	ss := seq(0xc0, 32)
	sk4, err := pqxdhKDF(dhs[0], dhs[1], dhs[2], dhs[3], ss)
	if err != nil {
		t.Fatal(err)
	}
	sk3, err := pqxdhKDF(dhs[0], dhs[1], dhs[2], nil, ss)
	if err != nil {
		t.Fatal(err)
	}
	add("PQXDH KDF with DH4", map[string]string{"dh1": hx(dhs[0]), "dh2": hx(dhs[1]), "dh3": hx(dhs[2]), "dh4": hx(dhs[3]), "ss": hx(ss)},
		map[string]string{"sk": hx(sk4[:])})
	add("PQXDH KDF without DH4", map[string]string{"dh1": hx(dhs[0]), "dh2": hx(dhs[1]), "dh3": hx(dhs[2]), "ss": hx(ss)},
		map[string]string{"sk": hx(sk3[:])})

	sk := [32]byte(seq(0xd0, 32))
	irk, hka, nhkb, err := sessionInitKeys(&sk)
	if err != nil {
		t.Fatal(err)
	}
	add("session init", map[string]string{"sk": hx(sk[:])},
		map[string]string{"root_key": hx(irk[:]), "header_key_a": hx(hka[:]), "next_header_key_b": hx(nhkb[:])})

	exporter, id := seq(0xe0, 32), SessionID(seq(0xf0, 16))
	ratchetPub := x25519(t, seq(0x10, 32)).PublicKey().Bytes()
	seed, err := seedSecret(exporter, id, []byte("peer-alice"), []byte("peer-bob"), ratchetPub)
	if err != nil {
		t.Fatal(err)
	}
	add("TLS exporter seed", map[string]string{"exporter_secret": hx(exporter), "session_id": hx(id[:]),
		"initiator_peer_id": hx([]byte("peer-alice")), "responder_peer_id": hx([]byte("peer-bob")), "ratchet_public": hx(ratchetPub)},
		map[string]string{"sk": hx(seed[:]), "exporter_context": hx(ExporterContext([]byte("peer-bob"), []byte("peer-alice")))})

	signer := ed25519.NewKeyFromSeed(seq(0x01, 32))
	pub := x25519(t, seq(0x11, 32)).PublicKey().Bytes()
	m := signedMessage([]byte("peer-bob"), kindSignedPrekey, 7, 1767225600, pub)
	add("prekey signature", map[string]string{"ed25519_seed": hx(seq(0x01, 32)), "peer_id": hx([]byte("peer-bob")),
		"kind": "02", "id": "00000007", "created": "0000000069559a00", "public": hx(pub)},
		map[string]string{"signed_message": hx(m), "signature": hx(ed25519.Sign(signer, m))})

	in, out := pqxdhVector(t)
	add("PQXDH", in, out)
	return vs
}

// pqxdhVector runs both sides of PQXDH with fixed keys and KEM randomness.
func pqxdhVector(t *testing.T) (in, out map[string]string) {
	idA, ekA := x25519(t, seq(0x21, 32)), x25519(t, seq(0x31, 32))
	idB, spkB, opkB := x25519(t, seq(0x41, 32)), x25519(t, seq(0x51, 32)), x25519(t, seq(0x61, 32))
	dk, err := mlkem.NewDecapsulationKey768(seq(0x71, 64))
	if err != nil {
		t.Fatal(err)
	}
	ssA, ct, err := mlkemtest.Encapsulate768(dk.EncapsulationKey(), seq(0xb1, 32))
	if err != nil {
		t.Fatal(err)
	}
	bk := &bundleKeys{idDH: idB.PublicKey(), spk: spkB.PublicKey(), opk: opkB.PublicKey(), kem: dk.EncapsulationKey()}
	skA, err := initiatorSecret(idA, ekA, bk, ssA)
	if err != nil {
		t.Fatal(err)
	}
	bob := &LocalKeys{idDH: idB, signed: []signedPrekey{{priv: spkB}}, oneTimeEC: []oneTimePrekey{{priv: opkB}}}
	p := &initialPart{idDH: [32]byte(idA.PublicKey().Bytes()), base: [32]byte(ekA.PublicKey().Bytes()), kemCipher: ct}
	skB, err := responderSecret(bob, 0, 0, dk, p)
	if err != nil {
		t.Fatal(err)
	}
	if skA != skB {
		t.Fatal("PQXDH: initiator and responder disagree")
	}
	ctHash := sha256.Sum256(ct)
	in = map[string]string{"ik_a_dh_private": hx(seq(0x21, 32)), "ek_a_private": hx(seq(0x31, 32)),
		"ik_b_dh_private": hx(seq(0x41, 32)), "spk_b_private": hx(seq(0x51, 32)), "opk_b_private": hx(seq(0x61, 32)),
		"pqpk_b_seed": hx(seq(0x71, 64)), "encapsulation_randomness": hx(seq(0xb1, 32))}
	out = map[string]string{"kem_ciphertext_sha256": hx(ctHash[:]), "ss": hx(ssA), "sk": hx(skA[:])}
	return in, out
}

func TestKnownAnswers(t *testing.T) {
	got, err := json.MarshalIndent(computeVectors(t), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", "kat.json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var gv, wv []vector
	if err := json.Unmarshal(got, &gv); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(want, &wv); err != nil {
		t.Fatal(err)
	}
	if len(gv) != len(wv) {
		t.Fatalf("%d vectors, golden file has %d", len(gv), len(wv))
	}
	for i := range wv {
		for k, w := range wv[i].Outputs {
			if g := gv[i].Outputs[k]; g != w || gv[i].Name != wv[i].Name {
				t.Errorf("%s: %s = %s, golden %s", wv[i].Name, k, g, w)
			}
		}
		if len(gv[i].Outputs) != len(wv[i].Outputs) {
			t.Errorf("%s: output set changed", wv[i].Name)
		}
	}
	if !bytes.Equal(got, want) && !t.Failed() {
		t.Error("kat.json inputs differ from the test's; run with -update only after a reviewed change")
	}
}

// TestMessageKeyAEAD checks the payload is nonce || XChaCha20-Poly1305
// under the derived key (an independent AEAD opens it) and that two seals
// with one message key never share a nonce.
func TestMessageKeyAEAD(t *testing.T) {
	mk := [32]byte(seq(0x60, 32))
	key, err := messageAEADKey(&mk)
	if err != nil {
		t.Fatal(err)
	}
	p1, err := sealPayload(nil, &mk, []byte("certchat"), []byte("ad"))
	if err != nil {
		t.Fatal(err)
	}
	p2, err := sealPayload(nil, &mk, []byte("certchat"), []byte("ad"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(p1[:xNonceSize], p2[:xNonceSize]) {
		t.Fatal("nonce reused")
	}
	aead, err := chacha20poly1305.NewX(key[:])
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := aead.Open(nil, p1[:xNonceSize], p1[xNonceSize:], []byte("ad")); err != nil || string(pt) != "certchat" {
		t.Fatalf("independent open: %v", err)
	}
}
