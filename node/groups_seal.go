package node

import (
	"sync"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/e2e/ratchet"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// One durable write per group message. Sealing each member's copy in its
// outbox worker would commit each member's ratchet state on its own: one
// fsync per member, serialized on the ratchet lock. Instead the copies
// for every member with a session are sealed when the message is stored,
// and the new states that must be committed are written in the
// transaction that stores it: those whose seal took a new sending lease
// (ratchet.SealLeased), every member's about once in ratchet.SendLease
// messages; the others are swapped in memory only, since the committed
// state already covers their keys. Invariant: a state is committed before
// any envelope under a key past its committed lease leaves. The envelopes
// wait in memory (unsent, as a mailbox envelope whose deposit failed
// does) for the member's worker, which writes them on the live session or
// deposits them at the relay. After a crash before they left, the worker
// seals the copies again: the receiver skips the lost keys.

// storeGroupSealed stores m for members and seals its copies, in one
// write; members without a session are sealed later by their workers.
// Each new state that must be committed (a new lease) is encoded into
// rk.stateBuf, sealed into the transaction and erased before the next: one
// buffer, reused from message to message, and no copy of a state left
// behind for the collector. The list of copies is reused too (rk.copies),
// cleared after.
func (rk *ratchetKeys) storeGroupSealed(m *store.GroupMessage, members []peer.ID) error {
	rk.mu.Lock()
	defer rk.mu.Unlock()
	copies := rk.copies[:0]
	defer func() { clear(copies); rk.copies = copies[:0] }()
	for _, p := range members {
		if s, err := rk.setFor(p); err == nil {
			copies = append(copies, groupCopy{p: p, set: s})
		}
	}
	written := 0
	err := rk.store.Groups().AddGroupOutgoingSealed(m, members, func(m *store.GroupMessage, put func(store.Ratchet) error) error {
		pt, err := groupPlaintext(m.AsMessage())
		if err != nil {
			return err
		}
		now := rk.now()
		for i := range copies {
			c := &copies[i]
			c.next, c.env = nil, nil
			env, next, commit, err := c.set.SealLeased(pt, now)
			if err != nil {
				continue // no session to send on: the worker seals it
			}
			if !commit { // within the committed lease: nothing to write
				c.next, c.env = next, env
				continue
			}
			w, err := rk.encode(c.p, next, nil)
			if err == nil {
				err = put(w)
			}
			clear(rk.stateBuf)
			if err != nil {
				return err
			}
			written++
			c.next, c.env = next, env
		}
		return nil
	})
	if err != nil {
		return err
	}
	rk.setsWritten += uint64(written)
	for _, c := range copies {
		if c.next == nil {
			continue
		}
		rk.swap(c.p, c.next, nil)
		if rk.unsent[c.p] == nil {
			rk.unsent[c.p] = map[e2e.MessageID][]byte{}
		}
		rk.unsent[c.p][m.ID] = c.env
	}
	return nil
}

// groupCopy is a member's copy of a group message in storeGroupSealed.
type groupCopy struct {
	p    peer.ID
	set  *ratchet.SessionSet // loaded before the transaction
	next *ratchet.SessionSet // nil: not sealed (no session)
	env  []byte
}

// sealBatch seals msgs for p in order, taking the envelopes sealed when a
// group message was stored; the others are sealed with one commit per
// run (a nil plaintext is made from its message). Like sealAll it
// returns what it sealed before an error. The envelopes are appended to
// out (the worker's, reused).
func (rk *ratchetKeys) sealBatch(p peer.ID, msgs []store.Message, pts [][]byte, out [][]byte) ([][]byte, error) {
	for i := 0; i < len(msgs); {
		if env, ok := rk.takeSealed(p, msgs[i].ID); ok {
			out = append(out, env)
			i++
			continue
		}
		j := i + 1
		for j < len(msgs) && !rk.hasSealed(p, msgs[j].ID) {
			j++
		}
		for k := i; k < j; k++ {
			if pts[k] != nil {
				continue
			}
			// The outbox took it for sealed already; it is not (any more).
			pt, err := rk.plaintext(msgs[k])
			if err != nil {
				return out, err
			}
			pts[k] = pt
		}
		envs, err := rk.sealAll(p, pts[i:j])
		out = append(out, envs...)
		if err != nil {
			return out, err
		}
		i = j
	}
	return out, nil
}

func (rk *ratchetKeys) takeSealed(p peer.ID, id e2e.MessageID) ([]byte, bool) {
	rk.mu.Lock()
	defer rk.mu.Unlock()
	env, ok := rk.unsent[p][id]
	if ok {
		delete(rk.unsent[p], id)
	}
	return env, ok
}

func (rk *ratchetKeys) hasSealed(p peer.ID, id e2e.MessageID) bool {
	rk.mu.Lock()
	defer rk.mu.Unlock()
	_, ok := rk.unsent[p][id]
	return ok
}

// groupSentDelay is how long a group copy written to a live session
// waits before it is recorded as sent. Its receipt mostly comes first
// (within 250 ms at 100 members even on a loaded machine, p99; members
// hold receipts up to 200 ms, and the receipt queue takes the copy out
// of its worker's outbox as soon as it comes): the copy is then
// delivered and needs no record of having been sent, so a message to
// many online members costs no write for it (only the message's own and
// its receipts'). Each copy waits the whole delay, counted from its own
// write: one written just before the recorder looks waits for the next
// look.
const groupSentDelay = time.Second

// groupSentQueue holds group copies written to live sessions and not yet
// recorded as sent, oldest first. mu guards pending and running; the
// outbox workers add, one goroutine records, and no other lock is taken
// under mu.
type groupSentQueue struct {
	mu      sync.Mutex
	pending []sentCopy
	running bool
}

// sentCopy is a group copy written to a live session, and when.
type sentCopy struct {
	store.Copy
	at time.Time // monotonic: not cfg.Now, which tests fix
}

// add queues copies, written at at (the workers and the fan-out writer
// add in the order they write, give or take the microseconds between
// reading the clock and taking mu), and reports whether a recorder is to
// be started.
func (q *groupSentQueue) add(copies []store.Copy, at time.Time) (start bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, c := range copies {
		q.pending = append(q.pending, sentCopy{c, at})
	}
	start = !q.running
	q.running = true
	return start
}

// take takes the copies written at least groupSentDelay before now (all
// of them if all), and says how long until the next is due. When none is
// taken and none waits, the recorder ends (more is false).
func (q *groupSentQueue) take(now time.Time, all bool) (due []store.Copy, wait time.Duration, more bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := len(q.pending)
	if !all {
		n = 0
		for n < len(q.pending) && now.Sub(q.pending[n].at) >= groupSentDelay {
			n++
		}
	}
	if n == 0 && len(q.pending) == 0 {
		q.running = false
		return nil, 0, false
	}
	due = make([]store.Copy, n)
	for i := range due {
		due[i] = q.pending[i].Copy
	}
	q.pending = append(q.pending[:0], q.pending[n:]...)
	wait = groupSentDelay // none waits: look once more, then end
	if len(q.pending) > 0 {
		wait = groupSentDelay - now.Sub(q.pending[0].at)
	}
	return due, wait, true
}

// groupCopiesSent records and reports group copies written to a live
// session: each groupSentDelay (1 s) after it was written, if its worker
// still holds it unacknowledged (outbox.unacked), with the others due
// then in one read and, if any is still not delivered, one transaction
// (store.SetGroupSent). Recording one late, or not at all when the node
// stops first, is safe: a copy not delivered stays in the outbox and is
// written again, and a receipt that lands first is not undone (delivered
// stays delivered). The copies may go to any number of members (a
// worker's round, or the fan-out writer's message): one lock for all.
func (o *outbox) groupCopiesSent(copies []store.Copy) {
	if len(copies) == 0 {
		return
	}
	q := &o.sent
	if q.add(copies, time.Now()) && !o.work.goDo(o.recordSent) {
		q.mu.Lock() // the node closes: leave them
		q.pending, q.running = nil, false
		q.mu.Unlock()
	}
}

// recordSent records the queued copies as sent as they come due, until
// none wait; when the node closes, at once.
func (o *outbox) recordSent() {
	wait := groupSentDelay
	for {
		o.sleep(wait)
		batch, next, more := o.sent.take(time.Now(), o.ctx.Err() != nil)
		if !more {
			return
		}
		wait = next
		// The workers know which copies are still unacknowledged: those
		// whose receipts came (on live sessions, mostly all) need no read
		// of the store.
		if batch = o.unacked(batch); len(batch) == 0 {
			continue
		}
		changed, err := o.store.Groups().SetGroupSent(batch, o.cfg.Now())
		if err != nil {
			o.log.Warn("record group copies sent", "err", err)
		}
		for i := range changed {
			o.emit(Event{Kind: EventStatus, Message: &changed[i]})
		}
	}
}
