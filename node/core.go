package node

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
)

// core is what every part of the node shares. It is set up by New and
// never changes after (but for the counter receiptWrites, atomic), so it
// needs no lock; each field is safe for concurrent use on its own.
type core struct {
	cfg    Config
	log    *slog.Logger
	id     *identity.Identity
	trust  *identity.TrustStore
	host   host.Host
	cm     *connmgr.BasicConnMgr
	hp     *holePuncher // hole punching (holepunch.go)
	ep     *e2e.Endpoint
	store  *store.Store
	events *broker
	work   *workers
	ctx    context.Context // cancelled by Close

	// receiptWrites counts the writes of stored receipts on live
	// sessions, one receipt or several held together (tests and
	// BenchmarkGroupSend read it).
	receiptWrites atomic.Int64
}

func (c *core) emit(e Event) {
	if e.Time.IsZero() {
		e.Time = c.cfg.Now()
	}
	c.events.publish(e)
}

func (c *core) emitError(p peer.ID, err error) {
	c.emit(Event{Kind: EventError, PeerID: p, Err: err.Error(), Cause: err})
}

// sleep waits d, or until woken, or shutdown, and reports whether d
// passed.
func (c *core) sleep(d time.Duration, wake ...<-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	return c.sleepOn(t, d, wake...)
}

// sleepOn is sleep on a timer the caller keeps (one per goroutine that
// sleeps often, rather than one per wait): t is reset to d, and left
// running when the wait ends early (the next Reset discards it).
func (c *core) sleepOn(t *time.Timer, d time.Duration, wake ...<-chan struct{}) bool {
	t.Reset(d)
	var w0, w1 <-chan struct{}
	if len(wake) > 0 {
		w0 = wake[0]
	}
	if len(wake) > 1 {
		w1 = wake[1]
	}
	select {
	case <-t.C:
		return true
	case <-w0:
	case <-w1:
	case <-c.ctx.Done():
	}
	return false
}

// signal wakes whoever waits on ch, without blocking.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// jitter spreads retries over [d/2, d].
func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}
