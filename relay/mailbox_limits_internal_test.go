// Unit tests of the mailbox's quotas and limits: items and bytes per
// recipient, the per-sender share, rate limits, the number of mailboxes
// and of prekeys, and the limiters forgetting idle peers.

package relay

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/mailbox"
)

// A full mailbox (by count or by bytes) refuses with CodeQuotaFull; an
// envelope over the limit with CodeTooLarge; an ack makes room again.
func TestMailboxQuota(t *testing.T) {
	clock := &mbClock{t: time.Now()}
	m := mbOpen(t, filepath.Join(t.TempDir(), "mailbox.db"), MailboxLimits{MaxItems: 3, MaxBytes: 2000, DepositRate: 1000}, clock)
	defer m.close()
	alice, bob := mbNewPeer(t), mbNewPeer(t)
	if _, e := mbPublish(t, m, bob.id, bob.publish(t)); e != nil {
		t.Fatal(e)
	}
	var ids []uint64
	for i := 0; i < 3; i++ {
		id, e := mbDeposit(t, m, alice.id, bob.id, mbEnvelope(400))
		if e != nil {
			t.Fatalf("deposit %d: %v", i, e)
		}
		ids = append(ids, id)
	}
	_, e := mbDeposit(t, m, alice.id, bob.id, mbEnvelope(10))
	mbWantCode(t, "a fourth item", e, mailbox.CodeQuotaFull)
	mbAck(t, m, bob.id, ids[0])
	_, e = mbDeposit(t, m, alice.id, bob.id, mbEnvelope(1201)) // 800 + 1201 > 2000
	mbWantCode(t, "over the byte quota", e, mailbox.CodeQuotaFull)
	if _, e := mbDeposit(t, m, alice.id, bob.id, mbEnvelope(1200)); e != nil {
		t.Fatalf("exactly at the byte quota: %v", e)
	}
	if items, size, stored := mbUsage(m, bob.id); items != 3 || size != 2000 || stored != 3 {
		t.Fatalf("usage %d items, %d bytes, %d stored", items, size, stored)
	}
	_, e = mbDeposit(t, m, alice.id, bob.id, mbEnvelope(mailbox.MaxEnvelope+1))
	mbWantCode(t, "an envelope over the size limit", e, mailbox.CodeTooLarge)
}

// One sender cannot fill someone's mailbox: past its share it is refused
// while others still get in, and an ack gives the share back.
func TestMailboxPerSenderShare(t *testing.T) {
	clock := &mbClock{t: time.Now()}
	m := mbOpen(t, filepath.Join(t.TempDir(), "mailbox.db"), MailboxLimits{MaxItems: 10, MaxPerPeer: 2, DepositRate: 1000}, clock)
	defer m.close()
	alice, bob, carol := mbNewPeer(t), mbNewPeer(t), mbNewPeer(t)
	if _, e := mbPublish(t, m, bob.id, bob.publish(t)); e != nil {
		t.Fatal(e)
	}
	var first uint64
	for i := 0; i < 2; i++ {
		id, e := mbDeposit(t, m, alice.id, bob.id, mbEnvelope(100))
		if e != nil {
			t.Fatalf("deposit %d: %v", i, e)
		}
		if i == 0 {
			first = id
		}
	}
	_, e := mbDeposit(t, m, alice.id, bob.id, mbEnvelope(100))
	mbWantCode(t, "a third item from one sender", e, mailbox.CodeQuotaFull)
	if e != nil && !strings.Contains(e.Message, "already have 2") {
		t.Errorf("message %q does not tell the sender it is its own share", e.Message)
	}
	if _, e := mbDeposit(t, m, carol.id, bob.id, mbEnvelope(100)); e != nil {
		t.Fatalf("another sender refused: %v", e)
	}
	mbAck(t, m, bob.id, first)
	if _, e := mbDeposit(t, m, alice.id, bob.id, mbEnvelope(100)); e != nil {
		t.Fatalf("after an ack the sender's share is back: %v", e)
	}
}

