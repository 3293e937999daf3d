// Unit tests of the mailbox's bundles: one-time prekeys handed out once,
// and publishes verified before anything is stored.

package relay

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e/ratchet"
	"github.com/certchat/certchat/mailbox"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
)

// Bundles: the relay hands out each one-time prekey once, then bundles
// without them; a bundle for a peer without a mailbox is CodeNoBundle.
// (Each requester is another peer: one peer gets one of bob's one-time
// prekeys a day, TestMailboxSybilsCannotDrainPrekeys.)
func TestMailboxBundlesOnce(t *testing.T) {
	clock := &mbClock{t: time.Now()}
	m := mbOpen(t, filepath.Join(t.TempDir(), "mailbox.db"), MailboxLimits{BundleRate: 1000}, clock)
	defer m.close()
	alice, bob := mbNewPeer(t), mbNewPeer(t)
	_, _, e := mbCall(t, m, alice.id, mailbox.TypeFetchBundle, mailbox.FetchBundle{Peer: bob.id}.Marshal())
	mbWantCode(t, "bundle of an unregistered peer", e, mailbox.CodeNoBundle)
	ok, e := mbPublish(t, m, bob.id, bob.publish(t))
	if e != nil || ok.PrekeysEC != 4 || ok.PrekeysKEM != 4 {
		t.Fatalf("publish: %+v %v", ok, e)
	}
	seen := map[uint32]bool{}
	for i := 0; i < 5; i++ {
		_, out, e := mbCall(t, m, mbNewPeer(t).id, mailbox.TypeFetchBundle, mailbox.FetchBundle{Peer: bob.id}.Marshal())
		if e != nil {
			t.Fatal(e)
		}
		a, err := mailbox.ParseBundleAnswer(out)
		if err != nil {
			t.Fatal(err)
		}
		b, err := ratchet.ParseBundle(a.Bundle)
		if err != nil {
			t.Fatal(err)
		}
		if err := ratchet.VerifyBundle(b, bob.keys.Identity(), []byte(bob.id)); err != nil {
			t.Fatalf("bundle %d does not verify: %v", i, err)
		}
		if i == 4 {
			if b.OneTimePrekey != nil || b.OneTimeKEM != nil {
				t.Fatal("a fifth bundle still carries one-time prekeys: one was handed out twice")
			}
			continue
		}
		if b.OneTimePrekey == nil || b.OneTimeKEM == nil {
			t.Fatalf("bundle %d lacks a one-time prekey", i)
		}
		if seen[b.OneTimePrekey.ID] {
			t.Fatalf("one-time prekey %d handed out twice", b.OneTimePrekey.ID)
		}
		seen[b.OneTimePrekey.ID] = true
	}
	// A new publish with the same base adds no prekeys and keeps the box.
	if ok, e := mbPublish(t, m, bob.id, mailbox.Publish{Bundle: bob.publish(t).Bundle}); e != nil || ok.PrekeysEC != 0 {
		t.Fatalf("republish: %+v %v", ok, e)
	}
}

// Publish verifies every bundle against the requester's key: someone
// else's bundle, a base bundle carrying a one-time prekey, a one-time
// entry of the wrong kind or a tampered one are CodeBadBundle, and nothing
// of the request is stored.
func TestMailboxPublishVerifies(t *testing.T) {
	clock := &mbClock{t: time.Now()}
	m := mbOpen(t, filepath.Join(t.TempDir(), "mailbox.db"), MailboxLimits{}, clock)
	defer m.close()
	alice, bob := mbNewPeer(t), mbNewPeer(t)
	good := bob.publish(t)

	_, e := mbPublish(t, m, alice.id, good)
	mbWantCode(t, "alice publishing bob's bundle", e, mailbox.CodeBadBundle)

	withOT := mailbox.Publish{Bundle: good.OneTimeEC[0]}
	_, e = mbPublish(t, m, bob.id, withOT)
	mbWantCode(t, "a base bundle with a one-time prekey", e, mailbox.CodeBadBundle)

	wrongKind := mailbox.Publish{Bundle: good.Bundle, OneTimeEC: [][]byte{good.OneTimeKEM[0]}}
	_, e = mbPublish(t, m, bob.id, wrongKind)
	mbWantCode(t, "an ML-KEM entry among the X25519 ones", e, mailbox.CodeBadBundle)

	tampered := bytes.Clone(good.OneTimeEC[1])
	tampered[len(tampered)-1] ^= 1 // the one-time prekey's signature
	_, e = mbPublish(t, m, bob.id, mailbox.Publish{Bundle: good.Bundle, OneTimeEC: [][]byte{good.OneTimeEC[0], tampered}})
	mbWantCode(t, "a tampered one-time prekey", e, mailbox.CodeBadBundle)

	_, e = mbPublish(t, m, bob.id, mailbox.Publish{Bundle: []byte{1, 2, 3}})
	mbWantCode(t, "a bundle that does not parse", e, mailbox.CodeBadBundle)

	_, _, e = mbCall(t, m, bob.id, mailbox.TypePublish, []byte{0, 0})
	mbWantCode(t, "a publish that does not parse", e, mailbox.CodeMalformed)
	_, _, e = mbCall(t, m, bob.id, 0x2f, nil)
	mbWantCode(t, "an unknown request", e, mailbox.CodeMalformed)

	m.db.View(func(tx *bolt.Tx) error {
		for _, p := range []peer.ID{alice.id, bob.id} {
			if tx.Bucket(bktBundles).Get([]byte(p)) != nil {
				t.Errorf("a refused publish registered %s", p)
			}
			if b := tx.Bucket(bktOTEC).Bucket([]byte(p)); b != nil && countKeys(b) > 0 {
				t.Errorf("a refused publish stored one-time prekeys of %s", p)
			}
		}
		return nil
	})
	_, e = mbDeposit(t, m, alice.id, bob.id, mbEnvelope(100))
	mbWantCode(t, "a deposit for bob after refused publishes", e, mailbox.CodeNotRegistered)
}
