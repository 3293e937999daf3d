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
// transaction that says so is committed, never before. Recording one late is safe: until it is, the message stays in
// the outbox, and at worst is written again and acknowledged again
// (receivers drop duplicates). mu guards pending and running; the read
// loops add, one worker goroutine drains, and no other lock is taken under
// mu.
type receiptQueue struct {
	work   *workers
	record func(acks []store.Copy)              // records a batch, in one transaction
	seen   func(p peer.ID, ids []e2e.MessageID) // records a batch of seen receipts
	// group reports whether p's copy id is a group message's copy, as
	// far as p's outbox worker knows (nil: none is).
	group func(p peer.ID, id e2e.MessageID) bool

	mu      sync.Mutex
	pending []pendingReceipt
	running bool // a worker is draining the queue
}

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
	q.pending = append(q.pending, r)
	if q.running {
		return
	}
	if !q.work.goDo(q.drain) {
		q.pending = nil
		return
	}
	q.running = true
}

// When the receipts taken come from several peers (a group message's
// receipts from its members), or any is for a group message's copy (the
// tail of a large group's receipts comes one by one), the drainer waits
// for more, receiptGather at a time while more come and at most
// receiptGatherMax in all, to record them in one transaction rather than
// one each. Receipts from one peer of 1:1 messages (a conversation) are
// recorded at once.
const (
	receiptGather    = 10 * time.Millisecond
	receiptGatherMax = 50 * time.Millisecond
)

// drain records the queued receipts until the queue is empty.
func (q *receiptQueue) drain() {
	for {
		batch := q.take()
		if len(batch) == 0 {
			return
		}
		if fanIn(batch) || q.anyGroup(batch) {
			for waited := time.Duration(0); waited < receiptGatherMax; waited += receiptGather {
				time.Sleep(receiptGather)
				more := q.takeMore()
				if len(more) == 0 {
					break
				}
				batch = append(batch, more...)
			}
		}
		var acks []store.Copy
		seen := map[peer.ID][]e2e.MessageID{}
		var order []peer.ID
		for _, r := range batch {
			if !r.seen {
				acks = append(acks, store.Copy{Peer: r.peer, ID: r.id})
				continue
			}
			if _, ok := seen[r.peer]; !ok {
				order = append(order, r.peer)
			}
			seen[r.peer] = append(seen[r.peer], r.id)
		}
		if len(acks) > 0 {
			q.record(acks)
		}
		for _, p := range order {
			q.seen(p, seen[p])
		}
	}
}

// fanIn reports whether batch holds stored receipts from more than one
// peer.
func fanIn(batch []pendingReceipt) bool {
	for _, r := range batch[1:] {
		if r.peer != batch[0].peer {
			return true
		}
	}
	return false
}

// anyGroup reports whether batch holds a stored receipt for a group
// message's copy.
func (q *receiptQueue) anyGroup(batch []pendingReceipt) bool {
	if q.group == nil {
		return false
	}
	for _, r := range batch {
		if !r.seen && q.group(r.peer, r.id) {
			return true
		}
	}
	return false
}

// takeMore empties the queue and leaves the worker running.
func (q *receiptQueue) takeMore() []pendingReceipt {
	q.mu.Lock()
	defer q.mu.Unlock()
	batch := q.pending
	q.pending = nil
	return batch
}

// take empties the queue; when it is empty, the worker ends.
func (q *receiptQueue) take() []pendingReceipt {
	q.mu.Lock()
	defer q.mu.Unlock()
	batch := q.pending
	q.pending = nil
	if len(batch) == 0 {
		q.running = false
	}
	return batch
}
