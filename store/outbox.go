package store

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
)

func outboxKey(p peer.ID, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(p), 0), seq)
}

func outboxPrefix(p peer.ID) []byte { return append([]byte(p), 0) }

// Outbox lists a peer's unacknowledged messages in the order written.
func (s *Store) Outbox(p peer.ID) ([]Message, error) {
	var out []Message
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bktOutbox).Cursor()
		prefix := outboxPrefix(p)
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			seq := binary.BigEndian.Uint64(k[len(prefix):])
			var raw []byte
			if b := messages(tx, p); b != nil {
				raw = b.Get(seqKey(seq))
			}
			m, err := s.decode(p, seq, raw)
			if err != nil {
				return err
			}
			if err := s.Actions().fillEdit(tx, &m); err != nil {
				return err
			}
			out = append(out, m)
		}
		gs, err := s.Groups().groupOutbox(tx, p)
		for _, g := range gs {
			out = append(out, g.copyFor(p))
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// HasOutbox reports whether p has unacknowledged messages, without
// reading them.
func (s *Store) HasOutbox(p peer.ID) (bool, error) {
	if s.qindex.has(p) {
		return true, nil
	}
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		prefix := outboxPrefix(p)
		k, _ := tx.Bucket(bktOutbox).Cursor().Seek(prefix)
		found = k != nil && bytes.HasPrefix(k, prefix)
		return nil
	})
	return found, err
}

// OutboxPeers lists peers with unacknowledged messages.
func (s *Store) OutboxPeers() ([]peer.ID, error) {
	var out []peer.ID
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bktOutbox).Cursor()
		for k, _ := c.First(); k != nil; {
			if len(k) < 9 {
				return corrupt(fmt.Sprintf("outbox/%x", k), errBadKey)
			}
			p := peer.ID(k[:len(k)-9])
			out = append(out, p)
			k, _ = c.Seek(append([]byte(p), 1))
		}
		return nil
	})
	s.qindex.addPeers(&out)
	return out, err
}
