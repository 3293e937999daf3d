package node

import (
	"sync"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// receiptQueue holds receipts read on live sessions and not yet recorded:
// they are recorded in batches, one store transaction for all the
// receipts that arrived meanwhile from every peer (a group message's
// receipts from its members arrive together), so a read loop does not
// wait for a commit per receipt. A message is delivered once the
// transaction that says so is committed, never before. Recording one
// late is safe: until it is, the message stays in the outbox, and at
// worst is written again and acknowledged again (receivers drop
// duplicates). mu guards pending, queued, running and wake's creation; the read
// loops add, one worker goroutine drains, and no other lock is taken
// under mu.
type receiptQueue struct {
	work   *workers
	done   <-chan struct{}                      // closed when the node closes (nil: never)
	record func(acks []store.Copy)              // records a batch, in one transaction
	seen   func(p peer.ID, ids []e2e.MessageID) // records a batch of seen receipts
	// takeGroup moves the group messages' copies among acks to their
	// front, as far as their outbox workers know, and reports how many;
	// the workers take them out of their send windows now, since the
	// drainer holds them for a later transaction (nil: none is a group
	// copy).
	takeGroup func(acks []store.Copy) int

	mu      sync.Mutex
	pending []pendingReceipt
	queued  map[peer.ID]int // pending receipts per peer (maxQueuedReceipts)
	running bool            // a worker is draining the queue
	wake    chan struct{}   // a receipt queued while the drainer waits (made once, under mu)
}

// maxQueuedReceipts bounds the receipts of one peer waiting to be
// recorded. A peer that wrote receipt frames faster than they are
// recorded (any 16 bytes name a message) would grow the queue without
// bound: 200,000 of them in a quarter of a second queued 120,000 here.
// Past the bound a receipt is dropped, which is as safe as recording it
// late: the message stays in the outbox, is written again and
// acknowledged again. An honest peer has far fewer waiting: our send
// window bounds the messages it can acknowledge at once.
const maxQueuedReceipts = 4096

type pendingReceipt struct {
	peer peer.ID
	id   e2e.MessageID
	seen bool // a seen receipt (read markers), else stored
}

// add queues a receipt and starts a worker if none runs. Once the node is
// closing, the receipt is not recorded: the message is written again next
// run, and acknowledged again.
func (q *receiptQueue) add(p peer.ID, id e2e.MessageID) { q.push(pendingReceipt{p, id, false}) }

// addSeen queues a seen receipt as add does.
func (q *receiptQueue) addSeen(p peer.ID, id e2e.MessageID) { q.push(pendingReceipt{p, id, true}) }

func (q *receiptQueue) push(r pendingReceipt) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.queued[r.peer] >= maxQueuedReceipts {
		return
	}
	if q.queued == nil {
		q.queued = map[peer.ID]int{}
	}
	q.queued[r.peer]++
	q.pending = append(q.pending, r)
	if q.wake == nil {
		q.wake = make(chan struct{}, 1)
	}
	if q.running {
		if len(q.pending) == 1 { // the first since the drainer looked
			signal(q.wake)
		}
		return
	}
	if !q.work.goDo(q.drain) {
		q.pending = nil
		clear(q.queued)
		return
	}
	q.running = true
}

// The stored receipts of group messages' copies (those their members'
// outbox workers hold) are held and recorded together: from the first,
// for receiptGroupHold (or until receiptGroupMax are held), so that the
// receipts of a message, which its members write as they come (each
// holds its own up to 750 ms, receipts_hold.go), and those of the next
// messages share one transaction instead of one each. The send windows
// do not wait for it (takeGroup takes the copies out of the workers'
// outboxes at once); only the recorded status, "delivered to N of M", comes up to
// receiptGroupHold later. Receipts of 1:1 messages are recorded at once,
// with whatever is held; from several peers at once (copies that their
// workers do not know yet), the drainer waits for more, while more come
// within receiptGather, receiptGatherMax at most. Seen receipts are
// recorded at once.
const (
	receiptGather    = 10 * time.Millisecond
	receiptGatherMax = 50 * time.Millisecond
	receiptGroupHold = 250 * time.Millisecond
	receiptGroupMax  = 1000
)

