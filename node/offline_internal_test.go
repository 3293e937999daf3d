package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/e2e/ratchet"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/internal/testproc"
	"github.com/certchat/certchat/node/mailbox"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
)

// Adversarial tests of offline delivery at the level of the node: what
// reaches receiveMail (the mailbox path) and receiveEnvelope (the live
// path) when envelopes are tampered with, re-addressed, replayed, moved
// from one path to the other, reordered or dropped. Each asserts the
// outcome (error event, stored messages) and that a failure leaves the
// ratchet state in chat.db byte for byte as it was.
//
// Most tests hand envelopes to the receiving node's own handlers, as its
// mailbox loop does after a fetch; TestOfflineMailboxPaths goes through a
// real relay (`chat relay`, run as a process: package node cannot import
// package relay).

// offLog records the messages a node logs, to wait for one.
type offLog struct {
	mu   sync.Mutex
	msgs []string
}

func (l *offLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *offLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *offLog) WithGroup(string) slog.Handler            { return l }
func (l *offLog) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.msgs = append(l.msgs, r.Message)
	l.mu.Unlock()
	return nil
}

func (l *offLog) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if m == msg {
			n++
		}
	}
	return n
}

// offNode is a node under test with its events and logs.
type offNode struct {
	*Node
	t    testing.TB
	sub  *Subscription
	logs *offLog
}

// offNewNode makes a node on 127.0.0.1. Unless start is set it is not
// started: its handlers are called directly, nothing listens.
func offNewNode(t testing.TB, name string, relays []string, start bool) *offNode {
	t.Helper()
	h := identity.Home{Dir: t.TempDir()}
	id, err := h.Init(name, nil, identity.DefaultKDF, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ts, err := h.TrustStore()
	if err != nil {
		t.Fatal(err)
	}
	logs := &offLog{}
	n, err := New(Config{Home: h, Identity: id, Trust: ts, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Relays: relays,
		RetryMin: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond, Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	on := &offNode{Node: n, t: t, sub: n.Subscribe(), logs: logs}
	if start {
		if err := n.Start(); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { n.Close() })
	return on
}

// offWait reads events until match, failing after 15 s.
func (on *offNode) offWait(what string, match func(Event) bool) Event {
	on.t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case e, ok := <-on.sub.C:
			if !ok {
				on.t.Fatalf("events closed while waiting for %s", what)
			}
			if match(e) {
				return e
			}
		case <-timeout:
			on.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// offEvents returns the events that arrive within d.
func (on *offNode) offEvents(d time.Duration) []Event {
	var out []Event
	timeout := time.After(d)
	for {
		select {
		case e := <-on.sub.C:
			out = append(out, e)
		case <-timeout:
			return out
		}
	}
}

func offIsMessage(id e2e.MessageID) func(Event) bool {
	return func(e Event) bool { return e.Kind == EventMessage && e.Message.ID == id }
}

// offRatchetRaw is the ratchet bucket of chat.db as stored (sealed), and
// decrypted: equal raw bytes mean nothing was written at all.
func (on *offNode) offRatchetRaw() map[string][]byte {
	on.t.Helper()
	out := map[string][]byte{}
	on.store.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bktRatchet)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			out[string(k)] = bytes.Clone(v)
			plain, err := on.store.open(v, k)
			if err != nil {
				on.t.Errorf("ratchet record %q does not decrypt", k)
			}
			out["plain:"+string(k)] = plain
			return nil
		})
	})
	if len(out) == 0 {
		on.t.Fatal("no ratchet state in chat.db")
	}
	return out
}

// offSameState fails unless the ratchet state in chat.db and in memory is
// what before recorded.
func (on *offNode) offSameState(what string, before map[string][]byte, sets map[peer.ID]*ratchet.SessionSet) {
	on.t.Helper()
	after := on.offRatchetRaw()
	if len(after) != len(before) {
		on.t.Errorf("%s: %d ratchet records before, %d after", what, len(before), len(after))
	}
	for k, v := range before {
		if !bytes.Equal(after[k], v) {
			on.t.Errorf("%s: ratchet record %q changed", what, strings.TrimPrefix(k, "plain:"))
		}
	}
	on.rk.mu.Lock()
	defer on.rk.mu.Unlock()
	for p, s := range sets {
		if on.rk.sets[p] != s {
			on.t.Errorf("%s: the session set with %s in memory was replaced", what, identity.ShortID(p))
		}
	}
}

