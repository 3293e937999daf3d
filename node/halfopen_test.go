package node_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/node"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	manet "github.com/multiformats/go-multiaddr/net"
)

// partialHello is the start of a TLS record carrying a ClientHello: the
// record header and the first bytes of the handshake message, never the
// rest. The responder has a handshake in progress and waits for more.
var partialHello = []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01}

// halfOpenAttacker holds half-open chat handshakes at a target from
// stock libp2p hosts on 127.0.0.1: each stream sends a partial
// ClientHello and waits; when the target closes it (refused, or its
// deadline passed), the attacker opens another.
type halfOpenAttacker struct {
	hosts   []host.Host
	target  peer.ID
	perHost int

	open     atomic.Int64 // streams open now
	opened   atomic.Int64
	refused  atomic.Int64 // closed by the target within heldAfter
	maxAlive atomic.Int64 // most streams alive for over heldAfter at once
	alive    atomic.Int64
	wg       sync.WaitGroup
}

func newHalfOpenAttacker(t *testing.T, target *testNode, hosts, perHost int) *halfOpenAttacker {
	t.Helper()
	a := &halfOpenAttacker{target: target.ID(), perHost: perHost}
	for range hosts {
		h, err := libp2p.New(
			libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
			libp2p.DisableRelay(),
			libp2p.ResourceManager(&network.NullResourceManager{}),
		)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		h.Peerstore().AddAddrs(target.ID(), target.Host().Addrs(), time.Hour)
		a.hosts = append(a.hosts, h)
	}
	return a
}

// heldAfter is how long a stream must stay open to count as a handshake
// the target holds. A held one lives until the handshake deadline (10 s);
// a refused one is closed as soon as the target's handler runs, which on
// a loaded machine can take over a second (at load 16, 1 s counted up to
// 39 streams "held" from one IP whose cap is 16).
const heldAfter = 3 * time.Second

// run keeps perHost streams from every host half-open until ctx ends.
func (a *halfOpenAttacker) run(ctx context.Context) {
	for _, h := range a.hosts {
		for range a.perHost {
			a.wg.Add(1)
			go func() {
				defer a.wg.Done()
				for ctx.Err() == nil {
					a.hold(ctx, h)
				}
			}()
		}
	}
}

// hold opens one stream, starts a handshake and keeps it until the
// target closes it or ctx ends.
func (a *halfOpenAttacker) hold(ctx context.Context, h host.Host) {
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	s, err := h.NewStream(sctx, a.target, e2e.ProtocolChat)
	cancel()
	if err != nil {
		time.Sleep(20 * time.Millisecond)
		return
	}
	a.opened.Add(1)
	a.open.Add(1)
	defer a.open.Add(-1)
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		if _, err := s.Write(partialHello); err != nil {
			return
		}
		s.Read(make([]byte, 1)) // until the target gives up on us
	}()
	timer := time.NewTimer(heldAfter)
	defer timer.Stop()
	select {
	case <-closed:
		a.refused.Add(1)
		s.Reset()
		time.Sleep(100 * time.Millisecond) // re-open, but do not spin
		return
	case <-timer.C:
	case <-ctx.Done():
		s.Reset()
		return
	}
	// Held for heldAfter: the target counts it as a handshake in progress.
	n := a.alive.Add(1)
	for m := a.maxAlive.Load(); n > m && !a.maxAlive.CompareAndSwap(m, n); m = a.maxAlive.Load() {
	}
	select {
	case <-closed:
	case <-ctx.Done():
	}
	a.alive.Add(-1)
	s.Reset()
}

// TestHalfOpenLockout: an unauthenticated attacker holding as many
// half-open chat handshakes at a node as it can, from one peer or from
// many peers on one IP, does not lock out a contact on another IP.
func TestHalfOpenLockout(t *testing.T) {
	for _, tc := range []struct {
		name           string
		hosts, perHost int
	}{
		{"one peer", 1, 2 * e2e.DefaultMaxHalfOpen},
		{"many peers one IP", 24, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs syncBuffer
			target := startNodeWith(t, newHome(t, "target"), func(c *node.Config) {
				c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			}, "/ip4/127.0.0.1/tcp/0")
			// The contact listens, and so dials, from 127.0.0.2.
			contact := startNode(t, newHome(t, "contact"), "/ip4/127.0.0.2/tcp/0")
			trustEachOther(t, target, contact)

			ctx, cancel := context.WithCancel(context.Background())
			atk := newHalfOpenAttacker(t, target, tc.hosts, tc.perHost)
			atk.run(ctx)
			defer func() { cancel(); atk.wg.Wait() }()
			// Let the attacker take everything it can: its streams are
			// held over heldAfter once the target runs their handshakes.
			eventually(t, "the attacker holds its streams", func() bool { return atk.alive.Load() > 0 })
			time.Sleep(heldAfter + 500*time.Millisecond)

			start := time.Now()
			cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer ccancel()
			_, err := contact.Connect(cctx, target.tcpAddr())
			took := time.Since(start)
			t.Logf("attacker: %d hosts, %d streams opened, %d refused at once, at most %d held; contact's handshake: %v after %v",
				tc.hosts, atk.opened.Load(), atk.refused.Load(), atk.maxAlive.Load(), err, took.Round(time.Millisecond))
			if err != nil {
				for _, l := range strings.Split(logs.String(), "\n") {
					if strings.Contains(l, contact.ID().String()) {
						t.Logf("target: %s", l)
					}
				}
				t.Fatalf("the contact on 127.0.0.2 was locked out: %v", err)
			}
			if took > 3*time.Second {
				t.Errorf("the contact's handshake took %v", took)
			}
			// The target saw the contact on its own IP, or the test proved
			// nothing.
			for _, c := range target.Host().Network().ConnsToPeer(contact.ID()) {
				if ip, err := manet.ToIP(c.RemoteMultiaddr()); err != nil || ip.String() != "127.0.0.2" {
					t.Fatalf("the contact's connection comes from %v, not 127.0.0.2", c.RemoteMultiaddr())
				}
			}
			if got, limit := atk.maxAlive.Load(), int64(e2e.MaxHalfOpenPerIP); got > limit {
				t.Errorf("the attacker held %d handshakes, more than the %d one IP may", got, limit)
			}
			if tc.hosts == 1 {
				if got, limit := atk.maxAlive.Load(), int64(e2e.MaxHalfOpenPerPeer); got > limit {
					t.Errorf("one peer held %d handshakes, more than %d", got, limit)
				}
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe for the logger's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
