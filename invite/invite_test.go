package invite

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// testKey is a fixed key derived from seed, and its peer ID.
func testKey(t testing.TB, seed string) (ed25519.PrivateKey, peer.ID) {
	s := sha256.Sum256([]byte(seed))
	key := ed25519.NewKeyFromSeed(s[:])
	id, err := identity.PeerIDFromKey(key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return key, id
}

func addrs(ss ...string) []ma.Multiaddr {
	out := make([]ma.Multiaddr, len(ss))
	for i, s := range ss {
		out[i] = ma.StringCast(s)
	}
	return out
}

// sample is a full invitation: two direct addresses and a relay.
func sample(t testing.TB) (Invitation, ed25519.PrivateKey) {
	key, id := testKey(t, "bob")
	_, relayID := testKey(t, "relay")
	return Invitation{
		PeerID: id, Name: "Bob Builder",
		Addrs:  addrs("/ip4/192.168.1.5/tcp/4001", "/ip4/192.168.1.5/udp/4001/quic-v1"),
		Relays: addrs("/dns4/relay.example.org/tcp/4001/p2p/" + relayID.String()),
		Issued: time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC),
	}, key
}

func TestRoundTrip(t *testing.T) {
	inv, key := sample(t)
	text, err := Encode(inv, key)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d characters: %s", len(text), text)
	if !strings.HasPrefix(text, Prefix) || strings.ToUpper(text) != text {
		t.Fatalf("not an upper-case %s text: %s", Prefix, text)
	}
	// A wrapped, lower-case copy reads the same.
	var wrapped strings.Builder
	for i, r := range strings.ToLower(text) {
		if i > 0 && i%40 == 0 {
			wrapped.WriteString("\n  ")
		}
		wrapped.WriteRune(r)
	}
	for _, in := range []string{text, " " + text + "\n", wrapped.String()} {
		got, err := Decode(in)
		if err != nil {
			t.Fatalf("decode %q: %v", in, err)
		}
		if got.PeerID != inv.PeerID || got.Name != inv.Name || !got.Issued.Equal(inv.Issued) ||
			len(got.Addrs) != 2 || !got.Addrs[1].Equal(inv.Addrs[1]) || len(got.Relays) != 1 || !got.Relays[0].Equal(inv.Relays[0]) {
			t.Fatalf("decoded %+v, want %+v", got, inv)
		}
	}
	got, _ := Decode(text)
	dial := got.DialAddrs()
	if len(dial) != 3 || dial[2].String() != inv.Relays[0].String()+"/p2p-circuit" {
		t.Fatalf("dial addresses %v", dial)
	}
	fp, err := got.Fingerprint()
	if err != nil || !fp.Equal(identity.FingerprintOf(key.Public().(ed25519.PublicKey))) {
		t.Fatalf("fingerprint %v, %v", fp, err)
	}
}

