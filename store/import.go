package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Import stores many messages in one transaction (one fsync), as
// AddIncoming and AddOutgoing would one by one: a message whose ID is
// already stored is skipped; incoming messages count as unread; outgoing
// ones keep their Status, and those not yet delivered or failed are queued
// in the outbox. Each message's Seq is set. It is for bringing in history
// in bulk, and for filling a store in tests and benchmarks.
func (s *Store) Import(ms []*Message) error {
	return s.update(func(tx *bolt.Tx) error {
		for _, m := range ms {
			if _, _, found, err := locate(tx, m.ID); err != nil || found {
				if err != nil {
					return err
				}
				continue
			}
			switch {
			case m.Direction == Incoming:
				m.Status = StatusReceived
			case m.Direction != Outgoing:
				return fmt.Errorf("message %s: direction %q", m.ID, m.Direction)
			case m.Status == "":
				m.Status = StatusSending
			}
			if err := s.append(tx, m, false); err != nil {
				return err
			}
			if m.Direction == Outgoing && m.Status != StatusDelivered && m.Status != StatusFailed {
				if err := tx.Bucket(bktOutbox).Put(outboxKey(m.Peer, m.Seq), m.ID[:]); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
