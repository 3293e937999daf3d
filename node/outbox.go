package node

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/e2e/ratchet"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// The outbox. Every outgoing message is stored with its place in the
// conversation and stays in the outbox until the peer's receipt says it is
// stored. One worker per peer with pending messages writes them, in the
// order written, to a live session (dialing one if needed), and writes them
// again on the next session if that one ended before the receipts came:
// the receiver drops duplicates by message ID. Failures back off
// exponentially with jitter between RetryMin and RetryMax; a connection,
// a discovery or a trust decision wakes the worker at once.
//
// A worker keeps its peer's outbox in memory between rounds: it reads it
// from the store when it starts or after a kick (anything may have
// changed), and otherwise keeps it up to date with what push adds (a
// group text's copy, stored just now) and what receipts take out; any
// other change (a group action, a changed status) makes it read the store
// again. The store stays the truth: it is what a restart reads, and what
// the worker checks before it ends.
//
// A receipt wakes the worker only when it holds messages back because the
// send window is full (held): otherwise there is nothing the receipt lets
// it write, and the worker, waiting on its one timer, looks again at most
// workerIdle later (for a stalled session, and to end once nothing is
// pending). Per group message and member that is one wake-up (the push),
// not two.

// outbox owns the per-peer outbox workers. mu guards workers and each
// outboxWorker in it; it is taken by whoever kicks (read loops, libp2p's
// notifications, the API, discovery) and by the workers themselves, and
// only workers.mu is taken under it.
type outbox struct {
	*core
	sessions *sessions
	rk       *ratchetKeys
	mail     *mailboxes
	book     *peerBook

	mu      sync.Mutex
	workers map[peer.ID]*outboxWorker

	sent sentQueue    // messages and group copies written, to record as sent (outbox_sent.go)
	fan  *fanout      // the group copies' fan-out writer (groups_fanout.go)
	fwd  *forwardPlan // forwarders of the writer's copies (groups_forward.go)

	rounds    atomic.Uint64 // the workers' rounds, all peers together (for tests)
	fanWrites atomic.Uint64 // copies the fan-out writer wrote (for tests)
}

// outboxWorker is one peer's worker state.
type outboxWorker struct {
	kick    chan struct{} // wakes the worker
	running bool          // the worker runs
	warned  bool          // a failure to leave messages at a relay was shown
	// outOfStep: the user was told that a new ratchet session was started
	// because receipts stopped (unstall).
	outOfStep bool

	// pending is the peer's outbox in the order written, as the store
	// holds it, when fresh; else the worker reads it again. gen counts
	// the changes made while a read is under way (reading): a read that
	// saw one may have missed it, and is not kept.
	pending []store.Message
	fresh   bool
	reading bool
	gen     uint64

	// held: the worker's last round left messages unwritten because the
	// send window was full, so a receipt wakes it. acks counts the
	// receipts taken out of pending, for a round that decides it is held
	// while one comes.
	held bool
	acks uint64

	// cs is the session the worker's last round wrote on: while it
	// lives and holds every message of pending, the fan-out writer may
	// write a group copy there (outboxWorker.directOn, groups_fanout.go).
	// direct counts the copies with the writer, not yet written or given
	// back: the worker writes nothing meanwhile, lest it write a later
	// copy first; deferred says that a round waited for them, and is
	// woken when they are written.
	cs       *chatSession
	direct   int
	deferred bool

	// mark counts the changes to pending that may add a copy not written
	// on cs (a push, a read of the store, a copy the writer gave back);
	// checked is what directOn found when it last looked at all of it.
	mark    uint64
	checked directCheck
}

// stale makes the worker read its outbox from the store again.
func (w *outboxWorker) stale() {
	w.fresh = false
	w.gen++
}

// sendWindow bounds the bytes of messages written on a session and not yet
// acknowledged. Receipts open the window again. It keeps a session from
// pushing the whole outbox into a connection that may be cut (a relay's
// per-circuit data limit), which would make every reconnection resend it.
const sendWindow = 64 << 10

// workerIdle is how long a worker with nothing to write waits for more
// before it ends.
const workerIdle = 2 * time.Second

