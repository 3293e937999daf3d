package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
)

// groupRecordBytes is group id's record as the file holds it (sealed).
func groupRecordBytes(t *testing.T, s *Store, id GroupID) []byte {
	t.Helper()
	var v []byte
	if err := s.db.View(func(tx *bolt.Tx) error {
		v = bytes.Clone(tx.Bucket(bktGroups).Get(id[:]))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if v == nil {
		t.Fatalf("group %x has no record", id[:4])
	}
	return v
}

// TestGroupMessageLeavesRecord: sending, receiving (a text and an
// action), a receipt and marking the group read leave the group's record
// (its membership log, which grows with the members) byte for byte as it
// was; the counts they change are kept apart and read back.
func TestGroupMessageLeavesRecord(t *testing.T) {
	s := testStore(t)
	id := testGroup(t, s)
	g := s.Groups()
	before := groupRecordBytes(t, s, id)
	alice, bob := testPeer(t), testPeer(t)
	at := time.UnixMilli(time.Now().UnixMilli())

	out := &GroupMessage{Group: id, ID: e2e.NewMessageID(), SentAt: at, StoredAt: at, Body: "out"}
	if err := g.AddGroupOutgoing(out, []peer.ID{alice, bob}); err != nil {
		t.Fatal(err)
	}
	in := &GroupMessage{Group: id, ID: e2e.NewMessageID(), From: alice, SentAt: at, Body: "in", Stream: 5, Number: 1}
	if _, err := g.ReceiveGroup(in, at.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	react := &GroupMessage{Group: id, ID: e2e.NewMessageID(), From: bob, SentAt: at, Kind: KindReact, Target: in.ID, Emoji: "👍", Stream: 6, Number: 1}
	if _, err := g.ReceiveGroup(react, at.Add(2*time.Second)); err != nil || react.Refused != "" {
		t.Fatalf("reaction: %v %q", err, react.Refused)
	}
	if _, _, err := g.SetGroupStatus(out.ID, alice, StatusDelivered, at); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(groupRecordBytes(t, s, id), before) {
		t.Fatal("a group message rewrote the group's record")
	}
	got, _, err := g.Get(id)
	if err != nil || got.Unread != 1 || got.Messages != 2 || !got.Last.Equal(at.Add(time.Second)) {
		t.Fatalf("counts: %+v, %v", got, err)
	}
	if err := g.MarkGroupRead(id); err != nil {
		t.Fatal(err)
	}
	if got, _, err := g.Get(id); err != nil || got.Unread != 0 || got.Messages != 2 {
		t.Fatalf("after reading: %+v, %v", got, err)
	}
	if !bytes.Equal(groupRecordBytes(t, s, id), before) {
		t.Fatal("marking the group read rewrote the group's record")
	}
	if err := g.MarkGroupRead(GroupID{9}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("marking an unknown group read: %v", err)
	}

	// The numbering goes on from the counts: ours, and alice's window.
	next := &GroupMessage{Group: id, ID: e2e.NewMessageID(), SentAt: at, StoredAt: at, Body: "out 2"}
	if err := g.AddGroupOutgoing(next, []peer.ID{alice}); err != nil || next.Number != 2 || next.Stream != out.Stream {
		t.Fatalf("second message numbered %d in %x (want 2 in %x): %v", next.Number, next.Stream, out.Stream, err)
	}
	gap := &GroupMessage{Group: id, ID: e2e.NewMessageID(), From: alice, SentAt: at, Body: "in 3", Stream: 5, Number: 3}
	if _, err := g.ReceiveGroup(gap, at); err != nil || gap.Late || gap.Missing != 1 {
		t.Fatalf("alice's 3rd: late %v missing %d, %v", gap.Late, gap.Missing, err)
	}
	late := &GroupMessage{Group: id, ID: e2e.NewMessageID(), From: alice, SentAt: at, Body: "in 2", Stream: 5, Number: 2}
	if _, err := g.ReceiveGroup(late, at); err != nil || !late.Late || late.Missing != 0 {
		t.Fatalf("alice's 2nd: late %v missing %d, %v", late.Late, late.Missing, err)
	}
	// A message to a group the store does not have changes nothing.
	stray := &GroupMessage{Group: GroupID{9}, ID: e2e.NewMessageID(), From: alice, Body: "x", Stream: 5, Number: 4}
	if _, err := g.ReceiveGroup(stray, at); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a message to an unknown group: %v", err)
	}
	if !bytes.Equal(groupRecordBytes(t, s, id), before) {
		t.Fatal("a group message rewrote the group's record")
	}
}

// countKeys lists the keys of the counts' buckets.
func countKeys(t *testing.T, s *Store) (keys [][]byte) {
	t.Helper()
	if err := s.db.View(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bktGCount, bktGRecv} {
			b := tx.Bucket(name)
			if b == nil {
				return errors.New("no " + string(name) + " bucket")
			}
			if err := b.ForEach(func(k, _ []byte) error {
				keys = append(keys, bytes.Clone(k))
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestGroupSendersBlinded: the counts' keys show neither the group nor
// who sent in it, not even as a hash anyone can compute (another storage
// key gives other keys), and a sender's window moved under another's key
// does not open.
func TestGroupSendersBlinded(t *testing.T) {
	alice, bob := testPeer(t), testPeer(t)
	id := GroupID{1, 2, 3}
	at := time.Now()
	fill := func(s *Store) []byte {
		t.Helper()
		testGroup(t, s)
		out := &GroupMessage{Group: id, ID: e2e.NewMessageID(), SentAt: at, StoredAt: at, Body: "out"}
		if err := s.Groups().AddGroupOutgoing(out, []peer.ID{bob}); err != nil {
			t.Fatal(err)
		}
		for i, from := range []peer.ID{alice, bob} {
			m := &GroupMessage{Group: id, ID: e2e.NewMessageID(), From: from, SentAt: at, Body: "in", Stream: 5, Number: uint64(i + 1)}
			if _, err := s.Groups().ReceiveGroup(m, at); err != nil {
				t.Fatal(err)
			}
		}
		path := s.db.Path()
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	s1, s2 := testStore(t), testStore(t)
	raw := fill(s1)
	fill(s2)
	k1, k2 := countKeys(t, s1), countKeys(t, s2)
	if len(k1) != 3 || len(k2) != 3 { // the group's counts, alice's and bob's windows
		t.Fatalf("counts' keys: %d and %d, want 3", len(k1), len(k2))
	}
	for _, k := range k1 {
		for _, clear := range [][]byte{id[:3], []byte(alice), []byte(bob), []byte(alice.String()), []byte(bob.String())} {
			if bytes.Contains(k, clear) {
				t.Fatalf("key %x shows %x", k, clear)
			}
		}
		if slices.ContainsFunc(k2, func(o []byte) bool { return bytes.Equal(o, k) }) {
			t.Fatalf("key %x is the same under another storage key: not keyed", k)
		}
	}
	// alice only sent: the file shows her nowhere (bob is in the
	// clear as the member our message went to, as doc.go says).
	for _, clear := range [][]byte{[]byte(alice), []byte(alice.String())} {
		if bytes.Contains(raw, clear) {
			t.Fatal("the file shows a peer that only sent in the group")
		}
	}

	// Alice's window moved under bob's key does not open.
	var av []byte
	s1.db.View(func(tx *bolt.Tx) error {
		av = bytes.Clone(tx.Bucket(bktGRecv).Get(s1.blind.blinded(recvPlace(id, alice))))
		return nil
	})
	if av == nil {
		t.Fatal("alice has no window")
	}
	poke(t, s1, av, s1.blind.blinded(recvPlace(id, bob)), bktGRecv)
	m := &GroupMessage{Group: id, ID: e2e.NewMessageID(), From: bob, SentAt: at, Body: "in", Stream: 5, Number: 3}
	var bad *CorruptError
	if _, err := s1.Groups().ReceiveGroup(m, at); !errors.As(err, &bad) {
		t.Fatalf("a window moved to another sender: %v, want a CorruptError", err)
	}
}

// testdata/v3-groups.db was written by the store of version 3 (before
// the counts left the group records), under the key 32 × 0x07. Group
// 32 × 0x31, named "v3 group", changes "v3 create", "v3 add": two
// messages of ours to bob and carol (v1Bob, v1Carol of migrate_test.go),
// numbered 1 and 2 in stream v3Stream, the first delivered to bob; bob's
// 1 and 3 in stream 77 and carol's 1 in stream 88 received, at 05:02,
// 05:03 and 05:05 UTC on 2026-12-03 (unread 3, 5 messages). Group 32 ×
// 0x32 has only its create, "v3 other create", and no messages.
const v3Stream = 15900194286815856710

// v3Copy copies testdata/v3-groups.db to a temporary directory, for a
// test to open (and change): the copy's path, and the file's bytes.
func v3Copy(t *testing.T) (path string, v3 []byte) {
	t.Helper()
	v3, err := os.ReadFile(filepath.Join("testdata", "v3-groups.db"))
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(t.TempDir(), FileName)
	if err := os.WriteFile(path, v3, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, v3
}

// TestMigrateGroupsFromVersion3: opening a version 3 database moves each
// group's counts out of its record: the record keeps its log and name
// only, and the numbering, windows and counts go on as they were.
func TestMigrateGroupsFromVersion3(t *testing.T) {
	path, v3 := v3Copy(t)
	key := bytes.Repeat([]byte{7}, 32)
	g1, g2 := GroupID(bytes.Repeat([]byte{0x31}, 32)), GroupID(bytes.Repeat([]byte{0x32}, 32))
	bob, _ := identity.ParsePeerID("12D3KooWEbuVtQ1pFAq58ZxxaP7ZZNmCDyXSFcU82PH2WpVDuCgg")
	carol, _ := identity.ParsePeerID("12D3KooWQLFXY43pECCTjSoRPBLMpu21vVRwHjPC6q6PRvd4RHzi")

	// Under the wrong key, refused and left as it was.
	if _, err := Open(path, bytes.Repeat([]byte{8}, 32)); err != ErrWrongKey {
		t.Fatalf("under another key: %v, want ErrWrongKey", err)
	}
	if raw, _ := os.ReadFile(path); !bytes.Equal(raw, v3) {
		t.Fatal("a version 3 file opened under the wrong key was changed")
	}

	s, err := Open(path, key)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	var ver []byte
	s.db.View(func(tx *bolt.Tx) error { ver = bytes.Clone(tx.Bucket(bktMeta).Get(keyVersion)); return nil })
	if !bytes.Equal(ver, []byte{version}) {
		t.Fatalf("version after opening: %v, want %d", ver, version)
	}
	for _, id := range []GroupID{g1, g2} {
		plain, err := s.open(groupRecordBytes(t, s, id), groupAD(id))
		if err != nil {
			t.Fatal(err)
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(plain, &fields); err != nil {
			t.Fatal(err)
		}
		for f := range fields {
			if f != "changes" && f != "name" {
				t.Errorf("group %x's record still holds %q", id[:1], f)
			}
		}
	}
	gs, err := s.Groups().List()
	if err != nil || len(gs) != 2 {
		t.Fatalf("groups: %+v, %v", gs, err)
	}
	want := time.Date(2026, 12, 3, 5, 5, 0, 0, time.UTC)
	if g := gs[0]; g.ID != g1 || g.Name != "v3 group" || g.Unread != 3 || g.Messages != 5 || !g.Last.Equal(want) ||
		len(g.Changes) != 2 || string(g.Changes[1]) != "v3 add" {
		t.Fatalf("group 1: %+v", g)
	}
	if g := gs[1]; g.ID != g2 || g.Unread != 0 || g.Messages != 0 || len(g.Changes) != 1 || string(g.Changes[0]) != "v3 other create" {
		t.Fatalf("group 2: %+v", g)
	}
	h, err := s.Groups().GroupHistory(g1, 0, 10)
	if err != nil || len(h) != 5 || h[0].Body != "v3 out 1" || h[0].Delivered() != 1 || h[4].Body != "v3 bob 3" || h[4].Missing != 1 {
		t.Fatalf("history: %+v, %v", h, err)
	}
	// The group outbox moved from goutbox, by member, to gqueue, by
	// message (version 5): carol has both our messages queued, bob the
	// second.
	queuedFor := func(p peer.ID) (bodies []string) {
		t.Helper()
		ob, err := s.Groups().GroupOutbox(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ob {
			bodies = append(bodies, m.Body)
		}
		return bodies
	}
	if got := queuedFor(carol); !slices.Equal(got, []string{"v3 out 1", "v3 out 2"}) {
		t.Fatalf("carol's outbox after the update: %q", got)
	}
	if got := queuedFor(bob); !slices.Equal(got, []string{"v3 out 2"}) {
		t.Fatalf("bob's outbox after the update: %q", got)
	}
	s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bktGOutbox) != nil {
			t.Error("goutbox is still there after the update")
		}
		return nil
	})

	at := want.Add(time.Hour)
	next := &GroupMessage{Group: g1, ID: e2e.NewMessageID(), SentAt: at, StoredAt: at, Body: "v4 out"}
	if err := s.Groups().AddGroupOutgoing(next, []peer.ID{bob, carol}); err != nil || next.Stream != v3Stream || next.Number != 3 {
		t.Fatalf("our next: %d in %d (want 3 in %d), %v", next.Number, next.Stream, uint64(v3Stream), err)
	}
	bob2 := &GroupMessage{Group: g1, ID: e2e.NewMessageID(), From: bob, SentAt: at, Body: "v4 bob 2", Stream: 77, Number: 2}
	if _, err := s.Groups().ReceiveGroup(bob2, at); err != nil || !bob2.Late || bob2.Missing != 0 {
		t.Fatalf("bob's 2nd: late %v missing %d, %v", bob2.Late, bob2.Missing, err)
	}
	carol3 := &GroupMessage{Group: g1, ID: e2e.NewMessageID(), From: carol, SentAt: at, Body: "v4 carol 3", Stream: 88, Number: 3}
	if _, err := s.Groups().ReceiveGroup(carol3, at); err != nil || carol3.Late || carol3.Missing != 1 {
		t.Fatalf("carol's 3rd: late %v missing %d, %v", carol3.Late, carol3.Missing, err)
	}
	s.Close()

	// Opened again (version 4 now): nothing is moved twice.
	if s, err = Open(path, key); err != nil {
		t.Fatal(err)
	}
	if g, _, err := s.Groups().Get(g1); err != nil || g.Unread != 5 || g.Messages != 8 || !g.Last.Equal(at) {
		t.Fatalf("reopened: %+v, %v", g, err)
	}
	again := &GroupMessage{Group: g1, ID: e2e.NewMessageID(), SentAt: at, StoredAt: at, Body: "v4 out 2"}
	if err := s.Groups().AddGroupOutgoing(again, []peer.ID{bob}); err != nil || again.Number != 4 {
		t.Fatalf("our next after reopening: %d, %v", again.Number, err)
	}
}

// TestMigrateGroupsCorrupt: a group record that does not open is left
// as it is by the update (List reports it, as before), and the rest of
// the database opens and moves on.
func TestMigrateGroupsCorrupt(t *testing.T) {
	path, _ := v3Copy(t)
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	g1, g2 := GroupID(bytes.Repeat([]byte{0x31}, 32)), GroupID(bytes.Repeat([]byte{0x32}, 32))
	var broken []byte
	if err := db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bktGroups)
		broken = bytes.Clone(b.Get(g1[:]))
		broken[len(broken)-1] ^= 1
		return b.Put(g1[:], broken)
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := Open(path, bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatalf("a database with a corrupt group record: %v", err)
	}
	defer s.Close()
	if !bytes.Equal(groupRecordBytes(t, s, g1), broken) {
		t.Fatal("the update changed a record it could not read")
	}
	gs, err := s.Groups().List()
	var bad *CorruptError
	if !errors.As(err, &bad) || len(gs) != 1 || gs[0].ID != g2 {
		t.Fatalf("groups: %+v, %v; want group 2 and a CorruptError", gs, err)
	}
	at := time.Now()
	m := &GroupMessage{Group: g2, ID: e2e.NewMessageID(), SentAt: at, StoredAt: at, Body: "after"}
	if err := s.Groups().AddGroupOutgoing(m, []peer.ID{testPeer(t)}); err != nil || m.Number != 1 {
		t.Fatalf("a message to the readable group: %d, %v", m.Number, err)
	}
}
