package node

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// The fan-out writer. A group message's copies were sealed when it was
// stored (storeGroupSealed); handing each to its member's worker wakes a
// hundred goroutines for a hundred members, each for a round that writes
// one envelope. Instead, the copies for members whose workers are idle on
// a live session with everything written (outboxWorker.directOn) go to one
// writer, which writes them in turn on those sessions: one goroutine wake
// per message. Those workers keep the copies in their outboxes, as any
// written copy, until the receipts come, and write nothing meanwhile
// (outboxWorker.direct), so a member's copies keep their order.
//
// A write returns once the muxer has the bytes, which is at once unless a
// member's connection has stopped taking them. Then a watchdog
// (fanoutStall after the writer began the message) hands every copy the
// writer has not begun, of this message and of those queued after it, to
// the members' workers, and copies go to the workers until the writer is
// free: a stalled member holds back nobody else. A copy the writer could
// not write (no sealed envelope any more, a session that failed) goes to
// its worker too.

// fanoutStall is how long a message's copies may take to write before the
// watchdog hands those not begun to the workers. A hundred writes take
// about a millisecond; only a connection that stopped taking bytes takes
// this long.
const fanoutStall = 250 * time.Millisecond

// fanout is the writer's queue. mu guards the fields; it is taken alone
// (never under outbox.mu, nor outbox.mu under it).
type fanout struct {
	o *outbox

	mu      sync.Mutex
	jobs    []*fanJob // waiting, in the order stored
	cur     *fanJob   // being written
	running bool
	stalled bool        // the watchdog fired: copies go to the workers until the writer ends
	timer   *time.Timer // the watchdog, made once

	sent []store.Copy // the writer's, reused from message to message (directDone)
}

// fanJob is one message's copies for the writer.
type fanJob struct {
	id     e2e.MessageID
	group  [e2e.GroupIDLen]byte
	copies []fanCopy
	// unit, when the copies were planned for forwarders (forwardPlan.plan),
	// is the size of the unit starting at each index (a forwarder's copy
	// and those it carries; 1 for a copy written directly), 0 inside one;
	// nil: every copy is a unit of one.
	unit []int
	// next is the index of the next unit to write; the writer and the
	// watchdog each take copies by moving it, so each copy is taken once.
	next atomic.Int64
}

// unitAt is the size of the unit starting at copy i.
func (j *fanJob) unitAt(i int64) int64 {
	if j.unit == nil {
		return 1
	}
	return int64(j.unit[i])
}

// fanCopy is a member's copy: the session to write it on, and what came
// of it.
type fanCopy struct {
	p       peer.ID
	cs      *chatSession
	written bool
}

// newFanout makes the writer for o.
func newFanout(o *outbox) *fanout { return &fanout{o: o} }

// busy reports whether copies should go to the workers instead: the
// watchdog fired and the writer has not ended since.
func (f *fanout) busy() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stalled
}

// add queues job, starting the writer if it does not run. A job that
// comes while the writer is stalled (the watchdog fired since the caller
// looked) goes to the workers.
func (f *fanout) add(job *fanJob) {
	f.mu.Lock()
	if f.stalled {
		f.mu.Unlock()
		f.o.released(job.id, job.copies)
		return
	}
	f.jobs = append(f.jobs, job)
	start := !f.running
	f.running = true
	f.mu.Unlock()
	if start && !f.o.work.goDo(f.run) {
		f.mu.Lock() // the node closes: the workers have them
		f.running, f.jobs = false, nil
		f.mu.Unlock()
		f.o.released(job.id, job.copies)
	}
}

// take returns the next job, or nil when none waits (the writer ends).
func (f *fanout) take() *fanJob {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cur = nil
	if len(f.jobs) == 0 {
		f.running, f.stalled = false, false
		return nil
	}
	job := f.jobs[0]
	f.jobs[0] = nil
	f.jobs = f.jobs[1:]
	f.cur = job
	if f.timer == nil {
		f.timer = time.AfterFunc(fanoutStall, f.stall)
	} else {
		f.timer.Reset(fanoutStall)
	}
	return job
}

