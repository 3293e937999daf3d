package node

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
	"github.com/certchat/certchat/transfer"
)

// mailUnfinished resumes leaving a small file's chunks only for an offer
// that went to a relay (still queued, or delivered since: its receipt
// may come before start looks), of a transfer that is not over, not
// fetched from live and whose chunks were not all left.
func TestMailUnfinished(t *testing.T) {
	key := make([]byte, 32)
	rand.Read(key)
	st, err := store.Open(filepath.Join(t.TempDir(), store.FileName), key)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	dir := t.TempDir()
	file := func(name string, size int) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, make([]byte, size), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	small, big := file("small", 300<<10), file("big", MailboxFileMax+1)
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := identity.PeerIDFromKey(priv.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		path   string
		status []store.Status // in turn, from sending
		change func(*store.Transfer)
		want   bool
	}{
		{name: "queued, not all left", path: small, status: []store.Status{store.StatusQueued}, want: true},
		{name: "all left", path: small, status: []store.Status{store.StatusQueued}, change: func(t *store.Transfer) { t.Mailed = true }},
		{name: "cancelled", path: small, status: []store.Status{store.StatusQueued}, change: func(t *store.Transfer) { t.State = store.TransferCancelled }},
		{name: "done", path: small, status: []store.Status{store.StatusQueued}, change: func(t *store.Transfer) { t.State = store.TransferDone }},
		{name: "fetched from live", path: small, status: []store.Status{store.StatusQueued}, change: func(t *store.Transfer) { t.State = store.TransferActive }},
		{name: "bytes acknowledged", path: small, status: []store.Status{store.StatusQueued}, change: func(t *store.Transfer) { t.Bytes = 1 }},
		{name: "queued, then delivered", path: small, status: []store.Status{store.StatusQueued, store.StatusDelivered}, want: true},
		{name: "queued, then delivered, all left", path: small, status: []store.Status{store.StatusQueued, store.StatusDelivered}, change: func(t *store.Transfer) { t.Mailed = true }},
		{name: "queued, then given up", path: small, status: []store.Status{store.StatusQueued, store.StatusFailed}},
		{name: "delivered live", path: small, status: []store.Status{store.StatusSent, store.StatusDelivered}},
		{name: "delivered", path: small, status: []store.Status{store.StatusDelivered}},
		{name: "sent live", path: small, status: []store.Status{store.StatusSent}},
		{name: "not sent yet", path: small},
		{name: "too large for a relay", path: big, status: []store.Status{store.StatusQueued}},
	}
	now := time.Now()
	for _, c := range cases {
		o, err := transfer.NewOffer(c.path)
		if err != nil {
			t.Fatal(err)
		}
		m := store.Message{ID: e2e.MessageID(o.ID), Peer: p, SentAt: now, StoredAt: now, Body: offerBody(o)}
		tr := store.Transfer{ID: m.ID, Peer: p, Offer: o.Marshal(), Path: c.path, State: store.TransferWaiting, Created: now, Updated: now}
		if err := st.Transfers().AddOutgoingFile(&m, tr); err != nil {
			t.Fatal(err)
		}
		for _, status := range c.status {
			if _, _, err := st.SetStatus(m.ID, p, status, "", now); err != nil {
				t.Fatal(err)
			}
		}
		tr, err = st.Transfers().UpdateTransfer(m.ID, func(t *store.Transfer) error {
			if c.change != nil {
				c.change(t)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := mailUnfinished(st, tr); err != nil || got != c.want {
			t.Errorf("%s: %v, %v; want %v", c.name, got, err, c.want)
		}
	}
	// An offer whose message is gone is an error, not a silent no.
	o, err := transfer.NewOffer(small)
	if err != nil {
		t.Fatal(err)
	}
	tr := store.Transfer{ID: e2e.MessageID(o.ID), Peer: p, Direction: store.Outgoing, Offer: o.Marshal(), State: store.TransferWaiting}
	if _, err := mailUnfinished(st, tr); err == nil {
		t.Error("an offer without its message: no error")
	}
}
