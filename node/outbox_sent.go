package node

import (
	"slices"
	"sync"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// sentDelay is how long a message or group copy written to a live
// session waits before it is recorded as sent. Its receipt mostly comes
// first (a 1:1 receipt within milliseconds; a group copy's within about
// 800 ms at 100 members even on a loaded machine: members hold receipts
// up to 750 ms, and the receipt queue takes the copy out of its worker's
// outbox as soon as it comes): it is then delivered and needs no record
// of having been sent, so a message costs no write for it (only its own
// and its receipt's). Each waits the whole delay, counted from its own
// write: one written just before the recorder looks waits for the next
// look.
const sentDelay = 3 * time.Second

// sentQueue holds what was written to live sessions and not yet recorded
// as sent, oldest first, in the batches written together (a worker's
// round, the fan-out writer's message: a hundred copies at 100
// members), so that taking what is due moves a batch, not each copy of
// the seconds that wait behind it. mu guards pending and running; the
// outbox workers and the fan-out writer add, one goroutine records, and
// no other lock is taken under mu.
type sentQueue struct {
	mu      sync.Mutex
	pending []sentBatch
	running bool
	// told holds the 1:1 messages whose "sent" event went out when they
	// were written, until they are recorded: a worker that reads its
	// outbox again meanwhile finds them sending in the store, and may
	// write one again on another session, which tells no one twice.
	told map[e2e.MessageID]bool
}

// sentBatch is messages (direct) or group copies written to live
// sessions together, and when.
type sentBatch struct {
	copies []store.Copy
	at     time.Time // monotonic: not cfg.Now, which tests fix
	direct bool      // 1:1 messages, not group copies
}

// tell returns the messages of msgs not told sent yet, and counts them
// told.
func (q *sentQueue) tell(msgs []store.Message) []store.Message {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.told == nil {
		q.told = map[e2e.MessageID]bool{}
	}
	return slices.DeleteFunc(msgs, func(m store.Message) bool {
		if q.told[m.ID] {
			return true
		}
		q.told[m.ID] = true
		return false
	})
}

// forget forgets that copies were told, once they are recorded (or
// found delivered).
func (q *sentQueue) forget(copies []store.Copy) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, c := range copies {
		delete(q.told, c.ID)
	}
}

// add queues a batch and reports whether a recorder is to be started.
// The workers and the fan-out writer add in the order they write, give
// or take the microseconds between reading the clock and taking mu.
func (q *sentQueue) add(b sentBatch) (start bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pending = append(q.pending, b)
	start = !q.running
	q.running = true
	return start
}

// take takes the batches written at least sentDelay before now (all of
// them if all), and says how long until the next is due. When none is
// taken and none waits, the recorder ends (more is false).
func (q *sentQueue) take(now time.Time, all bool) (due []sentBatch, wait time.Duration, more bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := len(q.pending)
	if !all {
		n = 0
		for n < len(q.pending) && now.Sub(q.pending[n].at) >= sentDelay {
			n++
		}
	}
	if n == 0 && len(q.pending) == 0 {
		q.running = false
		return nil, 0, false
	}
	due = slices.Clone(q.pending[:n])
	clear(q.pending[:n]) // the batches' copies are due's now
	q.pending = append(q.pending[:0], q.pending[n:]...)
	wait = sentDelay // none waits: look once more, then end
	if len(q.pending) > 0 {
		wait = sentDelay - now.Sub(q.pending[0].at)
	}
	return due, wait, true
}

// groupCopiesSent queues group copies written to a live session, to be
// recorded as sent (and reported) sentDelay after (recordSent). The
// copies may go to any number of members (a worker's round, or the
// fan-out writer's message): one lock for all.
func (o *outbox) groupCopiesSent(copies []store.Copy) { o.copiesSent(copies, false) }

// directSent queues 1:1 messages to p written to a live session, to be
// recorded as sent sentDelay after (their events went out: tellSent).
func (o *outbox) directSent(p peer.ID, ids []e2e.MessageID) {
	o.copiesSent(store.CopiesTo(p, ids), true)
}

// copiesSent queues copies written now, one batch: 1:1 messages if
// direct. The queue keeps a copy of copies (callers reuse theirs).
func (o *outbox) copiesSent(copies []store.Copy, direct bool) {
	if len(copies) == 0 {
		return
	}
	b := sentBatch{copies: slices.Clone(copies), at: time.Now(), direct: direct}
	if o.sent.add(b) && !o.work.goDo(o.recordSent) {
		o.sent.mu.Lock() // the node closes: leave them
		o.sent.pending, o.sent.running, o.sent.told = nil, false, nil
		o.sent.mu.Unlock()
	}
}

// recordSent records the queued copies as sent as they come due, until
// none wait; when the node closes, at once. Only those their workers
// still hold unacknowledged (outbox.unacked) are recorded, in one read
// and, if any is still not delivered, one transaction each for the group
// copies (store.SetGroupSent) and the 1:1 messages. Recording one late,
// or not at all when the node stops first, is safe: what is not
// delivered stays in the outbox and is written again, and a receipt that
// lands first is not undone (delivered stays delivered). A group copy's
// status that changes is reported; a 1:1 message's "sent" was reported
// as it was written.
func (o *outbox) recordSent() {
	wait := sentDelay
	for {
		o.sleep(wait)
		batch, next, more := o.sent.take(time.Now(), o.ctx.Err() != nil)
		if !more {
			return
		}
		wait = next
		o.recordDue(batch)
	}
}

// recordDue records the batches taken from the queue as sent.
func (o *outbox) recordDue(batches []sentBatch) {
	var group, direct []store.Copy
	for _, b := range batches {
		if b.direct {
			direct = append(direct, b.copies...)
		} else {
			group = append(group, b.copies...)
		}
	}
	// The workers know which are still unacknowledged: those whose
	// receipts came (on live sessions, mostly all) need no read of the
	// store.
	if group = o.unacked(group); len(group) > 0 {
		changed, err := o.store.Groups().SetGroupSent(group, o.cfg.Now())
		if err != nil {
			o.log.Warn("record group copies sent", "err", err)
		}
		for i := range changed {
			o.emit(Event{Kind: EventStatus, Message: &changed[i]})
		}
	}
	// A 1:1 message's "sent" went out as it was written (tellSent): this
	// only records it.
	if pending := o.unacked(slices.Clone(direct)); len(pending) > 0 {
		if _, err := o.store.SetStatuses(pending, store.StatusSent, o.cfg.Now()); err != nil {
			o.log.Warn("record messages sent", "err", err)
		}
	}
	o.sent.forget(direct)
}
