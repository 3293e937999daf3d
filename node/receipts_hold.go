package node

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certchat/certchat/e2e"
)

// The stored receipts of group envelopes that arrive on a live session are
// held a little and written together (PROTOCOL §14.6): a member of a busy
// group acknowledges each sender's copies in one write every
// receiptHoldFor instead of one write each, and the sender reads them in
// one TLS record instead of one each. Nothing on the wire is new: the
// same receipt frames, in one write (e2e.Session.SendReceipts).
//
// 1:1 messages, what came through a mailbox and a group message decided
// after it was held for its sender's add (holds) are acknowledged at once
// (mailboxes.sendReceipt); so is a copy stored before that came again,
// since its sender missed the receipt (groupDelivered). Held receipts
// are written when the hold is full, when receiptHoldFor has passed
// since the first, and when the session closes on purpose (Node.Close, a chat moving to a direct
// connection); if the session ends otherwise (the sender moved the chat,
// or it died), on the peer's other live session if there is one, else
// they are lost with it, which costs nothing: the sender keeps every
// copy not acknowledged and writes it again on its next session, and we
// acknowledge it again.
const (
	// receiptHoldFor is the longest a receipt is held: long enough that
	// a member of a busy group writes one batch for about 20 of a
	// sender's messages (at 25 a second; the sender reads and decrypts
	// a record per batch), short enough that "delivered" shows within
	// about a second. The sender's timers are far longer
	// (TestReceiptHoldBelowTimers): a copy's "sent" is recorded after
	// sentDelay (3 s) without its receipt, and a new ratchet session is
	// started after Config.ResendAfter (30 s).
	receiptHoldFor = 750 * time.Millisecond
	// receiptHoldMax receipts are written at once.
	receiptHoldMax = 40
	// receiptHoldBytes of envelopes acknowledged by the held receipts are
	// written at once: a quarter of the sender's window (sendWindow), so
	// the window never waits for a held receipt.
	receiptHoldBytes = 16 << 10
)

// receiptHolds is the part that holds receipts and writes them; each
// live session has its own hold (chatSession.held, a receiptHold). The
// read loops hold, one waiter per session while it holds receipts
// writes them, and Close (closeAll) and a chat's move to a direct
// connection (closeSession) write them before closing. Its own state is
// holdFor, atomic.
type receiptHolds struct {
	*core
	// holdFor, in nanoseconds, replaces receiptHoldFor when set (tests).
	holdFor atomic.Int64
}

// receiptHold is a live session's held receipts (chatSession.held). mu
// guards its fields; the session's read loop adds, its waiter, Close and
// a move to a direct connection write, and no lock but workers.mu is
// taken under mu.
type receiptHold struct {
	mu       sync.Mutex
	ids      []e2e.MessageID
	bytes    int  // of the envelopes the held receipts acknowledge
	waiting  bool // a waiter (wait) will write what is held
	released bool // the session closes: receipts are written at once
}

// hold acknowledges a group envelope of size bytes that arrived on
// cs: its receipt is held with the others on cs, or written with them at
// once when the hold is full or the session is closing.
func (t *receiptHolds) hold(cs *chatSession, id e2e.MessageID, size int) {
	h := &cs.held
	h.mu.Lock()
	h.ids = append(h.ids, id)
	h.bytes += size
	if !h.released && len(h.ids) < receiptHoldMax && h.bytes < receiptHoldBytes {
		if h.waiting {
			h.mu.Unlock()
			return
		}
		d := receiptHoldFor
		if x := t.holdFor.Load(); x > 0 {
			d = time.Duration(x)
		}
		if t.work.goDo(func() { t.wait(cs, d) }) {
			h.waiting = true
			h.mu.Unlock()
			return
		}
		// The node is closing, and Close may have passed this session
		// already: written now.
	}
	ids := h.take()
	h.mu.Unlock()
	t.write(cs, ids)
}