func (on *offNode) offSets() map[peer.ID]*ratchet.SessionSet {
	on.rk.mu.Lock()
	defer on.rk.mu.Unlock()
	out := map[peer.ID]*ratchet.SessionSet{}
	for p, s := range on.rk.sets {
		out[p] = s
	}
	return out
}

func (on *offNode) offHistory(p peer.ID) []Message {
	on.t.Helper()
	h, err := on.History(p, 0, 1000)
	if err != nil {
		on.t.Fatal(err)
	}
	return h
}

func (on *offNode) offConversation(p peer.ID) Conversation {
	on.t.Helper()
	cs, err := on.store.Conversations()
	if err != nil {
		on.t.Fatal(err)
	}
	for _, c := range cs {
		if c.Peer == p {
			return c
		}
	}
	on.t.Fatalf("no conversation with %s", p)
	return Conversation{}
}

func (on *offNode) offCount(p peer.ID, id e2e.MessageID) int {
	n := 0
	for _, m := range on.offHistory(p) {
		if m.ID == id {
			n++
		}
	}
	return n
}

// offBundle is on's bundle with a fresh one-time prekey of each kind, as
// its relay hands it out.
func (on *offNode) offBundle() []byte {
	on.t.Helper()
	pub, err := on.newPrekeys(1)
	if err != nil || len(pub.ec) != 1 || len(pub.kem) != 1 {
		on.t.Fatalf("new prekeys: %v", err)
	}
	b := *pub.base
	b.OneTimePrekey, b.OneTimeKEM = &pub.ec[0], &pub.kem[0]
	enc, err := b.MarshalBinary()
	if err != nil {
		on.t.Fatal(err)
	}
	return enc
}

// offText is a new message from on to p (not stored at on).
func (on *offNode) offText(p peer.ID, body string) (Message, []byte) {
	on.t.Helper()
	m := Message{ID: e2e.NewMessageID(), Peer: p, SentAt: time.Now().Truncate(time.Millisecond), Body: body, Direction: Outgoing}
	err := on.store.db.Update(func(tx *bolt.Tx) error { // numbered as Send does
		c := getConv(tx, p)
		c.number(&m)
		return putConv(tx, c)
	})
	if err != nil {
		on.t.Fatal(err)
	}
	env, err := on.sealText(m)
	if err != nil {
		on.t.Fatalf("seal %q: %v", body, err)
	}
	return m, env
}

// offMail hands an envelope to on as its mailbox loop does after a fetch
// and reports whether it would be acknowledged (deleted at the relay).
func (on *offNode) offMail(from peer.ID, env []byte) bool {
	return on.receiveMail(mailbox.Item{ID: 1, From: from, Deposited: time.Now(), Envelope: env})
}

// offMeet starts a session from a to b from b's bundle (PQXDH) and
// delivers a first message each way through the mailbox path, so both
// hold a confirmed session and a's envelopes are normal ones.
func offMeet(t testing.TB, a, b *offNode) {
	t.Helper()
	if err := a.initiate(b.ID(), b.offBundle()); err != nil {
		t.Fatal(err)
	}
	m, env := a.offText(b.ID(), "hello from "+a.id.Name())
	if !b.offMail(a.ID(), env) || b.offCount(a.ID(), m.ID) != 1 {
		t.Fatalf("%s's first message was not stored", a.id.Name())
	}
	r, env := b.offText(a.ID(), "hello from "+b.id.Name())
	if !a.offMail(b.ID(), env) || a.offCount(b.ID(), r.ID) != 1 {
		t.Fatalf("%s's reply was not stored", b.id.Name())
	}
	b.offEvents(50 * time.Millisecond)
	a.offEvents(50 * time.Millisecond)
}

