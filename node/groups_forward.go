package node

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Forwarded copies (docs/PROTOCOL.md §14.7). At a hundred members most
// of a sender's CPU a message is writing a hundred copies: a TLS record
// of ours, a muxer frame, the transport's TLS record and a system call
// each. For a message with at least forwardMin copies for the fan-out
// writer, the sender picks about √n of those members as forwarders (the
// first in the group's order whose sessions with it are direct and who
// said they forward) and hands each, after its own copy, the copies of
// about √n others in one forward frame; the forwarder writes each onward
// on its own live session with that member. The copies are the sender's
// ratchet envelopes, sealed per member as always: a forwarder can drop,
// delay or spoil them, never read or forge one.
//
// The sender's outbox counts a forwarded copy as written on the member's
// own session. A copy the forwarder refused (forward-refused frame), or
// whose receipt has not come forwardWait after it went, or that went to
// a forwarder whose session with us has ended since, is taken back:
// the member's worker writes it directly (the member drops a duplicate
// by message ID), and that forwarder is not asked for that member again
// for forwardShun.
//
// The forwarder's and the member's sides are groups_forwarding.go.

const (
	// forwardMin is the fewest copies a message must have for the writer
	// before some go through forwarders: below it the writes saved do
	// not pay for the hop (10 members: 9 writes).
	forwardMin = 16
	// forwardWait is how long a forwarded copy may wait for its receipt
	// before it is written directly: the member holds the receipt up to
	// receiptHoldFor (750 ms), the sender's receipt queue up to 250 ms,
	// and members that many messages keep busy take longer (at 250 members
	// on this machine's two cores, one copy in a thousand took over 2 s).
	// A forwarder whose session ends has its copies taken back at once.
	forwardWait = 5 * time.Second
	// forwardShun is how long a forwarder that refused or lost a member's
	// copy is not asked for that member again.
	forwardShun = 10 * time.Minute
	// forwardTries is how many forwarders of a message may have refused
	// or lost a member's copy before its copies go directly until the
	// shuns end: a member that two forwarders refused most likely holds
	// sessions with none of them (its peers have not written to it).
	forwardTries = 2
	// forwardBytes bounds the copies of one forward frame; copies past it
	// are written directly.
	forwardBytes = 64 << 10
	// forwardMemory bounds the sender's memory of forwarders (shunned
	// pairs, and each member's forwarder): past it the expired shuns go,
	// and if that is not room enough the whole of it (forgetting a shun
	// costs one more refusal, or one more wait).
	forwardMemory = 4096
)

// forwardPlan is the sender's memory of forwarders, and the forwarded
// copies waiting for their receipts. mu guards it; it is taken alone.
type forwardPlan struct {
	o *outbox

	mu      sync.Mutex
	min     int                   // forwardMin; tests lower it
	wait    time.Duration         // forwardWait; tests shorten it
	shunned map[fwdPair]time.Time // until when a forwarder is not asked for a member
	via     map[peer.ID]peer.ID   // the forwarder a member's copies went through last
	watch   []fwdWatch            // forwarded copies, oldest first
	timer   *time.Timer           // fires when the oldest is due
	armed   bool                  // timer runs
	copies  atomic.Uint64         // copies forwarded (tests, the benchmark)
	taken   atomic.Uint64         // forwarded copies written directly after all
}

type fwdPair struct{ via, member peer.ID }

// fwdWatch is a forwarded copy: member p's copy of message id, through
// forwarder via, counted written on the member's session cs at.
type fwdWatch struct {
	p, via peer.ID
	cs     *chatSession
	id     e2e.MessageID
	at     time.Time
}

func newForwardPlan(o *outbox) *forwardPlan {
	return &forwardPlan{o: o, min: forwardMin, wait: forwardWait, shunned: map[fwdPair]time.Time{}, via: map[peer.ID]peer.ID{}}
}

