package store_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Store tests: the message database on its own, without a store.

func storeKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func openStore(t testing.TB, path string, key []byte) *store.Store {
	t.Helper()
	s, err := store.Open(path, key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// randomPeer is a valid Ed25519 peer ID with no node behind it.
func randomPeer(t testing.TB) peer.ID {
	t.Helper()
	id, err := identity.Generate("p", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return id.PeerID()
}

// base is a fixed clock start, so orderings by time are deterministic.
var base = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func outgoing(t testing.TB, s *store.Store, p peer.ID, body string, at time.Time) store.Message {
	t.Helper()
	m := store.Message{ID: e2e.NewMessageID(), Peer: p, SentAt: at, StoredAt: at, Body: body}
	if err := s.AddOutgoing(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func incoming(t testing.TB, s *store.Store, p peer.ID, body string, at time.Time) store.Message {
	t.Helper()
	m := store.Message{ID: e2e.NewMessageID(), Peer: p, SentAt: at, StoredAt: at, Body: body}
	isNew, err := s.AddIncoming(&m)
	if err != nil || !isNew {
		t.Fatalf("AddIncoming: new %v, err %v", isNew, err)
	}
	return m
}

func bodies(ms []store.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Body
	}
	return out
}

func TestStoreBodiesEncryptedAtRest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chat.db")
	s, err := store.Open(path, storeKey(t))
	if err != nil {
		t.Fatal(err)
	}
	p := randomPeer(t)
	const out = "ZEBRA-outgoing-plaintext-7f3a"
	const in = "QUOKKA-incoming-plaintext-91bc"
	const name = "WOMBAT-contact-name-5c2e"
	const addr = "/ip4/198.51.100.77/tcp/4001"
	m := outgoing(t, s, p, out, base)
	incoming(t, s, p, in, base.Add(time.Second))
	if _, _, err := s.SetStatus(m.ID, p, store.StatusFailed, "PLATYPUS-failure-reason", base); err != nil {
		t.Fatal(err)
	}
	if err := s.PutPeer(p, store.PeerRecord{Name: name, Addrs: []string{addr}, LastSeen: base}); err != nil {
		t.Fatal(err)
	}
	// Reading back works: the store decrypts.
	h, err := s.History(p, 0, 10)
	if err != nil || !slices.Equal(bodies(h), []string{out, in}) {
		t.Fatalf("history %q, err %v", bodies(h), err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Bodies, names, addresses, failure reasons, and the metadata of
	// messages and conversations (their JSON field names would show).
	for _, secret := range []string{out, in, "ZEBRA", "QUOKKA", name, "WOMBAT", addr, "198.51.100.77", "PLATYPUS",
		`"status"`, `"failed"`, `"sent"`, `"unread"`, `"last_seq"`, `"last_seen"`, `"recv"`, `"dir"`} {
		if bytes.Contains(bytes.ToLower(raw), bytes.ToLower([]byte(secret))) {
			t.Errorf("chat.db contains %q", secret)
		}
	}
	// The check is not vacuous: the peer ID, stored in the clear as a key,
	// is found by the same scan.
	if !bytes.Contains(raw, []byte(p)) {
		t.Fatal("the scan does not find what is stored in the clear; the test proves nothing")
	}
}

func TestStoreWrongKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chat.db")
	s, err := store.Open(path, storeKey(t))
	if err != nil {
		t.Fatal(err)
	}
	outgoing(t, s, randomPeer(t), "hello", base)
	s.Close()
	if _, err := store.Open(path, storeKey(t)); !errors.Is(err, store.ErrWrongKey) {
		t.Fatalf("open with another key: %v, want ErrWrongDatabaseKey", err)
	}
}

func TestStoreBusy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chat.db")
	key := storeKey(t)
	s := openStore(t, path, key)
	start := time.Now()
	_, err := store.Open(path, key)
	if !errors.Is(err, store.ErrBusy) {
		t.Fatalf("second open: %v, want ErrDatabaseBusy", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("second open took %v: it should give up quickly", d)
	}
	s.Close()
	// Once the first one closed, the database opens again.
	s2, err := store.Open(path, key)
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	s2.Close()
}

func TestStoreAddIncomingDedupe(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "chat.db"), storeKey(t))
	alice, bob := randomPeer(t), randomPeer(t)
	id := e2e.NewMessageID()
	first := store.Message{ID: id, Peer: alice, SentAt: base, StoredAt: base, Body: "original"}
	isNew, err := s.AddIncoming(&first)
	if err != nil || !isNew {
		t.Fatalf("first: new %v err %v", isNew, err)
	}
	if first.Seq == 0 || first.Direction != store.Incoming || first.Status != store.StatusReceived {
		t.Fatalf("stored as %+v", first)
	}
	tests := []struct {
		name    string
		peer    peer.ID
		body    string
		wantNew bool
		wantErr bool
	}{
		{"same peer, same id", alice, "original", false, false},
		{"same peer, same id, other body", alice, "a retry must not replace the text", false, false},
		{"another peer reuses the id", bob, "forged", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := store.Message{ID: id, Peer: tc.peer, SentAt: base, StoredAt: base, Body: tc.body}
			isNew, err := s.AddIncoming(&m)
			if isNew != tc.wantNew || (err != nil) != tc.wantErr {
				t.Fatalf("new %v err %v; want new %v, error %v", isNew, err, tc.wantNew, tc.wantErr)
			}
		})
	}
	h, _ := s.History(alice, 0, 10)
	if len(h) != 1 || h[0].Body != "original" {
		t.Fatalf("alice's conversation: %q", bodies(h))
	}
	if h, _ := s.History(bob, 0, 10); len(h) != 0 {
		t.Fatalf("bob's conversation got the reused id: %q", bodies(h))
	}
	convs, _ := s.Conversations()
	if len(convs) != 1 || convs[0].Unread != 1 || convs[0].Messages != 1 {
		t.Fatalf("conversations after duplicates: %+v", convs)
	}
	// An ID we used for an outgoing message is not a new incoming one
	// from another peer either.
	out := outgoing(t, s, alice, "mine", base)
	m := store.Message{ID: out.ID, Peer: bob, SentAt: base, StoredAt: base, Body: "x"}
	if isNew, err := s.AddIncoming(&m); isNew || err == nil {
		t.Fatalf("incoming from bob with alice's outgoing id: new %v err %v", isNew, err)
	}
}

func TestStoreSetStatus(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "chat.db"), storeKey(t))
	alice, bob := randomPeer(t), randomPeer(t)
	m := outgoing(t, s, alice, "hi", base)
	if m.Status != store.StatusSending {
		t.Fatalf("new outgoing status %q", m.Status)
	}
	later := base.Add(time.Minute)
	steps := []struct {
		name        string
		from        peer.ID
		status      store.Status
		wantChanged bool
		wantErr     bool
		wantStatus  store.Status
		wantOutbox  int
	}{
		{"sent", alice, store.StatusSent, true, false, store.StatusSent, 1},
		{"sent again", alice, store.StatusSent, false, false, store.StatusSent, 1},
		{"receipt from another peer", bob, store.StatusDelivered, false, true, store.StatusSent, 1},
		{"delivered", alice, store.StatusDelivered, true, false, store.StatusDelivered, 0},
		{"delivered twice", alice, store.StatusDelivered, false, false, store.StatusDelivered, 0},
		{"sent after delivered", alice, store.StatusSent, false, false, store.StatusDelivered, 0},
		{"failed after delivered", alice, store.StatusFailed, false, false, store.StatusDelivered, 0},
	}
	for _, st := range steps {
		got, changed, err := s.SetStatus(m.ID, st.from, st.status, "", later)
		if changed != st.wantChanged || (err != nil) != st.wantErr {
			t.Fatalf("%s: changed %v err %v; want changed %v, error %v", st.name, changed, err, st.wantChanged, st.wantErr)
		}
		stored, err := s.Message(m.ID)
		if err != nil || stored.Status != st.wantStatus {
			t.Fatalf("%s: stored status %q err %v, want %q", st.name, stored.Status, err, st.wantStatus)
		}
		if st.wantErr {
			continue
		}
		if got.Status != st.wantStatus || got.Body != "hi" {
			t.Fatalf("%s: returned %+v", st.name, got)
		}
		if ob, _ := s.Outbox(alice); len(ob) != st.wantOutbox {
			t.Fatalf("%s: outbox has %d, want %d", st.name, len(ob), st.wantOutbox)
		}
	}
	final, _ := s.Message(m.ID)
	if !final.Delivered.Equal(later.Truncate(time.Millisecond)) {
		t.Fatalf("delivered at %v, want %v (the first receipt's time)", final.Delivered, later)
	}
	// Incoming messages have no delivery status to change.
	in := incoming(t, s, alice, "yo", base)
	if _, changed, err := s.SetStatus(in.ID, alice, store.StatusDelivered, "", later); changed || err != nil {
		t.Fatalf("status of an incoming message: changed %v err %v", changed, err)
	}
	// Unknown IDs are an error.
	if _, _, err := s.SetStatus(e2e.NewMessageID(), alice, store.StatusDelivered, "", later); err == nil {
		t.Fatal("status of an unknown message: no error")
	}
	// Failed leaves the outbox too, with its reason.
	f := outgoing(t, s, alice, "doomed", base)
	got, changed, err := s.SetStatus(f.ID, alice, store.StatusFailed, "too long", later)
	if !changed || err != nil || got.Error != "too long" {
		t.Fatalf("failed: %+v changed %v err %v", got, changed, err)
	}
	if ob, _ := s.Outbox(alice); len(ob) != 0 {
		t.Fatalf("a failed message stays in the outbox: %q", bodies(ob))
	}
	// A "sent" recorded late (a second after the write) does not undo the
	// failure decided meanwhile; a receipt does.
	if got, changed, err := s.SetStatus(f.ID, alice, store.StatusSent, "", later); changed || err != nil || got.Status != store.StatusFailed {
		t.Fatalf("sent after failed: %s, changed %v, %v; want failed, unchanged", got.Status, changed, err)
	}
	if got, changed, err := s.SetStatus(f.ID, alice, store.StatusDelivered, "", later); !changed || err != nil || got.Status != store.StatusDelivered {
		t.Fatalf("delivered after failed: %s, changed %v, %v", got.Status, changed, err)
	}
}

