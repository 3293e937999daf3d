package store

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
)

// A group's counts. What every group message changes (our numbering in
// the group, each sender's window, the unread and message counts, the
// time of the last message) is kept apart from the group's record, which
// holds its signed membership log and grows with its members: a message
// rewrites a record of a few dozen bytes, the group's record only when
// its membership, name or settings change. Two buckets (version 4):
//
//	gcount     blind("gcount/" + group ID) → our numbering in the
//	           group (stream, last number), its unread and message
//	           counts and its last message's time (sealed JSON, bound
//	           to "gcount/" + group ID)
//	grecv      blind("grecv/" + group ID + sender peer ID) → what
//	           arrived of that sender's numbering in the group, the
//	           window of numbering.go (sealed JSON, bound to "grecv/" +
//	           group ID + sender peer ID)
//
// blind is HMAC-SHA256 under a key derived from the storage key (the
// Store's blind), so the keys show neither a group's ID nor who sent in
// which group: only how many groups and (group, sender) pairs there are.
// The values are sealed like every record, bound to their place by the
// group ID and sender, not by the blinded key, so a value moved under
// another key does not open. A group without a counts record has
// counted nothing yet; a sender without a window has sent nothing.
var (
	bktGCount = []byte("gcount")
	bktGRecv  = []byte("grecv")
)

// groupCounts is the part of Groups that keeps the counts, in the
// transactions of Groups' writes.
type groupCounts struct{ Groups }

// counts is s's part for counts.
func (s Groups) counts() groupCounts { return groupCounts{s} }

// storedCounts is a group's counts record.
type storedCounts struct {
	Last     int64  `json:"last,omitempty"`
	Unread   int    `json:"unread,omitempty"`
	Messages int    `json:"messages,omitempty"`
	Stream   uint64 `json:"stream,omitempty"`
	Sent     uint64 `json:"sent,omitempty"`
}

// blinder makes the key of a record placed at place: the place's
// HMAC-SHA256 under the blinding key (a Store's), with HMACs pooled: keyed once, reset after each use (a receive blinds two
// places, and hmac.New allocates two SHA-256 states and hashes the key
// each time). The key never changes, so what the pool keeps never goes
// stale.
type blinder struct {
	key  []byte
	pool sync.Pool
}

// blinded is the key of the record placed at place.
func (b *blinder) blinded(place []byte) []byte {
	h, _ := b.pool.Get().(hash.Hash)
	if h == nil {
		h = hmac.New(sha256.New, b.key)
	}
	h.Write(place)
	out := h.Sum(make([]byte, 0, sha256.Size))
	h.Reset()
	b.pool.Put(h)
	return out
}

func countsPlace(id GroupID) []byte {
	return append(append(make([]byte, 0, len("gcount/")+len(id)), "gcount/"...), id[:]...)
}

func recvPlace(id GroupID, from peer.ID) []byte {
	return append(append(append(make([]byte, 0, len("grecv/")+len(id)+len(from)), "grecv/"...), id[:]...), from...)
}

func countsRecord(id GroupID) string { return fmt.Sprintf("gcount/%x", id[:8]) }

func recvRecord(id GroupID, from peer.ID) string {
	return fmt.Sprintf("grecv/%x/%s", id[:8], from)
}

// countBucketNames are the counts' buckets.
var countBucketNames = [][]byte{bktGCount, bktGRecv}

// countBuckets makes the counts' buckets in a writable transaction.
func countBuckets(tx *bolt.Tx) error {
	for _, b := range countBucketNames {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return err
		}
	}
	return nil
}

// exists says whether the store has a record for group id, without
// opening it (a message does not need what it holds).
func (s groupCounts) exists(tx *bolt.Tx, id GroupID) bool {
	b := tx.Bucket(bktGroups)
	return b != nil && b.Get(id[:]) != nil
}

// forMessage makes the group buckets and reads group id's counts, for a
// message to store: ErrNotFound if the store has no such group.
func (s groupCounts) forMessage(tx *bolt.Tx, id GroupID) (storedCounts, error) {
	c, _, err := s.forMessageAt(tx, id)
	return c, err
}

// forMessageAt is forMessage that also returns where the counts are,
// for the put that follows (the place's blinded key is computed once).
func (s groupCounts) forMessageAt(tx *bolt.Tx, id GroupID) (storedCounts, sealedPlace, error) {
	if !haveBuckets(tx, groupBucketNames, countBucketNames) {
		if err := groupBuckets(tx); err != nil {
			return storedCounts{}, sealedPlace{}, err
		}
		if err := countBuckets(tx); err != nil {
			return storedCounts{}, sealedPlace{}, err
		}
	}
	if !s.exists(tx, id) {
		return storedCounts{}, sealedPlace{}, fmt.Errorf("group %x: %w", id[:4], ErrNotFound)
	}
	at := s.countsAt(id)
	c, err := s.getAt(tx, id, at)
	return c, at, err
}

