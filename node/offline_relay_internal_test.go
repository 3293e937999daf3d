package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/e2e/ratchet"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/internal/testproc"
	"github.com/certchat/certchat/mailbox"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Offline delivery through a real relay, `chat relay` run as a process
// (helpers in offline_internal_test.go): mail and live copies of the same
// envelope, bytes that are no envelope, mail from a rejected key.

// offRelay runs `chat relay` on 127.0.0.1 and returns its address.
func offRelay(t testing.TB) (string, peer.ID) {
	t.Helper()
	addr := testproc.StartRelay(t, testproc.RelayOptions{}).Addr
	info, err := ParseRelayAddr(addr)
	if err != nil {
		t.Fatal(err)
	}
	return addr, info.ID
}

// offRegistered waits until on's mailbox is registered at its relay.
// offRelayed starts a relay and, on it, one started node per name with
// its mailbox registered.
func offRelayed(t testing.TB, names ...string) (relayAddr string, relayID peer.ID, nodes []*offNode) {
	t.Helper()
	relayAddr, relayID = offRelay(t)
	for _, name := range names {
		nodes = append(nodes, offNewNode(t, name, []string{relayAddr}, true))
	}
	for _, n := range nodes {
		n.offRegistered()
	}
	return relayAddr, relayID, nodes
}

func (on *offNode) offRegistered() {
	on.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if r := on.Relays(); len(r) > 0 && r[0].Mailbox && r[0].PrekeysEC > 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	on.t.Fatalf("mailbox not registered: %+v", on.Relays())
}

// offMailboxEmpty waits until on's mailbox at relay holds nothing: on has
// fetched and acknowledged everything.
func (on *offNode) offMailboxEmpty(relay peer.ID) {
	on.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		items, err := on.mail.client().Fetch(on.ctx, relay, mailbox.MaxFetch)
		if err == nil && len(items.Items) == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	on.t.Fatal("the mailbox was not emptied")
}

