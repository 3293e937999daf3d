package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
)

// Actions is the store's part for edits, deletions, reactions and read
// markers: it applies them to their targets in the transaction that
// stores them. It is a handle on the one Store; get it with
// Store.Actions.
type Actions struct{ *Store }

// Actions is the part of the store that applies message actions.
func (s *Store) Actions() Actions { return Actions{s} }

// Edits, deletions and reactions (docs/PROTOCOL.md §10, "Editing,
// deleting, reacting"). Each is a message of its own, stored in its
// conversation like a text (so it is queued, acknowledged and deduplicated
// by ID as texts are) and applied to its target in the same transaction:
// the target keeps the latest body and the time of that edit, or loses its
// body and becomes a tombstone, or gains the reaction. Action records are
// hidden from History and keep no body once applied, so a deleted text
// cannot be read back from any record. An incoming action whose target
// has not arrived yet (the mailbox does not keep order) is stored pending,
// indexed by target, and applied when the target arrives.

// EditWindow is how long after sending it its author may edit or delete a
// message, as Signal allows: long enough to fix a typo or take back a
// message sent in haste, short enough that the conversation's record
// cannot be rewritten later.
const EditWindow = 24 * time.Hour

// Receivers check the window against the sender's own clock (the edit's
// sent-at against the message's, with editClockSlack for a clock set
// meanwhile), and against their own: an edit or deletion is refused once
// the message arrived more than lateActionLimit ago, the window plus the
// 14 days an envelope may wait at a relay.
const (
	editClockSlack  = 5 * time.Minute
	lateActionLimit = EditWindow + 14*24*time.Hour
)

var (
	// ErrNotYours refuses an edit or deletion of someone else's message.
	ErrNotYours = errors.New("only its author may edit or delete a message")
	// ErrTooOld refuses an edit or deletion after EditWindow.
	ErrTooOld = errors.New("a message may be edited or deleted only within 24 hours of sending it")
	// ErrDeleted refuses acting on a deleted message.
	ErrDeleted = errors.New("the message was deleted")
	// ErrNoTarget refuses acting on a message that is not a text of this
	// conversation.
	ErrNoTarget = errors.New("no such message in this conversation")
	// ErrPendingFull refuses an action before its target once
	// maxPendingPerTarget wait for that target.
	ErrPendingFull = errors.New("too many edits, deletions and reactions already wait for the message it names")
)

// maxPendingPerTarget bounds the actions kept for one target that has
// not arrived (private or group: the same bound), so that its arrival
// applies them in one transaction of bounded size: room for a reaction
// and a few changes of it from every member of a large group.
const maxPendingPerTarget = 1024

// pendingKey indexes a pending action by its target: target ID ||
// action ID → peer ID || sequence of the action's record (group ID ||
// sequence in gpending).
func pendingKey(target, action e2e.MessageID) []byte {
	return append(bytes.Clone(target[:]), action[:]...)
}

// pendingRoom says whether the pending index b may keep one more action
// for target: ErrPendingFull once maxPendingPerTarget wait for it.
func pendingRoom(b *bolt.Bucket, target e2e.MessageID) error {
	n := 0
	c := b.Cursor()
	for k, _ := c.Seek(target[:]); k != nil && bytes.HasPrefix(k, target[:]); k, _ = c.Next() {
		if n++; n >= maxPendingPerTarget {
			return fmt.Errorf("message %s: %w", target, ErrPendingFull)
		}
	}
	return nil
}

// AddOutgoingAction stores an edit, deletion or reaction of ours (m.Kind,
// m.Target, m.Body or m.Emoji), applies it to its target and queues it in
// the outbox, in one transaction. It returns the target as it now
// stands. Refusals: ErrNoTarget, ErrNotYours (edit or delete a message
// that is not ours), ErrTooOld (after EditWindow by now), ErrDeleted.
func (s Actions) AddOutgoingAction(m *Message, now time.Time) (Message, error) {
	if m.Kind == KindText {
		return Message{}, fmt.Errorf("message %s is not an action", m.ID)
	}
	m.Direction, m.Status = Outgoing, StatusSending
	var target Message
	err := s.update(func(tx *bolt.Tx) error {
		tp, tseq, sm, err := s.targetOf(tx, m.Target, m.Peer)
		if err != nil {
			return err
		}
		if (m.Kind == KindEdit || m.Kind == KindDelete) && now.Sub(time.UnixMilli(sm.SentAt)) > EditWindow {
			return ErrTooOld
		}
		if err := apply(&sm, m); err != nil {
			return err
		}
		if m.Kind == KindDelete {
			if err := s.dropSuperseded(tx, m.Peer, m.Target, tseq); err != nil {
				return err
			}
		}
		if target, err = s.putStored(tx, tp, tseq, sm); err != nil {
			return err
		}
		body := m.Body
		m.Body = "" // an edit's text lives in its target only
		err = s.append(tx, m, false)
		m.Body = body
		if err != nil {
			return err
		}
		return tx.Bucket(bktOutbox).Put(outboxKey(m.Peer, m.Seq), m.ID[:])
	})
	return target, err
}

