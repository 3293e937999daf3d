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

// Replies, edits, deletions and reactions in groups (docs/PROTOCOL.md
// §14.5). An action is a group message of its own, stored once (hidden
// from the history) and applied to its target in the same transaction,
// with the rules of a private conversation: the target must be a text of
// the same group; only its author edits or deletes it (the sender the
// pairwise session authenticated, never a claim of the message), within
// EditWindow; any member reacts, one reaction per member. The node checks
// membership before. An action whose target has not arrived yet (each
// member's copy of a message travels on its own path, so a reaction can
// come before the message it reacts to) is kept pending, as in a private
// conversation: stored with its body, indexed by its target in gpending,
// and applied (or refused, by the same rules) in the transaction that
// stores its target. An action naming a message stored in another group
// or in a private conversation is refused, whichever arrives first.

// groupActions is the part of Groups that applies actions to their
// targets and keeps those whose target has not arrived; it works in the
// transactions of Groups' writes, on the same file.
type groupActions struct{ Groups }

// actions is s's part for actions.
func (s Groups) actions() groupActions { return groupActions{s} }

func encodeGroupAction(m *GroupMessage, sm *storedGroupMessage) {
	sm.Kind, sm.Emoji, sm.Deleted, sm.Refused, sm.Pending = m.Kind, m.Emoji, m.Deleted, m.Refused, m.Pending
	if m.Target != (e2e.MessageID{}) {
		sm.Target = m.Target.String()
	}
	if m.ReplyTo != (e2e.MessageID{}) {
		sm.ReplyTo = m.ReplyTo.String()
	}
	sm.Edited = optTime(m.Edited)
	sm.Reactions = nil
	for _, r := range m.Reactions {
		from := ""
		if r.From != "" {
			from = r.From.String()
		}
		sm.Reactions = append(sm.Reactions, storedReaction{From: from, Emoji: r.Emoji})
	}
}

func decodeGroupAction(sm *storedGroupMessage, m *GroupMessage) error {
	m.Kind, m.Emoji, m.Deleted, m.Refused, m.Pending = sm.Kind, sm.Emoji, sm.Deleted, sm.Refused, sm.Pending
	m.Edited = fromOptTime(sm.Edited)
	var err error
	if sm.Target != "" {
		if m.Target, err = e2e.ParseMessageID(sm.Target); err != nil {
			return err
		}
	}
	if sm.ReplyTo != "" {
		if m.ReplyTo, err = e2e.ParseMessageID(sm.ReplyTo); err != nil {
			return err
		}
	}
	for _, r := range sm.Reactions {
		var from peer.ID
		if r.From != "" {
			if from, err = peer.Decode(r.From); err != nil {
				return err
			}
		}
		m.Reactions = append(m.Reactions, Reaction{From: from, Emoji: r.Emoji})
	}
	return nil
}

// applyGroupAction applies a (ours if outgoing, else by a.From) to its
// target and rewrites the target; a.Applied is the target after.
func (s groupActions) applyGroupAction(tx *bolt.Tx, a *GroupMessage, now time.Time) error {
	var v []byte
	if idx := tx.Bucket(bktGIDs); idx != nil {
		v = idx.Get(a.Target[:])
	}
	if v == nil || len(v) != e2e.GroupIDLen+8 || GroupID(v[:e2e.GroupIDLen]) != a.Group {
		return fmt.Errorf("message %s: %w", a.Target, ErrNoTarget)
	}
	seq := binary.BigEndian.Uint64(v[e2e.GroupIDLen:])
	b := tx.Bucket(bktGMsgs).Bucket(a.Group[:])
	if b == nil {
		return corrupt(gmsgRecord(a.Group, seq), errors.New("missing"))
	}
	t, err := s.decodeGroupMessage(a.Group, seq, b.Get(seqKey(seq)))
	if err != nil {
		return err
	}
	if t.Kind != KindText || t.Changes != nil {
		return fmt.Errorf("message %s: %w", a.Target, ErrNoTarget)
	}
	if t.Deleted {
		return ErrDeleted
	}
	switch a.Kind {
	case KindEdit, KindDelete:
		ours := a.Direction == Outgoing
		if ours != (t.Direction == Outgoing) || !ours && t.From != a.From {
			return ErrNotYours
		}
		if ours && now.Sub(t.SentAt) > EditWindow ||
			!ours && (a.SentAt.Sub(t.SentAt) > EditWindow+editClockSlack || now.Sub(t.StoredAt) > lateActionLimit) {
			return ErrTooOld
		}
		if a.Kind == KindDelete {
			t.Body, t.Deleted, t.Edited, t.Reactions = "", true, time.Time{}, nil
			if ours {
				if err := s.dropSuperseded(tx, a.Group, a.Target, seq); err != nil {
					return err
				}
			}
		} else if !a.SentAt.Before(t.Edited) {
			t.Body, t.Edited = a.Body, a.SentAt
		}
	case KindReact:
		from := a.From // empty: ours
		t.Reactions = slices.DeleteFunc(t.Reactions, func(r Reaction) bool { return r.From == from })
		if a.Emoji != "" {
			t.Reactions = append(t.Reactions, Reaction{From: from, Emoji: a.Emoji})
		}
	default:
		return fmt.Errorf("message %s: unknown kind %q", a.ID, a.Kind)
	}
	enc, err := s.encodeGroupMessage(&t)
	if err != nil {
		return err
	}
	if err := b.Put(seqKey(seq), enc); err != nil {
		return err
	}
	if err := s.loadDeliveries(tx, &t); err != nil {
		return err
	}
	a.Applied = &t
	return nil
}

