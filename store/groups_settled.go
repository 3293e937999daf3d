package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
)

// Settled deliveries. An outgoing group message has a delivery record
// per member in gdeliv (49 bytes sealed, under a 78-byte key) from the
// member's receipt on: about 25 KiB a message at 100 members as bbolt
// lays them out, kept for as long as the message. Once every member's
// copy is decided (delivered, failed or dropped) nothing but a status
// can change them, so the message settles: its records become one,
// status and delivery time per member in the order of its member list
// (gmembers), 9 bytes each, sealed; a 100-member message then keeps
// about 1 KiB.
//
//	gsettled   group ID || sequence → sealed, tag first:
//	           settleWaiting: the count of members whose copy is not
//	           decided yet (uvarint), written with the message;
//	           settleDone: the members' deliveries, delivPlainLen bytes
//	           each, in the order of the message's member list
//
// A delivery record written after the message settled (a status that
// comes late) is kept beside the settled record and read over it, so the
// count only decides when the records are gathered, never what they say:
// a count that reaches nothing early, or never, changes no status.
// Messages stored before settling was kept, and changes, have no count
// and keep their records.
var bktGSettled = []byte("gsettled")

// groupSettled is the part of Groups that settles deliveries: the
// gsettled bucket and the records it gathers from gdeliv.
type groupSettled struct{ Groups }

func (s Groups) settled() groupSettled { return groupSettled{s} }

// The tags of a gsettled record.
const (
	settleWaiting = 0
	settleDone    = 1
)

// settledAD binds a gsettled record to its key.
func settledAD(k []byte) []byte { return append([]byte("gsettled/"), k...) }

func settledRecord(gid GroupID, seq uint64) string {
	return fmt.Sprintf("gsettled/%x/%d", gid[:8], seq)
}

// waitFor records, with the message gid/seq, that n members' copies of
// it are not decided yet.
func (s groupSettled) waitFor(tx *bolt.Tx, gid GroupID, seq uint64, n int) error {
	k := seqKeyIn(gid, seq)
	plain := binary.AppendUvarint([]byte{settleWaiting}, uint64(n))
	return tx.Bucket(bktGSettled).Put(k, s.seal(plain, settledAD(k)))
}

// read opens gid/seq's gsettled record: its tag and the rest,
// nil if there is none.
func (s groupSettled) read(tx *bolt.Tx, gid GroupID, seq uint64) (tag byte, rest []byte, err error) {
	b := tx.Bucket(bktGSettled)
	if b == nil {
		return 0, nil, nil
	}
	k := seqKeyIn(gid, seq)
	v := b.Get(k)
	if v == nil {
		return 0, nil, nil
	}
	plain, err := s.open(v, settledAD(k))
	if err != nil {
		return 0, nil, corrupt(settledRecord(gid, seq), errors.New("it does not decrypt"))
	}
	if len(plain) == 0 || plain[0] > settleDone {
		return 0, nil, corrupt(settledRecord(gid, seq), errors.New("a record of an unknown kind"))
	}
	return plain[0], plain[1:], nil
}

// decided counts n more members' copies of gid/seq decided; the last
// settles the message, with the deliveries fresh that this transaction
// recorded (settle). It reports whether it settled it.
func (s groupSettled) decided(tx *bolt.Tx, gid GroupID, seq uint64, n int, fresh []MemberDelivery) (bool, error) {
	tag, rest, err := s.read(tx, gid, seq)
	if err != nil || rest == nil || tag != settleWaiting {
		return false, err // none kept, or settled already
	}
	left, w := binary.Uvarint(rest)
	if w <= 0 || w != len(rest) {
		return false, corrupt(settledRecord(gid, seq), errors.New("a count that does not parse"))
	}
	if uint64(n) < left {
		k := seqKeyIn(gid, seq)
		plain := binary.AppendUvarint([]byte{settleWaiting}, left-uint64(n))
		return false, tx.Bucket(bktGSettled).Put(k, s.seal(plain, settledAD(k)))
	}
	return true, s.settle(tx, gid, seq, fresh)
}

