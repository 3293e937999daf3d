package node

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e/ratchet"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Offline delivery, the receiving node (helpers in offline_internal_test.go):
// tampered, lost, reordered, duplicated and replayed envelopes.

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
	bob.offRefused("session id tampered", alice.ID(), flip(10), "sealed for a session this node does not hold")
	bob.offRefused("type tampered", alice.ID(), flip(1), "malformed")
	bob.offRefused("truncated", alice.ID(), env[:100], "malformed")
	bob.offRefused("a relay claims carol sent alice's envelope", carol.ID(), env, "sealed for a session this node does not hold")
	carol.offRefused("alice's envelope for bob re-addressed to carol", alice.ID(), env, "sealed for a session this node does not hold")

	// A first-contact (PQXDH) envelope binds the sender's identity too:
	// claimed by carol it fails the signature check, and at carol (who
	// has prekeys with the same ids) it fails authentication.
	if err := alice.rk.initiate(bob.ID(), bob.offBundle()); err != nil {
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
		m   store.Message
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
	set, err := on.rk.setFor(p)
	if err != nil {
		on.t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if _, set, err = set.Seal([]byte("dropped"), on.cfg.Now()); err != nil {
			on.t.Fatal(err)
		}
	}
	if err := on.rk.commitSet(p, set); err != nil {
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
	if err := bob.rk.initiate(alice.ID(), alice.offBundle()); err != nil {
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

	var ms []store.Message
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
		res, err := bob.rk.open(alice.ID(), envs[w.i])
		if err != nil {
			t.Fatalf("message %d: %v", w.i+1, err)
		}
		bob.sessions.delivered(alice.ID(), res, nil)
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
		if _, err := bob.rk.open(alice.ID(), env); !errors.Is(err, ratchet.ErrDuplicate) {
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
	if _, err := alice.rk.sealText(m6); err != nil { // lost
		t.Fatal(err)
	}
	env6, err := alice.rk.sealText(m6) // the retry
	if err != nil {
		t.Fatal(err)
	}
	res, err := bob.rk.open(alice.ID(), env6)
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
	if err := alice.rk.initiate(bob.ID(), bundle); err != nil {
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
	if err := carol.rk.initiate(bob.ID(), bundle); err != nil {
		t.Fatal(err)
	}
	mc, cfirst := carol.offText(bob.ID(), "carol with a reused one-time prekey")
	bob.offRefused("a reused one-time prekey", carol.ID(), cfirst, "replayed")
	_, cnext := carol.offText(bob.ID(), "carol again, same session")
	bob.offRefused("carol's next envelope on the refused session", carol.ID(), cnext, "replayed")
	if err := carol.rk.initiate(bob.ID(), bob.offBundle()); err != nil {
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
		if err := alice.rk.initiate(bob.ID(), bob.offBundle()); err != nil {
			t.Fatal(err)
		}
		_, env := alice.offText(bob.ID(), fmt.Sprintf("session %d", i+2))
		if !bob.offMail(alice.ID(), env) {
			t.Fatal("not acknowledged")
		}
	}
	bob.offEvents(100 * time.Millisecond)
	bob.rk.mu.Lock()
	set, _ := bob.rk.setFor(alice.ID())
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