// sealedPlace is where a counts record is: its place (the sealed
// value's associated data) and its key in the bucket, the place blinded.
type sealedPlace struct{ place, key []byte }

// placed is place with its blinded key.
func (s groupCounts) placed(place []byte) sealedPlace {
	return sealedPlace{place: place, key: s.blind.blinded(place)}
}

// countsAt is where group id's counts are.
func (s groupCounts) countsAt(id GroupID) sealedPlace { return s.placed(countsPlace(id)) }

// recvAt is where from's window in group id is.
func (s groupCounts) recvAt(id GroupID, from peer.ID) sealedPlace {
	return s.placed(recvPlace(id, from))
}

// get reads group id's counts (zero if it has none yet).
func (s groupCounts) get(tx *bolt.Tx, id GroupID) (storedCounts, error) {
	return s.getAt(tx, id, s.countsAt(id))
}

// getAt is get with the counts' place at.
func (s groupCounts) getAt(tx *bolt.Tx, id GroupID, at sealedPlace) (storedCounts, error) {
	var c storedCounts
	err := s.getSealed(tx, bktGCount, at, &c)
	if err != nil {
		return c, corrupt(countsRecord(id), err)
	}
	return c, nil
}

// put writes group id's counts.
func (s groupCounts) put(tx *bolt.Tx, id GroupID, c storedCounts) error {
	return s.putSealed(tx, bktGCount, s.countsAt(id), c)
}

// window reads what arrived of from's numbering in group id, at its
// place at (recvAt).
func (s groupCounts) window(tx *bolt.Tx, id GroupID, from peer.ID, at sealedPlace) (recvWindow, error) {
	var w recvWindow
	if err := s.getSealed(tx, bktGRecv, at, &w); err != nil {
		return w, corrupt(recvRecord(id, from), err)
	}
	return w, nil
}

// putWindow writes a window at its place at (recvAt).
func (s groupCounts) putWindow(tx *bolt.Tx, at sealedPlace, w recvWindow) error {
	return s.putSealed(tx, bktGRecv, at, w)
}

// getSealed opens into v the record of bucket bkt at at; v is left as
// it is if there is none.
func (s groupCounts) getSealed(tx *bolt.Tx, bkt []byte, at sealedPlace, v any) error {
	b := tx.Bucket(bkt)
	if b == nil {
		return nil
	}
	raw := b.Get(at.key)
	if raw == nil {
		return nil
	}
	return s.openJSON(raw, at.place, v)
}

// putSealed seals v into bucket bkt, at at.
func (s groupCounts) putSealed(tx *bolt.Tx, bkt []byte, at sealedPlace, v any) error {
	sealed, err := s.sealJSON(v, at.place)
	if err != nil {
		return err
	}
	b := tx.Bucket(bkt)
	if b == nil {
		return errors.New("no " + string(bkt) + " bucket")
	}
	return b.Put(at.key, sealed)
}

// storedGroupV3 is a group's record of version 3, which also held the
// counts.
type storedGroupV3 struct {
	storedGroup
	storedCounts
	Recv map[string]recvWindow `json:"recv,omitempty"` // per sender
}

// migrate moves the counts out of the group records of a database of
// version 3 (or before) into gcount and grecv, and writes each record
// again without them, in the transaction that opens the database. A
// record that cannot be read is left as it is: the group was unreadable
// before and stays so (List reports it), and the rest of the database
// opens.
func (s groupCounts) migrate(tx *bolt.Tx) error {
	b := tx.Bucket(bktGroups)
	if b == nil {
		return nil
	}
	if err := countBuckets(tx); err != nil {
		return err
	}
	return rewrite(b, func(k, v []byte) ([]byte, error) {
		if len(k) != len(GroupID{}) {
			return nil, nil
		}
		id := GroupID(k)
		plain, err := s.open(v, groupAD(id))
		if err != nil {
			return nil, nil
		}
		var old storedGroupV3
		if json.Unmarshal(plain, &old) != nil {
			return nil, nil
		}
		if old.storedCounts != (storedCounts{}) {
			if err := s.put(tx, id, old.storedCounts); err != nil {
				return nil, err
			}
		}
		for from, w := range old.Recv {
			p, err := peer.Decode(from)
			if err != nil {
				continue // a window of no peer: no message can find it
			}
			if err := s.putWindow(tx, s.recvAt(id, p), w); err != nil {
				return nil, err
			}
		}
		return s.sealJSON(old.storedGroup, groupAD(id))
	})
}
