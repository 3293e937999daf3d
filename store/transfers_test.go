package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
)

// File transfers: their own bucket, sealed at rest, no schema change.

func TestStoreTransfers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chat.db")
	key := storeKey(t)
	s, err := store.Open(path, key)
	if err != nil {
		t.Fatal(err)
	}
	p, q := randomPeer(t), randomPeer(t)
	// A database without the bucket reads as having no transfers.
	if ts, err := s.Transfers().List(); err != nil || len(ts) != 0 {
		t.Fatalf("transfers of a new database: %v, %v", ts, err)
	}
	if _, err := s.Transfers().Transfer(e2e.NewMessageID()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a missing transfer: %v", err)
	}
	offer := []byte("OFFER-with-KEY-0123456789abcdef")
	out := store.Message{ID: e2e.NewMessageID(), Peer: p, SentAt: base, StoredAt: base, Body: "[file] x"}
	tr := store.Transfer{ID: out.ID, Peer: p, Offer: offer, Path: "/home/me/SECRET-PATH.bin", State: store.TransferWaiting, Created: base, Updated: base}
	if err := s.Transfers().AddOutgoingFile(&out, tr); err != nil {
		t.Fatal(err)
	}
	if err := s.Transfers().AddOutgoingFile(&store.Message{ID: e2e.NewMessageID(), Peer: p}, tr); err == nil {
		t.Fatal("an offer whose message ID is not the transfer's was stored")
	}
	if pending, err := s.Outbox(p); err != nil || len(pending) != 1 || pending[0].ID != out.ID {
		t.Fatalf("the offer is not in the outbox: %v, %v", pending, err)
	}
	got, err := s.Transfers().Transfer(out.ID)
	if err != nil || got.Direction != store.Outgoing || !bytes.Equal(got.Offer, offer) || got.Path != tr.Path {
		t.Fatalf("read back %+v, %v", got, err)
	}
	// A control message: its control is found by its message ID, and the
	// transfer changes in the same transaction.
	var ctl store.Message
	if _, ctl, err = s.Transfers().EndTransfer(out.ID, func(t *store.Transfer) (store.Message, uint8) {
		t.State = store.TransferCancelled
		return store.Message{ID: e2e.NewMessageID(), Peer: p, SentAt: base, StoredAt: base, Body: "[file] x: cancelled"}, 2
	}); err != nil {
		t.Fatal(err)
	}
	if c, err := s.Transfers().FileControlOf(ctl.ID); err != nil || c.Transfer != out.ID || c.Action != 2 {
		t.Fatalf("control %+v, %v", c, err)
	}
	if _, err := s.Transfers().FileControlOf(out.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the offer has a control: %v", err)
	}
	if got, _ := s.Transfers().Transfer(out.ID); got.State != store.TransferCancelled {
		t.Fatalf("state %s", got.State)
	}
	// An incoming offer: stored once; an offer reusing another's ID is refused.
	in := store.Message{ID: e2e.NewMessageID(), Peer: q, SentAt: base, StoredAt: base.Add(time.Second), Body: "[file] y"}
	itr := store.Transfer{ID: in.ID, Peer: q, Offer: offer, State: store.TransferOffered, Created: base.Add(time.Second)}
	if isNew, err := s.Transfers().SaveRatchetWithIncomingFile(store.Ratchet{Peer: q}, &in, itr); err != nil || !isNew {
		t.Fatalf("incoming offer: %v, %v", isNew, err)
	}
	again := in
	if isNew, err := s.Transfers().SaveRatchetWithIncomingFile(store.Ratchet{Peer: q}, &again, itr); err != nil || isNew {
		t.Fatalf("a repeated offer: %v, %v", isNew, err)
	}
	// A control from another peer than the transfer's changes nothing.
	fromP := store.Message{ID: e2e.NewMessageID(), Peer: p, SentAt: base, StoredAt: base, Body: "[file] y: cancelled"}
	if _, tt, err := s.Transfers().SaveRatchetWithIncomingControl(store.Ratchet{Peer: p}, &fromP, in.ID, func(*store.Transfer) bool { return true }); err != nil || tt != nil {
		t.Fatalf("another peer's control: %v, %v", tt, err)
	}
	fromQ := store.Message{ID: e2e.NewMessageID(), Peer: q, SentAt: base, StoredAt: base, Body: "[file] y: cancelled"}
	_, tt, err := s.Transfers().SaveRatchetWithIncomingControl(store.Ratchet{Peer: q}, &fromQ, in.ID, func(t *store.Transfer) bool {
		t.State = store.TransferCancelled
		return true
	})
	if err != nil || tt == nil || tt.State != store.TransferCancelled {
		t.Fatalf("the peer's control: %+v, %v", tt, err)
	}
	ts, err := s.Transfers().List()
	if err != nil || len(ts) != 2 || ts[0].ID != out.ID || ts[1].ID != in.ID {
		t.Fatalf("transfers: %+v, %v", ts, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Sealed at rest: neither the key-bearing offer nor the path shows.
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"OFFER-with-KEY", "SECRET-PATH", `"Offer"`, `"State"`} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("chat.db contains %q", secret)
		}
	}
	// Bound to its place: a record moved to another transfer's key does
	// not open.
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("transfers"))
		v := bytes.Clone(b.Get(append([]byte("t/"), out.ID[:]...)))
		return b.Put(append([]byte("t/"), in.ID[:]...), v)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	s = openStore(t, path, key)
	var bad *store.CorruptError
	if _, err := s.Transfers().Transfer(in.ID); !errors.As(err, &bad) {
		t.Fatalf("a moved record: %v", err)
	}
	if ts, err := s.Transfers().List(); len(ts) != 1 || !errors.As(err, &bad) {
		t.Fatalf("transfers with a moved record: %d, %v", len(ts), err)
	}
}

