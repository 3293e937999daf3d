package node

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestReceiptsGatherGroupCopies checks that a receipt for a group
// message's copy, alone from its peer, waits for more receipts to record
// in the same transaction, while a 1:1 message's receipt is recorded at
// once. The second receipt is queued while the drainer looks at the
// first batch (from the group look-up), so the order is fixed.
func TestReceiptsGatherGroupCopies(t *testing.T) {
	for _, tc := range []struct {
		name  string
		group bool
		want  []int // receipts per recorded batch
	}{
		{"group", true, []int{2}},
		{"direct", false, []int{1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := peer.ID("member")
			first, second := e2e.MessageID{1}, e2e.MessageID{2}
			work := &workers{}
			recorded := make(chan int, 4)
			var q *receiptQueue
			var once sync.Once
			q = &receiptQueue{
				work:   work,
				record: func(acks []store.Copy) { recorded <- len(acks) },
				seen:   func(peer.ID, []e2e.MessageID) {},
				takeGroup: func(acks []store.Copy) int {
					if acks[0].ID == first {
						once.Do(func() { q.add(p, second) })
					}
					if tc.group {
						return len(acks)
					}
					return 0
				},
			}
			q.add(p, first)
			var got []int
			for n := 0; n < 2; {
				select {
				case k := <-recorded:
					got = append(got, k)
					n += k
				case <-time.After(5 * time.Second):
					t.Fatalf("receipts recorded %v, want %v", got, tc.want)
				}
			}
			work.stop()
			work.wait()
			if len(got) != len(tc.want) {
				t.Fatalf("receipts recorded in batches %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("receipts recorded in batches %v, want %v", got, tc.want)
				}
			}
		})
	}
}

// TestReceiptsHoldGroupCopies checks how long the drainer holds the
// receipts of group messages' copies: two that come 100 ms apart (more
// than the gathering of other receipts allows) are recorded in one
// transaction, and the outbox hears of each at once (takeGroup: its send
// window opens before the transaction); a 1:1 receipt is recorded at
// once, with whatever is held; so is what is held when the node closes
// or when receiptGroupMax are held.
func TestReceiptsHoldGroupCopies(t *testing.T) {
	a, b := peer.ID("a"), peer.ID("b")
	isGroup := func(id e2e.MessageID) bool { return id[0] < 100 }
	work := &workers{}
	done := make(chan struct{})
	recorded := make(chan []store.Copy, 4)
	opened := make(chan []store.Copy, receiptGroupMax+4)
	q := &receiptQueue{
		work:   work,
		done:   done,
		record: func(acks []store.Copy) { recorded <- slices.Clone(acks) },
		seen:   func(peer.ID, []e2e.MessageID) {},
		takeGroup: func(acks []store.Copy) int {
			n := 0
			for i := range acks {
				if isGroup(acks[i].ID) {
					acks[n], acks[i] = acks[i], acks[n]
					n++
				}
			}
			if n > 0 {
				opened <- slices.Clone(acks[:n])
			}
			return n
		},
	}
	defer func() {
		close(done)
		work.stop()
		work.wait()
	}()
	wait := func(ch chan []store.Copy, what string) ([]store.Copy, time.Duration) {
		t.Helper()
		start := time.Now()
		select {
		case got := <-ch:
			return got, time.Since(start)
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: nothing in 5 s", what)
			return nil, 0
		}
	}
	none := func(what string) {
		t.Helper()
		select {
		case got := <-recorded:
			t.Fatalf("%s: recorded %v", what, got)
		default:
		}
	}
	same := func(got, want []store.Copy) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Fatalf("recorded %v, want %v", got, want)
		}
	}

	// Two group receipts 100 ms apart: one transaction.
	g1, g2 := store.Copy{Peer: a, ID: e2e.MessageID{1}}, store.Copy{Peer: b, ID: e2e.MessageID{2}}
	q.add(g1.Peer, g1.ID)
	if got, _ := wait(opened, "the first group receipt"); !slices.Equal(got, []store.Copy{g1}) {
		t.Fatalf("opened %v, want %v", got, []store.Copy{g1})
	}
	time.Sleep(100 * time.Millisecond)
	none("a group receipt alone after 100 ms")
	q.add(g2.Peer, g2.ID)
	wait(opened, "the second group receipt")
	got, _ := wait(recorded, "two group receipts")
	same(got, []store.Copy{g1, g2})

	// A 1:1 receipt is recorded at once, with the group receipt held.
	g3, d1 := store.Copy{Peer: a, ID: e2e.MessageID{3}}, store.Copy{Peer: b, ID: e2e.MessageID{200}}
	q.add(g3.Peer, g3.ID)
	wait(opened, "a group receipt")
	start := time.Now()
	q.add(d1.Peer, d1.ID)
	got, _ = wait(recorded, "a 1:1 receipt")
	if took := time.Since(start); took > receiptGroupHold/2 {
		t.Errorf("a 1:1 receipt took %v to be recorded", took)
	}
	same(got, []store.Copy{g3, d1})

	// receiptGroupMax group receipts: recorded at once.
	var many []store.Copy
	start = time.Now()
	for i := range receiptGroupMax {
		c := store.Copy{Peer: peer.ID(fmt.Sprint("m", i)), ID: e2e.MessageID{4}}
		many = append(many, c)
		q.add(c.Peer, c.ID)
	}
	var all []store.Copy
	for len(all) < receiptGroupMax {
		got, _ = wait(recorded, "receiptGroupMax receipts")
		all = append(all, got...)
	}
	if took := time.Since(start); took > receiptGroupHold/2 {
		t.Errorf("%d group receipts took %v to be recorded", receiptGroupMax, took)
	}
	same(all, many)
	for len(opened) > 0 {
		<-opened
	}

	// The node closes: what is held is recorded at once.
	g5 := store.Copy{Peer: a, ID: e2e.MessageID{5}}
	q.add(g5.Peer, g5.ID)
	wait(opened, "a group receipt before closing")
	start = time.Now()
	close(done)
	done = make(chan struct{}) // for the deferred close
	got, _ = wait(recorded, "a group receipt held when the node closes")
	if took := time.Since(start); took > receiptGroupHold/2 {
		t.Errorf("a held receipt took %v to be recorded once the node closed", took)
	}
	same(got, []store.Copy{g5})
}
