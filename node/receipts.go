package node

import (
	"sync"

	"github.com/certchat/certchat/e2e"
	"github.com/libp2p/go-libp2p/core/peer"
)

// receiptQueue holds receipts read on live sessions and not yet recorded:
// they are recorded in batches, one store transaction per peer for all
// that arrived meanwhile, so a read loop does not wait for a commit per
// receipt. Recording one late is safe: until it is, the message stays in
// the outbox, and at worst is written again and acknowledged again
// (receivers drop duplicates). mu guards pending and running; the read
// loops add, one worker goroutine drains, and no other lock is taken under
// mu.
type receiptQueue struct {
	work   *workers
	record func(p peer.ID, ids []e2e.MessageID) // records a batch for one peer
	seen   func(p peer.ID, ids []e2e.MessageID) // records a batch of seen receipts

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

// drain records the queued receipts until the queue is empty.
func (q *receiptQueue) drain() {
	for {
		batch := q.take()
		if len(batch) == 0 {
			return
		}
		type key struct {
			peer peer.ID
			seen bool
		}
		byPeer := map[key][]e2e.MessageID{}
		var order []key
		for _, r := range batch {
			k := key{r.peer, r.seen}
			if _, ok := byPeer[k]; !ok {
				order = append(order, k)
			}
			byPeer[k] = append(byPeer[k], r.id)
		}
		for _, k := range order {
			if k.seen {
				q.seen(k.peer, byPeer[k])
			} else {
				q.record(k.peer, byPeer[k])
			}
		}
	}
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