// seedWait is how long a worker that has a live session but no ratchet
// session to seal with waits for the seed under way before it asks for a
// new one on that session. A seed offer can be lost: two sessions that
// cross at first contact each carry offers and requests, and one of them
// may close with an offer on it, leaving its sender an active session
// that only the lost offer's acceptance would let it seal with. Waiting
// on would wait for ever. The wait is long enough for a round trip on a
// busy machine: each new offer replaces the one before it.
const seedWait = 2 * time.Second

// worker returns p's worker state, creating it. Callers hold mu.
func (o *outbox) worker(p peer.ID) *outboxWorker {
	w, ok := o.workers[p]
	if !ok {
		w = &outboxWorker{kick: make(chan struct{}, 1)}
		o.workers[p] = w
	}
	return w
}

// kick wakes p's outbox worker, starting it if p has pending messages. It
// records no state for peers with nothing pending (any libp2p peer that
// connects is kicked), and reads the store outside the lock: stop checks
// again under it, so no message can be missed.
func (o *outbox) kick(p peer.ID) {
	if o.wake(p) {
		return
	}
	pending, err := o.store.HasOutbox(p)
	if err != nil {
		o.log.Error("read outbox", "peer", p, "err", err)
		pending = true // the worker reads it again, and backs off
	}
	if !pending {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	w := o.worker(p)
	w.stale()
	o.start(p, w)
}

// start wakes p's worker, starting it if it does not run. Callers hold mu.
func (o *outbox) start(p peer.ID, w *outboxWorker) {
	if w.running {
		signal(w.kick)
		return
	}
	w.running = o.work.goDo(func() { o.run(p, w.kick) })
}

// wake wakes p's running worker, to read its outbox again, and reports
// whether there was one.
func (o *outbox) wake(p peer.ID) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	w, ok := o.workers[p]
	if !ok || !w.running {
		return false
	}
	w.stale()
	signal(w.kick)
	return true
}

// push hands p's worker m, stored in p's outbox just now, and wakes it: a
// worker that holds p's outbox in memory adds a text (or reply) there
// rather than read the store again. A group message's copies keep their
// order (Seq). An action makes it read the store: storing one may change
// other copies (a deletion takes the deleted text and our actions on it
// out of every queue).
func (o *outbox) push(p peer.ID, m store.Message) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.pushLocked(p, o.worker(p), m)
}

// pushLocked is push, for p's worker w. Callers hold mu.
func (o *outbox) pushLocked(p peer.ID, w *outboxWorker, m store.Message) {
	switch {
	case !w.fresh || w.reading || m.Kind != store.KindText:
		w.stale()
	default:
		if i, ok := insertAt(w.pending, &m); ok {
			w.pending = slices.Insert(w.pending, i, m)
			w.mark++
		}
	}
	o.start(p, w)
}

// insertAt returns where m goes in pending, a worker's copy of its
// outbox, or false if pending holds it already: at the end, or for a
// group message's copy before the first later copy of its group. One
// pass, without copying the messages it looks at.
func insertAt(pending []store.Message, m *store.Message) (int, bool) {
	at := len(pending)
	for i := range pending {
		x := &pending[i]
		if x.ID == m.ID {
			return 0, false
		}
		if at == len(pending) && m.Group != (store.GroupID{}) && x.Group == m.Group && x.Seq > m.Seq {
			at = i
		}
	}
	return at, true
}

// outbox returns p's outbox: the worker's copy if it is fresh, else what
// the store holds, which becomes the worker's copy unless something
// changed during the read. The worker's copy is copied into buf (the
// worker's own, reused from round to round). acks is the count of
// receipts taken out of the copy so far (outboxWorker.acks).
func (o *outbox) outbox(p peer.ID, buf []store.Message) (msgs []store.Message, acks uint64, err error) {
	o.mu.Lock()
	w := o.worker(p)
	if w.direct > 0 {
		// The fan-out writer has copies to write: the round waits for
		// them (directDone wakes the worker).
		w.deferred = true
		acks = w.acks
		o.mu.Unlock()
		return buf[:0], acks, errWithWriter
	}
	if w.fresh {
		msgs, acks = append(buf[:0], w.pending...), w.acks
		o.mu.Unlock()
		return msgs, acks, nil
	}
	w.reading = true
	gen := w.gen
	o.mu.Unlock()
	msgs, err = o.store.Outbox(p)
	o.mu.Lock()
	defer o.mu.Unlock()
	w.reading = false
	if err == nil && w.gen == gen {
		w.pending, w.fresh = slices.Clone(msgs), true
		w.mark++
	}
	return msgs, w.acks, err
}

