package store

import (
	"bytes"
	"errors"
	"os"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
)

// Group tests: the group record, a group message stored once with each
// member's delivery, one durable write per message, and per-sender
// numbering.

// txID is the ID of the last committed write transaction: each one is a
// durable write (bbolt fsyncs on commit).
func txID(t *testing.T, s *Store) int {
	t.Helper()
	var id int
	if err := s.db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}

func testGroup(t *testing.T, s *Store) GroupID {
	t.Helper()
	id := GroupID{1, 2, 3}
	if err := s.Groups().PutGroupChanges(id, [][]byte{[]byte("create")}); err != nil {
		t.Fatal(err)
	}
	return id
}

func TestGroupRecord(t *testing.T) {
	s := testStore(t)
	if gs, err := s.Groups().List(); err != nil || len(gs) != 0 {
		t.Fatalf("fresh store: %v, %v", gs, err)
	}
	if _, found, err := s.Groups().Get(GroupID{9}); found || err != nil {
		t.Fatalf("unknown group: %v, %v", found, err)
	}
	id := testGroup(t, s)
	if err := s.Groups().SetGroupName(id, "team"); err != nil {
		t.Fatal(err)
	}
	if err := s.Groups().PutGroupChanges(id, [][]byte{[]byte("create"), []byte("add")}); err != nil {
		t.Fatal(err)
	}
	g, found, err := s.Groups().Get(id)
	if err != nil || !found || g.Name != "team" || len(g.Changes) != 2 || !bytes.Equal(g.Changes[1], []byte("add")) {
		t.Fatalf("group: %+v, %v, %v", g, found, err)
	}
	if err := s.Groups().SetGroupName(GroupID{9}, "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("naming an unknown group: %v", err)
	}
	// A group's doubts: replaced in one transaction, untouched when f
	// says so, kept when the changes are written again.
	want := []GroupDoubt{{Removal: []byte("removal"), Target: testPeer(t), Author: testPeer(t), Kept: true}}
	if err := s.Groups().UpdateGroupDoubts(id, func(ds []GroupDoubt) ([]GroupDoubt, bool) { return want, len(ds) == 0 }); err != nil {
		t.Fatal(err)
	}
	if err := s.Groups().UpdateGroupDoubts(id, func(ds []GroupDoubt) ([]GroupDoubt, bool) { return nil, false }); err != nil {
		t.Fatal(err)
	}
	if err := s.Groups().PutGroupChanges(id, [][]byte{[]byte("create"), []byte("add"), []byte("leave")}); err != nil {
		t.Fatal(err)
	}
	if g, _, err := s.Groups().Get(id); err != nil || !reflect.DeepEqual(g.Doubts, want) {
		t.Fatalf("doubts: %+v, %v; want %+v", g.Doubts, err, want)
	}
	if err := s.Groups().UpdateGroupDoubts(GroupID{9}, func(ds []GroupDoubt) ([]GroupDoubt, bool) { return ds, true }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("doubts of an unknown group: %v", err)
	}
	// The record is sealed: neither its name nor its changes show in the file.
	path := s.db.Path()
	s.Close()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("team")) || bytes.Contains(raw, []byte("create")) {
		t.Fatal("the group record is readable in the file")
	}
}