func TestStoreHistoryPages(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "chat.db"), storeKey(t))
	alice, bob := randomPeer(t), randomPeer(t)
	var want []string
	for i := range 25 {
		body := fmt.Sprintf("m%02d", i)
		if i%3 == 0 {
			incoming(t, s, alice, body, base.Add(time.Duration(i)*time.Second))
		} else {
			outgoing(t, s, alice, body, base.Add(time.Duration(i)*time.Second))
		}
		want = append(want, body)
		outgoing(t, s, bob, "noise", base) // another conversation interleaved
	}
	// Walk back from the newest, 10 at a time.
	var got []string
	var before uint64
	for pages := 0; ; pages++ {
		page, err := s.History(alice, before, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			if pages != 3 {
				t.Fatalf("%d pages, want 3", pages)
			}
			break
		}
		for i := 1; i < len(page); i++ {
			if page[i].Seq <= page[i-1].Seq {
				t.Fatalf("page not oldest first: %v", bodies(page))
			}
		}
		got = append(bodies(page), got...)
		before = page[0].Seq
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paged history\n got %q\nwant %q", got, want)
	}
	tests := []struct {
		name   string
		before uint64
		limit  int
		want   []string
	}{
		{"newest 3", 0, 3, want[22:]},
		{"all", 0, 100, want},
		{"before the 5th", 5, 10, want[:4]},
		{"before the first", 1, 10, nil},
		{"before a cursor past the end", 1000, 2, want[23:]},
		{"zero limit", 0, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			page, err := s.History(alice, tc.before, tc.limit)
			if err != nil || !slices.Equal(bodies(page), tc.want) {
				t.Fatalf("History(before %d, limit %d) = %q, %v; want %q", tc.before, tc.limit, bodies(page), err, tc.want)
			}
		})
	}
	if h, err := s.History(randomPeer(t), 0, 10); err != nil || len(h) != 0 {
		t.Fatalf("history with a stranger: %v %v", h, err)
	}
}