// targetOf reads the text id names in p's conversation: ErrNoTarget if
// there is none (or it is an action).
func (s Actions) targetOf(tx *bolt.Tx, id e2e.MessageID, p peer.ID) (peer.ID, uint64, storedMessage, error) {
	tp, seq, raw, err := get(tx, id)
	if errors.Is(err, ErrNotFound) || err == nil && tp != p {
		return "", 0, storedMessage{}, fmt.Errorf("message %s: %w", id, ErrNoTarget)
	}
	if err != nil {
		return "", 0, storedMessage{}, err
	}
	sm, err := s.parse(tp, seq, raw)
	if err != nil {
		return "", 0, storedMessage{}, err
	}
	if sm.Kind != KindText {
		return "", 0, storedMessage{}, fmt.Errorf("message %s: %w", id, ErrNoTarget)
	}
	return tp, seq, sm, nil
}

// apply applies action a to the text sm, checking who may: its author
// edits and deletes it (a.Direction is the action's author as seen from
// here, sm.Dir the text's), anyone in the conversation reacts. An edit
// older (by the sender's clock) than the one shown changes nothing.
func apply(sm *storedMessage, a *Message) error {
	if sm.Deleted {
		return ErrDeleted
	}
	switch a.Kind {
	case KindEdit, KindDelete:
		if sm.Dir != a.Direction {
			return ErrNotYours
		}
		if a.Direction == Incoming && a.SentAt.Sub(time.UnixMilli(sm.SentAt)) > EditWindow+editClockSlack {
			return ErrTooOld
		}
		if a.Kind == KindDelete {
			sm.Body, sm.Deleted, sm.Edited, sm.Reactions = "", true, 0, nil
			return nil
		}
		if at := a.SentAt.UnixMilli(); at >= sm.Edited {
			sm.Body, sm.Edited = a.Body, at
		}
		return nil
	case KindReact:
		from := "" // in the record: the reactor's peer ID in text, ours empty
		if a.Direction == Incoming {
			from = a.Peer.String()
		}
		sm.Reactions = slices.DeleteFunc(sm.Reactions, func(r storedReaction) bool { return r.From == from })
		if a.Emoji != "" {
			sm.Reactions = append(sm.Reactions, storedReaction{From: from, Emoji: a.Emoji})
		}
		if len(sm.Reactions) == 0 {
			sm.Reactions = nil
		}
		return nil
	}
	return fmt.Errorf("message %s: unknown kind %q", a.ID, a.Kind)
}

