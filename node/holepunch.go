package node

import (
	"errors"
	"slices"
	"sync"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Hole punching (DCUtR, docs/PROTOCOL.md §16.5).
//
// go-libp2p's hole punching service is made here rather than by
// libp2p.EnableHolePunching, for one reason: the service punches only
// when a relayed connection arrives after it is ready (once the host has
// a public address, which identify with a relay reveals a moment after
// start), and a chat's relayed connection often comes first, or was opened
// by a DHT lookup. Holding the service, the node starts a punch itself
// for a relayed chat (tryDirect), and again, with backoff, while the chat
// stays relayed: go-libp2p tries only three times, once per relayed
// connection. Its addresses are the host's public
// direct addresses and the public addresses peers observed for us, as
// libp2p's own service uses.

// maxObserved bounds the observed addresses kept for hole punching.
const maxObserved = 8

type holePuncher struct {
	host host.Host
	svc  *holepunch.Service
	sub  event.Subscription // identify results, for observed addresses

	mu       sync.Mutex
	observed []ma.Multiaddr // public addresses peers saw for us, newest last
}

// newHolePuncher starts the service on h, which must be go-libp2p's basic
// host (it has the identify service).
func newHolePuncher(h host.Host) (*holePuncher, error) {
	withIDs, ok := h.(interface{ IDService() identify.IDService })
	if !ok {
		return nil, errors.New("hole punching: the host has no identify service")
	}
	hp := &holePuncher{host: h}
	var err error
	if hp.sub, err = h.EventBus().Subscribe(new(event.EvtPeerIdentificationCompleted)); err != nil {
		return nil, err
	}
	go func() {
		for e := range hp.sub.Out() {
			hp.observe(e.(event.EvtPeerIdentificationCompleted).ObservedAddr)
		}
	}()
	if hp.svc, err = holepunch.NewService(h, withIDs.IDService(), hp.addrs); err != nil {
		hp.sub.Close()
		return nil, err
	}
	return hp, nil
}

// observe keeps an address a peer observed for us, if it is public.
func (hp *holePuncher) observe(a ma.Multiaddr) {
	if a == nil || isCircuit(a) || !manet.IsPublicAddr(a) {
		return
	}
	hp.mu.Lock()
	defer hp.mu.Unlock()
	hp.observed = slices.DeleteFunc(hp.observed, a.Equal)
	hp.observed = append(hp.observed, a)
	if len(hp.observed) > maxObserved {
		hp.observed = hp.observed[1:]
	}
}

// addrs are our public addresses for hole punching.
func (hp *holePuncher) addrs() []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range hp.host.Addrs() {
		if !isCircuit(a) && manet.IsPublicAddr(a) {
			out = append(out, a)
		}
	}
	hp.mu.Lock()
	out = append(out, hp.observed...)
	hp.mu.Unlock()
	return ma.Unique(out)
}

// punch starts a hole punch with the peer of c, our relayed connection to
// it, if the peer reached us through the relay (DCUtR's initiator is the
// side the relayed connection came in to) and we know a public address of
// ours. It returns at once: a channel that receives the punch's result
// (nil: a direct connection exists), or nil if no punch started (not ours
// to start, or no public address yet). A direct connection that results
// moves the chat (sessions.onConnected). The service starts within 5 s of
// our first public address (it polls addrs); DirectConnect waits for that.
func (hp *holePuncher) punch(c network.Conn, log func(string, ...any)) <-chan error {
	if hp == nil || c.Stat().Direction != network.DirInbound || len(hp.addrs()) == 0 {
		return nil
	}
	p := c.RemotePeer()
	done := make(chan error, 1)
	// DirectConnect cannot be cancelled; it ends within a few round trips
	// and dial timeouts, or, if the service closes before it ever saw a
	// public address, never: so it runs outside the node's workers, which
	// Close waits for.
	go func() {
		err := hp.svc.DirectConnect(p)
		if err != nil && !errors.Is(err, holepunch.ErrHolePunchActive) && !errors.Is(err, holepunch.ErrClosed) {
			log("hole punch failed; the chat stays on the relay until a later try", "peer", p, "err", err)
		}
		done <- err
	}()
	return done
}

// close stops the service.
func (hp *holePuncher) close() error {
	if hp == nil {
		return nil
	}
	err := hp.svc.Close()
	hp.sub.Close()
	return err
}
