package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
)

// AddOutgoing stores a new outgoing message, numbered in its
// conversation, and queues it in the outbox. When it returns, the message
// survives a crash.
func (s *Store) AddOutgoing(m *Message) error {
	m.Direction, m.Status = Outgoing, StatusSending
	return s.update(func(tx *bolt.Tx) error {
		if err := s.append(tx, m, true); err != nil {
			return err
		}
		return tx.Bucket(bktOutbox).Put(outboxKey(m.Peer, m.Seq), m.ID[:])
	})
}

// AddIncoming stores a received message unless one with its ID is
// already stored. It reports whether the message is new.
func (s *Store) AddIncoming(m *Message) (bool, error) {
	rec, err := s.Receive(m, m.StoredAt)
	return rec.New, err
}

// Receive stores a received message unless one with its ID is already
// stored: a text (applying the actions that waited for it), or an edit,
// deletion or reaction (applied to its target, refused, or kept pending:
// actions.go). now is our clock.
func (s *Store) Receive(m *Message, now time.Time) (Received, error) {
	var rec Received
	err := s.update(func(tx *bolt.Tx) error {
		rec = Received{}
		return s.addIncoming(tx, m, now, &rec)
	})
	return rec, err
}

// addIncoming stores a received message in tx unless its ID is stored.
func (s *Store) addIncoming(tx *bolt.Tx, m *Message, now time.Time, rec *Received) error {
	m.Direction, m.Status = Incoming, StatusReceived
	p, _, found, err := locate(tx, m.ID)
	switch {
	case err != nil:
		return err
	case found && p != m.Peer:
		return fmt.Errorf("message %s from %s: %w", m.ID, m.Peer, ErrIDTaken)
	case found:
		return nil
	}
	rec.New = true
	if m.Kind != KindText {
		return s.Actions().addAction(tx, m, now, rec)
	}
	if err := s.append(tx, m, true); err != nil {
		return err
	}
	if err := s.Actions().applyPending(tx, m, now, rec); err != nil {
		return err
	}
	if err := s.Groups().actions().refusePending(tx, m.ID); err != nil {
		return err
	}
	return s.Actions().quote(tx, m)
}

// append assigns the next sequence number and writes the message. With
// number, it also numbers an outgoing message, or records an incoming
// one's number and learns whether it is late and what is missing.
func (s *Store) append(tx *bolt.Tx, m *Message, number bool) error {
	c, err := s.getConv(tx, m.Peer)
	if err != nil {
		return err
	}
	b, err := tx.Bucket(bktMsgs).CreateBucketIfNotExists([]byte(m.Peer))
	if err != nil {
		return err
	}
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	m.Seq = seq
	if number {
		c.number(m)
	}
	v, err := s.encode(m)
	if err != nil {
		return err
	}
	if err := b.Put(seqKey(seq), v); err != nil {
		return err
	}
	if err := tx.Bucket(bktIDs).Put(m.ID[:], append([]byte(m.Peer), seqKey(seq)...)); err != nil {
		return err
	}
	c.Last, c.LastSeq = m.StoredAt, seq
	if m.Kind == KindText { // actions show on their targets
		c.Messages++
		if m.Direction == Incoming {
			c.Unread++
		}
	}
	return s.putConv(tx, c)
}

// locate finds a message by ID: its peer and sequence number.
func locate(tx *bolt.Tx, id e2e.MessageID) (p peer.ID, seq uint64, found bool, err error) {
	v := tx.Bucket(bktIDs).Get(id[:])
	switch {
	case v == nil:
		return "", 0, false, nil
	case len(v) < 8:
		return "", 0, false, corrupt("ids/"+id.String(), errors.New("too short"))
	}
	return peer.ID(v[:len(v)-8]), binary.BigEndian.Uint64(v[len(v)-8:]), true, nil
}

// messages is the bucket of p's conversation, nil if there is none.
func messages(tx *bolt.Tx, p peer.ID) *bolt.Bucket { return tx.Bucket(bktMsgs).Bucket([]byte(p)) }

