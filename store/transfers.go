package store

import (
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
)

// Transfers is the store's part for file transfers: the bucket below and
// every operation on it. It is a handle on the one Store (one bbolt file,
// so a transfer is written in the same transaction as the message or the
// ratchet state that goes with it); get it with Store.Transfers.
type Transfers struct{ *Store }

// Transfers is the part of the store that holds file transfers.
func (s *Store) Transfers() Transfers { return Transfers{s} }

// File transfers (PROTOCOL §15). They live in their own bucket, created
// when first written (a database without it reads as having none), so the
// schema version does not change:
//
//	transfers  "t/" + transfer ID (16) → the transfer (sealed JSON)
//	           "c/" + message ID (16) → the file control an outgoing
//	           message carries (sealed JSON)
//
// A transfer's offer (its key included) is sealed at rest like every
// other record, bound to its place ("transfers/t/" + ID). The offer and
// the controls travel as messages (the outbox and receipts carry them):
// an offer's message ID is its transfer ID.
var bktTransfers = []byte("transfers")

// TransferState is where a transfer stands.
type TransferState string

const (
	TransferOffered   TransferState = "offered"   // incoming: waiting for the user to accept
	TransferWaiting   TransferState = "waiting"   // outgoing: the peer has not asked for it yet; incoming: accepted, waiting for the sender
	TransferActive    TransferState = "active"    // the receiver has asked for it: chunks move, or wait for the peer (FileInfo.Notice says so)
	TransferDone      TransferState = "done"      // received and verified (incoming), or the peer said so (outgoing)
	TransferDeclined  TransferState = "declined"  // the recipient said no
	TransferCancelled TransferState = "cancelled" // either side stopped it
	TransferFailed    TransferState = "failed"    // given up; see Error
)

// Final says whether nothing more happens to a transfer in this state.
func (s TransferState) Final() bool {
	return s == TransferDone || s == TransferDeclined || s == TransferCancelled || s == TransferFailed
}

// Transfer is one file sent or received.
type Transfer struct {
	ID        e2e.MessageID // the transfer ID, also the offer's message ID
	Peer      peer.ID
	Direction Direction
	Offer     []byte // transfer.Offer.Marshal(), key included
	// Path: the file sent (outgoing), or where the received file was
	// placed once done (incoming).
	Path    string `json:",omitempty"`
	State   TransferState
	Error   string `json:",omitempty"`
	Bytes   int64  `json:",omitempty"` // received, or acknowledged by the receiver
	Created time.Time
	Updated time.Time
	// Mailed: the chunks were left at a relay's mailbox (outgoing).
	Mailed bool `json:",omitempty"`
	// OfferQueued: the offer was left at a relay's mailbox (outgoing), so
	// a small file's chunks follow it there. Recorded with the offer's
	// queued status, in its transaction (setStatus), and kept once a
	// receipt makes that status delivered: whoever fetched the offer may
	// need the chunks from the mailbox still.
	OfferQueued bool `json:",omitempty"`
}

// FileControl is what an outgoing control message says of a transfer.
type FileControl struct {
	Transfer e2e.MessageID
	Action   uint8 // PROTOCOL §15.4
}

func transferKey(id e2e.MessageID) []byte      { return append([]byte("t/"), id[:]...) }
func fileControlKey(id e2e.MessageID) []byte   { return append([]byte("c/"), id[:]...) }
func transfersAD(k []byte) []byte              { return append([]byte("transfers/"), k...) }
func transferRecord(k []byte) string           { return "transfers/" + string(k[:2]) + hex.EncodeToString(k[2:]) }
func transfersBucket(tx *bolt.Tx) *bolt.Bucket { return tx.Bucket(bktTransfers) }

func (s Transfers) putSealed(tx *bolt.Tx, k []byte, v any) error {
	b, err := tx.CreateBucketIfNotExists(bktTransfers)
	if err != nil {
		return err
	}
	sealed, err := s.sealJSON(v, transfersAD(k))
	if err != nil {
		return err
	}
	return b.Put(k, sealed)
}