// Through a real relay: an envelope delivered live and also deposited
// (and the other way round) is stored once, the second copy changes no
// state and shows nothing; bytes that are no envelope (a live frame, a
// TLS record, a truncated envelope) are discarded with an error event;
// and a sender whose only session is a seed it cannot send on starts a
// new one from the peer's bundle to deposit.
func TestOfflineMailboxPaths(t *testing.T) {
	relayAddr, relayID := offRelay(t)
	alice := offNewNode(t, "alice", []string{relayAddr}, true)
	bob := offNewNode(t, "bob", []string{relayAddr}, true)
	alice.offRegistered()
	bob.offRegistered()
	offLink(t, alice, bob)
	ctx := context.Background()

	step := func(name string, f func()) { t.Logf("--- %s", name); f() }
	step("live then mailbox", func() {
		m, env := alice.offText(bob.ID(), "live first")
		if err := alice.sessions.newest(bob.ID()).s.Send(e2e.FrameEnvelope, env); err != nil {
			t.Fatal(err)
		}
		bob.offWait("the live copy", offIsMessage(m.ID))
		time.Sleep(50 * time.Millisecond)
		before, sets := bob.offRatchetRaw(), bob.offSets()
		if _, err := alice.mail.client().Deposit(ctx, relayID, bob.ID(), env); err != nil {
			t.Fatal(err)
		}
		bob.offMailboxEmpty(relayID)
		for _, e := range bob.offEvents(200 * time.Millisecond) {
			if e.Kind == EventMessage || e.Kind == EventError {
				t.Fatalf("the mailbox copy caused a %s event", e.Kind)
			}
		}
		bob.offSameState("the mailbox copy of a live envelope", before, sets)
		if n := bob.offCount(alice.ID(), m.ID); n != 1 {
			t.Fatalf("stored %d times", n)
		}
	})

	step("mailbox then live", func() {
		m, env := alice.offText(bob.ID(), "mailbox first")
		if _, err := alice.mail.client().Deposit(ctx, relayID, bob.ID(), env); err != nil {
			t.Fatal(err)
		}
		bob.offWait("the mailbox copy", offIsMessage(m.ID))
		bob.offMailboxEmpty(relayID)
		time.Sleep(50 * time.Millisecond)
		before, sets := bob.offRatchetRaw(), bob.offSets()
		dups := bob.logs.count("duplicate envelope dropped")
		if err := alice.sessions.newest(bob.ID()).s.Send(e2e.FrameEnvelope, env); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for bob.logs.count("duplicate envelope dropped") == dups {
			if time.Now().After(deadline) {
				t.Fatal("bob never dropped the live copy")
			}
			time.Sleep(10 * time.Millisecond)
		}
		for _, e := range bob.offEvents(100 * time.Millisecond) {
			if e.Kind == EventMessage || e.Kind == EventError {
				t.Fatalf("the live copy caused a %s event", e.Kind)
			}
		}
		bob.offSameState("the live copy of a mailbox envelope", before, sets)
		if n := bob.offCount(alice.ID(), m.ID); n != 1 {
			t.Fatalf("stored %d times", n)
		}
	})

	step("tampered live envelope", func() {
		m, env := alice.offText(bob.ID(), "tampered on the way")
		bad := bytes.Clone(env)
		bad[len(bad)-5] ^= 0x10
		before, sets := bob.offRatchetRaw(), bob.offSets()
		if err := alice.sessions.newest(bob.ID()).s.Send(e2e.FrameEnvelope, bad); err != nil {
			t.Fatal(err)
		}
		e := bob.offWait("an error event", func(e Event) bool { return e.Kind == EventError || e.Kind == EventMessage })
		if e.Kind != EventError || e.PeerID != alice.ID() || !strings.Contains(e.Err, "authentication failed") {
			t.Fatalf("event %s %q", e.Kind, e.Err)
		}
		bob.offSameState("a tampered live envelope", before, sets)
		if err := alice.sessions.newest(bob.ID()).s.Send(e2e.FrameEnvelope, env); err != nil {
			t.Fatal(err)
		}
		bob.offWait("the real envelope on the same session", offIsMessage(m.ID))
	})

	step("foreign bytes deposited", func() {
		_, env := alice.offText(bob.ID(), "never delivered as itself")
		frame, _ := e2e.AppendFrame(nil, e2e.FrameEnvelope, env)
		record := binary.BigEndian.AppendUint16([]byte{0x17, 0x03, 0x03}, 400)
		record = append(record, make([]byte, 400)...)
		rand.Read(record[5:])
		text, _ := (e2e.Text{ID: e2e.NewMessageID(), SentAt: time.Now(), Body: "plain"}).Marshal()
		textFrame, _ := e2e.AppendFrame(nil, e2e.FrameText, text)
		cases := []struct {
			what  string
			bytes []byte
			want  string
		}{
			{"a live envelope frame", frame, "unsupported version"},
			{"a TLS record", record, "unsupported version"},
			{"a live text frame", textFrame, "malformed"},
			{"a truncated envelope", env[:60], "malformed"},
		}
		before, sets := bob.offRatchetRaw(), bob.offSets()
		hist := len(bob.offHistory(alice.ID()))
		for _, c := range cases {
			if _, err := alice.mail.client().Deposit(ctx, relayID, bob.ID(), c.bytes); err != nil {
				t.Fatal(err)
			}
		}
		// Failures of one fetch are one event per sender with a count and
		// the reasons, so the four may come as one to four events.
		var said string
		failedN := 0
		for failedN < len(cases) {
			e := bob.offWait("errors for the foreign bytes", func(e Event) bool { return e.Kind == EventError || e.Kind == EventMessage })
			if e.Kind != EventError || e.PeerID != alice.ID() {
				t.Fatalf("event %s %q from %s, want errors from alice", e.Kind, e.Err, identity.ShortID(e.PeerID))
			}
			said += e.Err + "\n"
			failedN++
			var k int
			if n, _ := fmt.Sscanf(e.Err, "%d sealed messages", &k); n == 1 {
				failedN += k - 1
			}
		}
		for _, c := range cases {
			if !strings.Contains(said, c.want) {
				t.Errorf("%s: no error says %q: %s", c.what, c.want, said)
			}
		}
		bob.offMailboxEmpty(relayID)
		bob.offSameState("foreign bytes", before, sets)
		if n := len(bob.offHistory(alice.ID())); n != hist {
			t.Fatalf("%d messages stored, %d before", n, hist)
		}
	})

	step("deposit without a session to send on", func() {
		// Bob's newest session with alice is a seed she never confirmed.
		bob.rk.mu.Lock()
		set, _ := bob.rk.setFor(alice.ID())
		secret := make([]byte, 32)
		rand.Read(secret)
		_, next, err := set.SeedResponder(secret, time.Now().Add(time.Second))
		if err == nil {
			err = bob.rk.commitSet(alice.ID(), next)
		}
		bob.rk.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		m := store.Message{ID: e2e.NewMessageID(), Peer: alice.ID(), SentAt: time.Now(), Body: "deposited after a new first contact"}
		if err := bob.store.AddOutgoing(&m); err != nil {
			t.Fatal(err)
		}
		if err := bob.mail.queue(alice.ID(), []store.Message{m}); err != nil {
			t.Fatalf("queue at the relay: %v", err)
		}
		if got, _ := bob.store.Message(m.ID); got.Status == store.StatusSending {
			t.Fatalf("status %s", got.Status)
		}
		alice.offWait("the deposited message", offIsMessage(m.ID))
	})
}