// receiveAction stores an incoming action: applied to its target,
// refused (m.Refused says why), or kept pending (m.Pending) if its target
// is stored nowhere yet.
func (s groupActions) receiveAction(tx *bolt.Tx, g *storedCounts, m *GroupMessage, now time.Time) error {
	err := s.applyGroupAction(tx, m, now)
	if errors.Is(err, ErrNoTarget) {
		known, kerr := idKnown(tx, m.Target)
		if kerr != nil {
			return kerr
		}
		if !known {
			// Not arrived yet: kept, with its body, until it does
			// (refused if too many wait for it, as in private).
			if err = pendingRoom(tx.Bucket(bktGPending), m.Target); err == nil {
				m.Pending = true
				if err := s.appendGroupMessage(tx, g, m); err != nil {
					return err
				}
				return tx.Bucket(bktGPending).Put(pendingKey(m.Target, m.ID), append(slices.Clone(m.Group[:]), seqKey(m.Seq)...))
			}
		}
	}
	if refusal(err) {
		m.Refused = err.Error()
	} else if err != nil {
		return err
	}
	return s.appendAction(tx, g, m)
}

// applyPending applies the group actions that waited for the text t,
// just stored, in the order of their sent-at (a deletion after an edit
// wins), each by the rules of a live one; an action of another group
// is refused. Each is rewritten without its body and leaves the pending
// index; t becomes the text as it now stands, and t.Waited lists them.
func (s groupActions) applyPending(tx *bolt.Tx, t *GroupMessage, now time.Time) error {
	all, err := s.waitingFor(tx, t.ID)
	if err != nil || len(all) == 0 {
		return err
	}
	applied := false
	for _, a := range all {
		err := s.applyGroupAction(tx, &a, now) // refuses one of another group
		if err != nil && !refusal(err) {
			return err
		}
		if err != nil {
			a.Refused = err.Error()
		} else {
			applied = true
		}
		a.Pending, a.Body, a.Applied = false, "", nil // Applied: t, below
		if err := s.settle(tx, a); err != nil {
			return err
		}
		t.Waited = append(t.Waited, a)
	}
	if !applied {
		return nil
	}
	nt, err := s.decodeGroupMessage(t.Group, t.Seq, tx.Bucket(bktGMsgs).Bucket(t.Group[:]).Get(seqKey(t.Seq)))
	if err != nil {
		return err
	}
	nt.Waited = t.Waited
	*t = nt
	return nil
}

// refusePending refuses the group actions that waited for id, a message
// that arrived in a private conversation.
func (s groupActions) refusePending(tx *bolt.Tx, id e2e.MessageID) error {
	if tx.Bucket(bktGPending) == nil {
		return nil // no group ever
	}
	all, err := s.waitingFor(tx, id)
	if err != nil {
		return err
	}
	for _, a := range all {
		a.Pending, a.Body, a.Refused = false, "", fmt.Errorf("message %s: %w", id, ErrNoTarget).Error()
		if err := s.settle(tx, a); err != nil {
			return err
		}
	}
	return nil
}

// waitingFor reads the group actions kept pending for the message id,
// oldest first by the sender's clock.
func (s groupActions) waitingFor(tx *bolt.Tx, id e2e.MessageID) ([]GroupMessage, error) {
	var all []GroupMessage
	c := tx.Bucket(bktGPending).Cursor()
	for k, v := c.Seek(id[:]); k != nil && bytes.HasPrefix(k, id[:]); k, v = c.Next() {
		if len(v) != e2e.GroupIDLen+8 {
			return nil, corrupt(fmt.Sprintf("gpending/%x", k), errBadKey)
		}
		gid, seq := GroupID(v[:e2e.GroupIDLen]), binary.BigEndian.Uint64(v[e2e.GroupIDLen:])
		var raw []byte
		if b := tx.Bucket(bktGMsgs).Bucket(gid[:]); b != nil {
			raw = b.Get(seqKey(seq))
		}
		a, err := s.decodeGroupMessage(gid, seq, raw)
		if err != nil {
			return nil, err
		}
		all = append(all, a)
	}
	slices.SortStableFunc(all, func(x, y GroupMessage) int { return x.SentAt.Compare(y.SentAt) })
	return all, nil
}

// settle writes the pending action a back as it now stands and takes it
// out of the pending index.
func (s groupActions) settle(tx *bolt.Tx, a GroupMessage) error {
	enc, err := s.encodeGroupMessage(&a)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bktGMsgs).Bucket(a.Group[:]).Put(seqKey(a.Seq), enc); err != nil {
		return err
	}
	return tx.Bucket(bktGPending).Delete(pendingKey(a.Target, a.ID))
}

