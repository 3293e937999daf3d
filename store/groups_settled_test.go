package store

import (
	"errors"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
)

// settledTag is the tag of gid/seq's gsettled record, -1 if none.
func settledTag(t *testing.T, s *Store, gid GroupID, seq uint64) int {
	t.Helper()
	tag := -1
	if err := s.db.View(func(tx *bolt.Tx) error {
		tg, rest, err := s.Groups().settled().read(tx, gid, seq)
		if rest != nil {
			tag = int(tg)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return tag
}

func groupCopies(id e2e.MessageID, ps []peer.ID) []Copy {
	out := make([]Copy, len(ps))
	for i, p := range ps {
		out[i] = Copy{Peer: p, ID: id}
	}
	return out
}

func sameDeliveries(t *testing.T, what string, got, want []MemberDelivery) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d members, want %d", what, len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Peer != w.Peer || g.Status != w.Status || !g.Delivered.Equal(w.Delivered) {
			t.Fatalf("%s: member %d is %+v, want %+v", what, i, g, w)
		}
	}
}

// TestGroupDeliveriesSettle: once every member's copy of an outgoing
// group message is decided (delivered or failed), its members' delivery
// records become one settled record, and every member reads as before,
// status and time; a receipt again changes nothing. A message with one
// member still waiting keeps its records, and so does a change (no
// count is kept for it).
func TestGroupDeliveriesSettle(t *testing.T) {
	s := testStore(t)
	id := testGroup(t, s)
	g := s.Groups()
	members := testPeers(t, 100)
	t1 := time.Now().Truncate(time.Millisecond)
	t2, t3 := t1.Add(time.Second), t1.Add(2*time.Second)
	var msgs [2]*GroupMessage
	for i := range msgs {
		msgs[i] = &GroupMessage{Group: id, ID: e2e.NewMessageID(), SentAt: t1, StoredAt: t1, Body: "hello"}
		if err := g.AddGroupOutgoing(msgs[i], members); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range msgs {
		if _, err := s.SetStatuses(groupCopies(m.ID, members[:80]), StatusDelivered, t1); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SetStatuses(groupCopies(m.ID, members[80:90]), StatusSent, t1); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SetStatuses(groupCopies(m.ID, members[80:90]), StatusFailed, t1); err != nil {
			t.Fatal(err)
		}
		for _, p := range members[90:99] {
			if _, _, err := g.SetGroupStatus(m.ID, p, StatusDelivered, t2); err != nil {
				t.Fatal(err)
			}
		}
	}
	m, waiting := msgs[0], msgs[1]
	if n, tag := deliveryRecords(t, s, id, m.Seq), settledTag(t, s, id, m.Seq); n != 99 || tag != settleWaiting {
		t.Fatalf("one member waiting: %d records, settled record %d; want 99 and a count", n, tag)
	}
	before, err := g.GroupMessageByID(m.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := before.Members
	want[99] = MemberDelivery{Peer: members[99], Status: StatusDelivered, Delivered: t3}
	if _, err := s.SetStatuses(groupCopies(m.ID, members[99:]), StatusDelivered, t3); err != nil {
		t.Fatal(err)
	}
	if n, tag := deliveryRecords(t, s, id, m.Seq), settledTag(t, s, id, m.Seq); n != 0 || tag != settleDone {
		t.Fatalf("every member decided: %d records, settled record %d; want none and one settled", n, tag)
	}
	got, err := g.GroupMessageByID(m.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameDeliveries(t, "settled", got.Members, want)
	if got.Delivered() != 90 || len(got.Waiting()) != 10 {
		t.Fatalf("settled: %d delivered, %d not; want 90 and the 10 failed", got.Delivered(), len(got.Waiting()))
	}
	if hist, err := g.GroupHistory(id, 0, 10); err != nil || len(hist) != 2 {
		t.Fatalf("history: %d, %v", len(hist), err)
	} else {
		sameDeliveries(t, "settled, in the history", hist[0].Members, want)
	}
	again := append(groupCopies(m.ID, members[:80]), groupCopies(m.ID, members[90:])...)
	if updated, err := s.SetStatuses(again, StatusDelivered, t3.Add(time.Hour)); err != nil || len(updated) != 0 {
		t.Fatalf("receipts again changed %d, %v", len(updated), err)
	}
	// A failed copy's receipt, late, is read over the settled record.
	late := t3.Add(time.Minute)
	if updated, err := s.SetStatuses(groupCopies(m.ID, members[85:86]), StatusDelivered, late); err != nil || len(updated) != 1 {
		t.Fatalf("a failed copy's late receipt changed %d, %v", len(updated), err)
	}
	want[85] = MemberDelivery{Peer: members[85], Status: StatusDelivered, Delivered: late}
	if got, err = g.GroupMessageByID(m.ID); err != nil {
		t.Fatal(err)
	}
	sameDeliveries(t, "settled, then a late receipt", got.Members, want)
	if got, changed, err := g.SetGroupStatus(m.ID, members[5], StatusSent, t3); err != nil || changed || got.Members[0].Status != StatusDelivered || !got.Members[0].Delivered.Equal(t1) {
		t.Fatalf("a settled copy: %+v, %v, %v", got.Members, changed, err)
	}
	if _, _, err := g.SetGroupStatus(m.ID, testPeer(t), StatusDelivered, t3); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a receipt from a peer it did not go to: %v", err)
	}
	if n, tag := deliveryRecords(t, s, id, waiting.Seq), settledTag(t, s, id, waiting.Seq); n != 99 || tag != settleWaiting {
		t.Fatalf("the other message, one member waiting: %d records, settled record %d", n, tag)
	}
	if ob, err := g.GroupOutbox(members[99]); err != nil || len(ob) != 1 || ob[0].ID != waiting.ID {
		t.Fatalf("member 99's outbox: %+v, %v", ob, err)
	}

	chg := e2e.NewMessageID()
	if err := g.AddGroupChanges(id, chg, [][]byte{[]byte("change")}, members[:2], t1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetStatuses(groupCopies(chg, members[:2]), StatusDelivered, t1); err != nil {
		t.Fatal(err)
	}
	cm, err := g.GroupMessageByID(chg)
	if err != nil || deliveryRecords(t, s, id, cm.Seq) != 2 || settledTag(t, s, id, cm.Seq) != -1 {
		t.Fatalf("a change: %d records, settled %d, %v", deliveryRecords(t, s, id, cm.Seq), settledTag(t, s, id, cm.Seq), err)
	}
}

// TestGroupDeliveriesSettleEarly: the count decides only when the
// records are gathered, never what they say. A message settled while a
// member's copy is still queued (as if the count had reached nothing
// early) reads that member as sending, keeps its queue entry, and its
// receipt then writes a record that is read over the settled one.
func TestGroupDeliveriesSettleEarly(t *testing.T) {
	s := testStore(t)
	id := testGroup(t, s)
	g := s.Groups()
	members := []peer.ID{testPeer(t), testPeer(t), testPeer(t)}
	now := time.Now().Truncate(time.Millisecond)
	m := &GroupMessage{Group: id, ID: e2e.NewMessageID(), SentAt: now, StoredAt: now, Body: "hello"}
	if err := g.AddGroupOutgoing(m, members); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetStatuses(groupCopies(m.ID, members[:1]), StatusDelivered, now); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { _, err := g.settled().decided(tx, id, m.Seq, 2, nil); return err }); err != nil {
		t.Fatal(err)
	}
	if tag := settledTag(t, s, id, m.Seq); tag != settleDone {
		t.Fatalf("settled record %d, want settled", tag)
	}
	got, err := g.GroupMessageByID(m.ID)
	if err != nil || got.Delivered() != 1 || len(got.Waiting()) != 2 {
		t.Fatalf("settled early: %+v, %v", got.Members, err)
	}
	if ob, err := g.GroupOutbox(members[2]); err != nil || len(ob) != 1 {
		t.Fatalf("the waiting copy left the queue: %+v, %v", ob, err)
	}
	later := now.Add(time.Minute)
	if _, changed, err := g.SetGroupStatus(m.ID, members[2], StatusDelivered, later); err != nil || !changed {
		t.Fatalf("a receipt after settling: %v, %v", changed, err)
	}
	got, err = g.GroupMessageByID(m.ID)
	if err != nil || got.Delivered() != 2 || got.Members[2].Status != StatusDelivered || !got.Members[2].Delivered.Equal(later) || got.Members[1].Status != StatusSending {
		t.Fatalf("after the late receipt: %+v, %v", got.Members, err)
	}
}

// TestGroupDeliveriesSettledSize: what settling is for. 20 messages to
// 100 members, every copy delivered, keep a tenth of the bytes (in
// bbolt's leaves) that their delivery records kept before the last
// receipts settled them.
func TestGroupDeliveriesSettledSize(t *testing.T) {
	s := testStore(t)
	id := testGroup(t, s)
	g := s.Groups()
	members := testPeers(t, 100)
	now := time.Now()
	var ids []e2e.MessageID
	for range 20 {
		m := &GroupMessage{Group: id, ID: e2e.NewMessageID(), SentAt: now, StoredAt: now, Body: "hello"}
		if err := g.AddGroupOutgoing(m, members); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	inUse := func() int {
		n := 0
		if err := s.db.View(func(tx *bolt.Tx) error {
			for _, b := range [][]byte{bktGDeliv, bktGSettled} {
				st := tx.Bucket(b).Stats()
				n += st.LeafInuse + st.BranchInuse
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, id := range ids {
		if _, err := s.SetStatuses(groupCopies(id, members[:99]), StatusDelivered, now); err != nil {
			t.Fatal(err)
		}
	}
	kept := inUse()
	for _, id := range ids {
		if _, err := s.SetStatuses(groupCopies(id, members[99:]), StatusDelivered, now); err != nil {
			t.Fatal(err)
		}
	}
	if settled := inUse(); settled*10 > kept {
		t.Fatalf("settled deliveries keep %d bytes, records kept %d: want at most a tenth", settled, kept)
	}
}

// TestCorruptSettled: a settled record moved to another message's key,
// cut short or of an unknown kind is a corrupt record, reported as one;
// nothing panics.
func TestCorruptSettled(t *testing.T) {
	s := testStore(t)
	id := testGroup(t, s)
	g := s.Groups()
	members := []peer.ID{testPeer(t), testPeer(t)}
	now := time.Now()
	var ms [2]*GroupMessage
	for i := range ms {
		ms[i] = &GroupMessage{Group: id, ID: e2e.NewMessageID(), SentAt: now, StoredAt: now, Body: "hello"}
		if err := g.AddGroupOutgoing(ms[i], members); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SetStatuses(groupCopies(ms[i].ID, members), StatusDelivered, now); err != nil {
			t.Fatal(err)
		}
	}
	k0, k1 := seqKeyIn(id, ms[0].Seq), seqKeyIn(id, ms[1].Seq)
	var moved []byte
	if err := s.db.View(func(tx *bolt.Tx) error {
		moved = append(moved, tx.Bucket(bktGSettled).Get(k0)...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	short := func(n int) []byte {
		return s.seal(append([]byte{settleDone}, make([]byte, n)...), settledAD(k1))
	}
	for _, tc := range []struct {
		name  string
		value []byte
	}{
		{"another message's", moved},
		{"cut short", short(delivPlainLen*2 - 1)},
		{"of an unknown kind", s.seal([]byte{7}, settledAD(k1))},
		{"empty", s.seal(nil, settledAD(k1))},
		{"a bad status", s.seal(append([]byte{settleDone}, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), settledAD(k1))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			poke(t, s, tc.value, k1, bktGSettled)
			_, err := g.GroupMessageByID(ms[1].ID)
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("read: %v, want a corrupt record", err)
			}
			if _, _, err := g.SetGroupStatus(ms[1].ID, members[0], StatusSent, now); !errors.As(err, &ce) {
				t.Fatalf("a status: %v, want a corrupt record", err)
			}
		})
	}
}

// TestGroupSettleKeepsUnlisted: a delivery record of a peer not on the
// message's member list (no write makes one; a damaged or older file
// might hold one) is not gathered, and not lost: it stays, and reads as
// it did.
func TestGroupSettleKeepsUnlisted(t *testing.T) {
	s := testStore(t)
	id := testGroup(t, s)
	g := s.Groups()
	members := []peer.ID{testPeer(t), testPeer(t)}
	stranger := testPeer(t)
	now := time.Now().Truncate(time.Millisecond)
	m := &GroupMessage{Group: id, ID: e2e.NewMessageID(), SentAt: now, StoredAt: now, Body: "hello"}
	if err := g.AddGroupOutgoing(m, members); err != nil {
		t.Fatal(err)
	}
	k, ad := delivKeyAD(id, m.Seq, stranger)
	poke(t, s, g.delivValue(ad, MemberDelivery{Peer: stranger, Status: StatusDelivered, Delivered: now}), k, bktGDeliv)
	if _, err := s.SetStatuses(groupCopies(m.ID, members), StatusDelivered, now); err != nil {
		t.Fatal(err)
	}
	if n, tag := deliveryRecords(t, s, id, m.Seq), settledTag(t, s, id, m.Seq); n != 1 || tag != settleDone {
		t.Fatalf("settled with a stranger's record: %d records, settled record %d; want the stranger's and settled", n, tag)
	}
	got, err := g.GroupMessageByID(m.ID)
	if err != nil || len(got.Members) != 3 || got.Members[2].Peer != stranger || got.Delivered() != 3 {
		t.Fatalf("read: %+v, %v", got.Members, err)
	}
}

// A group copy's "sent", recorded a second after it was written, does
// not undo a failure decided meanwhile; its receipt does.
func TestGroupSentAfterFailed(t *testing.T) {
	s := testStore(t)
	id := testGroup(t, s)
	g := s.Groups()
	p := testPeer(t)
	now := time.Now()
	m := &GroupMessage{Group: id, ID: e2e.NewMessageID(), SentAt: now, StoredAt: now, Body: "hello"}
	if err := g.AddGroupOutgoing(m, []peer.ID{p, testPeer(t)}); err != nil {
		t.Fatal(err)
	}
	if _, changed, err := g.SetGroupStatus(m.ID, p, StatusFailed, now); !changed || err != nil {
		t.Fatalf("failed: %v, %v", changed, err)
	}
	if got, changed, err := g.SetGroupStatus(m.ID, p, StatusSent, now); changed || err != nil || got.Members[0].Status != StatusFailed {
		t.Fatalf("sent after failed: %+v, changed %v, %v; want failed, unchanged", got.Members, changed, err)
	}
	if got, changed, err := g.SetGroupStatus(m.ID, p, StatusDelivered, now); !changed || err != nil || got.Members[0].Status != StatusDelivered {
		t.Fatalf("delivered after failed: %+v, changed %v, %v", got.Members, changed, err)
	}
}

// TestGroupReceiptsTwiceInOneWrite: a copy's receipt twice in one
// transaction (and its failure after it) changes it once: the first,
// whose record the transaction writes only at its end, is what the
// others read.
func TestGroupReceiptsTwiceInOneWrite(t *testing.T) {
	s := testStore(t)
	id := testGroup(t, s)
	g := s.Groups()
	members := testPeers(t, 10)
	t1 := time.Now().Truncate(time.Millisecond)
	for _, settles := range []bool{true, false} {
		m := &GroupMessage{Group: id, ID: e2e.NewMessageID(), SentAt: t1, StoredAt: t1, Body: "hello"}
		if err := g.AddGroupOutgoing(m, members); err != nil {
			t.Fatal(err)
		}
		acks := groupCopies(m.ID, members)
		if !settles {
			acks = acks[:5]
		}
		acks = append(acks, acks[0], acks[1])
		updated, err := s.SetStatuses(acks, StatusDelivered, t1)
		if err != nil || len(updated) != len(acks)-2 {
			t.Fatalf("settles %v: %d of %d receipts changed a copy, want %d; %v", settles, len(updated), len(acks), len(acks)-2, err)
		}
		if updated, err := s.SetStatuses(acks[:1], StatusFailed, t1); err != nil || len(updated) != 0 {
			t.Fatalf("settles %v: a delivered copy failed: %d, %v", settles, len(updated), err)
		}
		got, err := g.GroupMessageByID(m.ID)
		if err != nil || got.Delivered() != len(acks)-2 {
			t.Fatalf("settles %v: %d delivered, %v", settles, got.Delivered(), err)
		}
		if tag := settledTag(t, s, id, m.Seq); (tag == settleDone) != settles {
			t.Fatalf("settles %v: settled record %d", settles, tag)
		}
		for i, d := range got.Members {
			if want := i < len(acks)-2; (d.Status == StatusDelivered) != want || (want && !d.Delivered.Equal(t1)) {
				t.Fatalf("settles %v: member %d is %+v", settles, i, d)
			}
		}
	}
}
