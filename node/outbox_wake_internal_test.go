package node

import (
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A receipt wakes a member's worker only when the worker holds messages
// back because its send window is full; otherwise there is nothing the
// receipt lets it write. A round that finds itself held after a receipt
// came (and saw it not held) wakes itself.
func TestOutboxReceiptWakesOnlyToWrite(t *testing.T) {
	o := &outbox{workers: map[peer.ID]*outboxWorker{}}
	p := peer.ID("member")
	w := readWorker(o, p)
	woken := func() bool {
		select {
		case <-w.kick:
			return true
		default:
			return false
		}
	}
	msg := func(id byte) store.Message { return store.Message{ID: e2e.MessageID{id}, Peer: p} }
	cs := &chatSession{peer: p, sent: map[e2e.MessageID]time.Time{}}
	w.pending = []store.Message{msg(1), msg(2), msg(3)}

	o.acked(p, []e2e.MessageID{{1}})
	if woken() {
		t.Fatal("a receipt woke a worker that holds nothing back")
	}
	_, acks, _ := o.outbox(p, nil)
	o.wrote(cs, nil, true, acks)
	if woken() {
		t.Fatal("holding woke the worker with no receipt since its read")
	}
	o.acked(p, []e2e.MessageID{{2}})
	if !woken() {
		t.Fatal("a receipt did not wake a worker held by its send window")
	}
	if w.held {
		t.Fatal("the worker is still marked held after the wake-up")
	}

	// A receipt between the worker's read and its deciding it is held.
	_, acks, _ = o.outbox(p, nil)
	o.acked(p, []e2e.MessageID{{3}}) // not held yet: no wake-up
	if woken() {
		t.Fatal("a receipt woke a worker not held")
	}
	o.wrote(cs, nil, true, acks)
	if !woken() {
		t.Fatal("a worker held after a receipt it missed did not wake")
	}
}

// Group messages sent one after another to a live member cost its worker
// one round each (the push), not two (the push, then the receipt).
func TestOutboxWorkerWakesOncePerCopy(t *testing.T) {
	alice := offNewNode(t, "alice", nil, true)
	bob := offNewNode(t, "bob", nil, true)
	offLink(t, alice, bob)
	id := offGroup(t, alice, bob)
	send := func() {
		m, err := alice.Groups().Send(id, "hello")
		if err != nil {
			t.Fatal(err)
		}
		offDeliveredTo(t, alice, m.ID, bob.ID())
	}
	send() // the worker runs
	const n = 20
	before := alice.out.rounds.Load()
	start := time.Now()
	for range n {
		send()
	}
	rounds := alice.out.rounds.Load() - before
	// A round may also come from a wait that ran its course (every
	// workerIdle), or a kick from a connection event.
	slack := uint64(2 + time.Since(start)/workerIdle)
	if rounds > n+slack {
		t.Fatalf("%d group messages took the worker %d rounds, want at most %d", n, rounds, n+slack)
	}
}

// A send window that is full opens again when receipts come: the worker,
// holding messages back, is woken by them rather than waiting for its
// next look (workerIdle, 2 s). Eight texts of 30 KiB go out two at a time.
func TestSendWindowReopens(t *testing.T) {
	alice := offNewNode(t, "alice", nil, true)
	bob := offNewNode(t, "bob", nil, true)
	offLink(t, alice, bob)
	const n = 8
	body := strings.Repeat("x", 30<<10)
	start := time.Now()
	var last e2e.MessageID
	for range n {
		m, err := alice.Send(bob.ID(), body)
		if err != nil {
			t.Fatal(err)
		}
		last = m.ID
	}
	delivered := 0
	for delivered < n {
		alice.offWait("receipts", func(e Event) bool {
			return e.Kind == EventStatus && e.Message.Peer == bob.ID() && e.Message.Status == store.StatusDelivered
		})
		delivered++
	}
	// Without the wake-up each pair waits for the worker's next look:
	// at least 3 × 2 s for the last.
	if took := time.Since(start); took > 2*workerIdle {
		t.Fatalf("%d texts of 30 KiB took %v to be delivered (the last %v), want well under %v", n, took, last, 2*workerIdle)
	}
}

// The recorder of group copies written asks the workers which are still
// unacknowledged: a copy a worker's fresh outbox does not hold needs no
// read of the store; any other (a worker reading or stale, or none) is
// left to the store.
func TestGroupSentSkipsAcknowledged(t *testing.T) {
	o := &outbox{workers: map[peer.ID]*outboxWorker{}}
	fresh, stale, reading, none := peer.ID("fresh"), peer.ID("stale"), peer.ID("reading"), peer.ID("none")
	held, acked := e2e.MessageID{1}, e2e.MessageID{2}
	for _, p := range []peer.ID{fresh, stale, reading} {
		readWorker(o, p).pending = []store.Message{{ID: held, Peer: p}}
	}
	o.workers[stale].stale()
	o.workers[reading].reading = true
	var copies []store.Copy
	for _, p := range []peer.ID{fresh, stale, reading, none} {
		copies = append(copies, store.Copy{Peer: p, ID: held}, store.Copy{Peer: p, ID: acked})
	}
	got := o.unacked(copies)
	want := []store.Copy{{Peer: fresh, ID: held}, {Peer: stale, ID: held}, {Peer: stale, ID: acked},
		{Peer: reading, ID: held}, {Peer: reading, ID: acked}, {Peer: none, ID: held}, {Peer: none, ID: acked}}
	if len(got) != len(want) {
		t.Fatalf("unacked %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("unacked %v, want %v", got, want)
		}
	}
}

// A group copy's receipt opens the send window when it comes, not when
// the receipt queue records it (it holds group receipts up to
// receiptGroupHold to record them together): sixteen group texts of
// 30 KiB go out two at a time, and would take at least seven holds
// without it.
func TestGroupSendWindowOpensOnReceipt(t *testing.T) {
	alice := offNewNode(t, "alice", nil, true)
	bob := offNewNode(t, "bob", nil, true)
	offLink(t, alice, bob)
	id := offGroup(t, alice, bob)
	const n = 16
	body := strings.Repeat("x", 30<<10)
	start := time.Now()
	sent := map[e2e.MessageID]bool{}
	for range n {
		m, err := alice.Groups().Send(id, body)
		if err != nil {
			t.Fatal(err)
		}
		sent[m.ID] = true
	}
	for got := 0; got < n; got++ {
		bob.offWait("the texts", func(e Event) bool {
			return e.Kind == EventMessage && e.Message != nil && sent[e.Message.ID]
		})
	}
	took, holds := time.Since(start), (n/2-1)*receiptGroupHold
	t.Logf("%d texts of 30 KiB reached the member in %v", n, took)
	if took >= holds {
		t.Fatalf("%d group texts of 30 KiB took %v to reach the member, want under %v", n, took, holds)
	}
}

// The receipt queue learns which receipts are for group copies, and the
// workers take those out of their outboxes (the send window opens), in
// one call: group copies first in the batch, 1:1 ones and copies no
// worker holds left as they are.
func TestTakeGroupCopies(t *testing.T) {
	o := &outbox{workers: map[peer.ID]*outboxWorker{}}
	p, other := peer.ID("member"), peer.ID("other")
	w := readWorker(o, p)
	w.held = true
	g, d := store.Message{ID: e2e.MessageID{1}, Peer: p, Group: store.GroupID{9}}, store.Message{ID: e2e.MessageID{2}, Peer: p}
	w.pending = []store.Message{g, d}
	acks := []store.Copy{{Peer: p, ID: d.ID}, {Peer: other, ID: g.ID}, {Peer: p, ID: g.ID}}
	if n := o.takeGroupCopies(acks); n != 1 || acks[0] != (store.Copy{Peer: p, ID: g.ID}) {
		t.Fatalf("group copies: %d, %v; want 1, the group copy first", n, acks)
	}
	if len(w.pending) != 1 || w.pending[0].ID != d.ID {
		t.Fatalf("the worker's outbox: %v, want the 1:1 message only", w.pending)
	}
	select {
	case <-w.kick:
	default:
		t.Fatal("a worker held by its send window was not woken")
	}
}
