package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
)

// The group outbox. A copy of an outgoing group message (or membership
// change) is queued for its member until it is decided: delivered,
// failed, or dropped. The queue keeps one record per message, not an
// entry per copy: a message's hundred entries under keys that begin
// with the member landed on every leaf of a bucket keyed by member, 25
// of the 37 page writes of a message's transaction at 100 members
// (BENCHMARKS, "Fourteenth round").
//
//	gqueue   group ID || sequence → sealed, tag first: queueListed, a
//	         bit for each member of the message's list (gmembers), set
//	         while the member's copy is queued (13 bytes at 100
//	         members, where their peer IDs take 3.9 KB, more than fits
//	         in a page beside others); or queueNamed, the members
//	         whose copy is queued, in peer ID order, each after its
//	         length (uvarint), for copies moved from version 4, whose
//	         messages may have no list. A message with none queued has
//	         no record
//
// Which messages a member has queued is answered from memory
// (queueIndex), built from the records at Open and kept in step with
// them: the write transactions (Store.update) collect what they change
// (queueTx) and apply it to the index once committed, one transaction
// at a time, in the order they commit. Version 4 kept the queue as
// goutbox (member || 0 || group ID || sequence → message ID), moved
// into gqueue at Open (migrateGOutbox).
var (
	bktGQueue  = []byte("gqueue")
	bktGOutbox = []byte("goutbox") // version 4's, read once to move it
)

// qkey is a queue record's key: group ID || sequence.
type qkey [len(GroupID{}) + 8]byte

func queueKey(gid GroupID, seq uint64) qkey {
	var k qkey
	copy(k[:], gid[:])
	binary.BigEndian.PutUint64(k[len(gid):], seq)
	return k
}

func (k qkey) gid() GroupID { return GroupID(k[:len(GroupID{})]) }
func (k qkey) seq() uint64  { return binary.BigEndian.Uint64(k[len(GroupID{}):]) }

func compareQKeys(a, b qkey) int { return bytes.Compare(a[:], b[:]) }

func queueAD(k qkey) []byte { return append([]byte("gqueue/"), k[:]...) }

func queueRecord(k qkey) string {
	gid := k.gid()
	return fmt.Sprintf("gqueue/%x/%d", gid[:8], k.seq())
}

// The tags of a gqueue record.
const (
	queueListed = 0
	queueNamed  = 1
)

// queued is a message's queue as one write transaction sees it: the
// members whose copy is queued now (sorted), the message's member list
// the record's bits stand for (nil: it names them), and the members the
// transaction added and took, for the index (and for flush: a record
// none were added to or taken from is as it was).
type queued struct {
	now         []peer.ID
	list        []peer.ID
	added, took []peer.ID
}

// queueTx is what one write transaction changed in the queue, by
// message, loaded once and written back once at its end (flush).
type queueTx struct {
	tx   *bolt.Tx
	sets map[qkey]*queued
}

// groupQueue is the part of Groups that keeps the queue.
type groupQueue struct{ Groups }

func (s Groups) queue() groupQueue { return groupQueue{s} }

// writing is the queue changes of tx, nil unless tx is the write
// transaction of Store.update on this goroutine's behalf.
func (q groupQueue) writing(tx *bolt.Tx) *queueTx {
	if qt := q.qtx.Load(); qt != nil && qt.tx == tx {
		return qt
	}
	return nil
}

// load returns message k's queue in tx: the transaction's own if it
// changes it, else read (and, in a write transaction, kept for it).
func (q groupQueue) load(tx *bolt.Tx, k qkey) (*queued, error) {
	qt := q.writing(tx)
	if qt != nil {
		if set := qt.sets[k]; set != nil {
			return set, nil
		}
	}
	set := &queued{}
	if b := tx.Bucket(bktGQueue); b != nil {
		if v := b.Get(k[:]); v != nil {
			var err error
			if set.now, set.list, err = q.decodeQueue(tx, k, v); err != nil {
				return nil, err
			}
		}
	}
	if qt != nil {
		if qt.sets == nil {
			qt.sets = map[qkey]*queued{}
		}
		qt.sets[k] = set
	}
	return set, nil
}

// listOf is message gid/seq's member list: the one its queue record
// read in this transaction, if it did, else read (memberList).
func (q groupQueue) listOf(tx *bolt.Tx, gid GroupID, seq uint64) ([]peer.ID, bool, error) {
	if qt := q.writing(tx); qt != nil {
		if set := qt.sets[queueKey(gid, seq)]; set != nil && set.list != nil {
			return set.list, true, nil
		}
	}
	return q.memberList(tx, gid, seq)
}

