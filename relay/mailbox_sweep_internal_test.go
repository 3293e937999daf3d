// Unit tests of the mailbox's sweepers: envelopes past the TTL and
// mailboxes left idle.

package relay

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/certchat/certchat/mailbox"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
)

// The TTL sweep deletes what is older than the TTL, and only that, and the
// usage counters follow.
func TestMailboxTTLSweep(t *testing.T) {
	clock := &mbClock{t: time.Now()}
	ttl := 14 * 24 * time.Hour
	m := mbOpen(t, filepath.Join(t.TempDir(), "mailbox.db"), MailboxLimits{TTL: ttl, DepositRate: 1000}, clock)
	defer m.close()
	alice, bob, carol := mbNewPeer(t), mbNewPeer(t), mbNewPeer(t)
	for _, p := range []mbPeer{bob, carol} {
		if _, e := mbPublish(t, m, p.id, p.publish(t)); e != nil {
			t.Fatal(e)
		}
	}
	for i := 0; i < 3; i++ {
		mbDeposit(t, m, alice.id, bob.id, mbEnvelope(300))
	}
	mbDeposit(t, m, alice.id, carol.id, mbEnvelope(200))
	clock.add(ttl / 2)
	fresh, _ := mbDeposit(t, m, alice.id, bob.id, mbEnvelope(500))

	m.sweep()
	if items, size, stored := mbUsage(m, bob.id); items != 4 || size != 1400 || stored != 4 {
		t.Fatalf("a sweep before the TTL deleted something: %d items, %d bytes, %d stored", items, size, stored)
	}
	clock.add(ttl/2 + time.Minute)
	m.sweep()
	if items, size, stored := mbUsage(m, bob.id); items != 1 || size != 500 || stored != 1 {
		t.Fatalf("after the TTL: %d items, %d bytes, %d stored; want the fresh one", items, size, stored)
	}
	if got := mbFetch(t, m, bob.id, 64); len(got.Items) != 1 || got.Items[0].ID != fresh {
		t.Fatalf("bob's mailbox after the sweep: %+v", got)
	}
	if items, size, stored := mbUsage(m, carol.id); items != 0 || size != 0 || stored != 0 {
		t.Fatalf("carol's expired item: %d items, %d bytes, %d stored", items, size, stored)
	}
	// The counters are right: the quota counts only what is left.
	m.lim.MaxItems = 2
	if _, e := mbDeposit(t, m, alice.id, bob.id, mbEnvelope(100)); e != nil {
		t.Fatalf("after the sweep the quota still counts deleted items: %v", e)
	}
}

// A mailbox its owner stops using is removed with all it holds once Idle
// passes, which frees its place under MaxMailbox; one in use stays, and
// the owner registers again when it comes back. Uses are counted from
// publish, fetch and ack, and survive a relay restart.
func TestMailboxIdleRemoval(t *testing.T) {
	clock := &mbClock{t: time.Now()}
	path := filepath.Join(t.TempDir(), "mailbox.db")
	lim := MailboxLimits{TTL: 24 * time.Hour, Idle: 10 * 24 * time.Hour, MaxMailbox: 2, DepositRate: 1000, PublishRate: 1000}
	m := mbOpen(t, path, lim, clock)
	alice, bob, carol, dave := mbNewPeer(t), mbNewPeer(t), mbNewPeer(t), mbNewPeer(t)
	for _, p := range []mbPeer{bob, carol} {
		if _, e := mbPublish(t, m, p.id, p.publish(t)); e != nil {
			t.Fatal(e)
		}
	}
	_, e := mbPublish(t, m, dave.id, dave.publish(t))
	mbWantCode(t, "a third mailbox", e, mailbox.CodeQuotaFull)
	mbDeposit(t, m, alice.id, carol.id, mbEnvelope(100))
	m.sweep()

	// Bob keeps fetching; carol never comes back. A fetch by dave, who
	// has no mailbox, records nothing.
	for days := 3; days <= 12; days += 3 {
		clock.add(3 * 24 * time.Hour)
		mbFetch(t, m, bob.id, 8)
		mbFetch(t, m, dave.id, 8)
		m.sweep()
		if days < 10 && !mbRegistered(m, carol.id) {
			t.Fatalf("carol's mailbox removed after %d days", days)
		}
		if c := m.close(); c != nil { // a restart keeps the record of uses
			t.Fatal(c)
		}
		m = mbOpen(t, path, lim, clock)
	}
	defer m.close()
	if mbRegistered(m, carol.id) || !mbRegistered(m, bob.id) || mbRegistered(m, dave.id) {
		t.Fatalf("after 12 days: carol %v, bob %v, dave %v; want only bob",
			mbRegistered(m, carol.id), mbRegistered(m, bob.id), mbRegistered(m, dave.id))
	}
	m.db.View(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bktOTEC, bktOTKEM, bktMail} {
			if tx.Bucket(b).Bucket([]byte(carol.id)) != nil {
				t.Errorf("%s of carol left behind", b)
			}
		}
		for _, b := range [][]byte{bktUsage, bktSeen} {
			if tx.Bucket(b).Get([]byte(carol.id)) != nil {
				t.Errorf("%s of carol left behind", b)
			}
		}
		if tx.Bucket(bktSeen).Get([]byte(dave.id)) != nil {
			t.Error("a fetch without a mailbox was recorded")
		}
		if n := countKeys(tx.Bucket(bktPairs)); n != 0 {
			t.Errorf("%d sender counts left", n)
		}
		return nil
	})
	if _, e := mbPublish(t, m, dave.id, dave.publish(t)); e != nil {
		t.Fatalf("carol's place is free again, yet: %v", e)
	}
	if _, e := mbPublish(t, m, carol.id, carol.publish(t)); e == nil {
		t.Fatal("carol registered over the limit")
	}
}

func mbRegistered(m *mailboxServer, p peer.ID) bool {
	var ok bool
	m.db.View(func(tx *bolt.Tx) error {
		ok = tx.Bucket(bktBundles).Get([]byte(p)) != nil
		return nil
	})
	return ok
}
