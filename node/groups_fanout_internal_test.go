package node

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Group messages to members whose workers are idle on live sessions go
// out through the fan-out writer, not a round of each worker; messages
// sent in a burst, when the writer still has a member's last copy, go
// to the worker, which waits for the writer: every member gets every
// message in order, with no gap and none late.
func TestGroupFanoutWritesForIdleWorkers(t *testing.T) {
	alice, bob, carol, id := offTrio(t)
	// The loop below waits for each message's receipts: with the
	// members' whole receipt hold, each would take a second, and every
	// worker's idle timer would find a copy in flight (two rounds each
	// workerIdle, as many as a round per message): the count would not
	// tell the writer from the workers.
	for _, m := range []*offNode{bob, carol} {
		m.sessions.held.holdFor.Store(int64(20 * time.Millisecond))
	}
	send := func() e2e.MessageID {
		m, err := alice.Groups().Send(id, "hello")
		if err != nil {
			t.Fatal(err)
		}
		return m.ID
	}
	delivered := func(ids ...e2e.MessageID) {
		for _, m := range ids {
			offDeliveredTo(t, alice, m, bob.ID())
			offDeliveredTo(t, alice, m, carol.ID())
		}
	}
	delivered(send()) // the workers run, and write it
	const n = 8
	before, rounds := alice.out.fanWrites.Load(), alice.out.rounds.Load()
	start := time.Now()
	for range n {
		delivered(send())
	}
	if w := alice.out.fanWrites.Load() - before; w < n {
		t.Fatalf("the fan-out writer wrote %d of %d copies to idle members, want at least %d", w, 2*n, n)
	}
	// A round may come from a wait that ran its course (every
	// workerIdle), or a kick from a connection event.
	slack := 2 * uint64(2+time.Since(start)/workerIdle)
	if r := alice.out.rounds.Load() - rounds; r > slack {
		t.Fatalf("%d messages to 2 idle members took their workers %d rounds, want at most %d", n, r, slack)
	}

	var burst []e2e.MessageID
	for range n {
		burst = append(burst, send())
	}
	delivered(burst...)
	fwdHistoryIntact(t, alice, []*offNode{bob, carol}, id, 2*n+1)
}

// A member whose connection stops taking bytes holds back nobody else:
// the writer blocks in that member's write, and the watchdog hands the
// copies it has not begun to their workers, with their sealed envelopes.
// The blocked write's copy goes back to its worker when it fails.
func TestGroupFanoutStalledMemberHoldsBackNobody(t *testing.T) {
	alice := offNewNode(t, "alice", nil, true)
	o := alice.out
	stuck, stuckFar := pipeChat(t)
	live, liveFar := pipeChat(t)
	go func() { // the live member reads; the stuck one never does
		for {
			if _, err := liveFar.Receive(); err != nil {
				return
			}
		}
	}()
	id := e2e.NewMessageID()
	copies := []fanCopy{{p: stuck.peer, cs: stuck}, {p: live.peer, cs: live}}
	for _, c := range copies {
		alice.rk.mu.Lock()
		alice.rk.unsent[c.p] = map[e2e.MessageID][]byte{id: []byte("sealed for " + string(c.p))}
		alice.rk.mu.Unlock()
		o.mu.Lock()
		w := o.worker(c.p)
		w.direct = 1
		w.pending = []store.Message{{ID: id, Peer: c.p, Group: store.GroupID{1}, Status: store.StatusSending}}
		o.mu.Unlock()
	}
	o.fan.add(&fanJob{id: id, copies: copies})

	waitDirect := func(p peer.ID, what string) *outboxWorker {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			o.mu.Lock()
			w := o.worker(p)
			n := w.direct
			o.mu.Unlock()
			if n == 0 {
				return w
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: its copy is still with the fan-out writer", what)
			}
		}
	}
	w := waitDirect(live.peer, "the live member, behind a stalled one")
	if !alice.rk.hasSealed(live.peer, id) {
		t.Fatal("the live member's envelope was not left for its worker")
	}
	select {
	case <-w.kick:
	default:
		t.Fatal("the live member's worker was not woken to write its copy")
	}
	if !o.fan.busy() {
		t.Fatal("the writer is stalled, yet new copies would go to it")
	}
	stuckFar.Close()
	w = waitDirect(stuck.peer, "the stalled member, after its write failed")
	select {
	case <-w.kick:
	default:
		t.Fatal("the stalled member's worker was not woken to write its copy again")
	}
}

