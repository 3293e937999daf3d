package node

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/e2e/ratchet"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/mailbox"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
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
	h, id := offHome(t, name)
	return offNodeAt(t, h, id, relays, start)
}

// offHome makes a home with an identity named name: a node started in
// it with offNodeAt can be closed and started again.
func offHome(t testing.TB, name string) (identity.Home, *identity.Identity) {
	t.Helper()
	h := identity.Home{Dir: t.TempDir()}
	id, err := h.Init(name, nil, identity.DefaultKDF, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return h, id
}

// offNodeAt is offNewNode in a home made already.
func offNodeAt(t testing.TB, h identity.Home, id *identity.Identity, relays []string, start bool) *offNode {
	t.Helper()
	return offNodeWith(t, h, id, relays, start, nil)
}

// offNewNodeWith is offNewNode with its configuration changed by tweak.
func offNewNodeWith(t testing.TB, name string, tweak func(*Config)) *offNode {
	t.Helper()
	h, id := offHome(t, name)
	return offNodeWith(t, h, id, nil, true, tweak)
}

func offNodeWith(t testing.TB, h identity.Home, id *identity.Identity, relays []string, start bool, tweak func(*Config)) *offNode {
	t.Helper()
	ts, err := h.TrustStore()
	if err != nil {
		t.Fatal(err)
	}
	logs := &offLog{}
	cfg := Config{Home: h, Identity: id, Trust: ts, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Relays: relays,
		RetryMin: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond, Logger: slog.New(logs)}
	if tweak != nil {
		tweak(&cfg)
	}
	n, err := New(cfg)
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

// offRatchetRaw is the ratchet state in chat.db, decrypted, by record:
// equal records before and after mean nothing was committed.
func (on *offNode) offRatchetRaw() map[string][]byte {
	on.t.Helper()
	out := map[string][]byte{}
	local, err := on.store.Ratchets().LocalKeys()
	if err != nil {
		on.t.Fatalf("no ratchet state in chat.db: %v", err)
	}
	out["local"] = local
	peers, err := on.store.Ratchets().RatchetPeers()
	if err != nil {
		on.t.Fatal(err)
	}
	for _, p := range peers {
		set, err := on.store.Ratchets().SessionSet(p)
		if err != nil {
			on.t.Errorf("ratchet state with %s: %v", identity.ShortID(p), err)
		}
		out["set/"+string(p)] = set
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

func (on *offNode) offHistory(p peer.ID) []store.Message {
	on.t.Helper()
	h, err := on.History(p, 0, 1000)
	if err != nil {
		on.t.Fatal(err)
	}
	return h
}

func (on *offNode) offConversation(p peer.ID) store.Conversation {
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
	return store.Conversation{}
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
	pub, err := on.rk.newPrekeys(1)
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
func (on *offNode) offText(p peer.ID, body string) (store.Message, []byte) {
	on.t.Helper()
	m := store.Message{ID: e2e.NewMessageID(), Peer: p, SentAt: time.Now().Truncate(time.Millisecond), Body: body, Direction: store.Outgoing}
	if err := on.store.Number(&m); err != nil { // numbered as Send does
		on.t.Fatal(err)
	}
	env, err := on.rk.sealText(m)
	if err != nil {
		on.t.Fatalf("seal %q: %v", body, err)
	}
	return m, env
}

// offMail hands an envelope to on as its mailbox loop does after a fetch
// and reports whether it would be acknowledged (deleted at the relay).
func (on *offNode) offMail(from peer.ID, env []byte) bool {
	return on.mail.receive(mailbox.Item{ID: 1, From: from, Deposited: time.Now(), Envelope: env})
}

// offMeet starts a session from a to b from b's bundle (PQXDH) and
// delivers a first message each way through the mailbox path, so both
// hold a confirmed session and a's envelopes are normal ones.
func offMeet(t testing.TB, a, b *offNode) {
	t.Helper()
	if err := a.rk.initiate(b.ID(), b.offBundle()); err != nil {
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