// settle gathers gid/seq's delivery records, and the deliveries fresh
// whose records this transaction has not written (newer than any
// record), into its settled record. Records of members not on its list
// stay as they are, and so do such deliveries, written as records.
func (s groupSettled) settle(tx *bolt.Tx, gid GroupID, seq uint64, fresh []MemberDelivery) error {
	// The list in the order of the records' keys (by peer ID), to walk
	// both at once: no peer ID copied, no map.
	type listed struct {
		p peer.ID
		i int
	}
	list, found, err := s.queue().listOf(tx, gid, seq)
	if err != nil {
		return err
	}
	k := seqKeyIn(gid, seq)
	if !found {
		if err := s.writeDeliveries(tx, gid, seq, fresh); err != nil {
			return err
		}
		return tx.Bucket(bktGSettled).Delete(k)
	}
	byPeer := make([]listed, len(list))
	for i, p := range list {
		byPeer[i] = listed{p, i}
	}
	cmp := func(a listed, p peer.ID) int { return strings.Compare(string(a.p), string(p)) }
	slices.SortFunc(byPeer, func(a, b listed) int { return cmp(a, b.p) })
	plain := make([]byte, 1+delivPlainLen*len(byPeer)) // zeros: sending, no time
	plain[0] = settleDone
	// One cursor finds and deletes them all: after a delete it seeks the
	// key deleted again, which finds the one after it.
	c := tx.Bucket(bktGDeliv).Cursor()
	var ad []byte // the record's AD, whose tail is its key
	j := 0
	for dk, v := c.Seek(k); dk != nil && bytes.HasPrefix(dk, k); {
		p := dk[len(k):]
		for j < len(byPeer) && string(byPeer[j].p) < string(p) {
			j++
		}
		if j == len(byPeer) || string(byPeer[j].p) != string(p) {
			dk, v = c.Next() // not on the list: kept
			continue
		}
		ad = append(append(ad[:0], delivADPrefix...), dk...)
		d, err := s.open(v, ad)
		if err != nil {
			return corrupt(fmt.Sprintf("gdeliv/%x", dk), errors.New("it does not decrypt"))
		}
		if _, err := parseDelivPlain(d, ""); err != nil {
			return corrupt(fmt.Sprintf("gdeliv/%x", dk), err)
		}
		for ; j < len(byPeer) && string(byPeer[j].p) == string(p); j++ {
			copy(plain[1+byPeer[j].i*delivPlainLen:], d)
		}
		if err := c.Delete(); err != nil {
			return err
		}
		dk, v = c.Seek(ad[len(delivADPrefix):])
	}
	var off []MemberDelivery // fresh deliveries of members off the list
	for _, d := range fresh {
		j, found := slices.BinarySearchFunc(byPeer, d.Peer, cmp)
		if !found {
			off = append(off, d)
			continue
		}
		dp := delivPlain(d)
		for ; j < len(byPeer) && byPeer[j].p == d.Peer; j++ {
			copy(plain[1+byPeer[j].i*delivPlainLen:], dp[:])
		}
	}
	if err := s.writeDeliveries(tx, gid, seq, off); err != nil {
		return err
	}
	return tx.Bucket(bktGSettled).Put(k, s.seal(plain, settledAD(k)))
}

// writeDeliveries writes ds, deliveries of gid/seq, as records of their own.
func (s groupSettled) writeDeliveries(tx *bolt.Tx, gid GroupID, seq uint64, ds []MemberDelivery) error {
	for _, d := range ds {
		k, ad := delivKeyAD(gid, seq, d.Peer)
		if err := tx.Bucket(bktGDeliv).Put(k, s.delivValue(ad, d)); err != nil {
			return err
		}
	}
	return nil
}

// deliveries reads the settled deliveries of gid/seq, whose
// member list is list: nil if it has not settled.
func (s groupSettled) deliveries(tx *bolt.Tx, gid GroupID, seq uint64, list []peer.ID) ([]MemberDelivery, error) {
	tag, rest, err := s.read(tx, gid, seq)
	if err != nil || rest == nil || tag != settleDone {
		return nil, err
	}
	if len(rest) != delivPlainLen*len(list) {
		return nil, corrupt(settledRecord(gid, seq), fmt.Errorf("%d bytes for %d members", len(rest), len(list)))
	}
	out := make([]MemberDelivery, len(list))
	for i, p := range list {
		d, err := parseDelivPlain(rest[i*delivPlainLen:(i+1)*delivPlainLen], p)
		if err != nil {
			return nil, corrupt(settledRecord(gid, seq), err)
		}
		out[i] = d
	}
	return out, nil
}

// settledDecisions is what a transaction that records many copies'
// statuses counts of the copies it decided, by message, to apply once
// at its end (groupSettled.apply).
type settledDecisions map[qkey]int

// add counts n more copies of gid/seq decided.
func (d settledDecisions) add(gid GroupID, seq uint64, n int) { d[queueKey(gid, seq)] += n }

// apply applies the decisions counted in d, and writes the deliveries
// fresh that a transaction recorded of the copies it decided: into the
// settled record of a message they settle, else as records of their own.
func (s groupSettled) apply(tx *bolt.Tx, d settledDecisions, fresh map[qkey][]MemberDelivery) error {
	for k, n := range d {
		settled, err := s.decided(tx, k.gid(), k.seq(), n, fresh[k])
		if err != nil {
			return err
		}
		if settled {
			delete(fresh, k)
		}
	}
	for k, ds := range fresh {
		if err := s.writeDeliveries(tx, k.gid(), k.seq(), ds); err != nil {
			return err
		}
	}
	return nil
}