// pipeChat makes a chat session over net.Pipe, where a write waits until
// the other side reads, and returns it with the far side's session.
func pipeChat(t *testing.T) (*chatSession, *e2e.Session) {
	t.Helper()
	now := time.Now()
	var ids [2]*identity.Identity
	var trust [2]*identity.TrustStore
	for i, name := range []string{"near", "far"} {
		var err error
		if ids[i], err = identity.Generate(name, now, 0); err != nil {
			t.Fatal(err)
		}
		if trust[i], err = identity.OpenTrustStore(filepath.Join(t.TempDir(), "trust.json")); err != nil {
			t.Fatal(err)
		}
	}
	var eps [2]*e2e.Endpoint
	for i := range eps {
		if err := trust[i].Pin(ids[1-i].PeerID(), "", identity.StateTOFU, now); err != nil {
			t.Fatal(err)
		}
		var err error
		if eps[i], err = e2e.NewEndpoint(e2e.Config{Identity: ids[i], Trust: trust[i]}); err != nil {
			t.Fatal(err)
		}
	}
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	var far *e2e.Session
	var farErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		far, farErr = eps[1].Server(context.Background(), b, ids[0].PeerID())
	}()
	near, err := eps[0].Client(context.Background(), a, ids[1].PeerID(), ids[1].PeerID())
	wg.Wait()
	if err != nil || farErr != nil {
		t.Fatalf("handshake: %v, %v", err, farErr)
	}
	cs := &chatSession{s: near, peer: ids[1].PeerID(), done: make(chan struct{}), sent: map[e2e.MessageID]time.Time{}}
	return cs, far
}

// directOn remembers that every copy of a worker's outbox was written on
// its session (directCheck), so that it does not look at each of them
// again for every copy the writer takes. What may add a copy not written
// there, or lose the record of one, makes it look again: each case below
// would hand the writer a copy to write after one never written, or
// past the send window, if it did not.
func TestGroupFanoutLooksAgainAfterChanges(t *testing.T) {
	alice := offNewNode(t, "alice", nil, true)
	o := alice.out
	text := func(n int, body string) store.Message {
		return store.Message{ID: e2e.NewMessageID(), Kind: store.KindText, Group: store.GroupID{1}, Seq: uint64(n), Body: body, Status: store.StatusSending}
	}
	// written is a copy the writer took and wrote.
	written := func(w *outboxWorker, cs *chatSession, m store.Message) {
		w.addDirect(m)
		w.direct--
		cs.markSent(m.ID, time.Now())
	}
	cases := []struct {
		name   string
		change func(t *testing.T, w *outboxWorker, cs *chatSession)
		last   int // the size of the copy asked about after
	}{
		{"a push of a copy not written", func(t *testing.T, w *outboxWorker, cs *chatSession) {
			o.pushLocked(cs.peer, w, text(10, "pushed")) // w runs: a kick
		}, 3},
		{"a new ratchet seed (the session forgets what it wrote)", func(t *testing.T, w *outboxWorker, cs *chatSession) {
			cs.resetSent()
		}, 3},
		{"a copy the writer gave back unwritten", func(t *testing.T, w *outboxWorker, cs *chatSession) {
			m := text(10, "given back")
			w.addDirect(m)
			o.mu.Unlock()
			o.directDone(m.ID, []fanCopy{{p: cs.peer, cs: cs}}, nil)
			o.mu.Lock()
		}, 3},
		{"a round's forget of what its outbox did not hold", func(t *testing.T, w *outboxWorker, cs *chatSession) {
			cs.mu.Lock()
			cs.forget(w.pending[:1]) // a round that began before next came
			cs.mu.Unlock()
		}, 3},
		{"copies a stalled writer gave back", func(t *testing.T, w *outboxWorker, cs *chatSession) {
			m := text(10, "given back")
			w.addDirect(m)
			o.mu.Unlock()
			o.released(m.ID, []fanCopy{{p: cs.peer, cs: cs}})
			o.mu.Lock()
		}, 3},
		{"the writer's copies filling the send window", func(t *testing.T, w *outboxWorker, cs *chatSession) {
			for i := range 2 {
				m := text(10+i, string(make([]byte, sendWindow/4)))
				if w.directOn(&m) == nil {
					t.Fatalf("copy %d of a quarter of the window was refused", i+1)
				}
				written(w, cs, m)
			}
		}, sendWindow / 2},
		{"another session", func(t *testing.T, w *outboxWorker, cs *chatSession) {
			w.cs = &chatSession{peer: cs.peer, done: make(chan struct{}), sent: map[e2e.MessageID]time.Time{}}
		}, 3},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cs := &chatSession{peer: peer.ID(fmt.Sprintf("member %d", i)), done: make(chan struct{}), sent: map[e2e.MessageID]time.Time{}}
			o.mu.Lock()
			defer o.mu.Unlock()
			w := o.worker(cs.peer)
			first := text(1, "first")
			w.running, w.fresh, w.cs, w.pending = true, true, cs, []store.Message{first}
			cs.markSent(first.ID, time.Now())
			next := text(2, "next")
			if w.directOn(&next) != cs {
				t.Fatal("an outbox written whole on a live session was not handed to the writer")
			}
			written(w, cs, next)
			tc.change(t, w, cs)
			last := text(20, string(make([]byte, tc.last)))
			if w.directOn(&last) != nil {
				t.Fatalf("after %s, the writer was handed a copy", tc.name)
			}
		})
	}
}