// offRefused checks that an envelope handed to on through the mailbox
// path is discarded (acknowledged) with an error event naming from and
// saying why, stores nothing and changes no ratchet state.
func (on *offNode) offRefused(what string, from peer.ID, env []byte, wantErr string) {
	on.t.Helper()
	before, sets := on.offRatchetRaw(), on.offSets()
	hist := map[peer.ID]int{}
	for p := range sets {
		hist[p] = len(on.offHistory(p))
	}
	if !on.offMail(from, env) {
		on.t.Errorf("%s: not acknowledged: it would stay at the relay forever", what)
	}
	e := on.offWait(what+": an error event", func(e Event) bool { return e.Kind == EventError || e.Kind == EventMessage })
	if e.Kind != EventError || e.PeerID != from || !strings.Contains(e.Err, wantErr) {
		on.t.Errorf("%s: event %s %q (peer %s), want an error from %s containing %q",
			what, e.Kind, e.Err, identity.ShortID(e.PeerID), identity.ShortID(from), wantErr)
	}
	for _, e := range on.offEvents(30 * time.Millisecond) {
		if e.Kind == EventMessage {
			on.t.Errorf("%s: a message event: %q", what, e.Message.Body)
		}
	}
	on.offSameState(what, before, sets)
	for p, n := range hist {
		if got := len(on.offHistory(p)); got != n {
			on.t.Errorf("%s: %d messages stored with %s, %d before", what, got, identity.ShortID(p), n)
		}
	}
}

// A failed open changes nothing: tampered envelopes, an envelope presented
// as coming from another sender, or re-addressed to another recipient,
// bytes that are no envelope at all. The state is byte-equal in chat.db,
// nothing is stored, an error event says why, and the real envelope still
// opens afterwards.
func TestOfflineFailedOpenChangesNothing(t *testing.T) {
	alice := offNewNode(t, "alice", nil, false)
	bob := offNewNode(t, "bob", nil, false)
	carol := offNewNode(t, "carol", nil, false)
	offMeet(t, alice, bob)
	offMeet(t, carol, bob)
	offMeet(t, alice, carol)

	m, env := alice.offText(bob.ID(), "the real one")
	flip := func(i int) []byte {
		c := bytes.Clone(env)
		c[i] ^= 0x01
		return c
	}
	bob.offRefused("payload tampered", alice.ID(), flip(len(env)-1), "authentication failed")
	bob.offRefused("header tampered", alice.ID(), flip(18+30), "authentication failed")
	bob.offRefused("session id tampered", alice.ID(), flip(10), "unknown session")
	bob.offRefused("type tampered", alice.ID(), flip(1), "malformed")
	bob.offRefused("truncated", alice.ID(), env[:100], "malformed")
	bob.offRefused("a relay claims carol sent alice's envelope", carol.ID(), env, "unknown session")
	carol.offRefused("alice's envelope for bob re-addressed to carol", alice.ID(), env, "unknown session")

	// A first-contact (PQXDH) envelope binds the sender's identity too:
	// claimed by carol it fails the signature check, and at carol (who
	// has prekeys with the same ids) it fails authentication.
	if err := alice.initiate(bob.ID(), bob.offBundle()); err != nil {
		t.Fatal(err)
	}
	m2, first := alice.offText(bob.ID(), "first contact of a new session")
	if id, initial, err := ratchet.PeekSessionID(first); err != nil || !initial {
		t.Fatalf("not an initial envelope (%v)", err)
	} else {
		t.Logf("new session %s", id)
	}
	bob.offRefused("an initial envelope claimed by carol", carol.ID(), first, "bad signature")
	// At carol the signature of alice's key verifies; the signed prekey id
	// exists there too (ids are counters), the one-time prekey id not yet.
	carol.offRefused("an initial envelope for bob re-addressed to carol", alice.ID(), first, "unknown prekey")
	dave := offNewNode(t, "dave", nil, false)
	dave.offRefused("an initial envelope for bob at a stranger", alice.ID(), first, "")

	for _, c := range []struct {
		m   Message
		env []byte
	}{{m, env}, {m2, first}} {
		if !bob.offMail(alice.ID(), c.env) {
			t.Fatal("the real envelope was not acknowledged")
		}
		bob.offWait("the real message after the failures", offIsMessage(c.m.ID))
		if n := bob.offCount(alice.ID(), c.m.ID); n != 1 {
			t.Fatalf("%q stored %d times", c.m.Body, n)
		}
	}
}

// offSealDropped seals n envelopes for p and throws them away, as a
// mailbox that drops them would: the sender's chain moves on n messages.
func (on *offNode) offSealDropped(p peer.ID, n int) {
	on.t.Helper()
	on.rk.mu.Lock()
	defer on.rk.mu.Unlock()
	set, err := on.setFor(p)
	if err != nil {
		on.t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if _, set, err = set.Seal([]byte("dropped"), on.cfg.Now()); err != nil {
			on.t.Fatal(err)
		}
	}
	if err := on.commitSet(p, set, nil, nil); err != nil {
		on.t.Fatal(err)
	}
}