// plan orders job's copies for the writer: forwarder units first, each
// a forwarder's copy followed by the copies it carries, then the copies
// written directly (units of one). to are all the members the message
// goes to, in the group's order; job has the copies of those the writer
// takes. A job too small, or without forwarders, is left as it is.
func (fp *forwardPlan) plan(job *fanJob, to []peer.ID) {
	n := len(job.copies)
	fp.mu.Lock()
	least := fp.min
	fp.mu.Unlock()
	if n < least {
		return
	}
	// Who said they forward, and who may forward (a direct session):
	// looked at before the plan's lock, which is a leaf.
	says, direct := make([]bool, n), make([]bool, n)
	for i := range job.copies {
		c := &job.copies[i]
		says[i] = c.cs.settings().Forwards
		direct[i] = says[i] && c.cs.forwards()
	}
	fwd, isFwd := fp.forwarders(job, to, direct)
	if len(fwd) == 0 {
		return
	}
	now := fp.o.cfg.Now()
	carried := make([][]int, len(fwd))
	var alone []int // written directly
	fp.mu.Lock()
	next := 0 // round robin over the forwarders
	for i := range job.copies {
		switch {
		case isFwd[i]:
		case !says[i]: // an older peer: directly
			alone = append(alone, i)
		default:
			if j := fp.choose(job.copies[i].p, job.copies, fwd, &next, now); j >= 0 {
				carried[j] = append(carried[j], i)
			} else {
				alone = append(alone, i)
			}
		}
	}
	fp.mu.Unlock()
	order := make([]fanCopy, 0, n)
	job.unit = make([]int, 0, n)
	for j, f := range fwd {
		job.unit = append(job.unit, 1+len(carried[j]))
		order = append(order, job.copies[f])
		for _, i := range carried[j] {
			job.unit = append(job.unit, 0)
			order = append(order, job.copies[i])
		}
	}
	for _, i := range alone {
		job.unit = append(job.unit, 1)
		order = append(order, job.copies[i])
	}
	job.copies = order
}

// forwarders returns the indices in job.copies of the message's
// forwarders, and marks them: the first ⌈√n⌉ of the group's other
// members, in its order (to), that forward on a direct session with us
// (direct, for those in the job). A member among them whose copy is not
// in the job (its worker is busy) keeps its place and forwards nothing
// this time: the forwarders stay the same from message to message, so
// those they opened sessions with stay theirs.
func (fp *forwardPlan) forwarders(job *fanJob, to []peer.ID, direct []bool) (fwd []int, isFwd []bool) {
	at := make(map[peer.ID]int, len(job.copies))
	for i := range job.copies {
		at[job.copies[i].p] = i
	}
	isFwd = make([]bool, len(job.copies))
	k := int(math.Ceil(math.Sqrt(float64(len(to)))))
	for _, p := range to {
		if k == 0 {
			break
		}
		i, in := at[p]
		switch {
		case in && direct[i]:
			fwd, isFwd[i] = append(fwd, i), true
			k--
		case !in && fp.forwardsFor(p):
			k--
		}
	}
	return fwd, isFwd
}

// forwardsFor says whether p's newest live session with us forwards.
func (fp *forwardPlan) forwardsFor(p peer.ID) bool {
	cs := fp.o.sessions.newest(p)
	return cs != nil && cs.forwards()
}

// forwards says whether the peer of cs may forward for us, or be sent
// forwarded copies, on it: it said it forwards, and cs is direct.
func (cs *chatSession) forwards() bool {
	return cs.settings().Forwards && !cs.conn.Stat().Limited
}

