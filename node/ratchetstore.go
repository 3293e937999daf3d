package node

import (
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
)

// Ratchet state in the message database, sealed like message bodies:
//
//	ratchet  "local" → LocalKeys; "set/" + peer ID → that peer's SessionSet
//
// A new state is written in the same transaction as the message it
// produced or consumed (Store.commitRatchet), so a crash can never leave a
// stored message without the state that goes with it, or the reverse.
var (
	bktRatchet  = []byte("ratchet")
	keyLocal    = []byte("local")
	setPrefix   = "set/"
	errNoRecord = errors.New("no record")
)

func setKey(p peer.ID) []byte { return []byte(setPrefix + string(p)) }

// ratchetGet reads a sealed ratchet record.
func (s *Store) ratchetGet(key []byte) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bktRatchet)
		if b == nil {
			return errNoRecord
		}
		v := b.Get(key)
		if v == nil {
			return errNoRecord
		}
		plain, err := s.open(v, key)
		if err != nil {
			return fmt.Errorf("ratchet state %q does not decrypt", key)
		}
		out = plain
		return nil
	})
	return out, err
}

// ratchetWrite is one change to commit: records to put, then fn for the
// message side of the same transaction.
type ratchetWrite struct {
	local []byte  // new LocalKeys encoding, or nil
	peer  peer.ID // whose set
	set   []byte  // new SessionSet encoding, or nil
	fn    func(*bolt.Tx) error
}

// commitRatchet writes new ratchet state and the message change in one
// transaction.
func (s *Store) commitRatchet(w ratchetWrite) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bktRatchet)
		if err != nil {
			return err
		}
		if w.local != nil {
			if err := b.Put(keyLocal, s.seal(w.local, keyLocal)); err != nil {
				return err
			}
		}
		if w.set != nil {
			k := setKey(w.peer)
			if err := b.Put(k, s.seal(w.set, k)); err != nil {
				return err
			}
		}
		if w.fn != nil {
			return w.fn(tx)
		}
		return nil
	})
}

// addIncomingTx stores a received message in tx unless its ID is stored.
func (s *Store) addIncomingTx(tx *bolt.Tx, m *Message) (bool, error) {
	m.Direction, m.Status = Incoming, StatusReceived
	if v := tx.Bucket(bktIDs).Get(m.ID[:]); v != nil {
		if peer.ID(v[:len(v)-8]) != m.Peer {
			return false, fmt.Errorf("message id %s reused by another peer", m.ID)
		}
		return false, nil
	}
	return true, s.append(tx, m, true)
}