func TestStoreOutbox(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "chat.db"), storeKey(t))
	peers := []peer.ID{randomPeer(t), randomPeer(t), randomPeer(t)}
	want := map[peer.ID][]string{}
	ids := map[peer.ID][]e2e.MessageID{}
	for i := range 30 {
		p := peers[i%2] // the third peer only receives incoming messages
		body := fmt.Sprintf("%d", i)
		m := outgoing(t, s, p, body, base)
		want[p] = append(want[p], body)
		ids[p] = append(ids[p], m.ID)
		incoming(t, s, peers[2], body, base)
	}
	for _, p := range peers {
		ob, err := s.Outbox(p)
		if err != nil || !slices.Equal(bodies(ob), want[p]) {
			t.Fatalf("outbox of %s: %q, %v; want %q", p, bodies(ob), err, want[p])
		}
	}
	op, err := s.OutboxPeers()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(op)
	wantPeers := []peer.ID{peers[0], peers[1]}
	slices.Sort(wantPeers)
	if !slices.Equal(op, wantPeers) {
		t.Fatalf("OutboxPeers %v, want %v", op, wantPeers)
	}
	// Delivering out of order keeps the rest in order.
	p := peers[0]
	for _, i := range []int{3, 0, 7} {
		if _, _, err := s.SetStatus(ids[p][i], p, store.StatusDelivered, "", base); err != nil {
			t.Fatal(err)
		}
	}
	var rest []string
	for i, b := range want[p] {
		if i != 0 && i != 3 && i != 7 {
			rest = append(rest, b)
		}
	}
	if ob, _ := s.Outbox(p); !slices.Equal(bodies(ob), rest) {
		t.Fatalf("outbox after some receipts: %q, want %q", bodies(ob), rest)
	}
	// Once everything is delivered, the peer leaves OutboxPeers.
	for _, id := range ids[p] {
		s.SetStatus(id, p, store.StatusDelivered, "", base)
	}
	if op, _ := s.OutboxPeers(); !slices.Equal(op, []peer.ID{peers[1]}) {
		t.Fatalf("OutboxPeers after delivering all of %s: %v", p, op)
	}
}

