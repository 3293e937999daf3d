package node

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/e2e/ratchet"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/mailbox"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Strangers' ratchet state held in memory until something of theirs is
// kept (ratchet_held.go): written with the first message kept, recovered
// by a new seed when it was dropped, and contacts' seeds stored at once.

// A seededKey is a key that met a node as a TLS client does: its side
// of the ratchet session the node seeded for it.
type seededKey struct {
	key ed25519.PrivateKey
	p   peer.ID
	set *ratchet.SessionSet
}

// seedSybil has a new key ask n for a seed (seedKey).
func seedSybil(t *testing.T, n *offNode) *seededKey {
	t.Helper()
	key, p := testKey(t)
	return seedKey(t, n, key, p)
}

// seedKey has key's peer p ask n for a ratchet seed as a TLS client
// does: n, the server, seeds a session from an exporter secret both
// would share (seedResponder), p takes the offer and confirms it with an
// empty envelope, which n opens.
func seedKey(t *testing.T, n *offNode, key ed25519.PrivateKey, p peer.ID) *seededKey {
	t.Helper()
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		t.Fatal(err)
	}
	offer, err := n.rk.seedResponder(p, secret)
	if err != nil {
		t.Fatal(err)
	}
	confirm, set, err := keySet(t, n, key, p).SeedInitiator(secret, offer, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.rk.open(p, confirm); err != nil {
		t.Fatalf("the seed's confirmation: %v", err)
	}
	return &seededKey{key: key, p: p, set: set}
}