// More than MAX_SKIP envelopes lost in a row (a mailbox dropped them): the
// next one is refused with ErrTooManySkipped before any key is derived,
// nothing changes, the user sees an error event. Afterwards every
// envelope of that sending chain is refused too, and so is the sender's
// next chain (its header says the previous chain was longer than the
// receiver can skip): that direction of the session is dead until a new
// session replaces it. The other direction works.
func TestOfflineTooManySkipped(t *testing.T) {
	alice := offNewNode(t, "alice", nil, false)
	bob := offNewNode(t, "bob", nil, false)
	offMeet(t, alice, bob)

	alice.offSealDropped(bob.ID(), ratchet.MaxSkip+1)
	m1, env1 := alice.offText(bob.ID(), "after 1001 lost envelopes")
	bob.offRefused("a gap of MAX_SKIP+1", alice.ID(), env1, "too many skipped")
	_, env2 := alice.offText(bob.ID(), "the next one")
	bob.offRefused("the envelope after it", alice.ID(), env2, "too many skipped")

	// Bob can still write to alice; alice's answer starts a new chain
	// whose header carries the length of the previous one.
	r, renv := bob.offText(alice.ID(), "bob still writes")
	if !alice.offMail(bob.ID(), renv) || alice.offCount(bob.ID(), r.ID) != 1 {
		t.Fatal("bob's message to alice was lost")
	}
	_, env3 := alice.offText(bob.ID(), "on alice's next chain")
	bob.offRefused("alice's next chain", alice.ID(), env3, "too many skipped")

	// What heals it: a new session (here bob meets alice again from her
	// bundle; it is newer, so it becomes the active one at both ends).
	if err := bob.initiate(alice.ID(), alice.offBundle()); err != nil {
		t.Fatal(err)
	}
	r2, renv2 := bob.offText(alice.ID(), "a new session")
	if !alice.offMail(bob.ID(), renv2) || alice.offCount(bob.ID(), r2.ID) != 1 {
		t.Fatal("bob's new session did not reach alice")
	}
	m4, env4 := alice.offText(bob.ID(), "alice on the new session")
	if !bob.offMail(alice.ID(), env4) || bob.offCount(alice.ID(), m4.ID) != 1 {
		t.Fatal("alice's message on the new session was not stored")
	}
	if bob.offCount(alice.ID(), m1.ID) != 0 {
		t.Fatal("a refused message was stored")
	}
}