// Every change to an invitation's bytes is detected: a changed address,
// name or time fails the signature, a changed peer ID fails it too (the
// signature is checked with the key the peer ID names).
func TestTampered(t *testing.T) {
	inv, key := sample(t)
	text, err := Encode(inv, key)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := b32.DecodeString(text[len(Prefix):])
	if err != nil {
		t.Fatal(err)
	}
	for i := range raw {
		for _, bit := range []byte{0x01, 0x80} {
			bad := append([]byte(nil), raw...)
			bad[i] ^= bit
			if _, err := Decode(Prefix + b32.EncodeToString(bad)); err == nil {
				t.Fatalf("flipping bit %#x of byte %d was not detected", bit, i)
			}
		}
	}
	// Re-encoded with other addresses or another name, under bob's
	// signature: refused as a changed invitation.
	for _, change := range []func(*Invitation){
		func(i *Invitation) { i.Addrs = addrs("/ip4/203.0.113.66/tcp/4001") },
		func(i *Invitation) { i.Name = "Alice" },
		func(i *Invitation) { i.Relays = nil },
	} {
		changed := inv
		change(&changed)
		body, err := marshal(changed)
		if err != nil {
			t.Fatal(err)
		}
		sig := raw[len(raw)-sigLen:]
		if _, err := Decode(Prefix + b32.EncodeToString(append(body, sig...))); !errors.Is(err, ErrSignature) {
			t.Fatalf("changed invitation: %v, want ErrSignature", err)
		}
	}
	// Signed by another key for bob's peer ID: refused.
	other, _ := testKey(t, "mallory")
	if _, err := Encode(inv, other); err == nil {
		t.Fatal("encoded with a key that is not the peer ID's")
	}
	body, _ := marshal(inv)
	forged := append(body, ed25519.Sign(other, signed(body))...)
	if _, err := Decode(Prefix + b32.EncodeToString(forged)); !errors.Is(err, ErrSignature) {
		t.Fatalf("forged: %v, want ErrSignature", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	inv, key := sample(t)
	text, _ := Encode(inv, key)
	raw, _ := b32.DecodeString(text[len(Prefix):])
	newer := append([]byte{Version + 1}, raw[1:]...)
	for _, c := range []struct {
		name, text string
		want       error
	}{
		{"empty", "", ErrNotInvitation},
		{"peer id", inv.PeerID.String(), ErrNotInvitation},
		{"address", "/ip4/127.0.0.1/tcp/1/p2p/" + inv.PeerID.String(), ErrNotInvitation},
		{"prefix only", Prefix, ErrMalformed},
		{"not base32", Prefix + "!!!!", ErrMalformed},
		{"cut short", text[:len(text)-10], ErrMalformed},
		{"cut in half", text[:len(text)/2], ErrMalformed},
		{"newer version", Prefix + b32.EncodeToString(newer), ErrVersion},
		{"version 0", Prefix + b32.EncodeToString(append([]byte{0}, raw[1:]...)), ErrMalformed},
		{"trailing bytes", Prefix + b32.EncodeToString(append(raw[:len(raw)-sigLen:len(raw)-sigLen], append([]byte{0}, raw[len(raw)-sigLen:]...)...)), ErrMalformed},
		{"too long", Prefix + strings.Repeat("A", MaxText), ErrMalformed},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Decode(c.text); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

func TestEncodeLimits(t *testing.T) {
	inv, key := sample(t)
	for _, c := range []struct {
		name   string
		change func(*Invitation)
	}{
		{"too many addresses", func(i *Invitation) {
			for range MaxAddrs {
				i.Addrs = append(i.Addrs, i.Addrs[0])
			}
		}},
		{"a circuit as a direct address", func(i *Invitation) { i.Addrs = i.Relays }},
		{"a relay without its peer id", func(i *Invitation) { i.Relays = i.Addrs[:1] }},
		{"a name with an escape", func(i *Invitation) { i.Name = "bob\x1b[2J" }},
		{"before 1970", func(i *Invitation) { i.Issued = time.Unix(-1, 0) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			bad := inv
			c.change(&bad)
			if _, err := Encode(bad, key); err == nil {
				t.Fatal("encoded")
			}
		})
	}
}

func TestChoose(t *testing.T) {
	_, me := testKey(t, "me")
	_, relay := testKey(t, "relay")
	p2p := "/p2p/" + me.String()
	circuit := "/ip4/198.51.100.1/tcp/4001/p2p/" + relay.String() + "/p2p-circuit" + p2p
	got := Choose(addrs("/ip4/127.0.0.1/tcp/1"+p2p, "/ip4/192.168.1.5/tcp/1", circuit, "/ip4/192.168.1.5/tcp/1"+p2p, "/ip6/fe80::1/tcp/1", "/ip4/203.0.113.5/udp/1/quic-v1"))
	if want := "[/ip4/192.168.1.5/tcp/1 /ip4/203.0.113.5/udp/1/quic-v1]"; fmt.Sprint(got) != want {
		t.Fatalf("Choose: %v, want %s", got, want)
	}
	// Loopback only (a node told to listen on 127.0.0.1): kept.
	if got := Choose(addrs("/ip4/127.0.0.1/tcp/1"+p2p, circuit)); len(got) != 1 || got[0].String() != "/ip4/127.0.0.1/tcp/1" {
		t.Fatalf("loopback only: %v", got)
	}
	many := make([]ma.Multiaddr, 0, 20)
	for i := range 20 {
		many = append(many, ma.StringCast("/ip4/10.0.0.1/tcp/"+string(rune('1'+i%9))+"0"+string(rune('0'+i/9))))
	}
	if got := Choose(many); len(got) != MaxAddrs {
		t.Fatalf("Choose kept %d of 20, want %d", len(got), MaxAddrs)
	}
	if got := ChooseRelays(addrs("/ip4/198.51.100.1/tcp/4001/p2p/"+relay.String(), "/ip4/198.51.100.1/tcp/4001")); len(got) != 1 {
		t.Fatalf("ChooseRelays: %v", got)
	}
}

// The invitation of a node with a relay, as `chat id` shows it, fits a
// QR code an 80-column terminal can show.
func TestSize(t *testing.T) {
	inv, key := sample(t)
	_, relayID := testKey(t, "relay")
	inv.Relays = addrs("/ip4/198.51.100.1/tcp/4001/p2p/" + relayID.String())
	text, err := Encode(inv, key)
	if err != nil {
		t.Fatal(err)
	}
	qr, err := identity.QRCodeCompact(text)
	if err != nil {
		t.Fatal(err)
	}
	width := len([]rune(strings.SplitN(qr, "\n", 2)[0]))
	t.Logf("%d characters, QR code %d columns × %d rows", len(text), width, strings.Count(qr, "\n"))
	if len(text) > 400 || width > 78 {
		t.Fatalf("invitation of %d characters, QR code %d columns wide", len(text), width)
	}
}
