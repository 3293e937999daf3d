package node

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e/ratchet"
	"github.com/certchat/certchat/mailbox"
	"github.com/libp2p/go-libp2p/core/peer"
)

// When a first contact finds the signed prekey due for replacement (its
// replay record nine tenths full, or its lifetime over), the node
// publishes a new one at once, not at its next reservation: through a
// real relay, the bundle it hands out changes right after the first
// contact. (The record filling is tested in e2e/ratchet; here the
// lifetime, on the ratchet's clock alone, makes it due.)
func TestFirstContactRotatesDuePrekey(t *testing.T) {
	_, relayID, nodes := offRelayed(t, "bob", "alice")
	bob, alice := nodes[0], nodes[1]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	signedID := func() uint32 {
		t.Helper()
		raw, err := alice.mail.client().FetchBundle(ctx, relayID, bob.ID())
		for errors.Is(err, mailbox.ErrRateLimited) { // bundle fetches are limited per address
			time.Sleep(time.Second)
			raw, err = alice.mail.client().FetchBundle(ctx, relayID, bob.ID())
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := ratchet.ParseBundle(raw)
		if err != nil {
			t.Fatal(err)
		}
		return b.SignedPrekey.ID
	}
	before := signedID()

	// The signed prekey is past its lifetime, as far as bob's ratchet
	// knows; his relays' reservations keep the real clock.
	bob.rk.mu.Lock()
	bob.rk.now = func() time.Time { return time.Now().Add(ratchet.SignedPrekeyLifetime + time.Hour) }
	bob.rk.mu.Unlock()
	if !bob.rk.needsRotation() {
		t.Fatal("premise: the signed prekey is not due")
	}
	if err := alice.mail.initiate([]peer.ID{relayID}, bob.ID()); err != nil {
		t.Fatal(err)
	}
	m, env := alice.offText(bob.ID(), "a first contact")
	if _, err := alice.mail.client().Deposit(ctx, relayID, bob.ID(), env); err != nil {
		t.Fatal(err)
	}
	bob.offWait("the first contact", offIsMessage(m.ID))
	deadline := time.Now().Add(15 * time.Second)
	for signedID() == before {
		if time.Now().After(deadline) {
			t.Fatal("the relay still hands out the old signed prekey: the node did not publish a new one")
		}
		time.Sleep(time.Second)
	}
}