// SetGroupSent records that copies of outgoing group messages were
// written to their members' live sessions (sent), all in one transaction,
// and returns those whose status changed. A copy already queued at a
// relay or delivered stays so, and one that names no group copy (it was
// acknowledged and is gone) is passed over. It reads first: when no copy
// is still sending (their receipts came first, as they mostly do on live
// sessions) it writes nothing, and costs no durable write.
func (s Groups) SetGroupSent(copies []Copy, now time.Time) ([]Message, error) {
	var todo []Copy
	err := s.db.View(func(tx *bolt.Tx) error {
		where := map[e2e.MessageID][]byte{} // gids entries, read once per message
		idx := tx.Bucket(bktGIDs)           // opened once: a read-only tx opens a bucket anew at each tx.Bucket
		for _, c := range copies {
			st, err := s.copyStatus(tx, idx, c, where)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if st == StatusSending {
				todo = append(todo, c)
			}
		}
		return nil
	})
	if err != nil || len(todo) == 0 {
		return nil, err
	}
	var out []Message
	err = s.update(func(tx *bolt.Tx) error {
		out = out[:0]
		gm := newGroupMessages()
		for _, c := range todo {
			m, changed, err := s.setGroupStatusOf(tx, c.ID, c.Peer, StatusSent, now, gm)
			if errors.Is(err, ErrNotFound) {
				continue // acknowledged and gone meanwhile
			}
			if err != nil {
				return err
			}
			if changed {
				out = append(out, m)
			}
		}
		return nil
	})
	return out, err
}

// copyStatus is the stored status of a group message's copy to c.Peer,
// read through the bucket gids (idx, nil if missing); where holds the
// index entries read so far.
func (s Groups) copyStatus(tx *bolt.Tx, idx *bolt.Bucket, c Copy, where map[e2e.MessageID][]byte) (Status, error) {
	v, ok := where[c.ID]
	if !ok && idx != nil {
		v = idx.Get(c.ID[:])
		where[c.ID] = v
	}
	if v == nil {
		return "", fmt.Errorf("message %s: %w", c.ID, ErrNotFound)
	}
	if len(v) != e2e.GroupIDLen+8 {
		return "", corrupt("gids/"+c.ID.String(), errBadKey)
	}
	d, err := s.delivery(tx, GroupID(v[:e2e.GroupIDLen]), binary.BigEndian.Uint64(v[e2e.GroupIDLen:]), c.Peer)
	if errors.Is(err, ErrNotFound) {
		return "", fmt.Errorf("message %s to %s: %w", c.ID, c.Peer, ErrNotFound)
	}
	return d.Status, err
}

// appendAction stores a text or an action; an edit is stored without its
// text, which lives in its target only (so a deletion removes it from
// the store), and read back from the target to be sent (fillEdit).
func (s groupActions) appendAction(tx *bolt.Tx, g *storedCounts, m *GroupMessage) error {
	if m.Kind != KindEdit {
		return s.appendGroupMessage(tx, g, m)
	}
	body := m.Body
	m.Body = ""
	err := s.appendGroupMessage(tx, g, m)
	m.Body = body
	return err
}

// fillEdit gives an outgoing edit read from the outbox its target's text
// now (empty if the target was deleted since).
func (s groupActions) fillEdit(tx *bolt.Tx, m *GroupMessage) error {
	if m.Kind != KindEdit {
		return nil
	}
	v := tx.Bucket(bktGIDs).Get(m.Target[:])
	if v == nil || len(v) != e2e.GroupIDLen+8 || GroupID(v[:e2e.GroupIDLen]) != m.Group {
		return nil
	}
	seq := binary.BigEndian.Uint64(v[e2e.GroupIDLen:])
	t, err := s.decodeGroupMessage(m.Group, seq, tx.Bucket(bktGMsgs).Bucket(m.Group[:]).Get(seqKey(seq)))
	if err != nil {
		return err
	}
	m.Body = t.Body
	return nil
}

// dropSuperseded takes out of every member's queue what our deletion of
// the text at seq makes pointless: the text itself (its body is gone)
// and our edits and reactions of it not yet acknowledged.
func (s groupActions) dropSuperseded(tx *bolt.Tx, gid GroupID, target e2e.MessageID, seq uint64) error {
	msgs := tx.Bucket(bktGMsgs).Bucket(gid[:])
	if msgs == nil {
		return nil
	}
	keys, err := queuedKeys(tx, gid)
	if err != nil {
		return err
	}
	dropped := settledDecisions{}
	for _, k := range keys {
		if mseq := k.seq(); mseq != seq {
			m, err := s.decodeGroupMessage(gid, mseq, msgs.Get(seqKey(mseq)))
			if err != nil {
				return err
			}
			if m.Direction != Outgoing || m.Target != target || (m.Kind != KindEdit && m.Kind != KindReact) {
				continue
			}
		}
		n, err := s.queue().drop(tx, k)
		if err != nil {
			return err
		}
		dropped.add(gid, k.seq(), n)
	}
	return s.settled().apply(tx, dropped, nil)
}