// get reads the message that id names: ErrNotFound if none, a
// *CorruptError if the index points to nothing.
func get(tx *bolt.Tx, id e2e.MessageID) (p peer.ID, seq uint64, raw []byte, err error) {
	p, seq, found, err := locate(tx, id)
	if err != nil {
		return "", 0, nil, err
	}
	if !found {
		return "", 0, nil, fmt.Errorf("message %s: %w", id, ErrNotFound)
	}
	b := messages(tx, p)
	if b == nil {
		return "", 0, nil, corrupt("ids/"+id.String(), fmt.Errorf("points to %s, which does not exist", msgRecord(p, seq)))
	}
	if raw = b.Get(seqKey(seq)); raw == nil {
		return "", 0, nil, corrupt("ids/"+id.String(), fmt.Errorf("points to %s, which does not exist", msgRecord(p, seq)))
	}
	return p, seq, raw, nil
}

// SetStatus records a new status for an outgoing message to from;
// delivered and failed remove it from the outbox; queued records, for a
// file offer, that it went to a mailbox (Transfer.OfferQueued). It
// reports the message, and whether the status changed (receipts are
// idempotent). A message that is not there, or not to from, is
// ErrNotFound.
func (s *Store) SetStatus(id e2e.MessageID, from peer.ID, st Status, errText string, now time.Time) (Message, bool, error) {
	var (
		out     Message
		changed bool
	)
	err := s.update(func(tx *bolt.Tx) error {
		var err error
		out, changed, err = s.setStatus(tx, id, from, st, errText, now, nil)
		return err
	})
	return out, changed, err
}

// setStatus sets a copy's status in tx. gm holds the group messages
// decoded earlier in the transaction (nil: none kept), so that the
// receipts of one group message from many members decode it once.
func (s *Store) setStatus(tx *bolt.Tx, id e2e.MessageID, from peer.ID, st Status, errText string, now time.Time, gm *groupMessages) (Message, bool, error) {
	if gm.has(id) { // a group message another member acknowledged in this transaction
		return s.Groups().setGroupStatusOf(tx, id, from, st, now, gm)
	}
	p, seq, raw, err := get(tx, id)
	if errors.Is(err, ErrNotFound) {
		return s.Groups().setGroupStatusOf(tx, id, from, st, now, gm) // a group message's copy (groups.go)
	}
	if err != nil {
		return Message{}, false, err
	}
	if p != from {
		return Message{}, false, fmt.Errorf("message %s to %s: %w", id, from, ErrNotFound)
	}
	sm, err := s.parse(p, seq, raw)
	if err != nil {
		return Message{}, false, err
	}
	// Delivered is final; queued never replaces sent or delivered's news;
	// sent, recorded a second after the message was written, never
	// replaces a failure decided meanwhile (only a receipt does).
	if sm.Dir != Outgoing || sm.Status == StatusDelivered || sm.Status == st ||
		(st == StatusSent && (sm.Status == StatusQueued || sm.Status == StatusFailed)) {
		m, err := fromStored(p, seq, sm)
		return m, false, err
	}
	sm.Status, sm.Error = st, errText
	if st == StatusDelivered {
		sm.Delivered = now.UnixMilli()
	}
	if st == StatusQueued {
		// A file offer keeps that it went to a mailbox past its receipt.
		if err := s.Transfers().offerQueued(tx, id); err != nil {
			return Message{}, false, fmt.Errorf("record file offer %s as queued: %w", id, err)
		}
	}
	if st == StatusDelivered || st == StatusFailed {
		if err := tx.Bucket(bktOutbox).Delete(outboxKey(p, seq)); err != nil {
			return Message{}, false, err
		}
	}
	v, err := s.sealMessage(p, seq, sm)
	if err != nil {
		return Message{}, false, err
	}
	if err := messages(tx, p).Put(seqKey(seq), v); err != nil {
		return Message{}, false, err
	}
	m, err := fromStored(p, seq, sm)
	return m, true, err
}

// Copy names a message's copy to a peer: an outgoing message, or a group
// message's copy to one member.
type Copy struct {
	Peer peer.ID
	ID   e2e.MessageID
}