// run writes the queued jobs until none waits.
func (f *fanout) run() {
	for job := f.take(); job != nil; job = f.take() {
		f.write(job)
		f.mu.Lock()
		f.timer.Stop()
		f.mu.Unlock()
	}
}

// write writes job's units in turn until none is left to take, then
// settles the copies it took with their workers.
func (f *fanout) write(job *fanJob) {
	n := int64(len(job.copies))
	from := job.next.Load()
	took := from // the copies [from, took) are the writer's
	now := f.o.cfg.Now()
	for {
		i := job.next.Load()
		if i >= n {
			break
		}
		size := job.unitAt(i)
		if !job.next.CompareAndSwap(i, i+size) {
			continue // the watchdog took the rest
		}
		took = i + size
		if size == 1 {
			f.writeOne(job.id, &job.copies[i], now)
		} else {
			f.forward(job, job.copies[i:i+size], now)
		}
	}
	if from < took {
		f.sent = f.o.directDone(job.id, job.copies[from:took], f.sent)
	}
}

// writeOne writes c's sealed copy of message id on its session, and
// reports whether it did.
func (f *fanout) writeOne(id e2e.MessageID, c *fanCopy, now time.Time) bool {
	env, ok := f.o.rk.takeSealed(c.p, id)
	if !ok {
		return false // sealed again by its worker
	}
	return f.writeEnv(id, c, env, now)
}

// writeEnv writes env, c's copy of message id, on c's session; a session
// that fails is closed and the copy goes back to the worker.
func (f *fanout) writeEnv(id e2e.MessageID, c *fanCopy, env []byte, now time.Time) bool {
	c.cs.markSent(id, now)
	if err := c.cs.s.Send(e2e.FrameEnvelope, env); err != nil {
		f.o.log.Info("write group message", "peer", c.p, "err", err)
		c.cs.s.Close()
		return false
	}
	c.written = true
	f.o.fanWrites.Add(1)
	return true
}

// stall is the watchdog: the writer has spent fanoutStall on one message.
// Every copy it has not begun goes to its worker, and so do the queued
// messages' copies and the next ones' until the writer ends.
func (f *fanout) stall() {
	f.mu.Lock()
	job, queued := f.cur, f.jobs
	f.jobs = nil
	if f.running {
		f.stalled = true
	}
	f.mu.Unlock()
	if job != nil {
		n := int64(len(job.copies))
		if i := job.next.Swap(n); i < n {
			f.o.log.Warn("a member's connection stalled a group message; the rest go through the members' workers", "left", n-i)
			f.o.released(job.id, job.copies[i:])
		}
	}
	for _, j := range queued {
		f.o.released(j.id, j.copies)
	}
}

// pushGroup hands member to[i] its copy of m, stored just now, for each
// i: to the fan-out writer where the member's worker is idle on a live
// session with everything written and direct[i] allows it (the member
// may be messaged), else to the worker as push does. One lock for all
// members.
func (o *outbox) pushGroup(m *store.GroupMessage, to []peer.ID, direct []bool) {
	job := &fanJob{id: m.ID, group: m.Group, copies: make([]fanCopy, 0, len(to))}
	stalled := o.fan.busy()
	o.mu.Lock()
	for i, p := range to {
		var c store.Message
		if i < len(m.Members) && m.Members[i].Peer == p {
			c = m.MemberCopy(i) // stored in the order given
		} else {
			c = m.CopyFor(p)
		}
		w := o.worker(p)
		if !stalled && direct[i] {
			if cs := w.directOn(&c); cs != nil {
				w.addDirect(c)
				job.copies = append(job.copies, fanCopy{p: p, cs: cs})
				continue
			}
		}
		o.pushLocked(p, w, c)
	}
	o.mu.Unlock()
	if len(job.copies) > 0 {
		o.fwd.plan(job, to)
		o.fan.add(job)
	}
}