// getSealed reads a record of the transfers bucket into v; ErrNotFound if
// there is none.
func (s Transfers) getSealed(tx *bolt.Tx, k []byte, v any) error {
	b := transfersBucket(tx)
	if b == nil {
		return ErrNotFound
	}
	raw := b.Get(k)
	if raw == nil {
		return ErrNotFound
	}
	if err := s.openJSON(raw, transfersAD(k), v); err != nil {
		return corrupt(transferRecord(k), err)
	}
	return nil
}

// AddOutgoingFile stores the offer's message (AddOutgoing: numbered and
// queued in the outbox) and the transfer in one transaction. The
// message's ID must be the transfer's.
func (s Transfers) AddOutgoingFile(m *Message, t Transfer) error {
	if m.ID != t.ID || m.Peer != t.Peer {
		return errors.New("store: a file offer's message must carry the transfer's ID and peer")
	}
	m.Direction, m.Status = Outgoing, StatusSending
	t.Direction = Outgoing
	return s.update(func(tx *bolt.Tx) error {
		if err := s.append(tx, m, true); err != nil {
			return err
		}
		if err := tx.Bucket(bktOutbox).Put(outboxKey(m.Peer, m.Seq), m.ID[:]); err != nil {
			return err
		}
		return s.putSealed(tx, transferKey(t.ID), t)
	})
}

// AddOutgoingControl stores a control message about a transfer that
// does not change it (numbered and queued in the outbox).
func (s Transfers) AddOutgoingControl(m *Message, c FileControl) error {
	return s.update(func(tx *bolt.Tx) error { return s.addControl(tx, m, c) })
}

// EndTransfer ends transfer id from this side, unless it is over already
// (ErrTransferOver; nothing is stored then), in one transaction: end
// sets the transfer's final state and returns the control message that
// tells the peer, and the control's action; the message is stored with
// the transfer (AddOutgoingControl). The check and the write are in the
// one transaction, so an end stored meanwhile (the peer's "received", a
// file recorded done) is never overwritten. It returns the transfer as
// stored, or as found when over.
func (s Transfers) EndTransfer(id e2e.MessageID, end func(*Transfer) (Message, uint8)) (Transfer, Message, error) {
	var t Transfer
	var m Message
	err := s.update(func(tx *bolt.Tx) error {
		if err := s.getSealed(tx, transferKey(id), &t); err != nil {
			return err
		}
		if t.State.Final() {
			return fmt.Errorf("transfer %s is %s: %w", id, t.State, ErrTransferOver)
		}
		var action uint8
		m, action = end(&t)
		if !t.State.Final() || t.ID != id || m.Peer != t.Peer {
			return fmt.Errorf("store: the end of transfer %s leaves it %s, or tells another peer", id, t.State)
		}
		if err := s.addControl(tx, &m, FileControl{Transfer: id, Action: action}); err != nil {
			return err
		}
		return s.putSealed(tx, transferKey(id), t)
	})
	return t, m, err
}

// addControl stores in tx outgoing control message m, queued, and the
// control c it carries.
func (s Transfers) addControl(tx *bolt.Tx, m *Message, c FileControl) error {
	m.Direction, m.Status = Outgoing, StatusSending
	if err := s.append(tx, m, true); err != nil {
		return err
	}
	if err := tx.Bucket(bktOutbox).Put(outboxKey(m.Peer, m.Seq), m.ID[:]); err != nil {
		return err
	}
	return s.putSealed(tx, fileControlKey(m.ID), c)
}

// offerQueued records in tx that the outgoing message id, if it is a
// file offer, was left at a relay's mailbox (Transfer.OfferQueued).
func (s Transfers) offerQueued(tx *bolt.Tx, id e2e.MessageID) error {
	var t Transfer
	switch err := s.getSealed(tx, transferKey(id), &t); {
	case errors.Is(err, ErrNotFound):
		return nil // not a file offer
	case err != nil:
		return err
	}
	if t.Direction != Outgoing || t.OfferQueued {
		return nil
	}
	t.OfferQueued = true
	return s.putSealed(tx, transferKey(id), t)
}

// FileControlOf is the control an outgoing message carries; ErrNotFound
// for any other message.
func (s Transfers) FileControlOf(id e2e.MessageID) (FileControl, error) {
	var c FileControl
	err := s.db.View(func(tx *bolt.Tx) error { return s.getSealed(tx, fileControlKey(id), &c) })
	return c, err
}