// Mail from a key the user rejected is dropped unopened (and deleted at
// the relay): nothing is stored or shown and the ratchet does not move.
// So is mail a relay says we sent ourselves.
func TestOfflineMailFromRejectedKeyDropped(t *testing.T) {
	alice := offNewNode(t, "alice", nil, false)
	bob := offNewNode(t, "bob", nil, false)
	offMeet(t, alice, bob)
	m, env := alice.offText(bob.ID(), "after the block")
	if err := bob.Contacts().Block(alice.ID()); err != nil {
		t.Fatal(err)
	}
	bob.offEvents(50 * time.Millisecond) // the block's peer event
	for _, from := range []peer.ID{alice.ID(), bob.ID()} {
		before, sets := bob.offRatchetRaw(), bob.offSets()
		if !bob.offMail(from, env) {
			t.Fatalf("mail from %s: kept at the relay", identity.ShortID(from))
		}
		for _, e := range bob.offEvents(100 * time.Millisecond) {
			if e.Kind == EventMessage || e.Kind == EventError {
				t.Fatalf("mail from %s: a %s event", identity.ShortID(from), e.Kind)
			}
		}
		bob.offSameState("mail from "+identity.ShortID(from), before, sets)
	}
	if n := bob.offCount(alice.ID(), m.ID); n != 0 {
		t.Fatalf("a message from a rejected key was stored %d times", n)
	}
}

// TestOfflineMailKeptWhenTrustUnreadable: while trust.json cannot be read,
// mail cannot be told apart from a rejected key's, so it is neither opened
// nor dropped: it stays at the relay, and the next fetch (the store
// readable again) drops it as a rejected key's.
func TestOfflineMailKeptWhenTrustUnreadable(t *testing.T) {
	alice := offNewNode(t, "alice", nil, false)
	bob := offNewNode(t, "bob", nil, false)
	offMeet(t, alice, bob)
	m, env := alice.offText(bob.ID(), "after the block")
	if err := bob.Contacts().Block(alice.ID()); err != nil {
		t.Fatal(err)
	}
	bob.offEvents(50 * time.Millisecond)
	path := bob.cfg.Home.TrustPath()
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	before, sets := bob.offRatchetRaw(), bob.offSets()
	if bob.offMail(alice.ID(), env) {
		t.Fatal("mail acknowledged while the trust store could not be read")
	}
	bob.offSameState("mail with the trust store unreadable", before, sets)
	if err := os.WriteFile(path, good, 0o600); err != nil {
		t.Fatal(err)
	}
	if !bob.offMail(alice.ID(), env) {
		t.Fatal("mail from a rejected key kept at the relay once the trust store reads again")
	}
	if n := bob.offCount(alice.ID(), m.ID); n != 0 {
		t.Fatalf("a message from a rejected key was stored %d times", n)
	}
}

