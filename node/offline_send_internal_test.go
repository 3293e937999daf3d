package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/store"
)

// Offline delivery, the sending node (helpers in offline_internal_test.go):
// a deposit retried while the relay is away, a seed whose confirmation is
// lost.

// offUnreachableRelay is the address of a relay that is not there.
func offUnreachableRelay(t testing.TB) string {
	t.Helper()
	return "/ip4/127.0.0.1/tcp/9/p2p/" + noticePeerID(t).String()
}

// A deposit that fails (relay away, mailbox full, rate limit) must not
// cost a message number per retry: the outbox retries every RetryMax for
// as long as the peer is away, and each new seal widened the gap the
// receiver must skip, until it passed MAX_SKIP and the session died
// (TestOfflineTooManySkipped). The envelope sealed for the first attempt
// is deposited on every retry.
func TestOfflineDepositRetryKeepsEnvelope(t *testing.T) {
	alice := offNewNode(t, "alice", []string{offUnreachableRelay(t)}, false)
	bob := offNewNode(t, "bob", nil, false)
	offMeet(t, alice, bob)
	// (alice's receipt for bob's reply could not be deposited either: one
	// lost number; a message that arrives lets bob catch up.)
	_, sync := alice.offText(bob.ID(), "in sync")
	if !bob.offMail(alice.ID(), sync) {
		t.Fatal("not acknowledged")
	}
	m := store.Message{ID: e2e.NewMessageID(), Peer: bob.ID(), SentAt: time.Now(), Body: "while the relay is away"}
	if err := alice.store.AddOutgoing(&m); err != nil {
		t.Fatal(err)
	}
	if err := alice.mail.queue(bob.ID(), []store.Message{m}); err == nil {
		t.Fatal("a deposit at an unreachable relay succeeded")
	}
	after1 := alice.offRatchetRaw()
	for i := 0; i < 5; i++ {
		err := alice.mail.queue(bob.ID(), []store.Message{m})
		if err == nil {
			t.Fatal("a deposit at an unreachable relay succeeded")
		}
		if i == 0 {
			t.Logf("the deposit fails with: %v", err)
		}
	}
	alice.offSameState("five more failed deposits", after1, nil)
	if got, _ := alice.store.Message(m.ID); got.Status != store.StatusSending {
		t.Fatalf("status %s after failed deposits, want sending", got.Status)
	}
	// The peer sees one lost envelope (the one never deposited), not six.
	next, env := alice.offText(bob.ID(), "the next message")
	res, err := bob.rk.open(alice.ID(), env)
	if err != nil || res.text.ID != next.ID {
		t.Fatal(err)
	}
	if res.info.Skipped != 1 {
		t.Fatalf("the receiver skipped %d envelopes, want 1", res.info.Skipped)
	}
}

// offLink connects a to b live and waits until both ratchet ends can send.
func offLink(t testing.TB, a, b *offNode) {
	t.Helper()
	a.host.Peerstore().AddAddrs(b.ID(), b.host.Addrs(), time.Hour)
	b.host.Peerstore().AddAddrs(a.ID(), a.host.Addrs(), time.Hour)
	for _, x := range [][2]*offNode{{a, b}, {b, a}} {
		if err := x[0].Contacts().Trust(x[1].ID(), false); err != nil {
			t.Fatal(err)
		}
	}
	defer offSettled(t, a, b)
	for _, x := range [][2]*offNode{{a, b}, {b, a}} {
		m, err := x[0].Send(x[1].ID(), "live from "+x[0].id.Name())
		if err != nil {
			t.Fatal(err)
		}
		x[1].offWait("a live message", offIsMessage(m.ID))
		x[0].offWait("its receipt", func(e Event) bool {
			return e.Kind == EventStatus && e.Message.ID == m.ID && e.Message.Status == store.StatusDelivered
		})
	}
}