// Reordered and delayed envelopes open within the window, each message
// once. The ratchet reports gaps in envelopes (Info.Skipped, Info.Missing);
// the node reports gaps in messages, from the sender's numbering: each
// stored message says whether it came late and how many earlier ones are
// still missing, and so does the conversation. The two differ when a
// message is resent in a new envelope after its first one was lost: the
// ratchet's gap never closes, the user's does.
func TestOfflineReorderedAndDelayed(t *testing.T) {
	alice := offNewNode(t, "alice", nil, false)
	bob := offNewNode(t, "bob", nil, false)
	offMeet(t, alice, bob)

	var ms []Message
	var envs [][]byte
	for i := 1; i <= 5; i++ {
		m, env := alice.offText(bob.ID(), fmt.Sprintf("message %d", i))
		ms, envs = append(ms, m), append(envs, env)
	}
	type want struct {
		i                int
		late             bool
		skipped, missing int
	}
	for _, w := range []want{{0, false, 0, 0}, {3, false, 2, 2}, {4, false, 0, 2}, {2, true, 0, 1}, {1, true, 0, 0}} {
		res, err := bob.open(alice.ID(), envs[w.i])
		if err != nil {
			t.Fatalf("message %d: %v", w.i+1, err)
		}
		bob.delivered(alice.ID(), res, nil)
		if res.info.Late != w.late || res.info.Skipped != w.skipped || res.info.Missing != w.missing {
			t.Errorf("message %d: late %v, skipped %d, missing %d; want %v, %d, %d", w.i+1,
				res.info.Late, res.info.Skipped, res.info.Missing, w.late, w.skipped, w.missing)
		}
		got := bob.offWait(ms[w.i].Body, offIsMessage(ms[w.i].ID))
		if got.Message.Late != w.late || got.Message.Missing != w.missing || got.Message.Number != ms[w.i].Number {
			t.Errorf("message %d event: late %v, missing %d, number %d; want %v, %d, %d", w.i+1,
				got.Message.Late, got.Message.Missing, got.Message.Number, w.late, w.missing, ms[w.i].Number)
		}
		if c := bob.offConversation(alice.ID()); c.Missing != w.missing {
			t.Errorf("after message %d the conversation misses %d, want %d", w.i+1, c.Missing, w.missing)
		}
	}
	for i, env := range envs {
		before, sets := bob.offRatchetRaw(), bob.offSets()
		if _, err := bob.open(alice.ID(), env); !errors.Is(err, ratchet.ErrDuplicate) {
			t.Fatalf("message %d again: %v, want ErrDuplicate", i+1, err)
		}
		bob.offSameState("a duplicate", before, sets)
	}
	hist := bob.offHistory(alice.ID())
	var order []string
	for _, m := range hist[1:] { // after offMeet's greeting
		order = append(order, strings.TrimPrefix(m.Body, "message "))
	}
	if strings.Join(order, ",") != "1,4,5,3,2" {
		t.Fatalf("history order %v", order)
	}
	t.Log("history is in arrival order (1,4,5,3,2); SentAt keeps the sender's order")

	// A message whose first envelope was lost and which is sealed again
	// (every retry seals anew): it arrives, nothing is missing for the
	// user, yet the ratchet keeps counting a missing envelope.
	m6, _ := alice.offText(bob.ID(), "resent")
	if _, err := alice.sealText(m6); err != nil { // lost
		t.Fatal(err)
	}
	env6, err := alice.sealText(m6) // the retry
	if err != nil {
		t.Fatal(err)
	}
	res, err := bob.open(alice.ID(), env6)
	if err != nil || res.text == nil || res.text.ID != m6.ID {
		t.Fatalf("the resent message: %v", err)
	}
	if res.info.Missing != 2 {
		t.Fatalf("ratchet: missing %d after the resent message, want 2", res.info.Missing)
	}
	if res.text.Missing != 0 || res.text.Late {
		t.Fatalf("node: missing %d, late %v after the resent message, want 0, false", res.text.Missing, res.text.Late)
	}
	t.Logf("every message delivered: the ratchet reports %d envelopes missing, the node none", res.info.Missing)
}

// The same envelope twice through the mailbox (a relay that duplicates,
// or the sender depositing again after a lost answer): one message event,
// one stored message, the second copy acknowledged silently with no state
// change.
func TestOfflineDuplicateMail(t *testing.T) {
	alice := offNewNode(t, "alice", nil, false)
	bob := offNewNode(t, "bob", nil, false)
	offMeet(t, alice, bob)
	m, env := alice.offText(bob.ID(), "once")
	if !bob.offMail(alice.ID(), env) {
		t.Fatal("not acknowledged")
	}
	bob.offWait("the message", offIsMessage(m.ID))
	before, sets := bob.offRatchetRaw(), bob.offSets()
	if !bob.offMail(alice.ID(), env) {
		t.Fatal("the duplicate was not acknowledged: it would stay at the relay")
	}
	for _, e := range bob.offEvents(100 * time.Millisecond) {
		if e.Kind == EventMessage || e.Kind == EventError {
			t.Fatalf("the duplicate caused a %s event (%q)", e.Kind, e.Err)
		}
	}
	bob.offSameState("a duplicate through the mailbox", before, sets)
	if n := bob.offCount(alice.ID(), m.ID); n != 1 {
		t.Fatalf("stored %d times", n)
	}
}