// TestLiveBadEnvelopesBounded: a peer that writes envelopes that cannot
// be opened on one live session, a thousand of them, costs bob at most
// maxLiveOpenFailures attempts (each may be a PQXDH under the ratchet
// keys' lock, for a first contact of garbage) and as many error events,
// then the session is closed as broken, with one event that says so. A
// real message on the next session still arrives.
func TestLiveBadEnvelopesBounded(t *testing.T) {
	alice := offNewNode(t, "alice", nil, true)
	bob := offNewNode(t, "bob", nil, true)
	offLink(t, alice, bob)
	cs := alice.sessions.newest(bob.ID())
	_, env := alice.offText(bob.ID(), "spoiled")
	const flood = 1000
	var sendErr error
	for i := range flood {
		bad := bytes.Clone(env)
		bad[len(bad)-1-i%16] ^= 0x10
		if sendErr = cs.s.Send(e2e.FrameEnvelope, bad); sendErr != nil {
			break
		}
	}
	events := closedAsBroken(t, cs, alice, bob, fmt.Sprintf("%d envelopes that cannot be opened (last write: %v)", flood, sendErr), errBadEnvelopes)
	opened := 0
	for _, e := range events {
		if e.Kind == EventError && strings.Contains(e.Err, "could not be opened and was dropped") {
			opened++
		}
	}
	if opened > maxLiveOpenFailures {
		t.Fatalf("%d events for envelopes that could not be opened, want at most %d", opened, maxLiveOpenFailures)
	}
}

// closedAsBroken checks that to closed the live session cs of from's,
// after what from wrote on it, as broken because of cause, with one event
// that says so, and that from's next message arrives on a new session.
// It returns to's events meanwhile.
func closedAsBroken(t *testing.T, cs *chatSession, from, to *offNode, wrote string, cause error) []Event {
	t.Helper()
	select {
	case <-cs.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("the session still stands after %s", wrote)
	}
	events := to.offEvents(300 * time.Millisecond)
	closed := 0
	for _, e := range events {
		if e.Kind == EventError && strings.Contains(e.Err, "closed the session") && errors.Is(e.Cause, cause) {
			closed++
		}
	}
	if closed != 1 {
		t.Fatalf("%d events for the session's close because of %q, want 1", closed, cause)
	}
	m, err := from.Send(to.ID(), "after the close")
	if err != nil {
		t.Fatal(err)
	}
	to.offWait("a real message on the next session", offIsMessage(m.ID))
	return events
}

// TestLiveSeedFloodBounded: a peer that asks for ratchet seeds without end
// (empty ratchet-init frames to the TLS server), or offers them without
// end (valid offers to the TLS client), would have the other end commit
// a new ratchet session to its store for each, under the ratchet keys'
// lock. Past maxPeerSeeds in a minute the session is closed as broken,
// with one event; a real message arrives on the next session.
func TestLiveSeedFloodBounded(t *testing.T) {
	for _, flooder := range []string{"client asks", "server offers"} {
		t.Run(flooder, func(t *testing.T) {
			alice, bob, acs, bcs := oneLiveSession(t)
			// from floods to over the session fcs.
			from, to, fcs := alice, bob, acs
			if acs.outgoing != (flooder == "client asks") {
				from, to, fcs = bob, alice, bcs
			}
			const flood = 1000
			var sendErr error
			for range flood {
				var frame []byte
				if !fcs.outgoing {
					if frame, sendErr = from.sessions.seedOffer(fcs); sendErr != nil {
						break
					}
				}
				if sendErr = fcs.s.Send(e2e.FrameRatchetInit, frame); sendErr != nil {
					break
				}
			}
			closedAsBroken(t, fcs, from, to, fmt.Sprintf("%d ratchet-init frames (last write: %v)", flood, sendErr), errTooManySeeds)
		})
	}
}

