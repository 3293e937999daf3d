package store

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
)

// indexFromRecords is the index Open would build from s's records now.
func indexFromRecords(t *testing.T, s *Store) map[peer.ID][]qkey {
	t.Helper()
	ix := newQueueIndex()
	if err := s.db.View(func(tx *bolt.Tx) error { return ix.load(s.Groups().queue(), tx) }); err != nil {
		t.Fatal(err)
	}
	return ix.byPeer
}

// liveIndex is a copy of s's index as it stands.
func liveIndex(s *Store) map[peer.ID][]qkey {
	s.qindex.mu.RLock()
	defer s.qindex.mu.RUnlock()
	return maps.Clone(s.qindex.byPeer)
}

func sameIndex(a, b map[peer.ID][]qkey) bool {
	return maps.EqualFunc(a, b, func(x, y []qkey) bool { return slices.Equal(x, y) })
}

// TestGroupQueueFailedWriteLeavesIndex: a transaction that queues copies
// and then fails leaves the index as it was, as it leaves the records.
func TestGroupQueueFailedWriteLeavesIndex(t *testing.T) {
	s := testStore(t)
	id := testGroup(t, s)
	members := testPeers(t, 3)
	boom := errors.New("boom")
	err := s.update(func(tx *bolt.Tx) error {
		if err := s.Groups().queue().put(tx, queueKey(id, 1), members, false); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("the failing write: %v", err)
	}
	for _, p := range members {
		if has, err := s.HasOutbox(p); err != nil || has {
			t.Fatalf("after a write that failed, %s has an outbox: %v, %v", p, has, err)
		}
	}
	if peers, err := s.OutboxPeers(); err != nil || len(peers) != 0 {
		t.Fatalf("after a write that failed: outbox peers %v, %v", peers, err)
	}
	m := &GroupMessage{Group: id, ID: e2e.NewMessageID(), SentAt: time.Now(), StoredAt: time.Now(), Body: "hello"}
	if err := s.Groups().AddGroupOutgoing(m, members); err != nil {
		t.Fatal(err)
	}
	if has, err := s.HasOutbox(members[2]); err != nil || !has {
		t.Fatalf("after a message: %v, %v", has, err)
	}
	// A change outside Store.update is refused, not lost.
	err = s.db.Update(func(tx *bolt.Tx) error {
		_, err := s.Groups().queue().take(tx, queueKey(id, m.Seq), members[0])
		return err
	})
	if !errors.Is(err, errQueueOutsideUpdate) {
		t.Fatalf("a take outside update: %v", err)
	}
}

// TestGroupQueueIndexKeepsStep: writers that queue messages, record
// receipts and delete texts at once leave the index as the records say,
// and a store opened again builds the same one.
func TestGroupQueueIndexKeepsStep(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	key := make([]byte, 32)
	s := openAt(t, path, key)
	defer func() { s.Close() }()
	id := testGroup(t, s)
	members := testPeers(t, 12)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			var sent []e2e.MessageID
			for i := range 60 {
				now := time.Now()
				to := slices.Clone(members)
				rng.Shuffle(len(to), func(i, j int) { to[i], to[j] = to[j], to[i] })
				to = to[:1+rng.IntN(len(to))]
				m := &GroupMessage{Group: id, ID: e2e.NewMessageID(), SentAt: now, StoredAt: now, Body: fmt.Sprint(w, i)}
				if err := s.Groups().AddGroupOutgoing(m, to); err != nil {
					errs <- err
					return
				}
				sent = append(sent, m.ID)
				var copies []Copy
				for range rng.IntN(8) {
					copies = append(copies, Copy{Peer: members[rng.IntN(len(members))], ID: sent[rng.IntN(len(sent))]})
				}
				st := []Status{StatusDelivered, StatusFailed, StatusSent}[rng.IntN(3)]
				if _, err := s.SetStatuses(copies, st, now); err != nil {
					errs <- err
					return
				}
				if rng.IntN(10) == 0 {
					del := &GroupMessage{Group: id, ID: e2e.NewMessageID(), SentAt: now, StoredAt: now, Kind: KindDelete, Target: sent[rng.IntN(len(sent))]}
					if err := s.Groups().AddGroupOutgoing(del, to); err != nil && !errors.Is(err, ErrDeleted) {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	want := indexFromRecords(t, s)
	if len(want) == 0 {
		t.Fatal("nothing queued: the test tests nothing")
	}
	if live := liveIndex(s); !sameIndex(live, want) {
		t.Fatalf("the index does not match the records:\n%v\nwant\n%v", live, want)
	}
	for _, p := range members {
		ob, err := s.Groups().GroupOutbox(p)
		if err != nil || len(ob) != len(want[p]) {
			t.Fatalf("%s's outbox: %d messages, want %d; %v", p, len(ob), len(want[p]), err)
		}
	}
	s.Close()
	s = openAt(t, path, key)
	defer s.Close()
	if !sameIndex(s.qindex.byPeer, want) {
		t.Fatal("opened again, the index does not match the records")
	}
}

// TestGroupQueueCorruptRecord: a queue record that does not open does
// not keep the store from opening. It is rebuilt there from the
// message's member list and delivery records: the copies not decided
// are queued again (before, they were left out of their members'
// outboxes, never sent and never reported), those decided are not. If
// the member list does not open either, the record is left out of the
// outboxes, and a status recorded for one of its copies fails naming it.
func TestGroupQueueCorruptRecord(t *testing.T) {
	for _, tc := range []struct {
		name     string
		list     bool // damage the message's member list too
		repaired bool
	}{
		{name: "record", repaired: true},
		{name: "record and member list", list: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), FileName)
			key := make([]byte, 32)
			s := openAt(t, path, key)
			defer func() { s.Close() }()
			id := testGroup(t, s)
			members := testPeers(t, 3)
			var ms []*GroupMessage
			for i := range 2 {
				m := &GroupMessage{Group: id, ID: e2e.NewMessageID(), SentAt: time.Now(), StoredAt: time.Now(), Body: fmt.Sprint(i)}
				if err := s.Groups().AddGroupOutgoing(m, members); err != nil {
					t.Fatal(err)
				}
				ms = append(ms, m)
			}
			// members[0] has ms[0]; members[2]'s copy was sent, not acknowledged.
			for _, st := range []struct {
				p  int
				st Status
			}{{0, StatusDelivered}, {2, StatusSent}} {
				if _, _, err := s.Groups().SetGroupStatus(ms[0].ID, members[st.p], st.st, time.Now()); err != nil {
					t.Fatal(err)
				}
			}
			k := queueKey(id, ms[0].Seq)
			bad := peek(t, s, k[:], bktGQueue)
			bad[len(bad)-1] ^= 1
			poke(t, s, bad, k[:], bktGQueue)
			if tc.list {
				lk := seqKeyIn(id, ms[0].Seq)
				bad := peek(t, s, lk, bktGMembers)
				bad[len(bad)-1] ^= 1
				poke(t, s, bad, lk, bktGMembers)
			}
			s.Close()
			s = openAt(t, path, key)
			for i, p := range members {
				ob, err := s.Groups().GroupOutbox(p)
				var ids []e2e.MessageID
				for _, m := range ob {
					ids = append(ids, m.ID)
				}
				want := []e2e.MessageID{ms[1].ID}
				if tc.repaired && i > 0 {
					want = []e2e.MessageID{ms[0].ID, ms[1].ID}
				}
				if err != nil || !slices.Equal(ids, want) {
					t.Fatalf("member %d's outbox beside a damaged record: %v, %v; want %v", i, ids, err, want)
				}
			}
			_, changed, err := s.Groups().SetGroupStatus(ms[0].ID, members[1], StatusDelivered, time.Now())
			if tc.repaired {
				if err != nil || !changed {
					t.Fatalf("a receipt for a copy of the repaired record: %v, %v", changed, err)
				}
			} else {
				wantCorrupt(t, "a receipt for a copy of the damaged record", err, queueRecord(k))
			}
			if _, changed, err := s.Groups().SetGroupStatus(ms[1].ID, members[1], StatusDelivered, time.Now()); err != nil || !changed {
				t.Fatalf("a receipt for another message: %v, %v", changed, err)
			}
		})
	}
}

// TestGroupMessagePages: a message to 100 members, with others still
// waiting for receipts, writes few pages (bbolt's TxStats.Write: a write
// per dirty page, one per run of overflow pages): its queue is one
// record, not an entry per member spread over every leaf of the bucket
// (37 page writes a message before, BENCHMARKS "Fourteenth round").
func TestGroupMessagePages(t *testing.T) {
	s := testStore(t)
	id := testGroup(t, s)
	members := testPeers(t, 100)
	writes := func() int64 { st := s.db.Stats(); return st.TxStats.GetWrite() }
	var pages int64
	var ids []e2e.MessageID
	const n = 60
	for range n {
		m := &GroupMessage{Group: id, ID: e2e.NewMessageID(), SentAt: time.Now(), StoredAt: time.Now(), Body: "hello, all of you"}
		w0 := writes()
		if err := s.Groups().AddGroupOutgoing(m, members); err != nil {
			t.Fatal(err)
		}
		pages += writes() - w0
		if ids = append(ids, m.ID); len(ids) < 9 {
			continue
		}
		var copies []Copy // receipts for the oldest seven, together
		for _, id := range ids[:7] {
			for _, p := range members {
				copies = append(copies, Copy{Peer: p, ID: id})
			}
		}
		ids = ids[7:]
		if _, err := s.SetStatuses(copies, StatusDelivered, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if per := float64(pages) / n; per > 20 {
		t.Fatalf("a message to 100 members made %.1f page writes, want at most 20", per)
	} else {
		t.Logf("%.1f page writes a message", per)
	}
}

// openAt opens the store at path under key.
func openAt(t *testing.T, path string, key []byte) *Store {
	t.Helper()
	s, err := Open(path, key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestGroupQueueTakenAndQueuedInOneWrite: a copy taken out of the queue
// and queued again in one transaction stays queued, in the records and
// in the index (the index keeps what the transaction left).
func TestGroupQueueTakenAndQueuedInOneWrite(t *testing.T) {
	s := testStore(t)
	id := testGroup(t, s)
	members := testPeers(t, 3)
	m := &GroupMessage{Group: id, ID: e2e.NewMessageID(), SentAt: time.Now(), StoredAt: time.Now(), Body: "hello"}
	if err := s.Groups().AddGroupOutgoing(m, members); err != nil {
		t.Fatal(err)
	}
	k := queueKey(id, m.Seq)
	if err := s.update(func(tx *bolt.Tx) error {
		if _, err := s.Groups().queue().drop(tx, k); err != nil {
			return err
		}
		return s.Groups().queue().put(tx, k, members[1:], false)
	}); err != nil {
		t.Fatal(err)
	}
	for i, p := range members {
		if has, err := s.HasOutbox(p); err != nil || has != (i > 0) {
			t.Fatalf("member %d has an outbox: %v, %v; want %v", i, has, err, i > 0)
		}
	}
	if live, want := liveIndex(s), indexFromRecords(t, s); !sameIndex(live, want) {
		t.Fatalf("the index %v, the records %v", live, want)
	}
}