// A replayed first-contact (PQXDH) message: while its session exists it
// is a duplicate (silent); once the session is gone (five newer ones
// pushed it out) the replay record refuses it (ErrReplay). A one-time
// prekey handed out twice: the second sender's first contact is refused
// (ErrReplay); that sender recovers only with a new session from a fresh
// bundle, which the node does not do by itself (see the report).
func TestOfflineReplayedFirstContact(t *testing.T) {
	alice := offNewNode(t, "alice", nil, false)
	bob := offNewNode(t, "bob", nil, false)
	carol := offNewNode(t, "carol", nil, false)

	bundle := bob.offBundle()
	if err := alice.initiate(bob.ID(), bundle); err != nil {
		t.Fatal(err)
	}
	m0, first := alice.offText(bob.ID(), "first contact")
	if !bob.offMail(alice.ID(), first) {
		t.Fatal("not acknowledged")
	}
	bob.offWait("the first message", offIsMessage(m0.ID))
	before, sets := bob.offRatchetRaw(), bob.offSets()
	if !bob.offMail(alice.ID(), first) {
		t.Fatal("the replay was not acknowledged")
	}
	for _, e := range bob.offEvents(100 * time.Millisecond) {
		if e.Kind == EventMessage || e.Kind == EventError {
			t.Fatalf("the replay of a live session's first message caused a %s event", e.Kind)
		}
	}
	bob.offSameState("a replayed first message", before, sets)

	// The one-time prekey alice used, handed to carol as well.
	if err := carol.initiate(bob.ID(), bundle); err != nil {
		t.Fatal(err)
	}
	mc, cfirst := carol.offText(bob.ID(), "carol with a reused one-time prekey")
	bob.offRefused("a reused one-time prekey", carol.ID(), cfirst, "replayed")
	_, cnext := carol.offText(bob.ID(), "carol again, same session")
	bob.offRefused("carol's next envelope on the refused session", carol.ID(), cnext, "replayed")
	if err := carol.initiate(bob.ID(), bob.offBundle()); err != nil {
		t.Fatal(err)
	}
	mc2, cfresh := carol.offText(bob.ID(), "carol from a fresh bundle")
	if !bob.offMail(carol.ID(), cfresh) || bob.offCount(carol.ID(), mc2.ID) != 1 || bob.offCount(carol.ID(), mc.ID) != 0 {
		t.Fatal("carol's first contact from a fresh bundle")
	}

	// Five newer sessions push alice's first one out of bob's set.
	sid, _, _ := ratchet.PeekSessionID(first)
	for i := 0; i < ratchet.MaxSessionsPerPeer; i++ {
		time.Sleep(2 * time.Millisecond)
		if err := alice.initiate(bob.ID(), bob.offBundle()); err != nil {
			t.Fatal(err)
		}
		_, env := alice.offText(bob.ID(), fmt.Sprintf("session %d", i+2))
		if !bob.offMail(alice.ID(), env) {
			t.Fatal("not acknowledged")
		}
	}
	bob.offEvents(100 * time.Millisecond)
	bob.rk.mu.Lock()
	set, _ := bob.setFor(alice.ID())
	gone := !slices.Contains(set.Sessions(), sid)
	bob.rk.mu.Unlock()
	if !gone {
		t.Fatal("alice's first session is still in bob's set")
	}
	bob.offRefused("a replayed first message after its session was dropped", alice.ID(), first, "replayed")
	if n := bob.offCount(alice.ID(), m0.ID); n != 1 {
		t.Fatalf("the first message stored %d times", n)
	}
}

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
	m := Message{ID: e2e.NewMessageID(), Peer: bob.ID(), SentAt: time.Now(), Body: "while the relay is away"}
	if err := alice.store.AddOutgoing(&m); err != nil {
		t.Fatal(err)
	}
	if err := alice.queueAtRelay(bob.ID(), []Message{m}); err == nil {
		t.Fatal("a deposit at an unreachable relay succeeded")
	}
	after1 := alice.offRatchetRaw()
	for i := 0; i < 5; i++ {
		err := alice.queueAtRelay(bob.ID(), []Message{m})
		if err == nil {
			t.Fatal("a deposit at an unreachable relay succeeded")
		}
		if i == 0 {
			t.Logf("the deposit fails with: %v", err)
		}
	}
	alice.offSameState("five more failed deposits", after1, nil)
	if got, _ := alice.store.Message(m.ID); got.Status != StatusSending {
		t.Fatalf("status %s after failed deposits, want sending", got.Status)
	}
	// The peer sees one lost envelope (the one never deposited), not six.
	next, env := alice.offText(bob.ID(), "the next message")
	res, err := bob.open(alice.ID(), env)
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
		if err := x[0].TrustPeer(x[1].ID(), false); err != nil {
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
			return e.Kind == EventStatus && e.Message.ID == m.ID && e.Message.Status == StatusDelivered
		})
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
		x.mu.Lock()
		defer x.mu.Unlock()
		ps := x.peers[y.ID()]
		if ps == nil {
			return 0
		}
		for _, cs := range ps.sessions {
			if cs.conn.Stat().Limited {
				return -1
			}
		}
		return len(ps.sessions)
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
				x[0].mu.Lock()
				if ps := x[0].peers[x[1].ID()]; ps != nil {
					for _, cs := range ps.sessions {
						desc = append(desc, fmt.Sprintf("%s: outgoing %v limited %v %s", x[0].id.Name(), cs.outgoing, cs.conn.Stat().Limited, cs.conn.RemoteMultiaddr()))
					}
				}
				x[0].mu.Unlock()
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

	acs, bcs := alice.liveSession(bob.ID()), bob.liveSession(alice.ID())
	if acs == nil || bcs == nil {
		t.Fatal("no live session")
	}
	alice.mu.Lock()
	sessions := len(alice.peers[bob.ID()].sessions)
	alice.mu.Unlock()
	if sessions != 1 {
		t.Fatalf("%d live sessions: the two ends of the seed would not be one TLS session", sessions)
	}
	server, client, scs, ccs := bob, alice, bcs, acs
	if acs.outgoing == bcs.outgoing {
		t.Fatal("both ends of one session are clients")
	}
	if !acs.outgoing {
		server, client, scs, ccs = alice, bob, acs, bcs
	}
	offer, err := server.seedResponder(scs)
	if err != nil {
		t.Fatal(err)
	}
	if err := client.seedInitiator(ccs, offer); err != nil {
		t.Fatal(err)
	}
	// The client's confirming envelope is never sent: cut the connection.
	if server.hasSession(client.ID()) {
		t.Error("a seeded session that cannot send counts as a session to send on")
	}
	server.closeSessions(client.ID(), "test: the confirmation is lost")
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
		items, err := on.mailboxClient().Fetch(on.ctx, relay, mailbox.MaxFetch)
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
		if err := alice.liveSession(bob.ID()).s.Send(e2e.FrameEnvelope, env); err != nil {
			t.Fatal(err)
		}
		bob.offWait("the live copy", offIsMessage(m.ID))
		time.Sleep(50 * time.Millisecond)
		before, sets := bob.offRatchetRaw(), bob.offSets()
		if _, err := alice.mailboxClient().Deposit(ctx, relayID, bob.ID(), env); err != nil {
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
		if _, err := alice.mailboxClient().Deposit(ctx, relayID, bob.ID(), env); err != nil {
			t.Fatal(err)
		}
		bob.offWait("the mailbox copy", offIsMessage(m.ID))
		bob.offMailboxEmpty(relayID)
		time.Sleep(50 * time.Millisecond)
		before, sets := bob.offRatchetRaw(), bob.offSets()
		dups := bob.logs.count("duplicate envelope dropped")
		if err := alice.liveSession(bob.ID()).s.Send(e2e.FrameEnvelope, env); err != nil {
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
		if err := alice.liveSession(bob.ID()).s.Send(e2e.FrameEnvelope, bad); err != nil {
			t.Fatal(err)
		}
		e := bob.offWait("an error event", func(e Event) bool { return e.Kind == EventError || e.Kind == EventMessage })
		if e.Kind != EventError || e.PeerID != alice.ID() || !strings.Contains(e.Err, "authentication failed") {
			t.Fatalf("event %s %q", e.Kind, e.Err)
		}
		bob.offSameState("a tampered live envelope", before, sets)
		if err := alice.liveSession(bob.ID()).s.Send(e2e.FrameEnvelope, env); err != nil {
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
			if _, err := alice.mailboxClient().Deposit(ctx, relayID, bob.ID(), c.bytes); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range cases {
			e := bob.offWait(c.what, func(e Event) bool { return e.Kind == EventError || e.Kind == EventMessage })
			if e.Kind != EventError || e.PeerID != alice.ID() || !strings.Contains(e.Err, c.want) {
				t.Errorf("%s: event %s %q, want an error with %q", c.what, e.Kind, e.Err, c.want)
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
		set, _ := bob.setFor(alice.ID())
		secret := make([]byte, 32)
		rand.Read(secret)
		_, next, err := set.SeedResponder(secret, time.Now().Add(time.Second))
		if err == nil {
			err = bob.commitSet(alice.ID(), next, nil, nil)
		}
		bob.rk.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		m := Message{ID: e2e.NewMessageID(), Peer: alice.ID(), SentAt: time.Now(), Body: "deposited after a new first contact"}
		if err := bob.store.AddOutgoing(&m); err != nil {
			t.Fatal(err)
		}
		if err := bob.queueAtRelay(alice.ID(), []Message{m}); err != nil {
			t.Fatalf("queue at the relay: %v", err)
		}
		if got, _ := bob.store.Message(m.ID); got.Status == StatusSending {
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
	if err := bob.Block(alice.ID()); err != nil {
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