// TestLiveLostStateOneSeed: an end that lost its ratchet state with the
// peer cannot open the twenty envelopes the peer has in flight, each
// sealed in a session it no longer has. One seed answers them all (the
// peer writes its messages again on it), not one each: the session
// stands, within the bound on seeds a peer causes (maxPeerSeeds), and the
// next message arrives, whichever end lost its state.
func TestLiveLostStateOneSeed(t *testing.T) {
	for _, loser := range []string{"server", "client"} {
		t.Run(loser+" lost", func(t *testing.T) {
			alice, bob, acs, bcs := oneLiveSession(t)
			// bob loses his state with alice, and is the loser.
			if bcs.outgoing != (loser == "client") {
				alice, bob, acs, bcs = bob, alice, bcs, acs
			}
			key, err := identity.KeyFromPeerID(alice.ID())
			if err != nil {
				t.Fatal(err)
			}
			bob.rk.mu.Lock()
			fresh, err := ratchet.NewSessionSet(bob.rk.local, []byte(alice.ID()), key)
			if err == nil {
				err = bob.rk.commitSet(alice.ID(), fresh)
			}
			written := bob.rk.setsWritten
			bob.rk.mu.Unlock()
			if err != nil {
				t.Fatal(err)
			}
			// Twenty envelopes in flight at once, sealed in the session bob
			// lost (as an outbox writes its window), then a message.
			var envs [][]byte
			for i := range 20 {
				_, env := alice.offText(bob.ID(), fmt.Sprint("in flight ", i))
				envs = append(envs, env)
			}
			for _, env := range envs {
				if err := acs.s.Send(e2e.FrameEnvelope, env); err != nil {
					t.Fatal(err)
				}
			}
			for _, m := range sendAll(t, alice, bob.ID(), 1, "after the loss") {
				bob.stored(m.Body, alice.ID(), m.ID)
			}
			select {
			case <-bcs.done:
				t.Fatal("the session was closed")
			default:
			}
			bob.rk.mu.Lock()
			seeds := bob.rk.setsWritten - written
			bob.rk.mu.Unlock()
			if loser == "server" && seeds > 3 {
				t.Errorf("%d ratchet states written for one loss, want a seed or two and what the messages moved", seeds)
			}
			t.Logf("%d ratchet states written after the loss", seeds)
		})
	}
}

// TestTypingFloodBounded: a peer that writes typing frames without end
// (typing, stopped, typing…) makes at most a typing event a second, not
// an event each: every subscriber's queue is unbounded, and the window
// redraws for each. A peer's real typing is still shown, and its last
// state once the second has passed.
func TestTypingFloodBounded(t *testing.T) {
	alice := offNewNode(t, "alice", nil, true)
	bob := offNewNode(t, "bob", nil, true)
	for _, n := range []*offNode{alice, bob} {
		n.Indications().Set(e2e.Settings{Typing: true})
	}
	offLink(t, alice, bob)
	acs, bcs := alice.sessions.newest(bob.ID()), bob.sessions.newest(alice.ID())
	for deadline := time.Now().Add(10 * time.Second); !bcs.settings().known || !bcs.settings().Typing; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("bob never learnt that alice shows typing")
		}
	}
	bob.offEvents(100 * time.Millisecond)
	start := time.Now()
	const flood = 1000
	for i := range flood {
		if err := acs.s.Send(e2e.FrameTyping, e2e.Typing(i%2 == 0).Marshal()); err != nil {
			t.Fatal(err)
		}
	}
	// The last frame (stopped) is read once bob answers a receipt after it.
	m, err := alice.Send(bob.ID(), "after the flood")
	if err != nil {
		t.Fatal(err)
	}
	bob.stored("the message after the flood", alice.ID(), m.ID)
	var typing, stopped int
	for _, e := range bob.offEvents(300 * time.Millisecond) {
		if e.Kind == EventTyping && e.PeerID == alice.ID() {
			if e.Typing {
				typing++
			} else {
				stopped++
			}
		}
	}
	secs := int(time.Since(start)/typingShownEvery) + 1
	if typing < 1 || typing > secs || stopped > typing {
		t.Fatalf("%d typing and %d stopped events for %d frames in %v, want 1 to %d typing and no more stopped", typing, stopped, flood, time.Since(start).Round(time.Millisecond), secs)
	}
}