// choose returns the index in fwd of the forwarder for member p: the one
// its copies went through last, if it forwards this message and is not
// shunned for p, else the next in turn that is not. -1: none, or
// forwardTries of them shun p already. Callers hold mu.
func (fp *forwardPlan) choose(p peer.ID, copies []fanCopy, fwd []int, next *int, now time.Time) int {
	shunned := 0
	for _, f := range fwd {
		if fp.shuns(copies[f].p, p, now) {
			shunned++
		}
	}
	if shunned >= forwardTries {
		return -1
	}
	if v, ok := fp.via[p]; ok {
		for j, f := range fwd {
			if copies[f].p == v && !fp.shuns(v, p, now) {
				return j
			}
		}
	}
	for range fwd {
		j := *next % len(fwd)
		*next++
		if v := copies[fwd[j]].p; !fp.shuns(v, p, now) {
			if len(fp.via) >= forwardMemory {
				clear(fp.via)
			}
			fp.via[p] = v
			return j
		}
	}
	return -1
}

// shuns says whether via is not to be asked for member p now. Callers
// hold mu.
func (fp *forwardPlan) shuns(via, p peer.ID, now time.Time) bool {
	until, ok := fp.shunned[fwdPair{via, p}]
	if ok && !now.Before(until) {
		delete(fp.shunned, fwdPair{via, p})
		return false
	}
	return ok
}

// shun stops asking via for member p until then. Callers hold mu.
func (fp *forwardPlan) shun(via, p peer.ID, until time.Time) {
	now := fp.o.cfg.Now()
	if len(fp.shunned) >= forwardMemory {
		for k, end := range fp.shunned {
			if !now.Before(end) {
				delete(fp.shunned, k)
			}
		}
		if len(fp.shunned) >= forwardMemory {
			clear(fp.shunned)
		}
	}
	fp.shunned[fwdPair{via, p}] = until
	if fp.via[p] == via {
		delete(fp.via, p)
	}
}

// forward writes a forwarder unit of job: the forwarder's own copy, then
// the copies it carries in one forward frame. A copy that does not fit
// in forwardBytes, or every copy when the forwarder's copy or the frame
// could not be written, is written directly.
func (f *fanout) forward(job *fanJob, unit []fanCopy, now time.Time) {
	fw := &unit[0]
	if !f.writeOne(job.id, fw, now) {
		for i := 1; i < len(unit); i++ {
			f.writeOne(job.id, &unit[i], now)
		}
		return
	}
	bundle := e2e.Forward{Group: job.group, ID: job.id, Copies: make([]e2e.ForwardCopy, 0, len(unit)-1)}
	carried := make([]*fanCopy, 0, len(unit)-1)
	size := 0
	for i := 1; i < len(unit); i++ {
		c := &unit[i]
		env, ok := f.o.rk.takeSealed(c.p, job.id)
		if !ok {
			continue // sealed again by its worker
		}
		if size += len(env) + 64; size > forwardBytes { // 64: the member's ID and the lengths, at most
			f.writeEnv(job.id, c, env, now)
			continue
		}
		bundle.Copies = append(bundle.Copies, e2e.ForwardCopy{Member: c.p, Envelope: env})
		carried = append(carried, c)
	}
	if len(carried) == 0 {
		return
	}
	payload, err := bundle.Marshal()
	// Counted written before the frame goes: a receipt may come back
	// before Send returns.
	for _, c := range carried {
		c.cs.markSent(job.id, now)
	}
	if err == nil {
		err = fw.cs.s.Send(e2e.FrameForward, payload)
	}
	if err != nil {
		f.o.log.Info("forward group copies; writing them directly", "forwarder", fw.p, "err", err)
		for i, c := range carried {
			f.writeEnv(job.id, c, bundle.Copies[i].Envelope, now)
		}
		return
	}
	f.o.fwd.watching(job.id, fw.p, carried, now)
	for _, c := range carried {
		c.written = true
	}
}

// watching records the copies carried by forwarder via, to take back
// those whose receipts do not come.
func (fp *forwardPlan) watching(id e2e.MessageID, via peer.ID, carried []*fanCopy, now time.Time) {
	fp.copies.Add(uint64(len(carried)))
	fp.mu.Lock()
	defer fp.mu.Unlock()
	for _, c := range carried {
		fp.watch = append(fp.watch, fwdWatch{p: c.p, via: via, cs: c.cs, id: id, at: now})
	}
	if !fp.armed {
		fp.armed = true
		d := fp.watch[0].at.Add(fp.wait).Sub(fp.o.cfg.Now())
		if fp.timer == nil {
			fp.timer = time.AfterFunc(d, fp.due)
		} else {
			fp.timer.Reset(d)
		}
	}
}