// Transfer reads a transfer; ErrNotFound if there is none.
func (s Transfers) Transfer(id e2e.MessageID) (Transfer, error) {
	var t Transfer
	err := s.db.View(func(tx *bolt.Tx) error { return s.getSealed(tx, transferKey(id), &t) })
	return t, err
}

// UpdateTransfer reads a transfer, lets f change it and writes it back,
// in one transaction. f returning an error writes nothing.
func (s Transfers) UpdateTransfer(id e2e.MessageID, f func(*Transfer) error) (Transfer, error) {
	var t Transfer
	err := s.update(func(tx *bolt.Tx) error {
		if err := s.getSealed(tx, transferKey(id), &t); err != nil {
			return err
		}
		if err := f(&t); err != nil {
			return err
		}
		return s.putSealed(tx, transferKey(id), t)
	})
	return t, err
}

// Transfers lists every transfer, oldest first by creation, with a
// *CorruptError joined for each one that cannot be read.
func (s Transfers) List() ([]Transfer, error) {
	var out []Transfer
	var bad []error
	err := s.db.View(func(tx *bolt.Tx) error {
		b := transfersBucket(tx)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		prefix := []byte("t/")
		for k, v := c.Seek(prefix); k != nil && len(k) == len(prefix)+16 && string(k[:2]) == "t/"; k, v = c.Next() {
			var t Transfer
			if err := s.openJSON(v, transfersAD(k), &t); err != nil {
				bad = append(bad, corrupt(transferRecord(k), err))
				continue
			}
			out = append(out, t)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sortTransfers(out)
	return out, errors.Join(bad...)
}

func sortTransfers(ts []Transfer) {
	for i := 1; i < len(ts); i++ {
		for j := i; j > 0 && ts[j].Created.Before(ts[j-1].Created); j-- {
			ts[j], ts[j-1] = ts[j-1], ts[j]
		}
	}
}

// SaveRatchetWithIncomingFile writes new ratchet state, the offer's
// message and the transfer in one transaction (SaveRatchetWithIncoming).
// A repeated offer stores nothing but the state; an offer whose ID names
// another peer's transfer is ErrIDTaken.
func (s Transfers) SaveRatchetWithIncomingFile(r Ratchet, m *Message, t Transfer) (isNew bool, err error) {
	t.Direction = Incoming
	err = s.update(func(tx *bolt.Tx) error {
		if err := s.Ratchets().putRatchet(tx, r); err != nil {
			return err
		}
		var rec Received
		if err := s.addIncoming(tx, m, time.Now(), &rec); err != nil || !rec.New {
			return err
		}
		isNew = true
		var old Transfer
		switch err := s.getSealed(tx, transferKey(t.ID), &old); {
		case err == nil:
			return fmt.Errorf("transfer %s from %s: %w", t.ID, t.Peer, ErrIDTaken)
		case !errors.Is(err, ErrNotFound):
			return err
		}
		return s.putSealed(tx, transferKey(t.ID), t)
	})
	return isNew, err
}

// SaveRatchetWithIncomingControl writes new ratchet state and a control
// message about a transfer of the same peer, and lets f change that
// transfer, in one transaction. A repeated message stores only the state;
// a transfer that is not the peer's, or is gone, is left alone (t is
// nil). f returning false leaves the transfer as it was.
func (s Transfers) SaveRatchetWithIncomingControl(r Ratchet, m *Message, id e2e.MessageID, f func(*Transfer) bool) (isNew bool, t *Transfer, err error) {
	err = s.update(func(tx *bolt.Tx) error {
		if err := s.Ratchets().putRatchet(tx, r); err != nil {
			return err
		}
		var rec Received
		if err := s.addIncoming(tx, m, time.Now(), &rec); err != nil || !rec.New {
			return err
		}
		isNew = true
		var cur Transfer
		switch err := s.getSealed(tx, transferKey(id), &cur); {
		case errors.Is(err, ErrNotFound):
			return nil
		case err != nil:
			return err
		}
		if cur.Peer != m.Peer || !f(&cur) {
			return nil
		}
		t = &cur
		return s.putSealed(tx, transferKey(id), cur)
	})
	return isNew, t, err
}