// decodeQueue opens and parses a gqueue record: the members queued,
// sorted, and the list its bits stand for (nil if it names them).
func (q groupQueue) decodeQueue(tx *bolt.Tx, k qkey, v []byte) (now, list []peer.ID, err error) {
	plain, err := q.open(v, queueAD(k))
	if err != nil || len(plain) == 0 {
		return nil, nil, corrupt(queueRecord(k), errors.New("it does not decrypt"))
	}
	switch tag, rest := plain[0], plain[1:]; tag {
	case queueListed:
		list, found, err := q.memberList(tx, k.gid(), k.seq())
		if err != nil {
			return nil, nil, err
		}
		if !found || len(rest) != (len(list)+7)/8 {
			return nil, nil, corrupt(queueRecord(k), fmt.Errorf("%d bytes for a list of %d members", len(rest), len(list)))
		}
		for i, p := range list {
			if rest[i/8]&(1<<(i%8)) != 0 {
				now = append(now, p)
			}
		}
		slices.Sort(now)
		return slices.Compact(now), list, nil
	case queueNamed:
		if now, err = peerList(rest, queueRecord(k)); err != nil {
			return nil, nil, err
		}
		for i, p := range now {
			if p == "" || (i > 0 && now[i-1] >= p) {
				return nil, nil, corrupt(queueRecord(k), errors.New("members out of order"))
			}
		}
		return now, nil, nil
	}
	return nil, nil, corrupt(queueRecord(k), errors.New("a record of an unknown kind"))
}

// inTx runs fn in tx, a write transaction, with the queue changes it
// makes collected (writing) and written into the records at its end
// (flush), and returns them for the index.
func (q groupQueue) inTx(tx *bolt.Tx, fn func(tx *bolt.Tx) error) (*queueTx, error) {
	qt := &queueTx{tx: tx}
	q.qtx.Store(qt)
	defer q.qtx.Store(nil)
	if err := fn(tx); err != nil {
		return nil, err
	}
	return qt, q.flush(qt)
}

// errQueueOutsideUpdate: a queue changed in a transaction that
// Store.update did not begin, whose change would be lost.
var errQueueOutsideUpdate = errors.New("the group outbox changed outside Store.update")

// change is load for a change: only in Store.update's transaction.
func (q groupQueue) change(tx *bolt.Tx, k qkey) (*queued, error) {
	if q.writing(tx) == nil {
		return nil, errQueueOutsideUpdate
	}
	return q.load(tx, k)
}

// put queues message k for members, beside any queued already. listed:
// members is the message's member list (gmembers), which a record new to
// the queue then stands for with a bit each; otherwise the record names
// the members.
func (q groupQueue) put(tx *bolt.Tx, k qkey, members []peer.ID, listed bool) error {
	set, err := q.change(tx, k)
	if err != nil {
		return err
	}
	if !listed {
		set.list = nil
	}
	if len(set.now) == 0 && set.list == nil { // a new record, as a message's
		if listed {
			set.list = slices.Clone(members)
		}
		set.now = slices.Compact(slices.Sorted(slices.Values(members)))
		set.added = append(set.added, set.now...)
		return nil
	}
	for _, p := range members {
		if set.list != nil && !slices.Contains(set.list, p) {
			set.list = nil // a member off the list: the record names them
		}
		if i, found := slices.BinarySearch(set.now, p); !found {
			set.now = slices.Insert(set.now, i, p)
			set.added = append(set.added, p)
		}
	}
	return nil
}

// take takes p's copy of message k out of the queue, reporting whether
// it was queued.
func (q groupQueue) take(tx *bolt.Tx, k qkey, p peer.ID) (bool, error) {
	set, err := q.change(tx, k)
	if err != nil {
		return false, err
	}
	i, found := slices.BinarySearch(set.now, p)
	if !found {
		return false, nil
	}
	set.now = slices.Delete(set.now, i, i+1)
	set.took = append(set.took, p)
	return true, nil
}

// has reports whether p's copy of message k is queued.
func (q groupQueue) has(tx *bolt.Tx, k qkey, p peer.ID) (bool, error) {
	set, err := q.load(tx, k)
	if err != nil {
		return false, err
	}
	_, found := slices.BinarySearch(set.now, p)
	return found, nil
}