// errWithWriter says that a worker's round waits for the copies it
// handed the fan-out writer (outbox.outbox).
var errWithWriter = errors.New("group copies with the fan-out writer")

// holdLocked records whether w left messages unwritten because the send
// window is full (wrote). Callers hold outbox.mu.
func (w *outboxWorker) holdLocked(held bool, acks uint64) {
	w.held = held
	if held && w.acks != acks {
		signal(w.kick)
	}
}

// acked takes messages p acknowledged (recorded as delivered) out of its
// worker's copy of the outbox, and wakes it if it holds messages back for
// the send window, which opened (ackedCopies).
func (o *outbox) acked(p peer.ID, ids []e2e.MessageID) {
	for _, q := range o.ackedCopies(store.CopiesTo(p, ids)) {
		o.kick(q)
	}
}

// tookLocked is what taking receipted messages out of w's copy of the
// outbox (acked, takeGroupCopies) implies: one more receipt counted, a
// read under way not kept (it may hold them still), and the worker woken
// if it holds messages back for the send window, which opened. Callers
// hold outbox.mu.
func (w *outboxWorker) tookLocked() {
	w.acks++
	if w.reading {
		w.gen++
	}
	if w.held {
		w.held = false
		signal(w.kick)
	}
}

// takeGroupCopies finds the group messages' copies among acks, copies
// whose receipts came: those their workers hold in their copies of the
// outbox. It moves them to the front of acks and reports how many, and
// takes them out of the workers' copies, waking those that hold messages
// back for the send window: the receipt queue holds them to record with
// others (receipts.go), and the window opens when the receipt comes, not
// when it is recorded. The store still holds them in the outbox until it
// is: a worker that reads it meanwhile finds them again, written on its
// session already, until acked takes them out. A copy a worker does not
// hold (not read yet, or stale) counts as a 1:1 one. One lock for the
// batch.
func (o *outbox) takeGroupCopies(acks []store.Copy) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for i, a := range acks {
		w, ok := o.workers[a.Peer]
		if !ok {
			continue
		}
		j := indexOf(w.pending, a.ID)
		if j < 0 || w.pending[j].Group == (store.GroupID{}) {
			continue
		}
		acks[n], acks[i] = acks[i], acks[n]
		n++
		w.pending = slices.Delete(w.pending, j, j+1)
		w.tookLocked()
	}
	return n
}

// unacked returns the copies that may still wait for their receipts:
// those their worker's fresh copy of the outbox holds, and any whose
// worker has no fresh copy (the store decides). A copy that a fresh copy
// does not hold has left the outbox: delivered, failed or deleted.
func (o *outbox) unacked(copies []store.Copy) []store.Copy {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.DeleteFunc(copies, func(c store.Copy) bool {
		w, ok := o.workers[c.Peer]
		if !ok || !w.fresh || w.reading {
			return false
		}
		return indexOf(w.pending, c.ID) < 0
	})
}

// invalidate makes p's worker read its outbox again (a status changed).
func (o *outbox) invalidate(p peer.ID) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if w, ok := o.workers[p]; ok {
		w.stale()
	}
}

// wrote records in p's worker's copy that msgs are sent on cs, and
// whether the worker left messages unwritten because the send window is
// full, so that receipts wake it (holdLocked: a receipt taken since the
// worker read its outbox, acks, may have seen it not held: then it wakes
// itself). One lock for all.
func (o *outbox) wrote(cs *chatSession, ids []e2e.MessageID, held bool, acks uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	w := o.worker(cs.peer)
	for i := range w.pending {
		if w.pending[i].Status == store.StatusSending && slices.Contains(ids, w.pending[i].ID) {
			w.pending[i].Status = store.StatusSent
		}
	}
	w.holdLocked(held, acks)
	if w.cs != cs {
		w.checked = directCheck{} // found on the session before: let it go
	}
	w.cs = cs
}

