package store

import (
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
)

// Corrupt records: each one surfaces as a *CorruptError that names it,
// never as a panic, a silent reset or a silent skip, and the operation
// that met it changes nothing.

func testStore(t *testing.T) *Store {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	s, err := Open(filepath.Join(t.TempDir(), FileName), key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func testPeer(t *testing.T) peer.ID {
	t.Helper()
	id, err := identity.Generate("p", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return id.PeerID()
}

// testPeers is n peers of their own (testPeer each).
func testPeers(t *testing.T, n int) []peer.ID {
	t.Helper()
	out := make([]peer.ID, n)
	for i := range out {
		out[i] = testPeer(t)
	}
	return out
}

// poke writes value under key in the bucket at path, behind the store's
// back (nil value: delete; a path of two names: a nested bucket).
func poke(t *testing.T, s *Store, value []byte, key []byte, path ...[]byte) {
	t.Helper()
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(path[0])
		for _, p := range path[1:] {
			b = b.Bucket(p)
		}
		if value == nil {
			if b.Bucket(key) != nil {
				return b.DeleteBucket(key)
			}
			return b.Delete(key)
		}
		return b.Put(key, value)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func peek(t *testing.T, s *Store, key []byte, bucket []byte) []byte {
	t.Helper()
	var out []byte
	s.db.View(func(tx *bolt.Tx) error {
		out = append([]byte(nil), tx.Bucket(bucket).Get(key)...)
		return nil
	})
	return out
}

// wantCorrupt checks that err is a *CorruptError naming record.
func wantCorrupt(t *testing.T, what string, err error, record string) {
	t.Helper()
	var ce *CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("%s: %v, want a *CorruptError", what, err)
	}
	if ce.Record != record {
		t.Fatalf("%s: corrupt record %q, want %q", what, ce.Record, record)
	}
	if !strings.Contains(err.Error(), record) {
		t.Fatalf("%s: %q does not name the record", what, err)
	}
}

func newOut(s *Store, p peer.ID, body string) (Message, error) {
	m := Message{ID: e2e.NewMessageID(), Peer: p, SentAt: time.Now(), StoredAt: time.Now(), Body: body}
	return m, s.AddOutgoing(&m)
}

// A conversation record that does not parse stops new messages in that
// conversation (the numbering would start again, and the write would
// make that permanent); other conversations go on.
func TestCorruptConversation(t *testing.T) {
	s := testStore(t)
	bob, carol := testPeer(t), testPeer(t)
	if _, err := newOut(s, bob, "one"); err != nil {
		t.Fatal(err)
	}
	bad := []byte(`{"peer":`)
	poke(t, s, bad, []byte(bob), bktConvs)
	_, err := newOut(s, bob, "two")
	wantCorrupt(t, "AddOutgoing", err, "convs/"+bob.String())
	in := Message{ID: e2e.NewMessageID(), Peer: bob, Body: "hi", Stream: 9, Number: 1}
	_, err = s.AddIncoming(&in)
	wantCorrupt(t, "AddIncoming", err, "convs/"+bob.String())
	wantCorrupt(t, "MarkRead", s.MarkRead(bob), "convs/"+bob.String())
	if got := peek(t, s, []byte(bob), bktConvs); string(got) != string(bad) {
		t.Fatalf("the corrupt record was rewritten: %q", got)
	}
	if h, err := s.History(bob, 0, 10); err != nil || len(h) != 1 {
		t.Fatalf("history after failed writes: %d messages, %v (want the one stored before)", len(h), err)
	}
	if _, err := newOut(s, carol, "to carol"); err != nil {
		t.Fatalf("another conversation: %v", err)
	}
	convs, err := s.Conversations()
	wantCorrupt(t, "Conversations", err, "convs/"+bob.String())
	if len(convs) != 1 || convs[0].Peer != carol {
		t.Fatalf("Conversations with one corrupt record: %+v, want carol's alone", convs)
	}
}

// An ID index entry whose message is gone is an error, not a nil-pointer
// panic, wherever a message is looked up by ID.
func TestCorruptIndex(t *testing.T) {
	s := testStore(t)
	bob := testPeer(t)
	m, err := newOut(s, bob, "one")
	if err != nil {
		t.Fatal(err)
	}
	poke(t, s, nil, []byte(bob), bktMsgs) // the whole conversation bucket
	record := "ids/" + m.ID.String()
	_, _, err = s.SetStatus(m.ID, bob, StatusDelivered, "", time.Now())
	wantCorrupt(t, "SetStatus", err, record)
	_, err = s.Message(m.ID)
	wantCorrupt(t, "Message", err, record)
	_, err = s.SetStatuses(CopiesTo(bob, []e2e.MessageID{m.ID}), StatusSent, time.Now())
	wantCorrupt(t, "SetStatuses", err, record)
	_, err = s.Outbox(bob)
	wantCorrupt(t, "Outbox", err, fmt.Sprintf("msgs/%s/%d", bob, m.Seq))
	_, _, err = s.Ratchets().SaveRatchetWithReceipt(Ratchet{Peer: bob, Set: []byte("next")}, m.ID, bob, time.Now())
	wantCorrupt(t, "SaveRatchetWithReceipt", err, record)
	if _, err := s.Ratchets().SessionSet(bob); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the ratchet state was written beside a failed receipt: %v", err)
	}

	poke(t, s, []byte{1, 2}, m.ID[:], bktIDs)
	_, err = s.Message(m.ID)
	wantCorrupt(t, "Message with a short index entry", err, record)
}

// A message record that does not parse, or whose body does not decrypt,
// names the message; a batch status change that meets it changes nothing.
func TestCorruptMessage(t *testing.T) {
	s := testStore(t)
	bob := testPeer(t)
	one, _ := newOut(s, bob, "one")
	two, err := newOut(s, bob, "two")
	if err != nil {
		t.Fatal(err)
	}
	record := fmt.Sprintf("msgs/%s/%d", bob, two.Seq)
	poke(t, s, []byte("{"), seqKey(two.Seq), bktMsgs, []byte(bob))
	_, err = s.History(bob, 0, 10)
	wantCorrupt(t, "History", err, record)
	_, err = s.Search("one", 10)
	wantCorrupt(t, "Search", err, record)
	_, err = s.SetStatuses(CopiesTo(bob, []e2e.MessageID{one.ID, two.ID}), StatusSent, time.Now())
	wantCorrupt(t, "SetStatuses", err, record)
	if got, err := s.Message(one.ID); err != nil || got.Status != StatusSending {
		t.Fatalf("a failed batch changed another message: %s, %v", got.Status, err)
	}

	// A record sealed for another place does not decrypt there.
	poke(t, s, movedBody(t, s, bob, one.Seq), seqKey(two.Seq), bktMsgs, []byte(bob))
	_, err = s.Message(two.ID)
	wantCorrupt(t, "Message with a moved body", err, record)
	if !strings.Contains(err.Error(), "does not decrypt") {
		t.Fatalf("%v: say why", err)
	}
}

// movedBody is the sealed record of p's message seq, to be put in
// another place: it is sealed for its own place and must not open there.
func movedBody(t *testing.T, s *Store, p peer.ID, seq uint64) []byte {
	t.Helper()
	var out []byte
	s.db.View(func(tx *bolt.Tx) error {
		out = append([]byte(nil), messages(tx, p).Get(seqKey(seq))...)
		return nil
	})
	if len(out) == 0 {
		t.Fatal("no record to move")
	}
	return out
}

// Peer records: Peer fails on the corrupt one; Peers returns the others
// and names the corrupt one, so a caller can skip it with a warning.
func TestCorruptPeerRecord(t *testing.T) {
	s := testStore(t)
	good, bad := testPeer(t), testPeer(t)
	if err := s.PutPeer(good, PeerRecord{Name: "bob"}); err != nil {
		t.Fatal(err)
	}
	poke(t, s, []byte("not json"), []byte(bad), bktPeers)
	_, _, err := s.Peer(bad)
	wantCorrupt(t, "Peer", err, "peers/"+bad.String())
	all, err := s.Peers()
	wantCorrupt(t, "Peers", err, "peers/"+bad.String())
	if len(all) != 1 || all[good].Name != "bob" {
		t.Fatalf("Peers beside a corrupt record: %+v", all)
	}
}

func TestCorruptMeta(t *testing.T) {
	s := testStore(t)
	poke(t, s, []byte("[1"), keyListenPorts, bktMeta)
	_, err := s.ListenPorts()
	wantCorrupt(t, "ListenPorts", err, "meta/listen-ports")
}

func TestCorruptRatchet(t *testing.T) {
	s := testStore(t)
	bob := testPeer(t)
	if _, err := s.Ratchets().LocalKeys(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("LocalKeys on a new store: %v, want ErrNotFound", err)
	}
	if err := s.Ratchets().SaveRatchet(Ratchet{Local: []byte("local"), Peer: bob, Set: []byte("set")}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Ratchets().SessionSet(bob); err != nil || string(got) != "set" {
		t.Fatalf("SessionSet: %q, %v", got, err)
	}
	// Bob's sealed set moved under another peer's key does not open.
	carol := testPeer(t)
	poke(t, s, peek(t, s, setKey(bob), bktRatchet), setKey(carol), bktRatchet)
	_, err := s.Ratchets().SessionSet(carol)
	wantCorrupt(t, "SessionSet", err, "ratchet/set/"+carol.String())
}

// A receipt for an unknown message still commits the ratchet state that
// opened it; an I/O error is returned, never taken for "no message".
func TestReceiptErrors(t *testing.T) {
	s := testStore(t)
	bob := testPeer(t)
	m, changed, err := s.Ratchets().SaveRatchetWithReceipt(Ratchet{Peer: bob, Set: []byte("s1")}, e2e.NewMessageID(), bob, time.Now())
	if err != nil || changed || m.ID != (e2e.MessageID{}) {
		t.Fatalf("receipt for an unknown message: %+v %v %v", m, changed, err)
	}
	if got, err := s.Ratchets().SessionSet(bob); err != nil || string(got) != "s1" {
		t.Fatalf("the ratchet state of an unknown receipt: %q %v", got, err)
	}
	out, _ := newOut(s, bob, "x")
	s.Close()
	if _, _, err := s.Ratchets().SaveRatchetWithReceipt(Ratchet{Peer: bob, Set: []byte("s2")}, out.ID, bob, time.Now()); err == nil {
		t.Fatal("a receipt on a closed database reported no error")
	}
	if _, err := s.HasOutbox(bob); err == nil {
		t.Fatal("HasOutbox on a closed database reported no error")
	}
}