func TestStoreConversations(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "chat.db"), storeKey(t))
	alice, bob, carol := randomPeer(t), randomPeer(t), randomPeer(t)
	incoming(t, s, alice, "a1", base.Add(1*time.Minute))
	incoming(t, s, alice, "a2", base.Add(2*time.Minute))
	outgoing(t, s, alice, "a3", base.Add(3*time.Minute))
	outgoing(t, s, bob, "b1", base.Add(5*time.Minute))
	incoming(t, s, carol, "c1", base.Add(4*time.Minute))

	check := func(name string, want []store.Conversation) {
		t.Helper()
		got, err := s.Conversations()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d conversations, want %d", name, len(got), len(want))
		}
		for i := range want {
			g, w := got[i], want[i]
			if g.Peer != w.Peer || g.Unread != w.Unread || g.Messages != w.Messages || !g.Last.Equal(w.Last) {
				t.Fatalf("%s: conversation %d = %+v, want %+v", name, i, g, w)
			}
		}
	}
	check("initially", []store.Conversation{
		{Peer: bob, Last: base.Add(5 * time.Minute), Unread: 0, Messages: 1},
		{Peer: carol, Last: base.Add(4 * time.Minute), Unread: 1, Messages: 1},
		{Peer: alice, Last: base.Add(3 * time.Minute), Unread: 2, Messages: 3},
	})
	if err := s.MarkRead(alice); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkRead(alice); err != nil { // idempotent
		t.Fatal(err)
	}
	if err := s.MarkRead(randomPeer(t)); err != nil { // no conversation
		t.Fatal(err)
	}
	incoming(t, s, carol, "c2", base.Add(6*time.Minute))
	// (check also shows MarkRead of a stranger created no conversation.)
	check("after reading alice, carol writes", []store.Conversation{
		{Peer: carol, Last: base.Add(6 * time.Minute), Unread: 2, Messages: 2},
		{Peer: bob, Last: base.Add(5 * time.Minute), Unread: 0, Messages: 1},
		{Peer: alice, Last: base.Add(3 * time.Minute), Unread: 0, Messages: 3},
	})
}

func TestStoreSearch(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "chat.db"), storeKey(t))
	alice, bob := randomPeer(t), randomPeer(t)
	incoming(t, s, alice, "Lunch at noon?", base.Add(1*time.Minute))
	outgoing(t, s, alice, "yes, LUNCH sounds good", base.Add(2*time.Minute))
	incoming(t, s, bob, "dinner instead", base.Add(3*time.Minute))
	outgoing(t, s, bob, "no, lunch: it's cheaper", base.Add(4*time.Minute))
	incoming(t, s, bob, "Grüße aus MÜNCHEN", base.Add(5*time.Minute))
	tests := []struct {
		query string
		limit int
		want  []string
	}{
		{"lunch", 10, []string{"no, lunch: it's cheaper", "yes, LUNCH sounds good", "Lunch at noon?"}},
		{"LUNCH", 2, []string{"no, lunch: it's cheaper", "yes, LUNCH sounds good"}},
		{"dinner", 10, []string{"dinner instead"}},
		{"münchen", 10, []string{"Grüße aus MÜNCHEN"}},
		{"breakfast", 10, nil},
		{"", 2, []string{"Grüße aus MÜNCHEN", "no, lunch: it's cheaper"}},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			got, err := s.Search(tc.query, tc.limit)
			if err != nil || !slices.Equal(bodies(got), tc.want) {
				t.Fatalf("Search(%q, %d) = %q, %v; want %q", tc.query, tc.limit, bodies(got), err, tc.want)
			}
		})
	}
	// Results carry their conversation.
	got, _ := s.Search("dinner", 1)
	if len(got) != 1 || got[0].Peer != bob || got[0].Direction != store.Incoming {
		t.Fatalf("search result %+v", got)
	}
}