// stop ends the worker unless a message arrived meanwhile. Send stores
// before it kicks, so checking the store under mu cannot miss one.
func (o *outbox) stop(p peer.ID) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	w := o.worker(p)
	if w.fresh && len(w.pending) > 0 {
		return false // pushed meanwhile
	}
	if pending, err := o.store.HasOutbox(p); pending || err != nil {
		w.stale()
		return false
	}
	// Empty, and every message stored from now on is pushed or kicked.
	w.running, w.pending, w.fresh = false, nil, true
	w.mark++
	return true
}

// run is p's worker: it writes what waits for p until nothing does.
func (o *outbox) run(p peer.ID, kick chan struct{}) {
	backoff := o.cfg.RetryMin
	var unsealed seedAsk
	t := time.NewTimer(workerIdle) // the worker's one timer, reset for each wait
	defer t.Stop()
	var buf []store.Message // the outbox as of this round, reused
	var bufs writeBufs
	// quiet: the last wait, after writing, ran its course: nothing came
	// for workerIdle.
	quiet := false
	for o.ctx.Err() == nil {
		o.rounds.Add(1)
		msgs, acks, err := o.outbox(p, buf)
		if errors.Is(err, errWithWriter) {
			o.sleepOn(t, workerIdle, kick)
			continue
		}
		if err == nil {
			buf = msgs
		}
		if err != nil {
			o.log.Error("read outbox", "peer", p, "err", err)
		}
		if len(msgs) == 0 && err == nil {
			// Nothing waits: stay a while for the next message (a
			// group's next copy comes without a new goroutine or a read
			// of the store), then end unless one arrived meanwhile. A
			// worker that waited as long after its last write ends now.
			if (quiet || o.sleepOn(t, workerIdle, kick)) && o.stop(p) {
				return
			}
			quiet = false
			continue
		}
		quiet = false
		if len(msgs) == 0 {
			// Pending but unreadable: never spin.
			o.sleepOn(t, jitter(backoff), kick)
			backoff = min(2*backoff, o.cfg.RetryMax)
			continue
		}
		if err := o.book.mayMessageSince(p, time.Now().Add(-trustRecheck)); err != nil {
			o.sleepOn(t, min(o.cfg.RetryMax, decisionRecheck), kick) // until the user decides
			continue
		}
		cs, err := o.sessions.get(o.ctx, p)
		if err != nil {
			o.log.Info("peer not reachable; will retry", "peer", p, "in", backoff, "err", err)
			o.queueOffline(p, msgs)
			// Only a retry that came due grows the wait: a new message or
			// a sign of the peer (a kick) tries again without pushing the
			// next retry further out.
			if o.sleepOn(t, jitter(backoff), kick) {
				backoff = min(2*backoff, o.cfg.RetryMax)
			}
			continue
		}
		backoff = o.cfg.RetryMin
		if !o.write(cs, msgs, acks, &bufs) {
			o.sleepOn(t, unsealed.wait(o.sessions, cs), kick, cs.done)
			continue
		}
		unsealed = seedAsk{}
		// Receipts do not wake the worker unless it is held, so it looks
		// again every workerIdle (or sooner if ResendAfter is shorter):
		// to end once everything is acknowledged, and to see whether a
		// receipt is overdue (unstall checks ResendAfter itself).
		if o.sleepOn(t, min(workerIdle, o.cfg.ResendAfter), kick, cs.done) {
			quiet = true
			o.unstall(cs)
		}
	}
}

// seedAsk is a worker's record of the live session it could not seal
// for, and since when (or since it last asked for a seed on it).
type seedAsk struct {
	cs    *chatSession
	since time.Time
}

// wait returns how long to wait for the seed under way on cs, asking for
// a new one first if the last has had seedWait.
func (a *seedAsk) wait(t *sessions, cs *chatSession) time.Duration {
	now := time.Now() // not cfg.Now: tests fix that clock
	if a.cs != cs {
		a.cs, a.since = cs, now
	}
	left := a.since.Add(seedWait).Sub(now)
	if left <= 0 {
		t.log.Info("no ratchet session to seal with; asking for a new seed", "peer", cs.peer)
		t.reseed(cs)
		a.since, left = now, seedWait
	}
	return left
}

