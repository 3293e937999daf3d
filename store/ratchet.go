package store

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
)

// Ratchets is the store's part for ratchet state: the ratchet bucket and
// the writes that commit a state together with the message it produced or
// consumed. It is a handle on the one Store (one bbolt file, one
// transaction per write); get it with Store.Ratchets.
type Ratchets struct{ *Store }

// Ratchets is the part of the store that holds ratchet state.
func (s *Store) Ratchets() Ratchets { return Ratchets{s} }

// Ratchet state (e2e/ratchet) is kept sealed in the ratchet bucket. A new
// state is written in the same transaction as the message it produced or
// consumed (SaveRatchetWithIncoming, SaveRatchetWithReceipt), so a crash
// can never leave a stored message without the state that goes with it,
// or the reverse.

var (
	keyLocal  = []byte("local")
	setPrefix = "set/"
)

func setKey(p peer.ID) []byte {
	return append(append(make([]byte, 0, len(setPrefix)+len(p)), setPrefix...), p...)
}

// Ratchet is new ratchet state to write; a nil encoding leaves that
// record as it is.
type Ratchet struct {
	Local []byte  // the local keys' encoding
	Peer  peer.ID // whose session set Set is
	Set   []byte  // the peer's session set's encoding
}

// LocalKeys reads the local ratchet keys' encoding: ErrNotFound on first
// run.
func (s Ratchets) LocalKeys() ([]byte, error) { return s.ratchetGet(keyLocal, "ratchet/local") }

// SessionSet reads p's session set's encoding: ErrNotFound if we never
// had a session with p.
func (s Ratchets) SessionSet(p peer.ID) ([]byte, error) {
	return s.ratchetGet(setKey(p), fmt.Sprintf("ratchet/set/%s", p))
}

func (s Ratchets) ratchetGet(key []byte, record string) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bktRatchet).Get(key)
		if v == nil {
			return fmt.Errorf("%s: %w", record, ErrNotFound)
		}
		plain, err := s.open(v, key)
		if err != nil {
			return corrupt(record, errors.New("does not decrypt"))
		}
		out = plain
		return nil
	})
	return out, err
}

// SaveRatchet writes new ratchet state.
func (s Ratchets) SaveRatchet(r Ratchet) error {
	return s.update(func(tx *bolt.Tx) error { return s.putRatchet(tx, r) })
}

// SaveRatchetWithIncoming writes new ratchet state and the message it
// opened, in one transaction: the message is stored unless its ID already
// is (Receive), with what it did. On error nothing is written.
func (s Ratchets) SaveRatchetWithIncoming(r Ratchet, m *Message, now time.Time) (Received, error) {
	var rec Received
	err := s.update(func(tx *bolt.Tx) error {
		rec = Received{}
		if err := s.putRatchet(tx, r); err != nil {
			return err
		}
		return s.addIncoming(tx, m, now, &rec)
	})
	return rec, err
}

// SaveRatchetWithReceipt writes new ratchet state and marks delivered the
// outgoing message to from that a receipt it opened names, in one
// transaction. A receipt for a message we do not have changes only the
// state (changed is false); any other error writes nothing.
func (s Ratchets) SaveRatchetWithReceipt(r Ratchet, id e2e.MessageID, from peer.ID, now time.Time) (m Message, changed bool, err error) {
	err = s.update(func(tx *bolt.Tx) error {
		if err := s.putRatchet(tx, r); err != nil {
			return err
		}
		m, changed, err = s.setStatus(tx, id, from, StatusDelivered, "", now, nil)
		if errors.Is(err, ErrNotFound) {
			m, changed, err = Message{}, false, nil
		}
		return err
	})
	return m, changed, err
}

// SaveRatchetWithGroupIncoming writes new ratchet state and the group
// message it opened in one transaction (ReceiveGroup); on error nothing
// is written.
func (s Ratchets) SaveRatchetWithGroupIncoming(r Ratchet, m *GroupMessage, now time.Time) (isNew bool, err error) {
	err = s.update(func(tx *bolt.Tx) error {
		if err := s.putRatchet(tx, r); err != nil {
			return err
		}
		isNew, err = s.Groups().receiveGroup(tx, m, now)
		return err
	})
	return isNew, err
}

// putRatchet seals r's encodings into the transaction: the caller may
// reuse (and clear) their bytes once it returns.
func (s Ratchets) putRatchet(tx *bolt.Tx, r Ratchet) error {
	b := tx.Bucket(bktRatchet)
	if r.Local != nil {
		if err := b.Put(keyLocal, s.seal(r.Local, keyLocal)); err != nil {
			return err
		}
	}
	if r.Set != nil {
		k := setKey(r.Peer)
		if err := b.Put(k, s.seal(r.Set, k)); err != nil {
			return err
		}
	}
	return nil
}

// RatchetPeers lists the peers whose session sets are stored.
func (s Ratchets) RatchetPeers() ([]peer.ID, error) {
	var out []peer.ID
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bktRatchet).Cursor()
		prefix := []byte(setPrefix)
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			out = append(out, peer.ID(k[len(prefix):]))
		}
		return nil
	})
	return out, err
}