// due takes back the forwarded copies whose receipts are overdue, and
// waits for the next.
func (fp *forwardPlan) due() {
	now := fp.o.cfg.Now()
	fp.mu.Lock()
	n := 0
	for n < len(fp.watch) && !now.Before(fp.watch[n].at.Add(fp.wait)) {
		n++
	}
	overdue := append([]fwdWatch(nil), fp.watch[:n]...)
	fp.watch = append(fp.watch[:0], fp.watch[n:]...)
	if len(fp.watch) > 0 {
		fp.timer.Reset(fp.watch[0].at.Add(fp.wait).Sub(now))
	} else {
		fp.armed = false
	}
	fp.mu.Unlock()
	fp.takeBack(overdue, "no receipt", forwardShun)
}

// refused takes back the copies of message id that forwarder via says
// it did not write onward. Only copies it was given count. A copy
// refused "later" (the forwarder opens a session with the member) does
// not shun the forwarder: the member's next copy goes to it again.
func (fp *forwardPlan) refused(via peer.ID, r e2e.ForwardRefused) {
	for _, later := range []bool{false, true} {
		why, shun := "refused", forwardShun
		if later {
			why, shun = "refused for now", 0
		}
		fp.takeBack(fp.unwatch(func(w *fwdWatch) bool {
			return w.via == via && w.id == r.ID && slices.ContainsFunc(r.Refused, func(x e2e.Refusal) bool {
				return x.Member == w.p && x.Later == later
			})
		}), why, shun)
	}
}

// lost takes back every copy forwarder via was given and whose receipt
// has not come: a session with it ended, and a copy it had not written
// onward yet would not be.
func (fp *forwardPlan) lost(via peer.ID) {
	fp.takeBack(fp.unwatch(func(w *fwdWatch) bool { return w.via == via }), "the forwarder's session ended", forwardShun)
}

// unwatch stops watching the copies match picks, and returns them.
func (fp *forwardPlan) unwatch(match func(*fwdWatch) bool) []fwdWatch {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	var picked []fwdWatch
	kept := fp.watch[:0]
	for i := range fp.watch {
		if match(&fp.watch[i]) {
			picked = append(picked, fp.watch[i])
			continue
		}
		kept = append(kept, fp.watch[i])
	}
	clear(fp.watch[len(kept):])
	fp.watch = kept
	return picked
}

// takeBack has the members' workers write copies that went to a
// forwarder and whose receipts have not come, and shuns the forwarder
// for those members for shun (none for 0). A copy acknowledged
// meanwhile is left alone.
func (fp *forwardPlan) takeBack(ws []fwdWatch, why string, shun time.Duration) {
	if len(ws) == 0 {
		return
	}
	now := fp.o.cfg.Now()
	o := fp.o
	var back []fwdWatch
	o.mu.Lock()
	for _, w := range ws {
		ow, ok := o.workers[w.p]
		if !ok || !ow.running || (ow.fresh && indexOf(ow.pending, w.id) < 0) {
			continue // acknowledged
		}
		w.cs.unmarkSent(w.id)
		ow.mark++
		signal(ow.kick)
		back = append(back, w)
	}
	o.mu.Unlock()
	if len(back) == 0 {
		return
	}
	fp.taken.Add(uint64(len(back)))
	if shun > 0 {
		fp.mu.Lock()
		for _, w := range back {
			fp.shun(w.via, w.p, now.Add(shun))
		}
		fp.mu.Unlock()
	}
	o.log.Info("forwarded group copies taken back; written directly", "why", why, "copies", len(back), "forwarder", back[0].via)
}