// unstall starts a new ratchet session when a message written on cs has
// waited ResendAfter for its receipt while the session works. The
// receiver drops, as a duplicate and without a word, an envelope sealed
// with a message key it has used already: what a sender whose ratchet
// state went back (a home restored from a backup) seals. A new session,
// seeded from this TLS session, puts both in step again; the pending
// messages are written again on it, and the receiver drops any it
// stored already (by message ID). A receipt that is merely slow costs a
// new session and nothing else.
func (o *outbox) unstall(cs *chatSession) {
	pending, _, err := o.outbox(cs.peer, nil)
	if err != nil || !cs.stalled(pending, o.cfg.Now().Add(-o.cfg.ResendAfter)) {
		return
	}
	o.log.Warn("no receipt on a working session; starting a new ratchet session", "peer", cs.peer, "pending", len(pending))
	o.sessions.reseed(cs)
	o.mu.Lock()
	w := o.worker(cs.peer)
	told := w.outOfStep
	w.outOfStep = true
	o.mu.Unlock()
	if !told {
		o.emitError(cs.peer, fmt.Errorf("%s %w: either they have not accepted you yet, and your messages wait with you until they do, or your encryption sessions were out of step, as when a home is restored from a backup; a new session was started and your messages are sent again, but in that case messages between you since then may have been lost", identity.ShortID(cs.peer), ErrNoReceipt))
	}
}

// queueOffline deposits what waits for an unreachable peer at its relay
// mailbox, if it has one. A failure the user can act on is shown once per
// peer per run (the outbox retries for as long as the peer is away, and
// each start retries again); the others only wait (offlineNotice).
func (o *outbox) queueOffline(p peer.ID, msgs []store.Message) {
	if err := o.mail.queue(p, msgs); err != nil {
		o.notQueued(p, err)
	}
}

// notQueued reports a failure to leave p's messages at a relay.
func (o *outbox) notQueued(p peer.ID, err error) {
	if !offlineNotice(err) {
		o.log.Info("message not left at a relay; it waits in the outbox", "peer", p, "err", err)
		return
	}
	o.mu.Lock()
	w := o.worker(p)
	told := w.warned
	w.warned = true
	o.mu.Unlock()
	if told {
		o.log.Info("message not left at a relay; it waits in the outbox (the user was told)", "peer", p, "err", err)
		return
	}
	o.emitError(p, fmt.Errorf("%s is offline and the message could not be left at a relay (it waits in your outbox): %w", identity.ShortID(p), err))
}

// write writes, in order, the messages not yet written on this session,
// while the unacknowledged ones fit in the send window. What it writes in
// one go is sealed with one ratchet commit and marked sent with one store
// transaction: two fsyncs per batch instead of two per message.
// Durability is unchanged: each envelope leaves after the ratchet state
// that sealed it is on disk, and the message itself was stored by Send.
// It reports false (sealed) if there was no ratchet session to seal with.
// It records whether it held messages back because the send window is
// full (wrote; acks is the worker's count of receipts as of reading msgs). b holds the worker's slices, reused from round to round.
func (o *outbox) write(cs *chatSession, msgs []store.Message, acks uint64, b *writeBufs) (sealed bool) {
	defer b.reset()
	batch, pts, held := o.batch(cs, msgs, b)
	b.batch, b.pts = batch, pts
	if len(batch) == 0 {
		o.wrote(cs, nil, held, acks)
		return true
	}
	envs, err := o.rk.sealBatch(cs.peer, batch, pts, b.envs[:0])
	b.envs = envs
	noSession := errors.Is(err, ratchet.ErrNoSession) // a seed wakes the worker
	if err != nil && !noSession {
		// The first message that could not be sealed will not be later.
		o.fail(batch[len(envs)], err)
	}
	o.tellSent(batch[:len(envs)])
	written, groupSent := b.written[:0], b.groupSent[:0]
	now := o.cfg.Now()
	for i, env := range envs {
		m := &batch[i]
		cs.markSent(m.ID, now)
		if err := cs.s.Send(e2e.FrameEnvelope, env); err != nil {
			o.log.Info("write message", "peer", cs.peer, "err", err)
			cs.s.Close()
			break
		}
		switch {
		case m.Status == store.StatusSending && m.Group != (store.GroupID{}):
			groupSent = append(groupSent, store.Copy{Peer: cs.peer, ID: m.ID})
		case m.Status == store.StatusSending:
			written = append(written, m.ID)
		}
	}
	direct := len(written)
	for _, m := range groupSent {
		written = append(written, m.ID)
	}
	// A 1:1 message written is recorded as sent sentDelay later unless
	// its receipt comes first (directSent): no write for it in the
	// common case.
	o.wrote(cs, written, held, acks)
	o.directSent(cs.peer, written[:direct])
	o.groupCopiesSent(groupSent)
	b.written, b.groupSent = written, groupSent
	return !noSession
}