// An outgoing file offer left at a relay's mailbox keeps that it was
// (OfferQueued) in the same transaction as its queued status, and past
// its receipt; another message queued, or an offer written live and
// acknowledged, changes no transfer.
func TestStoreOfferQueued(t *testing.T) {
	s, err := store.Open(filepath.Join(t.TempDir(), "chat.db"), storeKey(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p := randomPeer(t)
	offer := func(body string) store.Message {
		m := store.Message{ID: e2e.NewMessageID(), Peer: p, SentAt: base, StoredAt: base, Body: body}
		tr := store.Transfer{ID: m.ID, Peer: p, Offer: []byte("OFFER"), State: store.TransferWaiting, Created: base, Updated: base}
		if err := s.Transfers().AddOutgoingFile(&m, tr); err != nil {
			t.Fatal(err)
		}
		return m
	}
	set := func(m store.Message, st store.Status) {
		t.Helper()
		if _, changed, err := s.SetStatus(m.ID, p, st, "", base); err != nil || !changed {
			t.Fatalf("set %s: %v, %v", st, changed, err)
		}
	}
	queued := func(m store.Message) bool {
		t.Helper()
		tr, err := s.Transfers().Transfer(m.ID)
		if err != nil {
			t.Fatal(err)
		}
		return tr.OfferQueued
	}
	mailed, live := offer("[file] mailed"), offer("[file] live")
	if queued(mailed) {
		t.Fatal("a new offer is queued")
	}
	set(mailed, store.StatusQueued)
	if !queued(mailed) {
		t.Fatal("an offer left at a relay is not recorded as queued")
	}
	set(mailed, store.StatusDelivered)
	if !queued(mailed) {
		t.Fatal("the receipt of an offer left at a relay forgets it was queued")
	}
	set(live, store.StatusSent)
	set(live, store.StatusDelivered)
	if queued(live) {
		t.Fatal("an offer written live is recorded as queued")
	}
	text := store.Message{ID: e2e.NewMessageID(), Peer: p, SentAt: base, StoredAt: base, Body: "hi"}
	if err := s.AddOutgoing(&text); err != nil {
		t.Fatal(err)
	}
	set(text, store.StatusQueued)
	if _, err := s.Transfers().Transfer(text.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a text queued has a transfer: %v", err)
	}
}

// TestStoreEndTransfer: a transfer is ended (its control message queued
// with it) only if it is not over already, checked in the transaction
// that writes the end; one over is left as it is, nothing queued. An end
// that is no end, or tells another peer, is refused too.
func TestStoreEndTransfer(t *testing.T) {
	p, q := randomPeer(t), randomPeer(t)
	open := func(t *testing.T) *store.Store {
		s, err := store.Open(filepath.Join(t.TempDir(), "chat.db"), storeKey(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	endAs := func(st store.TransferState, to peer.ID) func(*store.Transfer) (store.Message, uint8) {
		return func(t *store.Transfer) (store.Message, uint8) {
			t.State, t.Error = st, "stopped"
			return store.Message{ID: e2e.NewMessageID(), Peer: to, SentAt: base, StoredAt: base, Body: "[file] x: cancelled"}, 2
		}
	}
	for _, c := range []struct {
		from, to store.TransferState
		peer     peer.ID
		ok       bool
		over     bool
	}{
		{store.TransferOffered, store.TransferDeclined, p, true, false},
		{store.TransferWaiting, store.TransferCancelled, p, true, false},
		{store.TransferActive, store.TransferFailed, p, true, false},
		{store.TransferDone, store.TransferCancelled, p, false, true},
		{store.TransferDeclined, store.TransferCancelled, p, false, true},
		{store.TransferCancelled, store.TransferFailed, p, false, true},
		{store.TransferFailed, store.TransferCancelled, p, false, true},
		{store.TransferActive, store.TransferActive, p, false, false},
		{store.TransferActive, store.TransferCancelled, q, false, false},
	} {
		name := fmt.Sprintf("%s to %s", c.from, c.to)
		t.Run(name, func(t *testing.T) {
			s := open(t)
			m := store.Message{ID: e2e.NewMessageID(), Peer: p, SentAt: base, StoredAt: base, Body: "[file] x"}
			tr := store.Transfer{ID: m.ID, Peer: p, Offer: []byte("offer"), State: c.from, Created: base, Updated: base}
			if err := s.Transfers().AddOutgoingFile(&m, tr); err != nil {
				t.Fatal(err)
			}
			got, ctl, err := s.Transfers().EndTransfer(m.ID, endAs(c.to, c.peer))
			if c.over != errors.Is(err, store.ErrTransferOver) || c.ok != (err == nil) {
				t.Fatalf("ending a transfer %s as %s (to %s): %v", c.from, c.to, c.peer, err)
			}
			stored, rerr := s.Transfers().Transfer(m.ID)
			if rerr != nil {
				t.Fatal(rerr)
			}
			outbox, oerr := s.Outbox(p)
			if oerr != nil {
				t.Fatal(oerr)
			}
			if !c.ok {
				if stored.State != c.from || stored.Error != "" || (c.over && got.State != c.from) {
					t.Errorf("refused, yet the transfer is %s %q (returned %s)", stored.State, stored.Error, got.State)
				}
				if len(outbox) != 1 || outbox[0].ID != m.ID {
					t.Errorf("refused, yet the outbox holds %d messages", len(outbox))
				}
				if qb, _ := s.Outbox(q); len(qb) != 0 {
					t.Errorf("refused, yet the other peer's outbox holds %d messages", len(qb))
				}
				return
			}
			if stored.State != c.to || got.State != c.to || stored.Error != "stopped" {
				t.Errorf("ended as %s, stored %s, want %s", got.State, stored.State, c.to)
			}
			if len(outbox) != 2 || outbox[1].ID != ctl.ID || outbox[1].Status != store.StatusSending {
				t.Fatalf("the control is not queued: %+v", outbox)
			}
			if fc, err := s.Transfers().FileControlOf(ctl.ID); err != nil || fc.Transfer != m.ID || fc.Action != 2 {
				t.Errorf("control %+v, %v", fc, err)
			}
		})
	}
	s := open(t)
	if _, _, err := s.Transfers().EndTransfer(e2e.NewMessageID(), endAs(store.TransferCancelled, p)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ending a missing transfer: %v", err)
	}
}
