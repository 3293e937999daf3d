package store

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"

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

// blindKey is the key of a record placed at place: the place's HMAC
// under the blinding key.
func blindKey(key, place []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(place)
	return h.Sum(nil)
}

func countsPlace(id GroupID) []byte { return append([]byte("gcount/"), id[:]...) }

func recvPlace(id GroupID, from peer.ID) []byte {
	return append(append([]byte("grecv/"), id[:]...), from...)
}

func countsRecord(id GroupID) string { return fmt.Sprintf("gcount/%x", id[:8]) }

func recvRecord(id GroupID, from peer.ID) string {
	return fmt.Sprintf("grecv/%x/%s", id[:8], from)
}

// countBuckets makes the counts' buckets in a writable transaction.
func countBuckets(tx *bolt.Tx) error {
	for _, b := range [][]byte{bktGCount, bktGRecv} {
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
	if err := groupBuckets(tx); err != nil {
		return storedCounts{}, err
	}
	if err := countBuckets(tx); err != nil {
		return storedCounts{}, err
	}
	if !s.exists(tx, id) {
		return storedCounts{}, fmt.Errorf("group %x: %w", id[:4], ErrNotFound)
	}
	return s.get(tx, id)
}

// get reads group id's counts (zero if it has none yet).
func (s groupCounts) get(tx *bolt.Tx, id GroupID) (storedCounts, error) {
	var c storedCounts
	err := s.getSealed(tx, bktGCount, countsPlace(id), &c)
	if err != nil {
		return c, corrupt(countsRecord(id), err)
	}
	return c, nil
}

// put writes group id's counts.
func (s groupCounts) put(tx *bolt.Tx, id GroupID, c storedCounts) error {
	return s.putSealed(tx, bktGCount, countsPlace(id), c)
}

// window reads what arrived of from's numbering in group id.
func (s groupCounts) window(tx *bolt.Tx, id GroupID, from peer.ID) (recvWindow, error) {
	var w recvWindow
	if err := s.getSealed(tx, bktGRecv, recvPlace(id, from), &w); err != nil {
		return w, corrupt(recvRecord(id, from), err)
	}
	return w, nil
}

// putWindow writes from's window in group id.
func (s groupCounts) putWindow(tx *bolt.Tx, id GroupID, from peer.ID, w recvWindow) error {
	return s.putSealed(tx, bktGRecv, recvPlace(id, from), w)
}

// getSealed opens into v the record of bucket bkt placed at place; v is
// left as it is if there is none.
func (s groupCounts) getSealed(tx *bolt.Tx, bkt, place []byte, v any) error {
	b := tx.Bucket(bkt)
	if b == nil {
		return nil
	}
	raw := b.Get(blindKey(s.blind, place))
	if raw == nil {
		return nil
	}
	return s.openJSON(raw, place, v)
}

// putSealed seals v into bucket bkt, placed at place.
func (s groupCounts) putSealed(tx *bolt.Tx, bkt, place []byte, v any) error {
	sealed, err := s.sealJSON(v, place)
	if err != nil {
		return err
	}
	b := tx.Bucket(bkt)
	if b == nil {
		return errors.New("no " + string(bkt) + " bucket")
	}
	return b.Put(blindKey(s.blind, place), sealed)
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
			if err := s.putWindow(tx, id, p, w); err != nil {
				return nil, err
			}
		}
		return s.sealJSON(old.storedGroup, groupAD(id))
	})
}