// tellSent tells whoever watches that the 1:1 messages of batch still
// sending are sent, before their envelopes leave: their receipts, and
// so their "delivered", can only come after. Each is told once, even if
// it is written again on another session (sentQueue.tell); one whose
// write fails is written again on the next session, so "sent" is early
// by a reconnection at most.
func (o *outbox) tellSent(batch []store.Message) {
	var sending []store.Message
	for _, m := range batch {
		if m.Status == store.StatusSending && m.Group == (store.GroupID{}) {
			m.Status = store.StatusSent
			sending = append(sending, m)
		}
	}
	if len(sending) == 0 {
		return
	}
	for _, m := range o.sent.tell(sending) {
		o.emit(Event{Kind: EventStatus, Message: &m})
	}
}

// writeBufs are a worker's slices for write, reused from round to round:
// a group message costs each member's worker no allocation for them.
type writeBufs struct {
	was       []bool // written on the session (chatSession.written)
	batch     []store.Message
	pts       [][]byte
	envs      [][]byte
	written   []e2e.MessageID
	groupSent []store.Copy
}

// reset empties b, dropping what its slices refer to (bodies,
// plaintexts) until the next round.
func (b *writeBufs) reset() {
	clear(b.batch)
	clear(b.pts)
	clear(b.envs)
	clear(b.groupSent)
	b.was, b.batch, b.pts, b.envs = b.was[:0], b.batch[:0], b.pts[:0], b.envs[:0]
	b.written, b.groupSent = b.written[:0], b.groupSent[:0]
}

// batch picks the messages to write on cs now and their plaintexts: those
// not written on it yet, while the unacknowledged ones fit in the window;
// held says that the window kept some back. They are appended to
// b.batch and b.pts, emptied first.
func (o *outbox) batch(cs *chatSession, msgs []store.Message, b *writeBufs) ([]store.Message, [][]byte, bool) {
	batch, pts := b.batch[:0], b.pts[:0]
	was := cs.written(msgs, b.was[:0])
	b.was = was
	inflight := 0
	for i := range msgs {
		m := &msgs[i]
		if was[i] {
			inflight += len(m.Body)
			continue
		}
		if inflight > 0 && inflight+len(m.Body) > sendWindow {
			return batch, pts, true // receipts will wake the worker
		}
		if o.rk.hasSealed(cs.peer, m.ID) { // sealed when it was stored
			inflight += len(m.Body)
			batch, pts = append(batch, *m), append(pts, nil)
			continue
		}
		pt, err := o.rk.plaintext(*m)
		if err != nil {
			o.fail(*m, err)
			continue
		}
		inflight += len(m.Body)
		batch, pts = append(batch, *m), append(pts, pt)
	}
	return batch, pts, false
}

// acknowledged records receipts, from any peers, in one transaction:
// the messages are delivered, leave the outbox, and the send windows
// open. If that fails (a record that cannot be read among them), each
// peer's are recorded apart, and one by one if need be.
func (o *outbox) acknowledged(acks []store.Copy) {
	updated, err := o.store.SetStatuses(acks, store.StatusDelivered, o.cfg.Now())
	if err != nil {
		o.log.Warn("record receipts; trying peer by peer", "err", err)
		byPeer := map[peer.ID][]e2e.MessageID{}
		for _, a := range acks {
			byPeer[a.Peer] = append(byPeer[a.Peer], a.ID)
		}
		for p, ids := range byPeer {
			o.setStatuses(p, ids, store.StatusDelivered)
			o.kick(p)
		}
		return
	}
	for i := range updated {
		o.emit(Event{Kind: EventStatus, Message: &updated[i]})
	}
	for _, p := range o.ackedCopies(acks) {
		o.kick(p)
	}
}

