package node

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
	"github.com/certchat/certchat/transfer"
	"github.com/libp2p/go-libp2p/core/peer"
)

// The sender's part in resuming a file (PROTOCOL §15.5, "Resuming").
//
// The receiver asks for the chunks, so it is the one that resumes an
// interrupted transfer, over a verified chat session with the sender
// that it dials. A receiver that cannot reach the sender (a sender
// behind a NAT, no relay in common) which can reach it waited for good
// after it restarted: the sender had nothing else to send it and never
// dialed it. So the sender keeps a chat session up with the receiver of
// every file it has begun to serve and that is not over (active): while
// none is up, it dials it with the outbox's backoff and says that the
// file waits for the peer; the connection wakes the receiver's puller,
// which asks again for what it lacks.

// fileReach runs one loop per receiver of such files. mu guards kicks;
// workers.mu is taken under it (starting a loop).
type fileReach struct {
	ft *transfers

	mu    sync.Mutex
	kicks map[peer.ID]chan struct{} // the running loops: what wakes each
}

func newFileReach(ft *transfers) *fileReach {
	return &fileReach{ft: ft, kicks: map[peer.ID]chan struct{}{}}
}

// keep makes sure a loop keeps p reachable while a file to p waits to be
// resumed: it starts one, or wakes the one that runs to look again.
func (r *fileReach) keep(p peer.ID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if kick, ok := r.kicks[p]; ok {
		signal(kick)
		return
	}
	kick := make(chan struct{}, 1)
	if r.ft.work.goDo(func() { r.run(p, kick) }) {
		r.kicks[p] = kick
	}
}

// run keeps a chat session with p up until no file to p waits to be
// resumed or the node stops.
func (r *fileReach) run(p peer.ID, kick chan struct{}) {
	backoff := r.ft.cfg.RetryMin
	for {
		ts, err := resumable(r.ft.store, p)
		if err != nil {
			r.ft.log.Warn("read file transfers", "err", err)
		}
		if len(ts) == 0 || r.ft.ctx.Err() != nil {
			if r.over(p, kick) {
				return
			}
			continue
		}
		backoff = r.reachOnce(p, ts, kick, backoff)
	}
}

// reachOnce waits while a chat session with p is up; if none is, it
// dials p, and if that fails, shows why on the files ts and waits out
// backoff (or a wake-up). It returns the next backoff.
func (r *fileReach) reachOnce(p peer.ID, ts []store.Transfer, kick chan struct{}, backoff time.Duration) time.Duration {
	cfg := r.ft.cfg
	cs, err := r.session(p)
	if err == nil {
		select {
		case <-cs.done:
		case <-kick:
		case <-r.ft.ctx.Done():
		}
		return cfg.RetryMin
	}
	r.ft.log.Info("the receiver of a file to resume is not reachable", "peer", p, "in", backoff, "err", err)
	why := waitNotice(err, p, "")
	// notice reads each transfer again (progress): one that ended since
	// ts was read shows nothing, and its end stays its last event.
	for _, t := range ts {
		r.ft.notice(transfer.ID(t.ID), why)
	}
	if r.ft.sleep(jitter(backoff), kick) {
		return min(2*backoff, cfg.RetryMax)
	}
	return cfg.RetryMin
}

// over ends p's loop, unless it was woken since it last looked (a file
// to p may have become active) and the node runs.
func (r *fileReach) over(p peer.ID, kick chan struct{}) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-kick:
		if r.ft.ctx.Err() == nil {
			return false
		}
	default:
	}
	delete(r.kicks, p)
	return true
}

// session returns a live chat session with p, dialing one if needed.
func (r *fileReach) session(p peer.ID) (*chatSession, error) {
	if cs := r.ft.sessions.newest(p); cs != nil {
		return cs, nil
	}
	if err := r.ft.book.mayMessage(p); err != nil {
		return nil, fmt.Errorf("not reaching %s: %w", identity.ShortID(p), err)
	}
	ctx, cancel := context.WithTimeout(r.ft.ctx, dialTimeout)
	defer cancel()
	cs, err := r.ft.sessions.get(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("%w (%s): %w", errPeerOffline, identity.ShortID(p), err)
	}
	return cs, nil
}

// resumable are the files to p that p has begun to fetch and that are
// not over: the sender's transfers that may be resumed.
func resumable(st *store.Store, p peer.ID) ([]store.Transfer, error) {
	ts, err := st.Transfers().List()
	var out []store.Transfer
	for _, t := range ts {
		if t.Peer == p && t.Direction == store.Outgoing && t.State == store.TransferActive {
			out = append(out, t)
		}
	}
	if err != nil {
		return out, fmt.Errorf("list file transfers: %w", err)
	}
	return out, nil
}