// drop takes every copy of message k out of the queue and returns how
// many there were.
func (q groupQueue) drop(tx *bolt.Tx, k qkey) (int, error) {
	set, err := q.change(tx, k)
	if err != nil {
		return 0, err
	}
	n := len(set.now)
	set.took = append(set.took, set.now...)
	set.now = nil
	return n, nil
}

// flush writes the records qt changed.
func (q groupQueue) flush(qt *queueTx) error {
	if len(qt.sets) == 0 {
		return nil
	}
	b, err := qt.tx.CreateBucketIfNotExists(bktGQueue)
	if err != nil {
		return err
	}
	var plain []byte
	for k, set := range qt.sets {
		if len(set.added) == 0 && len(set.took) == 0 {
			continue // read only
		}
		if len(set.now) == 0 {
			if err := b.Delete(k[:]); err != nil {
				return err
			}
			continue
		}
		plain = appendQueue(plain[:0], set)
		if err := b.Put(k[:], q.seal(plain, queueAD(k))); err != nil {
			return err
		}
	}
	return nil
}

// appendQueue appends the plaintext of set's record to dst.
func appendQueue(dst []byte, set *queued) []byte {
	if set.list == nil {
		dst = append(dst, queueNamed)
		for _, p := range set.now {
			dst = appendPeer(dst, p)
		}
		return dst
	}
	dst = append(dst, queueListed)
	at := len(dst)
	dst = append(dst, make([]byte, (len(set.list)+7)/8)...)
	for i, p := range set.list {
		if _, found := slices.BinarySearch(set.now, p); found {
			dst[at+i/8] |= 1 << (i % 8)
		}
	}
	return dst
}

// queuedKeys are the keys of the messages of group gid queued for
// anyone, in order.
func queuedKeys(tx *bolt.Tx, gid GroupID) ([]qkey, error) {
	b := tx.Bucket(bktGQueue)
	if b == nil {
		return nil, nil
	}
	var keys []qkey
	c := b.Cursor()
	for k, _ := c.Seek(gid[:]); k != nil && bytes.HasPrefix(k, gid[:]); k, _ = c.Next() {
		if len(k) != len(qkey{}) {
			return nil, corrupt(fmt.Sprintf("gqueue/%x", k), errBadKey)
		}
		keys = append(keys, qkey(k))
	}
	return keys, nil
}

// queueIndex is, in memory, which messages each member has queued: the
// records' keys, sorted. mu guards it; writers change it only in
// Store.update, after their commit.
type queueIndex struct {
	mu     sync.RWMutex
	byPeer map[peer.ID][]qkey
}

func newQueueIndex() *queueIndex { return &queueIndex{byPeer: map[peer.ID][]qkey{}} }

// has reports whether p has any copy queued.
func (ix *queueIndex) has(p peer.ID) bool {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.byPeer[p]) > 0
}

// list returns the messages p has queued, in key order.
func (ix *queueIndex) list(p peer.ID) []qkey {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return slices.Clone(ix.byPeer[p])
}

// addPeers adds to out the members with copies queued that it does not
// list yet.
func (ix *queueIndex) addPeers(out *[]peer.ID) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	for p := range ix.byPeer {
		if !slices.Contains(*out, p) {
			*out = append(*out, p)
		}
	}
}

// apply records what a committed transaction changed.
func (ix *queueIndex) apply(qt *queueTx) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for k, set := range qt.sets {
		// What the transaction left queued decides: a member taken and
		// queued again in it stays.
		for _, p := range set.added {
			if _, queued := slices.BinarySearch(set.now, p); queued {
				ix.add(p, k)
			}
		}
		for _, p := range set.took {
			if _, queued := slices.BinarySearch(set.now, p); !queued {
				ix.remove(p, k)
			}
		}
	}
}

// add adds k to p's keys. A message comes after those queued before it
// in its group, and mostly there is one group: it is appended.
func (ix *queueIndex) add(p peer.ID, k qkey) {
	keys := ix.byPeer[p]
	if n := len(keys); n == 0 || compareQKeys(keys[n-1], k) < 0 {
		ix.byPeer[p] = append(keys, k)
		return
	}
	if i, found := slices.BinarySearchFunc(keys, k, compareQKeys); !found {
		ix.byPeer[p] = slices.Insert(keys, i, k)
	}
}