// ackedCopies is acked for copies to any number of peers (a group
// message's receipts), under one lock: each running worker's copy of
// its outbox loses them. It returns the peers whose workers do not run,
// once each, to be kicked.
func (o *outbox) ackedCopies(acks []store.Copy) (idle []peer.ID) {
	o.mu.Lock()
	for _, a := range acks {
		w, ok := o.workers[a.Peer]
		if !ok || !w.running {
			idle = append(idle, a.Peer)
			continue
		}
		if i := indexOf(w.pending, a.ID); i >= 0 {
			w.pending = slices.Delete(w.pending, i, i+1)
		}
		w.tookLocked()
	}
	o.mu.Unlock()
	slices.Sort(idle)
	return slices.Compact(idle)
}

// seen records seen receipts from p (read markers): the messages are
// seen, and delivered if they were not yet.
func (o *outbox) seen(p peer.ID, ids []e2e.MessageID) {
	updated, err := o.store.Actions().SetSeen(p, ids, o.cfg.Now())
	if err != nil {
		o.log.Warn("record seen receipts", "peer", p, "err", err)
		return
	}
	for i := range updated {
		o.emit(Event{Kind: EventSeen, Message: &updated[i]})
	}
	if len(updated) > 0 {
		o.kick(p)
	}
}

// setStatuses records a status for several messages to p in one
// transaction and reports each change. If that fails (a record that
// cannot be read among them), each is recorded on its own, so one bad
// record does not hold back the others.
func (o *outbox) setStatuses(p peer.ID, ids []e2e.MessageID, st store.Status) {
	if len(ids) == 0 {
		return
	}
	updated, err := o.store.SetStatuses(store.CopiesTo(p, ids), st, o.cfg.Now())
	if err != nil {
		o.log.Warn("update message statuses; trying one by one", "peer", p, "err", err)
		for _, id := range ids {
			o.setStatus(store.Message{ID: id, Peer: p}, st, "")
		}
		return
	}
	for i := range updated {
		o.emit(Event{Kind: EventStatus, Message: &updated[i]})
	}
}

// setStatus records a message's new status (with the reason of a
// failure) and reports it if it changed.
func (o *outbox) setStatus(m store.Message, st store.Status, errText string) {
	updated, changed, err := o.store.SetStatus(m.ID, m.Peer, st, errText, o.cfg.Now())
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		o.log.Error("update message status", "id", m.ID, "err", err)
	case changed:
		o.invalidate(m.Peer) // its worker's copy has the old status
		o.emit(Event{Kind: EventStatus, Message: &updated})
	}
}

// fail gives up on a message, saying why.
func (o *outbox) fail(m store.Message, cause error) {
	o.setStatus(m, store.StatusFailed, cause.Error())
}

// failAll gives up on every message waiting for p, with a reason the user
// sees: nothing waits forever for a key that will never answer.
func (o *outbox) failAll(p peer.ID, reason string) {
	msgs, err := o.store.Outbox(p)
	if err != nil {
		o.log.Error("read outbox", "peer", p, "err", err)
		return
	}
	for _, m := range msgs {
		o.fail(m, errors.New(reason))
	}
}

// resume starts the workers of every peer with pending messages, and
// returns those peers.
func (o *outbox) resume() ([]peer.ID, error) {
	peers, err := o.store.OutboxPeers()
	if err != nil {
		return nil, err
	}
	for _, p := range peers {
		o.kick(p)
	}
	return peers, nil
}

// indexOf is the index of the message with id in msgs, or -1. It reads
// the messages in place: slices.IndexFunc with a func of a store.Message
// copies each one (about 45 ns a look-up in eight, against 3), and the
// receipts of a group message look up each member's outbox.
func indexOf(msgs []store.Message, id e2e.MessageID) int {
	for i := range msgs {
		if msgs[i].ID == id {
			return i
		}
	}
	return -1
}