// CopiesTo names messages to p.
func CopiesTo(p peer.ID, ids []e2e.MessageID) []Copy {
	out := make([]Copy, len(ids))
	for i, id := range ids {
		out[i] = Copy{Peer: p, ID: id}
	}
	return out
}

// SetStatuses records a status for several copies, to any number of
// peers, in one transaction (a group message's receipts from its members:
// one durable write) and returns those whose status changed, each group
// message decoded once. Copies that name no message to their peer are
// passed over (a peer may acknowledge anything); any other error, a
// corrupt record included, changes nothing.
func (s *Store) SetStatuses(copies []Copy, st Status, now time.Time) ([]Message, error) {
	var out []Message
	err := s.update(func(tx *bolt.Tx) error {
		out = out[:0]
		gm := newGroupMessages()
		for _, c := range copies {
			m, changed, err := s.setStatus(tx, c.ID, c.Peer, st, "", now, gm)
			switch {
			case errors.Is(err, ErrNotFound):
				continue
			case err != nil:
				return err
			case changed:
				if out == nil { // a group message's copies: mostly all change
					out = make([]Message, 0, len(copies))
				}
				out = append(out, m)
			}
		}
		return s.Groups().settled().apply(tx, gm.decided, gm.fresh)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Message returns one message by ID.
func (s *Store) Message(id e2e.MessageID) (Message, error) {
	var out Message
	err := s.db.View(func(tx *bolt.Tx) error {
		p, seq, raw, err := get(tx, id)
		if err != nil {
			return err
		}
		out, err = s.decode(p, seq, raw)
		if err == nil && out.ID != id {
			err = corrupt("ids/"+id.String(), fmt.Errorf("points to %s, which is message %s", msgRecord(p, seq), out.ID))
		}
		if err != nil {
			return err
		}
		return s.Actions().quote(tx, &out)
	})
	return out, err
}

// History returns up to limit messages with a peer before sequence
// number before (0: the newest), oldest first: one page of scrollback.
// Edits, deletions and reactions are not messages of their own here: they
// show on their targets (Edited, Deleted, Reactions); a reply carries its
// Quote.
func (s *Store) History(p peer.ID, before uint64, limit int) ([]Message, error) {
	var out []Message
	err := s.db.View(func(tx *bolt.Tx) error {
		b := messages(tx, p)
		if b == nil || limit <= 0 {
			return nil
		}
		return backwards(b, before, func(seq uint64, v []byte) (bool, error) {
			m, err := s.decode(p, seq, v)
			if err != nil || m.Kind != KindText {
				return true, err
			}
			if err := s.Actions().quote(tx, &m); err != nil {
				return false, err
			}
			out = append(out, m)
			return len(out) < limit, nil
		})
	})
	if err != nil {
		return nil, err
	}
	slices.Reverse(out)
	return out, nil
}

// backwards calls f on b's records, newest first, from the one before
// sequence number before (0: from the newest), while f asks for more.
func backwards(b *bolt.Bucket, before uint64, f func(seq uint64, v []byte) (more bool, err error)) error {
	c := b.Cursor()
	var k, v []byte
	if before == 0 {
		k, v = c.Last()
	} else {
		c.Seek(seqKey(before))
		k, v = c.Prev()
	}
	for ; k != nil; k, v = c.Prev() {
		more, err := f(binary.BigEndian.Uint64(k), v)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// Search finds messages whose body contains text (case-insensitive),
// newest first, at most limit. Bodies are encrypted, so this decrypts
// and scans; no plaintext index is kept on disk.
func (s *Store) Search(text string, limit int) ([]Message, error) {
	needle := strings.ToLower(text)
	var out []Message
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bktMsgs).ForEachBucket(func(k []byte) error {
			p := peer.ID(k)
			return tx.Bucket(bktMsgs).Bucket(k).ForEach(func(sk, v []byte) error {
				m, err := s.decode(p, binary.BigEndian.Uint64(sk), v)
				if err != nil {
					return err
				}
				if m.Kind == KindText && strings.Contains(strings.ToLower(m.Body), needle) {
					out = append(out, m)
				}
				return nil
			})
		})
	})
	if err != nil {
		return nil, err
	}
	sortNewestFirst(out)
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}
