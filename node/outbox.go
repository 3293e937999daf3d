package node

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/e2e/ratchet"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/mailbox"
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

// kick wakes p's outbox worker, starting it if p has pending messages. It
// records no state for peers with nothing pending (any libp2p peer that
// connects is kicked), and reads the store outside the node's lock:
// stopWorker checks again under it, so no message can be missed.
func (n *Node) kick(p peer.ID) {
	if n.wakeWorker(p) || !n.store.hasOutbox(p) {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closing {
		return
	}
	ps := n.state(p)
	if ps.working {
		signal(ps.kick)
		return
	}
	ps.working = true
	n.wg.Add(1)
	go n.runOutbox(p, ps.kick)
}

// wakeWorker wakes p's running worker and reports whether there was one.
func (n *Node) wakeWorker(p peer.ID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	ps, ok := n.peers[p]
	if !ok || !ps.working {
		return false
	}
	signal(ps.kick)
	return true
}

// signal wakes whoever waits on ch, without blocking.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (n *Node) runOutbox(p peer.ID, kick chan struct{}) {
	defer n.wg.Done()
	backoff := n.cfg.RetryMin
	for n.ctx.Err() == nil {
		msgs, err := n.store.Outbox(p)
		if err != nil {
			n.log.Error("read outbox", "peer", p, "err", err)
		}
		if len(msgs) == 0 {
			if err == nil && n.stopWorker(p) {
				return
			}
			// Pending but unreadable (or arrived just now): never spin.
			n.wait(kick, nil, jitter(backoff))
			backoff = min(2*backoff, n.cfg.RetryMax)
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
			// Only a retry that came due grows the wait: a new message or
			// a sign of the peer (a kick) tries again without pushing the
			// next retry further out.
			if n.wait(kick, nil, jitter(backoff)) {
				backoff = min(2*backoff, n.cfg.RetryMax)
			}
			continue
		}
		backoff = n.cfg.RetryMin
		n.writeOutbox(cs, msgs)
		n.wait(kick, cs.done, resendAfter)
	}
}

// queueOffline deposits what waits for an unreachable peer at its relay
// mailbox, if it has one. A failure the user can act on is shown once per
// peer per run (the outbox retries for as long as the peer is away, and
// each start retries again); the others only wait (offlineNotice).
func (n *Node) queueOffline(p peer.ID, msgs []Message) {
	if err := n.queueAtRelay(p, msgs); err != nil {
		n.notQueued(p, err)
	}
}

// notQueued reports a failure to leave p's messages at a relay.
func (n *Node) notQueued(p peer.ID, err error) {
	if !offlineNotice(err) {
		n.log.Info("message not left at a relay; it waits in the outbox", "peer", p, "err", err)
		return
	}
	n.mu.Lock()
	ps := n.state(p)
	told := ps.warned
	ps.warned = true
	n.mu.Unlock()
	if told {
		n.log.Info("message not left at a relay; it waits in the outbox (the user was told)", "peer", p, "err", err)
		return
	}
	n.emitError(p, fmt.Errorf("%s is offline and the message could not be left at a relay (it waits in your outbox): %w", identity.ShortID(p), err))
}

// offlineNotice reports whether a failure to leave messages at a relay is
// worth telling the user. Not when the peer has no mailbox at any relay we
// know (it uses none, or not one we know: the message waits for the peer
// to come online, as without relays, and its offline state says so), nor
// when a relay is unreachable or limits our rate for now (the outbox
// retries; Relays reports our relays' state). The rest are worth it: the
// peer's mailbox is full, a bundle did not verify, the relay failed.
func offlineNotice(err error) bool {
	for _, quiet := range []error{errNoMailbox, mailbox.ErrNotRegistered, mailbox.ErrNoBundle,
		mailbox.ErrRateLimited, errRelayUnreachable, ErrClosed, context.Canceled} {
		if errors.Is(err, quiet) {
			return false
		}
	}
	return true
}

// stopWorker ends the worker unless a message arrived meanwhile. Send
// stores before it kicks, so checking the store under n.mu cannot miss one.
func (n *Node) stopWorker(p peer.ID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.store.hasOutbox(p) {
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
// session, while the unacknowledged ones fit in the send window. What it
// writes in one go is sealed with one ratchet commit and marked sent with
// one store transaction: two fsyncs per batch instead of two per message.
// Durability is unchanged: each envelope leaves after the ratchet state
// that sealed it is on disk, and the message itself was stored by Send.
func (n *Node) writeOutbox(cs *chatSession, msgs []Message) {
	cs.pruneSent(msgs)
	inflight := 0
	var batch []Message
	var pts [][]byte
	for _, m := range msgs {
		if cs.wasSent(m.ID) {
			inflight += len(m.Body)
			continue
		}
		if inflight > 0 && inflight+len(m.Body) > sendWindow {
			break // receipts will wake the worker
		}
		pt, err := textPlaintext(m)
		if err != nil {
			n.fail(m, err)
			continue
		}
		inflight += len(m.Body)
		batch, pts = append(batch, m), append(pts, pt)
	}
	if len(batch) == 0 {
		return
	}
	envs, err := n.sealTexts(cs.peer, pts)
	if err != nil && !errors.Is(err, ratchet.ErrNoSession) { // (else the seed under way wakes the worker)
		// The first message that could not be sealed will not be later.
		n.fail(batch[len(envs)], err)
	}
	var written []e2e.MessageID
	for i, env := range envs {
		m := batch[i]
		cs.markSent(m.ID)
		if err := cs.s.Send(e2e.FrameEnvelope, env); err != nil {
			n.log.Info("write message", "peer", cs.peer, "err", err)
			cs.s.Close()
			break
		}
		if m.Status == StatusSending {
			written = append(written, m.ID)
		}
	}
	n.setStatuses(cs.peer, written, StatusSent)
}

// setStatuses records a status for several messages to p in one
// transaction and reports each change.
func (n *Node) setStatuses(p peer.ID, ids []e2e.MessageID, st Status) {
	if len(ids) == 0 {
		return
	}
	updated, err := n.store.setStatusMany(p, ids, st, n.cfg.Now())
	if err != nil {
		n.log.Error("update message status", "peer", p, "err", err)
	}
	for i := range updated {
		n.emit(Event{Kind: EventStatus, Message: &updated[i]})
	}
}

// setStatus records a message's new status (with the reason of a
// failure) and reports it if it changed.
func (n *Node) setStatus(m Message, st Status, errText string) {
	updated, changed, err := n.store.SetStatus(m.ID, m.Peer, st, errText, n.cfg.Now())
	if err != nil {
		n.log.Error("update message status", "id", m.ID, "err", err)
		return
	}
	if changed {
		n.emit(Event{Kind: EventStatus, Message: &updated})
	}
}

// fail gives up on a message, saying why.
func (n *Node) fail(m Message, cause error) { n.setStatus(m, StatusFailed, cause.Error()) }

// wait sleeps until kicked, done closes, the timeout or shutdown, and
// reports whether the timeout ended it.
func (n *Node) wait(kick <-chan struct{}, done <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-kick:
	case <-done:
	case <-t.C:
		return true
	case <-n.ctx.Done():
	}
	return false
}

// jitter spreads retries over [d/2, d].
func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}