// A message to a 100-member group is stored once and queued for every
// member in one write transaction; receipts move each member's status,
// and "delivered to n of m" and who is missing follow.
func TestGroupOutgoingOneWrite(t *testing.T) {
	s := testStore(t)
	id := testGroup(t, s)
	members := testPeers(t, 100)
	before := txID(t, s)
	m := &GroupMessage{Group: id, ID: e2e.MessageID{1}, SentAt: time.Now(), StoredAt: time.Now(), Body: "hello all"}
	if err := s.Groups().AddGroupOutgoing(m, members); err != nil {
		t.Fatal(err)
	}
	if n := txID(t, s) - before; n != 1 {
		t.Fatalf("a message to 100 members cost %d write transactions, want 1", n)
	}
	if m.Number != 1 || m.Stream == 0 {
		t.Fatalf("numbering: stream %d number %d", m.Stream, m.Number)
	}
	for _, p := range members[:3] {
		out, err := s.Groups().GroupOutbox(p)
		if err != nil || len(out) != 1 || out[0].ID != m.ID || out[0].Body != "hello all" {
			t.Fatalf("outbox of a member: %+v, %v", out, err)
		}
	}
	if out, err := s.Groups().GroupOutbox(testPeer(t)); err != nil || len(out) != 0 {
		t.Fatalf("outbox of a stranger: %+v, %v", out, err)
	}
	for _, p := range members[:4] {
		if _, changed, err := s.Groups().SetGroupStatus(m.ID, p, StatusDelivered, time.Now()); err != nil || !changed {
			t.Fatalf("receipt: %v, %v", changed, err)
		}
	}
	if _, changed, err := s.Groups().SetGroupStatus(m.ID, members[0], StatusDelivered, time.Now()); err != nil || changed {
		t.Fatalf("a repeated receipt: %v, %v", changed, err)
	}
	if _, _, err := s.Groups().SetGroupStatus(m.ID, testPeer(t), StatusDelivered, time.Now()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a receipt from a non-member: %v", err)
	}
	got, err := s.Groups().GroupMessageByID(m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Delivered() != 4 || len(got.Waiting()) != 96 || slices.Contains(got.Waiting(), members[0]) {
		t.Fatalf("delivered to %d, waiting for %d", got.Delivered(), len(got.Waiting()))
	}
	if out, err := s.Groups().GroupOutbox(members[0]); err != nil || len(out) != 0 {
		t.Fatalf("a delivered message stays in the outbox: %+v, %v", out, err)
	}
	m2 := &GroupMessage{Group: id, ID: e2e.MessageID{2}, SentAt: time.Now(), StoredAt: time.Now(), Body: "again"}
	if err := s.Groups().AddGroupOutgoing(m2, members); err != nil || m2.Number != 2 || m2.Stream != m.Stream {
		t.Fatalf("second message: %+v, %v", m2, err)
	}
	if err := s.Groups().AddGroupOutgoing(&GroupMessage{Group: GroupID{9}, ID: e2e.MessageID{3}, Body: "x"}, members); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a message to an unknown group: %v", err)
	}
	hist, err := s.Groups().GroupHistory(id, 0, 10)
	if err != nil || len(hist) != 2 || hist[0].Body != "hello all" || hist[1].Body != "again" {
		t.Fatalf("history: %+v, %v", hist, err)
	}
}