// wait writes what cs holds once d has passed. If the session ended
// first, unregister moved them (moveHeld); if the node is closing,
// Close writes them.
func (t *receiptHolds) wait(cs *chatSession, d time.Duration) {
	full := t.sleep(d, cs.done)
	cs.held.mu.Lock()
	cs.held.waiting = false
	var ids []e2e.MessageID
	if full {
		ids = cs.held.take()
	}
	cs.held.mu.Unlock()
	t.write(cs, ids)
}

// release writes what cs holds now, and what it is given later at
// once: the session is about to close on purpose. It reports whether it
// wrote any.
func (t *receiptHolds) release(cs *chatSession) bool {
	cs.held.mu.Lock()
	cs.held.released = true
	ids := cs.held.take()
	cs.held.mu.Unlock()
	t.write(cs, ids)
	return len(ids) > 0
}

// moveHeld writes what cs, which ended, held on to, the peer's live
// session, at once: a receipt acknowledges a message, whatever session
// brought it. The sender closing a relayed session because the chat
// moved to a direct connection ends ours with receipts held; without
// to, they are lost with the session, and the sender writes the copies
// again on its next one.
func (t *receiptHolds) moveHeld(cs, to *chatSession) {
	cs.held.mu.Lock()
	cs.held.released = true
	ids := cs.held.take()
	cs.held.mu.Unlock()
	if len(ids) == 0 || to == nil {
		return
	}
	t.work.goDo(func() { t.write(to, ids) })
}

// take empties the hold. Callers hold mu.
func (h *receiptHold) take() []e2e.MessageID {
	ids := h.ids
	h.ids, h.bytes = nil, 0
	return ids
}

// write writes stored receipts for ids on cs, in one write. On
// failure they are lost: the sender writes the copies again.
func (t *receiptHolds) write(cs *chatSession, ids []e2e.MessageID) {
	if len(ids) == 0 {
		return
	}
	rs := make([]e2e.Receipt, len(ids))
	for i, id := range ids {
		rs[i] = e2e.Receipt{ID: id, Status: e2e.ReceiptStored}
	}
	t.receiptWrites.Add(1)
	if err := cs.s.SendReceipts(rs); err != nil {
		t.log.Info("write held receipts", "peer", cs.peer, "receipts", len(rs), "err", err)
	}
}

// closeSession closes cs on purpose, with code and reason for the peer,
// after writing the receipts it holds (bounded in time, as CloseWith's
// own write is, should the peer have stopped reading).
func (t *receiptHolds) closeSession(cs *chatSession, code e2e.CloseCode, reason string) {
	cs.s.SetWriteDeadline(time.Now().Add(2 * time.Second))
	t.release(cs)
	cs.s.CloseWith(code, reason)
}

// closeWait bounds how long Close waits for the peers it wrote held
// receipts to at the end to read them (closeAll).
const closeWait = time.Second

// closeAll closes the live sessions for Close. A write returns once
// the muxer has the bytes, not once they left, and the connections close
// right after: receipts written last would often be lost. So a session
// that held receipts ends its side only (e2e.Session.CloseSend) after
// writing them, and Close waits, at most closeWait in all, for the peer's
// close frame in answer, which proves the peer read what came before
// ours, and ends the session's read loop (cs.done).
func (t *receiptHolds) closeAll(live []*chatSession) {
	var wrote []*chatSession
	for _, cs := range live {
		cs.s.SetWriteDeadline(time.Now().Add(2 * time.Second))
		if t.release(cs) && cs.s.CloseSend(e2e.CloseGoingAway, "shutting down") == nil {
			wrote = append(wrote, cs)
			continue
		}
		cs.s.CloseWith(e2e.CloseGoingAway, "shutting down")
	}
	wait, cancel := context.WithTimeout(context.Background(), closeWait)
	defer cancel()
	for _, cs := range wrote {
		select {
		case <-cs.done:
		case <-wait.Done():
		}
		cs.s.Close() // its close frame went: this releases the stream
	}
}