// drain records the queued receipts until the queue is empty and none are
// held; when the node closes, what is held is recorded at once.
func (q *receiptQueue) drain() {
	var (
		held  []store.Copy // stored receipts waiting to be recorded together
		until time.Time    // when held is recorded at the latest
		// fan: held has 1:1 receipts from several peers, recorded once a
		// wait of receiptGather brings none.
		fan bool
		// batch, the receipts taken last, goes back to the queue to be
		// filled again; stored is reused from batch to batch.
		batch  []pendingReceipt
		stored []store.Copy
	)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		batch = q.take(len(held) > 0, batch)
		if len(batch) == 0 && len(held) == 0 {
			return
		}
		now := time.Now()
		stored = stored[:0]
		var seen map[peer.ID][]e2e.MessageID
		var order []peer.ID
		for _, r := range batch {
			if !r.seen {
				stored = append(stored, store.Copy{Peer: r.peer, ID: r.id})
				continue
			}
			if seen == nil {
				seen = map[peer.ID][]e2e.MessageID{}
			}
			if _, ok := seen[r.peer]; !ok {
				order = append(order, r.peer)
			}
			seen[r.peer] = append(seen[r.peer], r.id)
		}
		direct := stored
		if q.takeGroup != nil && len(stored) > 0 {
			if n := q.takeGroup(stored); n > 0 {
				held = append(held, stored[:n]...)
				direct = stored[n:]
				until = earliest(until, now.Add(receiptGroupHold))
			}
		}
		if fanIn(direct) {
			held = append(held, direct...)
			direct = nil
			until = earliest(until, now.Add(receiptGatherMax))
			fan = true
		}
		if len(direct) > 0 || len(held) >= receiptGroupMax || (fan && len(batch) == 0) ||
			(len(held) > 0 && !now.Before(until)) || q.closing() {
			if acks := append(held, direct...); len(acks) > 0 {
				q.record(acks)
				clear(acks)
			}
			held, until, fan = held[:0], time.Time{}, false
		}
		for _, p := range order {
			q.seen(p, seen[p])
		}
		if len(held) > 0 {
			d := time.Until(until)
			if fan {
				d = min(d, receiptGather)
			}
			q.wait(t, d)
		}
	}
}

// wait waits d, or until a receipt is queued or the node closes. t is
// the drainer's timer, left running when the wait ends early (the next
// Reset discards it).
func (q *receiptQueue) wait(t *time.Timer, d time.Duration) {
	if d <= 0 {
		return
	}
	t.Reset(d)
	select {
	case <-t.C:
	case <-q.wake:
	case <-q.done:
	}
}

// closing reports whether the node closes.
func (q *receiptQueue) closing() bool {
	select {
	case <-q.done:
		return true
	default:
		return false
	}
}

// earliest is the earlier of t (zero: none yet) and u.
func earliest(t, u time.Time) time.Time {
	if t.IsZero() || u.Before(t) {
		return u
	}
	return t
}

// fanIn reports whether acks come from more than one peer.
func fanIn(acks []store.Copy) bool {
	for _, a := range acks[min(1, len(acks)):] {
		if a.Peer != acks[0].Peer {
			return true
		}
	}
	return false
}

// take empties the queue, handing it spare (the drainer's last batch,
// done with) to fill again; when it is empty and the drainer holds
// nothing (keep false), the worker ends.
func (q *receiptQueue) take(keep bool, spare []pendingReceipt) []pendingReceipt {
	clear(spare)
	q.mu.Lock()
	defer q.mu.Unlock()
	batch := q.pending
	q.pending = spare[:0]
	clear(q.queued) // every pending receipt is in batch
	if len(batch) == 0 && !keep {
		q.running = false
	}
	return batch
}