// TestReceiptFloodBounded: a peer that writes receipt frames faster than
// they are recorded (200,000 of them, for messages that do not exist)
// fills bob's queue of receipts to record only up to maxQueuedReceipts;
// the receipts past it are dropped, and a real receipt after the flood
// is recorded.
func TestReceiptFloodBounded(t *testing.T) {
	alice, bob, acs, _ := oneLiveSession(t)
	stop, peak := make(chan struct{}), make(chan int)
	go func() {
		most := 0
		for {
			bob.receipts.mu.Lock()
			most = max(most, len(bob.receipts.pending))
			bob.receipts.mu.Unlock()
			select {
			case <-stop:
				peak <- most
				return
			case <-time.After(100 * time.Microsecond):
			}
		}
	}()
	const flood = 200000
	rs := make([]e2e.Receipt, 100)
	for i := 0; i < flood; i += len(rs) {
		for j := range rs {
			rs[j] = e2e.Receipt{ID: e2e.NewMessageID(), Status: e2e.ReceiptStored}
		}
		if err := acs.s.SendReceipts(rs); err != nil {
			t.Fatal(err)
		}
	}
	// The real receipt must not come while the flood's last receipts
	// fill the queue (it would be dropped, rightly, and recorded only
	// when the message is written again after ResendAfter): a message
	// after the flood says bob has read it all, then the queue empties.
	if _, err := alice.Send(bob.ID(), "the flood is over"); err != nil {
		t.Fatal(err)
	}
	bob.offWait("the message after the flood", func(e Event) bool {
		return e.Kind == EventMessage && e.Message.Body == "the flood is over"
	})
	for deadline := time.Now().Add(20 * time.Second); bob.receiptsQueued(alice.ID()) > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("bob still has %d receipts to record", bob.receiptsQueued(alice.ID()))
		}
	}
	m, err := bob.Send(alice.ID(), "after the flood")
	if err != nil {
		t.Fatal(err)
	}
	bob.offWait("its receipt", func(e Event) bool {
		return e.Kind == EventStatus && e.Message.ID == m.ID && e.Message.Status == store.StatusDelivered
	})
	close(stop)
	if most := <-peak; most > maxQueuedReceipts {
		t.Fatalf("bob's queue of receipts to record held %d, want at most %d", most, maxQueuedReceipts)
	}
}

// receiptsQueued is how many receipts of p wait to be recorded.
func (on *offNode) receiptsQueued(p peer.ID) int {
	on.receipts.mu.Lock()
	defer on.receipts.mu.Unlock()
	return on.receipts.queued[p]
}

// oneLiveSession links two new nodes live and returns them with their
// ends of the one session between them.
func oneLiveSession(t *testing.T) (alice, bob *offNode, acs, bcs *chatSession) {
	t.Helper()
	alice = offNewNode(t, "alice", nil, true)
	bob = offNewNode(t, "bob", nil, true)
	offLink(t, alice, bob)
	acs, bcs = offOneSession(t, alice, bob)
	return alice, bob, acs, bcs
}
