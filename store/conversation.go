package store

import (
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
)

// Conversation summarises a conversation for lists.
type Conversation struct {
	Peer     peer.ID   `json:"peer"`
	Last     time.Time `json:"last"`
	LastSeq  uint64    `json:"last_seq"`
	Unread   int       `json:"unread"`
	Messages int       `json:"messages"`
	Missing  int       `json:"missing,omitempty"` // the peer's earlier messages not yet arrived
}

// storedConv is a conversation's record: the summary and the numbering
// state of both directions.
type storedConv struct {
	Conversation
	Stream uint64     `json:"stream,omitempty"` // ours: the numbering of what we send
	Sent   uint64     `json:"sent,omitempty"`   // the last number we gave
	Recv   recvWindow `json:"recv"`             // what arrived of the peer's numbering
}

func convRecord(p peer.ID) string { return fmt.Sprintf("convs/%s", p) }

// convAD binds a sealed conversation record to its peer.
func convAD(p peer.ID) []byte { return append([]byte("convs/"), p...) }

// getConv reads p's conversation record; a new conversation has none. A
// record that does not parse is an error: starting over would reset the
// numbering, and the next write would make the loss permanent.
func (s *Store) getConv(tx *bolt.Tx, p peer.ID) (storedConv, error) {
	var c storedConv
	if v := tx.Bucket(bktConvs).Get([]byte(p)); v != nil {
		if err := s.openJSON(v, convAD(p), &c); err != nil {
			return storedConv{}, corrupt(convRecord(p), err)
		}
	}
	c.Peer = p
	return c, nil
}

func (s *Store) putConv(tx *bolt.Tx, c storedConv) error {
	v, err := s.sealJSON(c, convAD(c.Peer))
	if err != nil {
		return err
	}
	return tx.Bucket(bktConvs).Put([]byte(c.Peer), v)
}

// Conversations lists conversation summaries, most recent first. A record
// that does not parse is left out and reported in the error (a
// *CorruptError for each, joined) beside the readable ones.
func (s *Store) Conversations() ([]Conversation, error) {
	var out []Conversation
	var bad []error
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bktConvs).ForEach(func(k, v []byte) error {
			var c Conversation
			if err := s.openJSON(v, convAD(peer.ID(k)), &c); err != nil {
				bad = append(bad, corrupt(convRecord(peer.ID(k)), err))
				return nil
			}
			c.Peer = peer.ID(k)
			out = append(out, c)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	sortConversations(out)
	return out, errors.Join(bad...)
}

// MarkRead clears a conversation's unread count.
func (s *Store) MarkRead(p peer.ID) error {
	return s.update(func(tx *bolt.Tx) error {
		c, err := s.getConv(tx, p)
		if err != nil || c.Unread == 0 {
			return err
		}
		c.Unread = 0
		return s.putConv(tx, c)
	})
}

// Number gives an outgoing message the next number of its conversation,
// as AddOutgoing does, without storing the message: for one that is
// sealed and sent but not kept, such as a probe.
func (s *Store) Number(m *Message) error {
	if m.Direction != Outgoing {
		return fmt.Errorf("message %s: only outgoing messages are numbered", m.ID)
	}
	return s.update(func(tx *bolt.Tx) error {
		c, err := s.getConv(tx, m.Peer)
		if err != nil {
			return err
		}
		c.number(m)
		return s.putConv(tx, c)
	})
}
