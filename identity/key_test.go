package identity

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	p2pcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestPeerIDRoundTrip(t *testing.T) {
	key := seededKey("peer id")
	id := peerIDOf(t, pubOf(key))
	if !strings.HasPrefix(id.String(), "12D3KooW") {
		t.Errorf("Ed25519 peer id %s: want the usual 12D3KooW prefix (identity multihash)", id)
	}
	back, err := KeyFromPeerID(id)
	if err != nil || !back.Equal(pubOf(key)) {
		t.Fatalf("KeyFromPeerID = %x, %v", back, err)
	}
	parsed, err := ParsePeerID(id.String())
	if err != nil || parsed != id {
		t.Fatalf("ParsePeerID = %s, %v", parsed, err)
	}
	// The CIDv1 text form names the same peer.
	parsed, err = ParsePeerID(peer.ToCid(id).String())
	if err != nil || parsed != id {
		t.Fatalf("ParsePeerID(CID) = %s, %v", parsed, err)
	}
	if p, err := PeerIDFromPublicKey(pubOf(key)); err != nil || p != id {
		t.Fatalf("PeerIDFromPublicKey = %s, %v", p, err)
	}
	lk, err := Libp2pKey(key)
	if err != nil || !id.MatchesPrivateKey(lk) {
		t.Fatalf("Libp2pKey: %v", err)
	}
}

func TestPeerIDRejects(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := PeerIDFromPublicKey(&ec.PublicKey); !errors.Is(err, ErrNotEd25519) {
		t.Errorf("ECDSA key: %v", err)
	}
	if _, err := PeerIDFromKey(make([]byte, 31)); !errors.Is(err, ErrNotEd25519) {
		t.Errorf("short key: %v", err)
	}
	if _, err := Libp2pKey(make([]byte, 10)); !errors.Is(err, ErrNotEd25519) {
		t.Errorf("short private key: %v", err)
	}
	if _, err := KeyFromPeerID(""); err == nil {
		t.Error("empty peer id accepted")
	}

	// A secp256k1 peer id embeds a key, but not an Ed25519 one.
	_, secp, err := p2pcrypto.GenerateSecp256k1Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	secpID, err := peer.IDFromPublicKey(secp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := KeyFromPeerID(secpID); !errors.Is(err, ErrNotEd25519) {
		t.Errorf("secp256k1 peer id: %v", err)
	}
	if _, err := ParsePeerID(secpID.String()); !errors.Is(err, ErrNotEd25519) {
		t.Errorf("ParsePeerID(secp256k1): %v", err)
	}
	// A hashed (Qm...) peer id does not embed its key.
	_, rsaKey, err := p2pcrypto.GenerateKeyPair(p2pcrypto.RSA, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaID, _ := peer.IDFromPublicKey(rsaKey)
	if _, err := ParsePeerID(rsaID.String()); err == nil {
		t.Errorf("hashed peer id %s accepted", rsaID)
	}
	for _, s := range []string{"", "hello", "12D3KooW", "12D3KooWxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"} {
		if _, err := ParsePeerID(s); err == nil {
			t.Errorf("ParsePeerID(%q) accepted", s)
		}
	}
}

// A peer id is the multihash of a protobuf, and protobuf decoding is
// lenient: the same key can be wrapped in other bytes (fields reordered,
// unknown fields). Such an id names the key, but it is not the id the key
// derives, so libp2p never presents it for that key: pinning it would pin
// nothing. It must be refused.
func TestKeyFromPeerIDRejectsNonCanonical(t *testing.T) {
	pub := pubOf(seededKey("non-canonical"))
	canonical := peerIDOf(t, pub)
	// Type (field 1) = Ed25519 (1); Data (field 2) = key.
	reordered := append(append([]byte{0x12, 0x20}, pub...), 0x08, 0x01)
	extra := append(append([]byte{0x08, 0x01, 0x12, 0x20}, pub...), 0x18, 0x05)
	for name, proto := range map[string][]byte{"reordered": reordered, "extra field": extra} {
		mh := append([]byte{0x00, byte(len(proto))}, proto...) // identity multihash
		id := peer.ID(mh)
		if id == canonical {
			t.Fatal("test bug: same id")
		}
		// libp2p itself reads the key out of it ...
		pk, err := id.ExtractPublicKey()
		if err != nil {
			t.Fatalf("%s: libp2p does not read it: %v", name, err)
		}
		raw, _ := pk.Raw()
		if !bytes.Equal(raw, pub) {
			t.Fatalf("%s: different key", name)
		}
		// ... but it is not the key's peer id.
		if _, err := KeyFromPeerID(id); err == nil {
			t.Errorf("%s: KeyFromPeerID accepted a non-canonical peer id", name)
		}
		if _, err := ParsePeerID(id.String()); err == nil {
			t.Errorf("%s: ParsePeerID accepted a non-canonical peer id", name)
		}
	}
}