// remove removes k from p's keys; mostly the oldest is decided first.
func (ix *queueIndex) remove(p peer.ID, k qkey) {
	keys := ix.byPeer[p]
	i, found := 0, len(keys) > 0 && keys[0] == k
	if !found {
		i, found = slices.BinarySearchFunc(keys, k, compareQKeys)
	}
	if !found {
		return
	}
	if keys = slices.Delete(keys, i, i+1); len(keys) == 0 {
		delete(ix.byPeer, p)
		return
	}
	ix.byPeer[p] = keys
}

// load builds the index from the records in tx. A record that does
// not open is left out: its members' outboxes do not list it, and a
// status recorded for one of its copies fails naming it (load).
func (ix *queueIndex) load(q groupQueue, tx *bolt.Tx) error {
	b := tx.Bucket(bktGQueue)
	if b == nil {
		return nil
	}
	var damaged []qkey
	err := b.ForEach(func(k, v []byte) error {
		if len(k) != len(qkey{}) {
			return nil
		}
		members, _, err := q.decodeQueue(tx, qkey(k), v)
		if err != nil {
			damaged = append(damaged, qkey(k))
			return nil
		}
		for _, p := range members {
			ix.add(p, qkey(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range damaged {
		members, err := q.repair(tx, k)
		if err != nil {
			continue // left out, reported where it is used
		}
		for _, p := range members {
			ix.add(p, k)
		}
	}
	return nil
}

// repair rewrites message k's queue record, which does not open (damage
// on disk), from what the store holds besides: the message's member
// list, and whose copies were decided (a delivery record, delivered or
// failed, or the message settled). Every other member's copy is queued
// again, so none is left unsent without a word: at worst a member gets
// its copy twice, drops it as a duplicate and acknowledges it again. It
// returns the members queued, or an error if what it needs does not
// open either (the record is then left as it is, and a receipt for one
// of its copies fails naming it).
func (q groupQueue) repair(tx *bolt.Tx, k qkey) ([]peer.ID, error) {
	gid, seq := k.gid(), k.seq()
	list, found, err := q.memberList(tx, gid, seq)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, corrupt(queueRecord(k), errors.New("it does not decrypt, and its message has no member list"))
	}
	settled, err := q.settled().deliveries(tx, gid, seq, list)
	if err != nil {
		return nil, err
	}
	set := &queued{list: list}
	for _, p := range list {
		if settled != nil {
			break // every copy decided
		}
		d, err := q.recorded(tx, gid, seq, p)
		if err != nil {
			return nil, err
		}
		if d.Status != StatusDelivered && d.Status != StatusFailed {
			set.now = append(set.now, p)
		}
	}
	slices.Sort(set.now)
	set.now = slices.Compact(set.now)
	b := tx.Bucket(bktGQueue)
	if len(set.now) == 0 {
		return nil, b.Delete(k[:])
	}
	return set.now, b.Put(k[:], q.seal(appendQueue(nil, set), queueAD(k)))
}

// recorded is p's delivery record of gid/seq, or one with no status if
// it has none (its copy was never decided).
func (q groupQueue) recorded(tx *bolt.Tx, gid GroupID, seq uint64, p peer.ID) (MemberDelivery, error) {
	dk, ad := delivKeyAD(gid, seq, p)
	if db := tx.Bucket(bktGDeliv); db != nil {
		if v := db.Get(dk); v != nil {
			return q.parseDeliv(ad, v, p)
		}
	}
	return MemberDelivery{Peer: p}, nil
}

// migrateGOutbox moves version 4's goutbox into gqueue and deletes it.
func (q groupQueue) migrateGOutbox(tx *bolt.Tx) error {
	ob := tx.Bucket(bktGOutbox)
	if ob == nil {
		return nil
	}
	sets := map[qkey][]peer.ID{}
	err := ob.ForEach(func(k, _ []byte) error {
		if len(k) < len(qkey{})+2 || k[len(k)-len(qkey{})-1] != 0 {
			return corrupt(fmt.Sprintf("goutbox/%x", k), errBadKey)
		}
		qk := qkey(k[len(k)-len(qkey{}):])
		sets[qk] = append(sets[qk], peer.ID(k[:len(k)-len(qkey{})-1]))
		return nil
	})
	if err != nil {
		return err
	}
	// The index is built from the records after (Store.init).
	_, err = q.inTx(tx, func(tx *bolt.Tx) error {
		for k, members := range sets {
			if err := q.put(tx, k, members, false); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tx.DeleteBucket(bktGOutbox)
}
