package store

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
)

// delivKey is the key of member p's delivery record of group message
// gid/seq (delivKeyAD without the AD).
func delivKey(gid GroupID, seq uint64, p peer.ID) []byte {
	k, _ := delivKeyAD(gid, seq, p)
	return k
}

// TestGroupDeliveriesSealed: when each member got a group message is
// conversation metadata, sealed like the message (issue 11, finding 10).
// A delivery's record holds no clear time, does not open in another
// place, and one kept in the clear by the programs before is sealed when
// the database is opened.
func TestGroupDeliveriesSealed(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	key := make([]byte, 32)
	rand.Read(key)
	s, err := Open(path, key)
	if err != nil {
		t.Fatal(err)
	}
	id := testGroup(t, s)
	members := []peer.ID{testPeer(t), testPeer(t)}
	m := &GroupMessage{Group: id, ID: e2e.MessageID{1}, SentAt: time.Now(), StoredAt: time.Now(), Body: "hello"}
	if err := s.Groups().AddGroupOutgoing(m, members); err != nil {
		t.Fatal(err)
	}
	when := time.UnixMilli(time.Now().UnixMilli())
	if _, _, err := s.Groups().SetGroupStatus(m.ID, members[0], StatusDelivered, when); err != nil {
		t.Fatal(err)
	}
	clearValue := binary.BigEndian.AppendUint64([]byte{byte(slices.Index(delivCodes, StatusDelivered))}, uint64(when.UnixMilli()))
	k0, k1 := delivKey(id, m.Seq, members[0]), delivKey(id, m.Seq, members[1])
	var v0 []byte
	if err := s.db.View(func(tx *bolt.Tx) error {
		v0 = bytes.Clone(tx.Bucket(bktGDeliv).Get(k0))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(v0) == delivPlainLen || bytes.Contains(v0, clearValue[1:]) {
		t.Fatalf("the delivery is stored in the clear: %x", v0)
	}

	// Moved to another member's place, it does not open.
	poke(t, s, v0, k1, bktGDeliv)
	var bad *CorruptError
	if _, err := s.Groups().GroupMessageByID(m.ID); !errors.As(err, &bad) {
		t.Fatalf("a delivery moved to another member: %v, want a CorruptError", err)
	}

	// The clear form of the version before (9 bytes) is sealed at open.
	if err := s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bktGDeliv).Put(k0, clearValue); err != nil {
			return err
		}
		if err := tx.Bucket(bktGDeliv).Put(k1, []byte{byte(slices.Index(delivCodes, StatusSent)), 0, 0, 0, 0, 0, 0, 0, 0}); err != nil {
			return err
		}
		return tx.Bucket(bktMeta).Delete(keyDelivSealed)
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(path, key); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Groups().GroupMessageByID(m.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := []MemberDelivery{{Peer: members[0], Status: StatusDelivered, Delivered: when}, {Peer: members[1], Status: StatusSent}}
	// Members come back in the order of the message's member list (the
	// order they were sent to), which is want's.
	if len(got.Members) != 2 {
		t.Fatalf("members after the reopen: %+v", got.Members)
	}
	for i := range want {
		if g := got.Members[i]; g.Peer != want[i].Peer || g.Status != want[i].Status || !g.Delivered.Equal(want[i].Delivered) {
			t.Errorf("member %d after the reopen: %+v, want %+v", i, g, want[i])
		}
	}
	if err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bktGDeliv).ForEach(func(k, v []byte) error {
			if len(v) == delivPlainLen {
				t.Errorf("gdeliv/%x is still in the clear after the open", k)
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkDeliveryRecord: what sealing a member's delivery costs a
// receipt, beside the clear record of the version before (encode and
// decode once each; the transaction and its fsync, which dominate, are
// the same for both).
func BenchmarkDeliveryRecord(b *testing.B) {
	key := make([]byte, 32)
	rand.Read(key)
	s, err := Open(filepath.Join(b.TempDir(), FileName), key)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	g := s.Groups()
	p := peer.ID("member")
	_, ad := delivKeyAD(GroupID{1}, 7, p)
	d := MemberDelivery{Peer: p, Status: StatusDelivered, Delivered: time.UnixMilli(time.Now().UnixMilli())}
	b.Run("clear (before)", func(b *testing.B) {
		for b.Loop() {
			code := slices.Index(delivCodes, d.Status)
			v := binary.BigEndian.AppendUint64([]byte{byte(code)}, uint64(optTime(d.Delivered)))
			if int(v[0]) >= len(delivCodes) || fromOptTime(int64(binary.BigEndian.Uint64(v[1:]))).IsZero() {
				b.Fatal("bad record")
			}
		}
	})
	b.Run("sealed", func(b *testing.B) {
		for b.Loop() {
			if _, err := g.parseDeliv(ad, g.delivValue(ad, d), p); err != nil {
				b.Fatal(err)
			}
		}
	})
}
