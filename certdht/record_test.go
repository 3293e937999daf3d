package certdht

import (
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
	ma "github.com/multiformats/go-multiaddr"
)

func newKey(t testing.TB) (crypto.PrivKey, peer.ID) {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return k, id
}

var testAddrs = []ma.Multiaddr{
	ma.StringCast("/ip4/192.0.2.1/tcp/4001/p2p/12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK/p2p-circuit"),
	ma.StringCast("/ip4/198.51.100.2/udp/4001/quic-v1"),
}

// Validate accepts a peer's own record under its key for the day, the
// day before and the day after, and refuses every other combination.
func TestValidate(t *testing.T) {
	k, id := newKey(t)
	_, other := newKey(t)
	val, err := SealPeerRecord(k, testAddrs)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	e := EpochOf(now)
	// A record whose envelope is signed by another key than its peer's.
	ok, _ := newKey(t)
	forged, err := record.Seal(&peer.PeerRecord{PeerID: id, Addrs: testAddrs, Seq: 1}, ok)
	if err != nil {
		t.Fatal(err)
	}
	forgedBytes, err := forged.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	flipped := append([]byte(nil), val...)
	flipped[len(flipped)-5] ^= 1
	for _, tc := range []struct {
		name string
		key  string
		val  []byte
		want error
	}{
		{"today", RecordKey(id, e), val, nil},
		{"yesterday", RecordKey(id, e-1), val, nil},
		{"tomorrow", RecordKey(id, e+1), val, nil},
		{"two days ago", RecordKey(id, e-2), val, ErrRecordEpoch},
		{"another peer's key", RecordKey(other, e), val, ErrRecordEpoch},
		{"another namespace", "/pk/" + string(id), val, ErrRecordKey},
		{"signed by another key", RecordKey(id, e), forgedBytes, ErrRecordSigner},
		{"a flipped bit", RecordKey(id, e), flipped, ErrRecordMalformed},
		{"empty", RecordKey(id, e), nil, ErrRecordMalformed},
		{"too large", RecordKey(id, e), make([]byte, MaxRecordSize+1), ErrRecordMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Validator{Now: func() time.Time { return now }}.Validate(tc.key, tc.val)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// Select picks the newest record, and skips one that does not open.
func TestSelect(t *testing.T) {
	k, _ := newKey(t)
	older, err := SealPeerRecord(k, testAddrs[:1])
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Millisecond) // sequence numbers come from the clock
	newer, err := SealPeerRecord(k, testAddrs)
	if err != nil {
		t.Fatal(err)
	}
	i, err := Validator{}.Select("", [][]byte{older, []byte("junk"), newer})
	if err != nil || i != 2 {
		t.Fatalf("Select = %d, %v; want 2", i, err)
	}
	if _, err := (Validator{}).Select("", [][]byte{[]byte("junk")}); err == nil {
		t.Fatal("Select chose among no valid records")
	}
}

// The record key changes every day and differs between peers.
func TestRecordKeyRotates(t *testing.T) {
	_, a := newKey(t)
	_, b := newKey(t)
	if RecordKey(a, 1) == RecordKey(a, 2) || RecordKey(a, 1) == RecordKey(b, 1) {
		t.Fatal("record keys collide")
	}
}

// OpenPeerRecord never panics on untrusted bytes, and what it accepts is
// signed by the peer it names.
func FuzzOpenPeerRecord(f *testing.F) {
	k, _ := newKey(f)
	val, err := SealPeerRecord(k, testAddrs)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(val)
	f.Add([]byte{})
	f.Add(val[:len(val)/2])
	f.Fuzz(func(t *testing.T, b []byte) {
		pr, err := OpenPeerRecord(b)
		if err != nil {
			return
		}
		env, _, err := record.ConsumeEnvelope(b, peer.PeerRecordEnvelopeDomain)
		if err != nil {
			t.Fatalf("opened, but the envelope does not verify: %v", err)
		}
		if id, _ := peer.IDFromPublicKey(env.PublicKey); id != pr.PeerID {
			t.Fatal("opened a record signed by another key")
		}
	})
}