// dropSuperseded takes out of the outbox what a deletion makes pointless:
// the deleted text itself (whose body is gone) and our edits and
// reactions of it not yet acknowledged.
func (s Actions) dropSuperseded(tx *bolt.Tx, p peer.ID, target e2e.MessageID, tseq uint64) error {
	ob := tx.Bucket(bktOutbox)
	var drop [][]byte
	c := ob.Cursor()
	prefix := outboxPrefix(p)
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		seq := seqOfOutboxKey(k, prefix)
		if seq == tseq {
			drop = append(drop, bytes.Clone(k))
			continue
		}
		sm, err := s.parse(p, seq, messages(tx, p).Get(seqKey(seq)))
		if err != nil {
			return err
		}
		if sm.Kind != KindText && sm.Target == target.String() {
			drop = append(drop, bytes.Clone(k))
		}
	}
	for _, k := range drop {
		if err := ob.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// putStored writes a changed record back and returns it as a Message.
func (s Actions) putStored(tx *bolt.Tx, p peer.ID, seq uint64, sm storedMessage) (Message, error) {
	v, err := s.sealMessage(p, seq, sm)
	if err != nil {
		return Message{}, err
	}
	if err := messages(tx, p).Put(seqKey(seq), v); err != nil {
		return Message{}, err
	}
	return fromStored(p, seq, sm)
}

// Received is what storing an incoming message did.
type Received struct {
	// New: the message was not stored before (else it is a duplicate,
	// and nothing changed).
	New bool
	// Changed are the texts whose shown state changed: the target of an
	// edit, deletion or reaction, or a text that arrived with actions
	// waiting for it (applied now).
	Changed []Message
	// Refused says why an incoming action was not applied (ErrNotYours,
	// ErrTooOld, ErrDeleted, ErrNoTarget); it is stored as refused.
	Refused error
	// Applied: on a text, the actions that waited for it and were
	// applied now (its Changed entry shows their effect).
	Applied []Message
}

// addAction stores an incoming action and applies it if its target is
// here; else it waits, pending.
func (s Actions) addAction(tx *bolt.Tx, m *Message, now time.Time, rec *Received) error {
	tp, tseq, sm, err := s.targetOf(tx, m.Target, m.Peer)
	if errors.Is(err, ErrNoTarget) {
		known, kerr := idKnown(tx, m.Target)
		if kerr != nil {
			return kerr
		}
		if !known {
			// Not arrived yet: kept, with its body, until it does
			// (refused if too many wait for it).
			if err = pendingRoom(tx.Bucket(bktPending), m.Target); err == nil {
				m.Pending = true
				if err := s.append(tx, m, false); err != nil {
					return err
				}
				return tx.Bucket(bktPending).Put(pendingKey(m.Target, m.ID), append([]byte(m.Peer), seqKey(m.Seq)...))
			}
		}
	}
	if err == nil {
		err = checkLate(sm, m, now)
	}
	if err == nil {
		err = apply(&sm, m)
	}
	if err != nil && !refusal(err) {
		return err
	}
	m.Body = ""
	if err != nil {
		m.Status, m.Error, rec.Refused = StatusRefused, err.Error(), err
		return s.append(tx, m, false)
	}
	t, err := s.putStored(tx, tp, tseq, sm)
	if err != nil {
		return err
	}
	rec.Changed = append(rec.Changed, t)
	return s.append(tx, m, false)
}

func refusal(err error) bool {
	return errors.Is(err, ErrNotYours) || errors.Is(err, ErrTooOld) || errors.Is(err, ErrDeleted) || errors.Is(err, ErrNoTarget) ||
		errors.Is(err, ErrPendingFull)
}

// checkLate refuses an edit or deletion of a text that arrived more than
// lateActionLimit ago, by our clock.
func checkLate(sm storedMessage, a *Message, now time.Time) error {
	if (a.Kind == KindEdit || a.Kind == KindDelete) && now.Sub(time.UnixMilli(sm.StoredAt)) > lateActionLimit {
		return ErrTooOld
	}
	return nil
}

// waitingAction is an incoming private action kept pending: its index
// key, its place and its record.
type waitingAction struct {
	key  []byte
	p    peer.ID
	seq  uint64
	a    Message
	stor storedMessage
}

// waitingFor reads the private actions kept pending for the message id,
// oldest first by the sender's clock (a deletion after an edit wins).
func (s Actions) waitingFor(tx *bolt.Tx, id e2e.MessageID) ([]waitingAction, error) {
	var all []waitingAction
	c := tx.Bucket(bktPending).Cursor()
	prefix := id[:]
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if len(v) < 8 {
			return nil, corrupt(fmt.Sprintf("pending/%x", k), errBadKey)
		}
		p, seq := peer.ID(v[:len(v)-8]), seqOfValue(v)
		sm, err := s.parse(p, seq, messagesGet(tx, p, seq))
		if err != nil {
			return nil, err
		}
		a, err := fromStored(p, seq, sm)
		if err != nil {
			return nil, err
		}
		all = append(all, waitingAction{bytes.Clone(k), p, seq, a, sm})
	}
	slices.SortStableFunc(all, func(x, y waitingAction) int { return x.a.SentAt.Compare(y.a.SentAt) })
	return all, nil
}

// settle records what became of the pending action w (applied, or
// refused with err: a refusal), without its body, and takes it out of
// the pending index.
func (s Actions) settle(tx *bolt.Tx, w waitingAction, err error) error {
	w.stor.Pending, w.stor.Body = false, ""
	if err != nil {
		w.stor.Status, w.stor.Error = StatusRefused, err.Error()
	}
	if _, err := s.putStored(tx, w.p, w.seq, w.stor); err != nil {
		return err
	}
	return tx.Bucket(bktPending).Delete(w.key)
}