// Receipts from many peers, for a group message's copies and a private
// message, are recorded in one write transaction; receipts naming no
// message to their sender are passed over; each changed copy is reported
// once, and leaves its member's outbox.
func TestSetStatusesOneWrite(t *testing.T) {
	s := testStore(t)
	id := testGroup(t, s)
	members := make([]peer.ID, 50)
	for i := range members {
		members[i] = testPeer(t)
	}
	m := &GroupMessage{Group: id, ID: e2e.MessageID{1}, SentAt: time.Now(), StoredAt: time.Now(), Body: "hello all"}
	if err := s.Groups().AddGroupOutgoing(m, members); err != nil {
		t.Fatal(err)
	}
	private := Message{ID: e2e.MessageID{2}, Peer: members[0], SentAt: time.Now(), StoredAt: time.Now(), Body: "just you"}
	if err := s.AddOutgoing(&private); err != nil {
		t.Fatal(err)
	}
	var acks []Copy
	for _, p := range members[:40] {
		acks = append(acks, Copy{Peer: p, ID: m.ID})
	}
	acks = append(acks,
		Copy{Peer: members[0], ID: private.ID},
		Copy{Peer: members[1], ID: private.ID},       // not sent to members[1]
		Copy{Peer: testPeer(t), ID: m.ID},            // not a member
		Copy{Peer: members[2], ID: e2e.MessageID{9}}, // no such message
		Copy{Peer: members[3], ID: m.ID},             // twice
	)
	before := txID(t, s)
	updated, err := s.SetStatuses(acks, StatusDelivered, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if n := txID(t, s) - before; n != 1 {
		t.Fatalf("41 receipts cost %d write transactions, want 1", n)
	}
	if len(updated) != 41 {
		t.Fatalf("%d messages changed, want 41 (40 copies and the private one)", len(updated))
	}
	for _, u := range updated {
		if u.Status != StatusDelivered || (u.ID == m.ID && (u.Group != id || u.Body != "hello all")) {
			t.Fatalf("reported: %+v", u)
		}
	}
	got, err := s.Groups().GroupMessageByID(m.ID)
	if err != nil || got.Delivered() != 40 || len(got.Waiting()) != 10 {
		t.Fatalf("delivered to %d of %d: %v", got.Delivered(), len(got.Members), err)
	}
	if out, err := s.Outbox(members[0]); err != nil || len(out) != 0 {
		t.Fatalf("acknowledged messages stay in the outbox: %+v, %v", out, err)
	}
	if out, err := s.Outbox(members[45]); err != nil || len(out) != 1 || out[0].ID != m.ID {
		t.Fatalf("a member without a receipt: %+v, %v", out, err)
	}
	if updated, err := s.SetStatuses(acks, StatusDelivered, time.Now()); err != nil || len(updated) != 0 {
		t.Fatalf("the same receipts again changed %d, %v", len(updated), err)
	}
}

// Incoming group messages: deduplicated by ID, numbered per sender (a gap
// from one sender does not show on another's), counted unread.
func TestGroupReceiveNumbering(t *testing.T) {
	s := testStore(t)
	id := testGroup(t, s)
	alice, bob := testPeer(t), testPeer(t)
	recv := func(from peer.ID, idb byte, n uint64) *GroupMessage {
		t.Helper()
		m := &GroupMessage{Group: id, ID: e2e.MessageID{idb}, From: from, SentAt: time.Now(), Body: "m", Stream: uint64(len(from)), Number: n}
		isNew, err := s.Groups().ReceiveGroup(m, time.Now())
		if err != nil || !isNew {
			t.Fatalf("receive: %v, %v", isNew, err)
		}
		return m
	}
	recv(alice, 1, 1)
	if m := recv(alice, 2, 3); m.Missing != 1 || m.Late {
		t.Fatalf("a gap from alice: %+v", m)
	}
	if m := recv(bob, 3, 1); m.Missing != 0 {
		t.Fatalf("alice's gap shows on bob's message: %+v", m)
	}
	if m := recv(alice, 4, 2); !m.Late || m.Missing != 0 {
		t.Fatalf("alice's late message: %+v", m)
	}
	if isNew, err := s.Groups().ReceiveGroup(&GroupMessage{Group: id, ID: e2e.MessageID{1}, From: alice, Body: "m"}, time.Now()); isNew || err != nil {
		t.Fatalf("a duplicate: %v, %v", isNew, err)
	}
	if _, err := s.Groups().ReceiveGroup(&GroupMessage{Group: GroupID{9}, ID: e2e.MessageID{5}, From: alice, Body: "m"}, time.Now()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a message of an unknown group: %v", err)
	}
	g, _, err := s.Groups().Get(id)
	if err != nil || g.Unread != 4 || g.Messages != 4 {
		t.Fatalf("group counts: %+v, %v", g, err)
	}
	if err := s.Groups().MarkGroupRead(id); err != nil {
		t.Fatal(err)
	}
	hist, err := s.Groups().GroupHistory(id, 0, 2)
	if err != nil || len(hist) != 2 || hist[0].From != bob || hist[1].ID != (e2e.MessageID{4}) {
		t.Fatalf("history page: %+v, %v", hist, err)
	}
	if more, err := s.Groups().GroupHistory(id, hist[0].Seq, 10); err != nil || len(more) != 2 {
		t.Fatalf("earlier page: %+v, %v", more, err)
	}
}

// A group record or message moved to another place does not open: it is
// reported as corrupt, naming it.
func TestGroupCorrupt(t *testing.T) {
	s := testStore(t)
	id := testGroup(t, s)
	other := GroupID{7}
	var rec []byte
	if err := s.db.View(func(tx *bolt.Tx) error { rec = bytes.Clone(tx.Bucket(bktGroups).Get(id[:])); return nil }); err != nil {
		t.Fatal(err)
	}
	poke(t, s, rec, other[:], bktGroups)
	var bad *CorruptError
	if _, _, err := s.Groups().Get(other); !errors.As(err, &bad) {
		t.Fatalf("moved group record: %v", err)
	}
	gs, err := s.Groups().List()
	if !errors.As(err, &bad) || len(gs) != 1 || gs[0].ID != id {
		t.Fatalf("list with a bad record: %+v, %v", gs, err)
	}
}

// The per-peer outbox carries each member's copy (and queued changes),
// and the receipts the node already handles move a copy's status.
func TestGroupThroughPeerOutbox(t *testing.T) {
	s := testStore(t)
	id := testGroup(t, s)
	a, b := testPeer(t), testPeer(t)
	m := &GroupMessage{Group: id, ID: e2e.MessageID{1}, SentAt: time.Now(), StoredAt: time.Now(), Body: "hi"}
	if err := s.Groups().AddGroupOutgoing(m, []peer.ID{a, b}); err != nil {
		t.Fatal(err)
	}
	if err := s.Groups().AddGroupChanges(id, e2e.MessageID{2}, [][]byte{[]byte("add")}, []peer.ID{a}, time.Now()); err != nil {
		t.Fatal(err)
	}
	out, err := s.Outbox(a)
	if err != nil || len(out) != 2 || out[0].Group != id || out[0].Peer != a || out[0].Body != "hi" || len(out[1].GroupChanges) != 1 {
		t.Fatalf("a's outbox: %+v, %v", out, err)
	}
	if has, err := s.HasOutbox(b); !has || err != nil {
		t.Fatalf("b has its copy waiting: %v, %v", has, err)
	}
	peers, err := s.OutboxPeers()
	if err != nil || len(peers) != 2 {
		t.Fatalf("outbox peers: %v, %v", peers, err)
	}
	if ms, err := s.SetStatuses(CopiesTo(a, []e2e.MessageID{m.ID, {2}}), StatusSent, time.Now()); err != nil || len(ms) != 2 {
		t.Fatalf("sent: %+v, %v", ms, err)
	}
	if got, changed, err := s.SetStatus(m.ID, a, StatusDelivered, "", time.Now()); err != nil || !changed || got.Status != StatusDelivered || got.Group != id {
		t.Fatalf("receipt through SetStatus: %+v, %v, %v", got, changed, err)
	}
	if _, _, err := s.SetStatus(m.ID, testPeer(t), StatusDelivered, "", time.Now()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("receipt from a non-member: %v", err)
	}
	if out, err := s.Outbox(a); err != nil || len(out) != 1 {
		t.Fatalf("a's outbox after the receipt: %+v, %v", out, err)
	}
	if hist, err := s.Groups().GroupHistory(id, 0, 10); err != nil || len(hist) != 1 {
		t.Fatalf("changes show in the history: %+v, %v", hist, err)
	}
	if g, _, _ := s.Groups().Get(id); g.Messages != 1 {
		t.Fatalf("changes count as messages: %+v", g)
	}
}

// deliveryRecords counts the status records (gdeliv) of group message
// gid/seq.
func deliveryRecords(t *testing.T, s *Store, gid GroupID, seq uint64) int {
	t.Helper()
	n := 0
	if err := s.db.View(func(tx *bolt.Tx) error {
		prefix := append(bytes.Clone(gid[:]), seqKey(seq)...)
		c := tx.Bucket(bktGDeliv).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			n++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestGroupSendWritesNoSendingRecords: a new message to 100 members
// writes its members' list once, and no status record for a copy that
// is only sending; each member reads as sending until a status comes
// (a copy taken out of the queue by a deletion included), a message of
// the layout before (a sending record per member) reads as it did, and
// a peer the message did not go to is refused.
func TestGroupSendWritesNoSendingRecords(t *testing.T) {
	s := testStore(t)
	id := testGroup(t, s)
	g := s.Groups()
	members := testPeers(t, 100)
	now := time.Now()
	m := &GroupMessage{Group: id, ID: e2e.NewMessageID(), SentAt: now, StoredAt: now, Body: "hello"}
	if err := g.AddGroupOutgoing(m, members); err != nil {
		t.Fatal(err)
	}
	if n := deliveryRecords(t, s, id, m.Seq); n != 0 {
		t.Fatalf("sending wrote %d status records, want none", n)
	}
	got, err := g.GroupMessageByID(m.ID)
	if err != nil || len(got.Members) != 100 || got.Delivered() != 0 || len(got.Waiting()) != 100 || got.Members[7].Peer != members[7] {
		t.Fatalf("just sent: %d members, %d delivered, %v", len(got.Members), got.Delivered(), err)
	}
	if _, changed, err := g.SetGroupStatus(m.ID, members[3], StatusDelivered, now); err != nil || !changed {
		t.Fatalf("a receipt: %v %v", changed, err)
	}
	if sent, err := g.SetGroupSent([]Copy{{ID: m.ID, Peer: members[5]}, {ID: m.ID, Peer: members[3]}}, now); err != nil || len(sent) != 1 || sent[0].Peer != members[5] {
		t.Fatalf("sent: %+v, %v", sent, err)
	}
	// A copy no longer queued (a deletion drops it) is still the member's.
	if err := s.update(func(tx *bolt.Tx) error {
		_, err := g.queue().take(tx, queueKey(id, m.Seq), members[9])
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, changed, err := g.SetGroupStatus(m.ID, members[9], StatusDelivered, now); err != nil || !changed {
		t.Fatalf("a receipt for a copy no longer queued: %v %v", changed, err)
	}
	if _, _, err := g.SetGroupStatus(m.ID, testPeer(t), StatusDelivered, now); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a receipt from a peer it did not go to: %v", err)
	}
	got, err = g.GroupMessageByID(m.ID)
	if err != nil || len(got.Members) != 100 || got.Delivered() != 2 || got.Members[5].Status != StatusSent || got.Members[3].Status != StatusDelivered {
		t.Fatalf("after receipts: %+v, %v", got.Members[:10], err)
	}
	if ob, err := g.GroupOutbox(members[0]); err != nil || len(ob) != 1 || ob[0].CopyFor(members[0]).Status != StatusSending {
		t.Fatalf("member 0's outbox: %+v, %v", ob, err)
	}

	// The layout before: a sending record per member, no list.
	old := &GroupMessage{Group: id, ID: e2e.NewMessageID(), SentAt: now, StoredAt: now, Body: "old"}
	if err := g.AddGroupOutgoing(old, members[:2]); err != nil {
		t.Fatal(err)
	}
	if err := s.update(func(tx *bolt.Tx) error { // queued as version 4's were moved
		k := queueKey(id, old.Seq)
		if _, err := g.queue().drop(tx, k); err != nil {
			return err
		}
		return g.queue().put(tx, k, members[:2], false)
	}); err != nil {
		t.Fatal(err)
	}
	poke(t, s, nil, seqKeyIn(id, old.Seq), bktGMembers)
	for _, p := range members[:2] {
		k, ad := delivKeyAD(id, old.Seq, p)
		poke(t, s, s.Groups().delivValue(ad, MemberDelivery{Peer: p, Status: StatusSending}), k, bktGDeliv)
	}
	if _, _, err := g.SetGroupStatus(old.ID, members[1], StatusDelivered, now); err != nil {
		t.Fatal(err)
	}
	got, err = g.GroupMessageByID(old.ID)
	if err != nil || len(got.Members) != 2 || got.Delivered() != 1 {
		t.Fatalf("a message of the layout before: %+v, %v", got.Members, err)
	}
}

// A group copy's receipt costs two look-ups while the copy is in its
// member's outbox (sending, sent or queued): the outbox entry, deleted
// with the cursor that found it, and the delivery record written; not
// four (reading the record and the entry first). The receipts of one
// transaction find their outbox entries with one cursor, so 90 of them
// make about 90 cursors (the records' puts), not 180. The outcome is
// that of the full path: delivered at the receipt's time, out of the
// outbox, once; a failed copy's receipt (not in the outbox) takes the
// full path.
func TestGroupReceiptLookups(t *testing.T) {
	s := testStore(t)
	id := testGroup(t, s)
	members := testPeers(t, 100)
	m := &GroupMessage{Group: id, ID: e2e.MessageID{1}, SentAt: time.Now(), StoredAt: time.Now(), Body: "hello all"}
	if err := s.Groups().AddGroupOutgoing(m, members); err != nil {
		t.Fatal(err)
	}
	copies := func(ps []peer.ID) []Copy {
		out := make([]Copy, len(ps))
		for i, p := range ps {
			out[i] = Copy{Peer: p, ID: m.ID}
		}
		return out
	}
	// 0-29 sending, 30-59 sent, 60-89 queued, 90-99 failed.
	for _, set := range []struct {
		from, to int
		st       Status
	}{{30, 60, StatusSent}, {60, 90, StatusQueued}, {90, 100, StatusFailed}} {
		if _, err := s.SetStatuses(copies(members[set.from:set.to]), set.st, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().Truncate(time.Millisecond)
	lookups := func() int64 {
		st := s.db.Stats()
		return st.TxStats.GetCursorCount()
	}
	cursors := lookups()
	updated, err := s.SetStatuses(copies(members[:90]), StatusDelivered, now)
	if err != nil {
		t.Fatal(err)
	}
	if n := lookups() - cursors; n > 90+20 {
		t.Errorf("90 receipts took %d look-ups, want at most %d", n, 90+20)
	}
	if len(updated) != 90 {
		t.Fatalf("%d copies changed, want 90", len(updated))
	}
	if updated, err = s.SetStatuses(copies(members[90:]), StatusDelivered, now); err != nil || len(updated) != 10 {
		t.Fatalf("failed copies' receipts changed %d, %v; want 10", len(updated), err)
	}
	got, err := s.Groups().GroupMessageByID(m.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range got.Members {
		if d.Status != StatusDelivered || !d.Delivered.Equal(now) {
			t.Fatalf("member %s: %+v, want delivered at %v", d.Peer, d, now)
		}
	}
	for _, p := range members {
		if out, err := s.Outbox(p); err != nil || len(out) != 0 {
			t.Fatalf("a delivered copy stays in the outbox: %+v, %v", out, err)
		}
	}
	if updated, err := s.SetStatuses(copies(members), StatusDelivered, time.Now()); err != nil || len(updated) != 0 {
		t.Fatalf("the same receipts again changed %d, %v", len(updated), err)
	}
}
