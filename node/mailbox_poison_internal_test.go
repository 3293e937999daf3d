package node

import (
	"context"
	"testing"
	"time"

	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Mailbox poisoning, as the security review did it, through a real relay:
// two throwaway identities deposit envelopes that open correctly but
// reuse the ID of a message already stored from another peer. Such mail
// can never be stored; if it is never acknowledged, the relay hands it
// out first at every fetch (64 items a fetch) and a real message queued
// behind it waits for the relay's TTL. It must be dropped, and the real
// message must arrive.
func TestMailboxPoisoning(t *testing.T) {
	relayAddr, relayID, nodes := offRelayed(t, "bob", "alice")
	bob, alice := nodes[0], nodes[1]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	deposit := func(from *offNode, env []byte) {
		t.Helper()
		if _, err := from.mail.client().Deposit(ctx, relayID, bob.ID(), env); err != nil {
			t.Fatalf("%s deposits: %v", from.id.Name(), err)
		}
	}
	if err := alice.mail.initiate([]peer.ID{relayID}, bob.ID()); err != nil {
		t.Fatal(err)
	}
	first, env := alice.offText(bob.ID(), "the original")
	deposit(alice, env)
	bob.offWait("alice's first message", offIsMessage(first.ID))

	const each = 40 // two senders: more than one fetch (mailbox.MaxFetch) of poison
	for _, name := range []string{"mallory", "trudy"} {
		attacker := offNewNode(t, name, []string{relayAddr}, true)
		attacker.offRegistered()
		if err := attacker.mail.initiate([]peer.ID{relayID}, bob.ID()); err != nil {
			t.Fatal(err)
		}
		for i := range each {
			m := store.Message{ID: first.ID, Peer: bob.ID(), SentAt: time.Now(), Body: "poison", Direction: store.Outgoing}
			if err := attacker.store.Number(&m); err != nil {
				t.Fatal(err)
			}
			env, err := attacker.rk.sealText(m)
			if err != nil {
				t.Fatalf("seal %d: %v", i, err)
			}
			deposit(attacker, env)
		}
	}
	later, env := alice.offText(bob.ID(), "queued behind the poison")
	deposit(alice, env)

	bob.offWait("alice's later message", offIsMessage(later.ID))
	bob.offMailboxEmpty(relayID)
	if got, err := bob.store.Message(first.ID); err != nil || got.Body != "the original" || got.Peer != alice.ID() {
		t.Fatalf("the original after the poison: %q from %s, %v", got.Body, got.Peer, err)
	}
	if n := bob.logs.count("mail that can never be stored dropped"); n != 2*each {
		t.Fatalf("%d poison envelopes logged as dropped, want each of the %d once", n, 2*each)
	}
}