// directOn returns the session the fan-out writer may write m on for w's
// peer, or nil: the worker runs with a fresh copy of its outbox, all of
// it written on the live session its last round wrote on (so the worker
// waits for receipts only, and m goes after everything before it), no
// copy with the writer, nothing held back by the send window, and m a
// text that fits in the window behind what waits for receipts. A session
// that failed since may still look live: the writer's write then fails
// at once and the copy goes back to the worker. Callers hold outbox.mu.
func (w *outboxWorker) directOn(m *store.Message) *chatSession {
	if !w.running || !w.fresh || w.reading || w.held || w.direct > 0 || w.cs == nil || m.Kind != store.KindText {
		return nil
	}
	select {
	case <-w.cs.done:
		return nil
	default:
	}
	if c := w.checked; c.cs == w.cs && c.mark == w.mark && c.forgets == w.cs.forgets.Load() && c.bytes+len(m.Body) <= sendWindow {
		return w.cs // nothing unwritten came in since it looked
	}
	inflight := len(m.Body)
	for i := range w.pending {
		inflight += len(w.pending[i].Body)
	}
	if len(w.pending) > 0 && inflight > sendWindow {
		return nil
	}
	forgets := w.cs.forgets.Load() // before it looks: a forget after moves it
	if !w.cs.wroteAll(w.pending) { // a push since, or a new ratchet seed
		return nil
	}
	w.checked = directCheck{cs: w.cs, mark: w.mark, forgets: forgets, bytes: inflight - len(m.Body)}
	return w.cs
}

// addDirect puts m, a copy directOn handed the writer, in the worker's
// copy of its outbox. Callers hold outbox.mu.
func (w *outboxWorker) addDirect(m store.Message) {
	w.direct++
	if at, ok := insertAt(w.pending, &m); ok {
		w.pending = slices.Insert(w.pending, at, m)
		w.checked.bytes += len(m.Body)
	}
}

// directCheck is what directOn found when it last looked at every copy
// of a worker's outbox: all of it written on cs, bytes of texts in it,
// as of the worker's mark and cs's forgets. Until either moves, only
// the writer's copies came in, each written on cs (or given back, which
// moves the mark), so the next copy need not look at every copy waiting
// for its receipt again: with receipts held 750 ms, about 22 a member
// (two loops and a look-up each for every copy of every message). The
// writer's copies add their bytes; receipts take copies out without
// taking theirs off, so bytes only overstates what is in flight, and
// when that reaches the send window directOn looks again.
type directCheck struct {
	cs      *chatSession
	mark    uint64
	forgets uint64
	bytes   int
}

// directDone settles copies of message id the fan-out writer took: the
// written ones are sent (recorded as such sentDelay later unless
// their receipts come first), the others go back to their workers; each
// worker that waited for the writer is woken. sent is the writer's
// buffer, returned for the next message.
func (o *outbox) directDone(id e2e.MessageID, copies []fanCopy, sent []store.Copy) []store.Copy {
	sent = sent[:0]
	o.mu.Lock()
	for i := range copies {
		c := &copies[i]
		w := o.worker(c.p)
		w.direct--
		if !c.written {
			w.mark++ // back with the worker, unwritten
			signal(w.kick)
			continue
		}
		// The copy the writer took is the last or near it, and once
		// in pending (insertAt).
		for j := len(w.pending) - 1; j >= 0; j-- {
			if m := &w.pending[j]; m.ID == id {
				if m.Status == store.StatusSending {
					m.Status = store.StatusSent
				}
				break
			}
		}
		if w.direct == 0 && w.deferred {
			w.deferred = false
			signal(w.kick)
		}
		sent = append(sent, store.Copy{Peer: c.p, ID: id})
	}
	o.mu.Unlock()
	o.groupCopiesSent(sent)
	return sent
}

// released gives copies of message id the writer will not write back to
// their workers, which write them.
func (o *outbox) released(id e2e.MessageID, copies []fanCopy) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := range copies {
		w := o.worker(copies[i].p)
		w.direct--
		w.mark++ // back with the worker, unwritten
		w.deferred = false
		signal(w.kick)
	}
}
