package node

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/e2e/ratchet"
	"github.com/certchat/certchat/identity"
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

// resendAfter is how long a worker waits on a live session before
// checking again (receipts normally wake it sooner).
const resendAfter = 30 * time.Second

// kick wakes p's outbox worker, starting it if p has pending messages.
func (n *Node) kick(p peer.ID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closing {
		return
	}
	ps := n.state(p)
	if ps.working {
		select {
		case ps.kick <- struct{}{}:
		default:
		}
		return
	}
	if msgs, err := n.store.Outbox(p); err != nil || len(msgs) == 0 {
		return
	}
	ps.working = true
	n.wg.Add(1)
	go n.runOutbox(p, ps.kick)
}

func (n *Node) runOutbox(p peer.ID, kick chan struct{}) {
	defer n.wg.Done()
	backoff := n.cfg.RetryMin
	for n.ctx.Err() == nil {
		msgs, err := n.store.Outbox(p)
		if err != nil {
			n.log.Error("read outbox", "peer", p, "err", err)
		}
		if len(msgs) == 0 && n.stopWorker(p) {
			return
		}
		if len(msgs) == 0 {
			continue
		}
		if err := n.mayMessage(p); err != nil {
			n.wait(kick, nil, n.cfg.RetryMax) // until the user decides
			continue
		}
		cs, err := n.session(n.ctx, p)
		if err != nil {
			n.log.Info("peer not reachable; will retry", "peer", p, "in", backoff, "err", err)
			n.queueOffline(p, msgs)
			n.wait(kick, nil, jitter(backoff))
			backoff = min(2*backoff, n.cfg.RetryMax)
			continue
		}
		backoff = n.cfg.RetryMin
		n.writeOutbox(cs, msgs)
		n.wait(kick, cs.done, resendAfter)
	}
}

// queueOffline deposits what waits for an unreachable peer at its relay
// mailbox, if it has one; a failure is shown once per cause.
func (n *Node) queueOffline(p peer.ID, msgs []Message) {
	err := n.queueAtRelay(p, msgs)
	if err == nil || errors.Is(err, errNoMailbox) && n.relays == nil {
		return
	}
	n.mu.Lock()
	ps := n.state(p)
	repeat := ps.mailboxErr == err.Error()
	ps.mailboxErr = err.Error()
	n.mu.Unlock()
	if !repeat {
		n.emitError(p, fmt.Errorf("%s is offline and the message could not be left at a relay (it waits in your outbox): %w", identity.ShortID(p), err))
	}
}

// stopWorker ends the worker unless a message arrived meanwhile. Send
// stores before it kicks, so checking the store under n.mu cannot miss one.
func (n *Node) stopWorker(p peer.ID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if msgs, err := n.store.Outbox(p); err == nil && len(msgs) > 0 {
		return false
	}
	n.state(p).working = false
	return true
}

// sendWindow bounds the bytes of messages written on a session and not yet
// acknowledged. Receipts open the window again. It keeps a session from
// pushing the whole outbox into a connection that may be cut (a relay's
// per-circuit data limit), which would make every reconnection resend it.
const sendWindow = 64 << 10

// writeOutbox writes, in order, the messages not yet written on this
// session, while the unacknowledged ones fit in the send window.
func (n *Node) writeOutbox(cs *chatSession, msgs []Message) {
	inflight := 0
	for _, m := range msgs {
		if cs.wasSent(m.ID) {
			inflight += len(m.Body)
			continue
		}
		if inflight > 0 && inflight+len(m.Body) > sendWindow {
			return // receipts will wake the worker
		}
		env, err := n.sealText(m)
		if errors.Is(err, ratchet.ErrNoSession) {
			return // the ratchet seed is under way; it wakes the worker
		}
		if err != nil {
			n.fail(m, err)
			continue
		}
		inflight += len(m.Body)
		cs.markSent(m.ID)
		if err := cs.s.Send(e2e.FrameEnvelope, env); err != nil {
			n.log.Info("write message", "peer", cs.peer, "err", err)
			cs.s.Close()
			return
		}
		if m.Status == StatusSending {
			n.setStatus(m, StatusSent)
		}
	}
}

func (n *Node) setStatus(m Message, st Status) {
	updated, changed, err := n.store.SetStatus(m.ID, m.Peer, st, "", n.cfg.Now())
	if err != nil {
		n.log.Error("update message status", "id", m.ID, "err", err)
		return
	}
	if changed {
		n.emit(Event{Kind: EventStatus, Message: &updated})
	}
}

func (n *Node) fail(m Message, cause error) {
	updated, _, err := n.store.SetStatus(m.ID, m.Peer, StatusFailed, cause.Error(), n.cfg.Now())
	if err == nil {
		n.emit(Event{Kind: EventStatus, Message: &updated})
	}
}

// wait sleeps until kicked, done closes, the timeout or shutdown.
func (n *Node) wait(kick <-chan struct{}, done <-chan struct{}, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-kick:
	case <-done:
	case <-t.C:
	case <-n.ctx.Done():
	}
}

// jitter spreads retries over [d/2, d].
func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}
