package store

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
)

// Group copies written to live sessions are recorded as sent, every
// member's in one transaction; delivered and queued are not undone; when
// no copy is still sending, nothing is written.
func TestGroupSentStored(t *testing.T) {
	s := testStore(t)
	id := testGroup(t, s)
	members := make([]peer.ID, 50)
	for i := range members {
		members[i] = testPeer(t)
	}
	m := &GroupMessage{Group: id, ID: e2e.MessageID{7}, SentAt: time.Now(), StoredAt: time.Now(), Body: "hello"}
	if err := s.Groups().AddGroupOutgoing(m, members); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, _, err := s.Groups().SetGroupStatus(m.ID, members[0], StatusDelivered, now); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Groups().SetGroupStatus(m.ID, members[1], StatusQueued, now); err != nil {
		t.Fatal(err)
	}
	copies := make([]Copy, len(members))
	for i, p := range members {
		copies[i] = Copy{Peer: p, ID: m.ID}
	}
	before := txID(t, s)
	ms, err := s.Groups().SetGroupSent(copies, now)
	if err != nil {
		t.Fatal(err)
	}
	if n := txID(t, s) - before; n != 1 {
		t.Errorf("%d members' sent cost %d write transactions, want 1", len(members), n)
	}
	if len(ms) != len(members)-2 {
		t.Errorf("%d changed, want %d", len(ms), len(members)-2)
	}
	for _, c := range ms {
		if c.Status != StatusSent || c.Peer == members[0] || c.Peer == members[1] || c.Group != id {
			t.Errorf("changed: %+v", c)
		}
	}
	got, err := s.Groups().GroupMessageByID(m.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range got.Members {
		want := StatusSent
		switch d.Peer {
		case members[0]:
			want = StatusDelivered
		case members[1]:
			want = StatusQueued
		}
		if d.Status != want {
			t.Errorf("member %s: %s, want %s", d.Peer, d.Status, want)
		}
	}
	// Nothing still sending, or an ID that is not (or no longer) a group
	// copy: passed over, and nothing is written.
	before = txID(t, s)
	if ms, err := s.Groups().SetGroupSent(append(copies, Copy{Peer: members[2], ID: e2e.MessageID{9}}), now); err != nil || len(ms) != 0 {
		t.Fatalf("again: %v, %v", ms, err)
	}
	if n := txID(t, s) - before; n != 0 {
		t.Errorf("nothing to change cost %d write transactions", n)
	}
}

// Our deletion of a group text removes its text from the store (an edit
// keeps no copy of it) and takes out of the members' queues the text and
// our edits of it not yet acknowledged, which settles them when no copy
// of them is left waiting.
func TestGroupDeleteScrubs(t *testing.T) {
	s := testStore(t)
	id := testGroup(t, s)
	p := testPeer(t)
	now := time.Now()
	text := &GroupMessage{Group: id, ID: e2e.MessageID{1}, SentAt: now, StoredAt: now, Body: "secret plan"}
	if err := s.Groups().AddGroupOutgoing(text, []peer.ID{p}); err != nil {
		t.Fatal(err)
	}
	edit := &GroupMessage{Group: id, ID: e2e.MessageID{2}, SentAt: now, StoredAt: now, Kind: KindEdit, Target: text.ID, Body: "secret plan v2"}
	if err := s.Groups().AddGroupOutgoing(edit, []peer.ID{p}); err != nil {
		t.Fatal(err)
	}
	out, err := s.Groups().GroupOutbox(p)
	if err != nil || len(out) != 2 || out[1].Body != "secret plan v2" {
		t.Fatalf("outbox before: %+v, %v", out, err)
	}
	del := &GroupMessage{Group: id, ID: e2e.MessageID{3}, SentAt: now, StoredAt: now, Kind: KindDelete, Target: text.ID}
	if err := s.Groups().AddGroupOutgoing(del, []peer.ID{p}); err != nil {
		t.Fatal(err)
	}
	out, err = s.Groups().GroupOutbox(p)
	if err != nil || len(out) != 1 || out[0].ID != del.ID {
		t.Fatalf("outbox after the deletion: %+v, %v", out, err)
	}
	// The copies dropped are decided: the text and the edit settle.
	for _, m := range []*GroupMessage{text, edit} {
		if tag := settledTag(t, s, id, m.Seq); tag != settleDone {
			t.Errorf("message %d dropped from every queue: settled record %d, want settled", m.Seq, tag)
		}
	}
	// Nothing of the text is left in any record of the group.
	if err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bktGMsgs).Bucket(id[:]).ForEach(func(k, v []byte) error {
			m, err := s.Groups().decodeGroupMessage(id, binary.BigEndian.Uint64(k), v)
			if err != nil {
				return err
			}
			if strings.Contains(m.Body, "secret") {
				t.Errorf("record %d still holds %q", m.Seq, m.Body)
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
}