// applyPending applies the actions that waited for the text t (just
// stored at t.Peer, t.Seq), and rewrites t and each action.
func (s Actions) applyPending(tx *bolt.Tx, t *Message, now time.Time, rec *Received) error {
	all, err := s.waitingFor(tx, t.ID)
	if err != nil || len(all) == 0 {
		return err
	}
	_, tseq, raw, err := get(tx, t.ID)
	if err != nil {
		return err
	}
	sm, err := s.parse(t.Peer, tseq, raw)
	if err != nil {
		return err
	}
	changed := false
	for _, w := range all {
		err := ErrNoTarget // an action from another conversation
		if w.p == t.Peer {
			if err = checkLate(sm, &w.a, now); err == nil {
				err = apply(&sm, &w.a)
			}
		}
		if err != nil && !refusal(err) {
			return err
		}
		if err != nil {
			rec.Refused = err
		} else {
			changed = true
			w.a.Pending, w.a.Body = false, ""
			rec.Applied = append(rec.Applied, w.a)
		}
		if err := s.settle(tx, w, err); err != nil {
			return err
		}
	}
	if !changed {
		return nil
	}
	nt, err := s.putStored(tx, t.Peer, tseq, sm)
	if err != nil {
		return err
	}
	*t = nt
	rec.Changed = append(rec.Changed, nt)
	return nil
}

// refusePending refuses the private actions that waited for id, a message
// that arrived in a group: an action never applies across conversations.
func (s Actions) refusePending(tx *bolt.Tx, id e2e.MessageID) error {
	all, err := s.waitingFor(tx, id)
	if err != nil {
		return err
	}
	for _, w := range all {
		if err := s.settle(tx, w, fmt.Errorf("message %s: %w", id, ErrNoTarget)); err != nil {
			return err
		}
	}
	return nil
}

// idKnown reports whether a message id is stored, private or of a group:
// an action naming it is applied or refused, never kept pending.
func idKnown(tx *bolt.Tx, id e2e.MessageID) (bool, error) {
	if _, _, found, err := locate(tx, id); found || err != nil {
		return found, err
	}
	idx := tx.Bucket(bktGIDs)
	return idx != nil && idx.Get(id[:]) != nil, nil
}

func seqOfValue(v []byte) uint64 { return binary.BigEndian.Uint64(v[len(v)-8:]) }

func seqOfOutboxKey(k, prefix []byte) uint64 { return binary.BigEndian.Uint64(k[len(prefix):]) }

func messagesGet(tx *bolt.Tx, p peer.ID, seq uint64) []byte {
	if b := messages(tx, p); b != nil {
		return b.Get(seqKey(seq))
	}
	return nil
}

// quote fills a reply's Quote from its target in the same conversation.
func (s Actions) quote(tx *bolt.Tx, m *Message) error {
	if m.ReplyTo == (e2e.MessageID{}) {
		return nil
	}
	_, _, sm, err := s.targetOf(tx, m.ReplyTo, m.Peer)
	if errors.Is(err, ErrNoTarget) {
		return nil
	}
	if err != nil {
		return err
	}
	m.Quote = &Quote{ID: m.ReplyTo, Direction: sm.Dir, SentAt: time.UnixMilli(sm.SentAt), Body: sm.Body, Deleted: sm.Deleted}
	return nil
}

// fillEdit gives an outgoing edit read from the outbox the text its
// target shows now: what goes on the wire.
func (s Actions) fillEdit(tx *bolt.Tx, m *Message) error {
	if m.Kind != KindEdit || m.Direction != Outgoing {
		return nil
	}
	_, _, sm, err := s.targetOf(tx, m.Target, m.Peer)
	if errors.Is(err, ErrNoTarget) {
		return nil // no text: sealing it fails, and says so
	}
	if err != nil {
		return err
	}
	m.Body = sm.Body
	return nil
}

// SetSeen records that the peer p's window showed our messages ids
// (read markers): each becomes delivered too, if it was not yet. It
// returns the messages that changed; IDs that name no outgoing message to
// p are passed over.
func (s Actions) SetSeen(p peer.ID, ids []e2e.MessageID, now time.Time) ([]Message, error) {
	var out []Message
	err := s.update(func(tx *bolt.Tx) error {
		out = out[:0]
		for _, id := range ids {
			m, _, err := s.setStatus(tx, id, p, StatusDelivered, "", now, nil)
			switch {
			case errors.Is(err, ErrNotFound):
				continue
			case err != nil:
				return err
			case m.Direction != Outgoing || !m.Seen.IsZero() || m.Kind != KindText:
				continue
			}
			_, seq, raw, err := get(tx, id)
			if err != nil {
				return err
			}
			sm, err := s.parse(p, seq, raw)
			if err != nil {
				return err
			}
			sm.Seen = now.UnixMilli()
			nm, err := s.putStored(tx, p, seq, sm)
			if err != nil {
				return err
			}
			out = append(out, nm)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