// keySet is key's (peer p's) empty ratchet session set with n.
func keySet(t *testing.T, n *offNode, key ed25519.PrivateKey, p peer.ID) *ratchet.SessionSet {
	t.Helper()
	local, err := ratchet.NewLocalKeys(key, []byte(p), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	nKey, err := identity.KeyFromPeerID(n.ID())
	if err != nil {
		t.Fatal(err)
	}
	set, err := ratchet.NewSessionSet(local, []byte(n.ID()), nKey)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// Two live sessions that cross, each end the TLS server on one: the node
// offered a seed on one (its newer, active session, with no sending chain
// until the peer takes it) when the peer's older offer on the other
// comes. The node confirms the peer's seed on the peer's session
// (PROTOCOL §12.8); sealed on its active session, the confirmation failed
// with "no sending session" and the live session was closed.
func TestSeedsCrossingConfirmed(t *testing.T) {
	n := offNewNode(t, "alice", nil, false)
	key, p := testKey(t)
	theirs, ours := make([]byte, 32), make([]byte, 32)
	rand.Read(theirs)
	rand.Read(ours)
	set := keySet(t, n, key, p)
	offer, set, err := set.SeedResponder(theirs, time.Now().Add(-time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.rk.seedResponder(p, ours); err != nil {
		t.Fatal(err)
	}
	confirm, err := n.rk.seedInitiator(p, theirs, offer)
	if err != nil {
		t.Fatalf("the node confirms the peer's seed: %v", err)
	}
	if _, err := set.Open(nil, confirm, time.Now()); err != nil {
		t.Fatalf("the peer opens the confirmation: %v", err)
	}
}

// text seals a text from s to its node.
func (s *seededKey) text(t *testing.T, to peer.ID, body string) (e2e.MessageID, []byte) {
	t.Helper()
	m := store.Message{ID: e2e.NewMessageID(), Peer: to, SentAt: time.Now().Truncate(time.Millisecond), Body: body}
	pt, err := textPlaintext(m)
	if err != nil {
		t.Fatal(err)
	}
	return m.ID, s.seal(t, pt)
}

// receipt seals a receipt for a message s never had from its node.
func (s *seededKey) receipt(t *testing.T) []byte {
	t.Helper()
	pt, err := innerFrame(e2e.FrameReceipt, e2e.Receipt{ID: e2e.NewMessageID(), Status: e2e.ReceiptStored}.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	return s.seal(t, pt)
}

func (s *seededKey) seal(t *testing.T, pt []byte) []byte {
	t.Helper()
	env, set, err := s.set.Seal(pt, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s.set = set
	return env
}

// firstContactSybil has a new key meet n through its mailbox with an
// empty first contact (PQXDH from n's bundle), which n opens.
func firstContactSybil(t *testing.T, n *offNode) {
	t.Helper()
	p, local := ratchetIdentity(t)
	b, err := ratchet.ParseBundle(n.offBundle())
	if err != nil {
		t.Fatal(err)
	}
	env := firstContact(t, local, n, b)
	if !n.mail.receive(mailbox.Item{ID: 1, From: p, Deposited: time.Now(), Envelope: env}) {
		t.Fatal("an empty first contact left at the relay")
	}
}

// storesSet says whether n's store holds p's session set.
func (on *offNode) storesSet(p peer.ID) bool {
	on.t.Helper()
	_, err := on.store.Ratchets().SessionSet(p)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		on.t.Fatal(err)
	}
	return err == nil
}

// holdsSet says whether n holds p's session set in memory only.
func (on *offNode) holdsSet(p peer.ID) bool {
	on.rk.mu.Lock()
	defer on.rk.mu.Unlock()
	return on.rk.held.has(p)
}

// TestStrangerSeedWrittenWithMessage: a stranger's seeded state is held
// in memory while it writes nothing that is kept, and written in the
// transaction that keeps its first message; a contact's is written at
// once, as before.
func TestStrangerSeedWrittenWithMessage(t *testing.T) {
	bob := offNewNode(t, "bob", nil, false)
	s := seedSybil(t, bob)
	if bob.storesSet(s.p) || !bob.holdsSet(s.p) {
		t.Fatal("a stranger's seed is written before anything of it is kept")
	}
	id, env := s.text(t, bob.ID(), "hello")
	if !bob.offMail(s.p, env) || bob.offCount(s.p, id) != 1 {
		t.Fatal("the stranger's message was not kept")
	}
	if !bob.storesSet(s.p) || bob.holdsSet(s.p) {
		t.Fatal("the stranger's set is not written with its message")
	}

	key, contact := testKey(t)
	if err := bob.Contacts().Trust(contact, false); err != nil {
		t.Fatal(err)
	}
	seedKey(t, bob, key, contact)
	if !bob.storesSet(contact) || bob.holdsSet(contact) {
		t.Fatal("a contact's seed is not written at once")
	}
}

// TestStrangerEvictedSeedReseeds, over live sessions: mallory, a
// stranger to bob, writes while bob has no room for another stranger's
// messages: refused, her seed held. Keys made for the purpose push it out
// of memory. Once there is room, her next message does not open (bob has
// no session with her any more): bob seeds a new one on the live session,
// on which her client writes both messages again, and both are kept.
func TestStrangerEvictedSeedReseeds(t *testing.T) {
	bob := offNewNode(t, "bob", nil, true)
	mallory := offNewNode(t, "mallory", nil, true)
	const bound = 8
	bob.strangers.conversations = 1
	bob.rk.mu.Lock()
	bob.rk.held.maxSets = bound
	bob.rk.mu.Unlock()
	eve := seedSybil(t, bob)
	id, env := eve.text(t, bob.ID(), "taking the room")
	if !bob.offMail(eve.p, env) || bob.offCount(eve.p, id) != 1 {
		t.Fatal("eve's message was not kept")
	}

	strangerLink(t, mallory, bob)
	first := sendAll(t, mallory, bob.ID(), 1, "hello")
	bob.refusedFull("mallory's message refused", mallory.ID(), "as many peers who are not your contacts have messages waiting for you as are kept (1)")
	// The two seeds of a first session (the client's request and the
	// server's offer cross) each make her client write its message
	// again: let those be refused too.
	time.Sleep(300 * time.Millisecond)
	if !bob.holdsSet(mallory.ID()) || bob.storesSet(mallory.ID()) {
		t.Fatal("mallory's seed is not held in memory only")
	}
	// Pushed out, and left out: a frame of hers that came late would
	// seed her a new session (held again), and the round starts over.
	for deadline := time.Now().Add(15 * time.Second); ; {
		for range bound {
			seedSybil(t, bob)
		}
		time.Sleep(200 * time.Millisecond)
		if !bob.holdsSet(mallory.ID()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("mallory's seed was not pushed out by newer ones")
		}
	}
	const reseed = "envelope cannot be opened in its session; seeding a new one"
	reseeds := bob.logs.count(reseed)

	if err := bob.Contacts().Block(eve.p); err != nil {
		t.Fatal(err)
	}
	next := sendAll(t, mallory, bob.ID(), 1, "again")
	bob.stored("mallory's first message, on a new seed", mallory.ID(), first[0].ID)
	bob.stored("her next one", mallory.ID(), next[0].ID)
	if bob.logs.count(reseed) == reseeds {
		t.Fatal("her messages came without a new seed: her old session was still there")
	}
	if !bob.storesSet(mallory.ID()) {
		t.Fatal("mallory's set is not written with her messages")
	}
}

// TestStrangerKeptSeedSurvivesRestart, over live sessions: once bob
// keeps a stranger's message, her session is in his store, so after he
// restarts her next envelope opens in it, with no new seed.
func TestStrangerKeptSeedSurvivesRestart(t *testing.T) {
	bob := offNewNode(t, "bob", nil, true)
	mallory := offNewNode(t, "mallory", nil, true)
	strangerLink(t, mallory, bob)
	first := sendAll(t, mallory, bob.ID(), 1, "hello")
	bob.stored("mallory's message", mallory.ID(), first[0].ID)
	mallory.offWait("its receipt", func(e Event) bool {
		return e.Kind == EventStatus && e.Message.ID == first[0].ID && e.Message.Status == store.StatusDelivered
	})

	bob = bob.noticeRestart()
	mallory.host.Peerstore().AddAddrs(bob.ID(), bob.host.Addrs(), time.Hour)
	next := sendAll(t, mallory, bob.ID(), 1, "after the restart")
	bob.stored("her message after bob's restart", mallory.ID(), next[0].ID)
	if n := bob.logs.count("envelope cannot be opened in its session; seeding a new one"); n != 0 {
		t.Fatalf("bob lost mallory's session with his restart (%d new seeds)", n)
	}
}