// offOneSession leaves one live session between a and b, and returns its
// two ends. offLink may leave two: both ends may open a session at once
// (one sends, the other was told of a new contact), each a stream on the
// one connection; the extra ones are closed.
func offOneSession(t testing.TB, a, b *offNode) (acs, bcs *chatSession) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		as, bs := a.sessions.ofPeer(b.ID()), b.sessions.ofPeer(a.ID())
		if len(as) == 1 && len(bs) == 1 && as[0].outgoing != bs[0].outgoing {
			return as[0], bs[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d and %d live sessions, not one", len(as), len(bs))
		}
		for _, cs := range as[:max(len(as)-1, 0)] {
			cs.s.CloseWith(e2e.CloseGoingAway, "test: one session")
		}
	}
}

// offSettled waits until every live session between a and b runs on a
// direct connection: a chat first reached through the relay moves to a
// direct connection and closes the relayed session, and a frame written
// on a session being closed may be lost. (Both ends may upgrade at once,
// each more than once: several direct sessions can remain.)
func offSettled(t testing.TB, a, b *offNode) {
	t.Helper()
	count := func(x, y *offNode) int {
		live := x.sessions.ofPeer(y.ID())
		for _, cs := range live {
			if cs.conn.Stat().Limited {
				return -1
			}
		}
		return len(live)
	}
	one := func(x, y *offNode) bool {
		n := count(x, y)
		return n > 0 && n == count(y, x)
	}
	deadline := time.Now().Add(15 * time.Second)
	stable := 0
	for stable < 5 {
		if time.Now().After(deadline) {
			var desc []string
			for _, x := range [][2]*offNode{{a, b}, {b, a}} {
				for _, cs := range x[0].sessions.ofPeer(x[1].ID()) {
					desc = append(desc, fmt.Sprintf("%s: outgoing %v limited %v %s", x[0].id.Name(), cs.outgoing, cs.conn.Stat().Limited, cs.conn.RemoteMultiaddr()))
				}
			}
			t.Fatalf("the live sessions did not settle on direct connections: %v", desc)
		}
		if one(a, b) && one(b, a) {
			stable++
		} else {
			stable = 0
		}
		time.Sleep(40 * time.Millisecond)
	}
}

// A seed whose confirmation is lost (the connection died after the TLS
// server sent its offer): the server's active session cannot send until
// it opens an envelope of the client's. It must not count as a session to
// send on, or the server never seeds again and its messages wait until
// the client happens to write. Here the next connection reseeds and the
// message arrives.
func TestOfflineLostSeedConfirmation(t *testing.T) {
	alice := offNewNode(t, "alice", nil, true)
	bob := offNewNode(t, "bob", nil, true)
	offLink(t, alice, bob)

	acs, bcs := offOneSession(t, alice, bob) // the two ends of the seed must be one TLS session
	server, client, scs, ccs := bob, alice, bcs, acs
	if !acs.outgoing {
		server, client, scs, ccs = alice, bob, acs, bcs
	}
	offer, err := server.sessions.seedOffer(scs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.sessions.seedAccept(ccs, offer); err != nil {
		t.Fatal(err)
	}
	// The client's confirming envelope is never sent: cut the connection.
	if server.rk.hasSession(client.ID()) {
		t.Error("a seeded session that cannot send counts as a session to send on")
	}
	server.sessions.closePeer(client.ID(), "test: the confirmation is lost")
	client.offWait("the session to end", func(e Event) bool {
		return e.Kind == EventPeer && e.Peer.ID == server.ID() && !e.Peer.Online
	})
	server.offWait("the session to end", func(e Event) bool {
		return e.Kind == EventPeer && e.Peer.ID == client.ID() && !e.Peer.Online
	})
	m, err := server.Send(client.ID(), "after a lost seed confirmation")
	if err != nil {
		t.Fatal(err)
	}
	client.offWait("the server's message", offIsMessage(m.ID))
}