// Deposits and bundle fetches are rate-limited per requester, and the
// answer says when to retry (never "0 s": the wait is rounded up).
func TestMailboxRateLimits(t *testing.T) {
	clock := &mbClock{t: time.Now()}
	m := mbOpen(t, filepath.Join(t.TempDir(), "mailbox.db"), MailboxLimits{}, clock)
	defer m.close()
	alice, bob, carol := mbNewPeer(t), mbNewPeer(t), mbNewPeer(t)
	if _, e := mbPublish(t, m, bob.id, bob.publish(t)); e != nil {
		t.Fatal(e)
	}
	burst := int(10*DefaultMailboxLimits.DepositRate) + 1
	for i := 0; i < burst; i++ {
		if _, e := mbDeposit(t, m, alice.id, bob.id, mbEnvelope(100)); e != nil {
			t.Fatalf("deposit %d of the burst: %v", i, e)
		}
	}
	_, e := mbDeposit(t, m, alice.id, bob.id, mbEnvelope(100))
	mbWantCode(t, "a deposit beyond the burst", e, mailbox.CodeRateLimited)
	if e.RetryAfter < time.Second {
		t.Fatalf("retry after %v: a client would retry at once", e.RetryAfter)
	}
	if !errors.Is(e, mailbox.ErrRateLimited) {
		t.Fatal("errors.Is does not match ErrRateLimited")
	}
	if _, e := mbDeposit(t, m, carol.id, bob.id, mbEnvelope(100)); e != nil {
		t.Fatalf("carol is limited by alice's deposits: %v", e)
	}
	clock.add(time.Second)
	if _, e := mbDeposit(t, m, alice.id, bob.id, mbEnvelope(100)); e != nil {
		t.Fatalf("a second later: %v", e)
	}

	req := mailbox.FetchBundle{Peer: bob.id}.Marshal()
	for i := 0; i < 10; i++ {
		if _, _, e := mbCall(t, m, alice.id, mailbox.TypeFetchBundle, req); e != nil {
			t.Fatalf("bundle %d: %v", i, e)
		}
	}
	_, _, e = mbCall(t, m, alice.id, mailbox.TypeFetchBundle, req)
	mbWantCode(t, "an eleventh bundle", e, mailbox.CodeRateLimited)
	if e.RetryAfter < 4*time.Second || e.RetryAfter > 6*time.Second {
		t.Fatalf("bundle retry after %v, want about 5 s (0.2/s)", e.RetryAfter)
	}
}

// Registrations are bounded: publishing is rate-limited per peer, and a
// relay holds at most MaxMailbox mailboxes (re-publishing one it holds is
// always allowed). Peer IDs are free to make, so both are needed.
func TestMailboxRegistrationLimits(t *testing.T) {
	clock := &mbClock{t: time.Now()}
	m := mbOpen(t, filepath.Join(t.TempDir(), "mailbox.db"), MailboxLimits{MaxMailbox: 2, PublishRate: 0.1}, clock)
	defer m.close()
	a, b, c := mbNewPeer(t), mbNewPeer(t), mbNewPeer(t)
	for _, p := range []mbPeer{a, b} {
		if _, e := mbPublish(t, m, p.id, p.publish(t)); e != nil {
			t.Fatal(e)
		}
	}
	_, e := mbPublish(t, m, c.id, c.publish(t))
	mbWantCode(t, "a third mailbox", e, mailbox.CodeQuotaFull)
	if _, e := mbPublish(t, m, a.id, mailbox.Publish{Bundle: a.publish(t).Bundle}); e != nil {
		t.Fatalf("re-publishing a held mailbox: %v", e)
	}
	// a has published twice; the burst is 5.
	for i := 0; i < 3; i++ {
		if _, e := mbPublish(t, m, a.id, mailbox.Publish{Bundle: a.publish(t).Bundle}); e != nil {
			t.Fatalf("publish %d: %v", i, e)
		}
	}
	_, e = mbPublish(t, m, a.id, mailbox.Publish{Bundle: a.publish(t).Bundle})
	mbWantCode(t, "a sixth publish at once", e, mailbox.CodeRateLimited)
}

// At most MaxPrekeys one-time prekeys of a kind are kept, the newest.
func TestMailboxPrekeyCap(t *testing.T) {
	clock := &mbClock{t: time.Now()}
	m := mbOpen(t, filepath.Join(t.TempDir(), "mailbox.db"), MailboxLimits{MaxPrekeys: 3}, clock)
	defer m.close()
	bob := mbNewPeer(t) // 4 one-time prekeys of each kind
	ok, e := mbPublish(t, m, bob.id, bob.publish(t))
	if e != nil || ok.PrekeysEC != 3 || ok.PrekeysKEM != 3 {
		t.Fatalf("publish of 4 + 4 with a cap of 3: %+v %v", ok, e)
	}
}

// Idle per-peer limiters are forgotten once there are many.
func TestLimitersForgetIdlePeers(t *testing.T) {
	l := newLimiters(1, 1)
	t0 := time.Now()
	for i := 0; i <= 10000; i++ {
		l.allow(fmt.Sprint(i), t0)
	}
	l.allow("late", t0.Add(2*time.Hour))
	if n := len(l.m); n != 1 {
		t.Fatalf("%d limiters kept after two idle hours, want 1", n)
	}
}