func TestStorePeers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chat.db")
	key := storeKey(t)
	s, err := store.Open(path, key)
	if err != nil {
		t.Fatal(err)
	}
	p := randomPeer(t)
	rec := store.PeerRecord{Name: "bob", Addrs: []string{"/ip4/127.0.0.1/tcp/4001"}, LastSeen: base, Intermediates: [][]byte{{1, 2}}}
	if err := s.PutPeer(p, rec); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openStore(t, path, key)
	got, ok, err := s.Peer(p)
	if err != nil || !ok || got.Name != "bob" || len(got.Intermediates) != 1 || !slices.Equal(got.Addrs, rec.Addrs) {
		t.Fatalf("peer record after reopening: %+v %v %v", got, ok, err)
	}
	if _, ok, _ := s.Peer(randomPeer(t)); ok {
		t.Fatal("record for a stranger")
	}
	all, _ := s.Peers()
	if len(all) != 1 || !strings.EqualFold(all[p].Name, "bob") {
		t.Fatalf("Peers %+v", all)
	}
}

// Outgoing messages are numbered 1, 2, 3 in one stream per conversation;
// incoming numbers are recorded with what they reveal. Both survive a
// reopen, and a duplicate changes nothing.
func TestStoreNumbering(t *testing.T) {
	path, key := filepath.Join(t.TempDir(), "chat.db"), storeKey(t)
	s := openStore(t, path, key)
	bob, carol := randomPeer(t), randomPeer(t)
	var streams []uint64
	for i, p := range []peer.ID{bob, bob, carol, bob} {
		m := outgoing(t, s, p, fmt.Sprint("to ", i), base)
		streams = append(streams, m.Stream)
		want := map[int]uint64{0: 1, 1: 2, 2: 1, 3: 3}[i]
		if m.Number != want || m.Stream == 0 {
			t.Fatalf("message %d numbered %d in stream %x, want %d", i, m.Number, m.Stream, want)
		}
	}
	if streams[0] != streams[1] || streams[0] == streams[2] {
		t.Fatalf("streams %x: one per conversation", streams)
	}
	in := func(n uint64) store.Message {
		m := store.Message{ID: e2e.NewMessageID(), Peer: bob, SentAt: base, StoredAt: base, Body: fmt.Sprint(n), Stream: 0xfeed, Number: n}
		if isNew, err := s.AddIncoming(&m); err != nil || !isNew {
			t.Fatalf("AddIncoming %d: %v %v", n, isNew, err)
		}
		return m
	}
	in(1)
	if m := in(4); m.Late || m.Missing != 2 {
		t.Fatalf("4 after 1: late %v missing %d", m.Late, m.Missing)
	}
	again := in(3)
	if isNew, err := s.AddIncoming(&again); isNew || err != nil {
		t.Fatalf("a duplicate: new %v, %v", isNew, err)
	}
	s.Close()

	s = openStore(t, path, key)
	if m := outgoing(t, s, bob, "after reopen", base); m.Number != 4 || m.Stream != streams[0] {
		t.Fatalf("after reopen numbered %d in %x", m.Number, m.Stream)
	}
	cs, err := s.Conversations()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.Peer == bob && c.Missing != 1 {
			t.Fatalf("bob's conversation misses %d, want 1", c.Missing)
		}
	}
	got, err := s.Message(again.ID)
	if err != nil || got.Body != "3" || !got.Late || got.Missing != 1 || got.Number != 3 || got.Stream != 0xfeed {
		t.Fatalf("stored %+v, %v", got, err)
	}
	if m := in(2); !m.Late || m.Missing != 0 {
		t.Fatalf("2 last: late %v missing %d", m.Late, m.Missing)
	}
}
