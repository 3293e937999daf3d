package node

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// LAN discovery with go-libp2p's mDNS (DNS-SD service MDNSService).
//
// A discovered peer is known at once (it appears in Peers, marked
// discovered) and the node connects and runs a handshake with it, after
// which it is known by its verified identity and trust state. mDNS repeats
// its queries, so a peer is found many times: addresses are merged and the
// handshake runs only when there is no session. Two peers usually find each
// other within milliseconds (one multicast answer reaches both), so if both
// dialed at once they would end up with two sessions: the peer with the
// smaller ID dials at once, the other waits lanYield and dials only if no
// session came. A peer that left and comes back is found again and
// reconnected. Addresses in one of our own subnets are tried first,
// loopback last.
//
// Discovery runs only while the node listens on a LAN address (an IP
// address that is not loopback nor link-local): a node told to listen on
// 127.0.0.1 has nothing to announce, and go-libp2p's mDNS refuses to
// start without an IP address. Then LAN discovery is off, with an
// EventLAN saying why, and comes on when a LAN address appears: the
// addresses are checked again whenever libp2p says ours changed
// (EvtLocalAddressesUpdated) and every lanRecheck, since a new interface
// under a wildcard listener is seen by no event. When the LAN addresses
// change, the service starts again to announce the new ones.

// lan owns LAN discovery: the mDNS service and, for each peer found, that
// it was found and when the last handshake after discovery was tried. mu
// guards found and status; it is taken by mDNS's callback goroutine,
// the Node's API (PeerInfo, LAN) and update, and no other lock is taken
// under it. runMu serializes starting and stopping the service (update,
// from Start and the watcher; stop, from Close) and guards svc, key and
// closed; it is held while mDNS starts or stops, and mu may be taken
// under it.
type lan struct {
	*core
	sessions *sessions
	book     *peerBook
	peerEv   *peerEvents

	mu     sync.Mutex
	found  map[peer.ID]time.Time // found on the LAN → last handshake attempt after discovery
	status LANStatus
	known  bool // status was decided

	runMu   sync.Mutex
	svc     mdns.Service // nil: not running
	key     string       // the LAN addresses of the last update
	checked bool         // update ran
	closed  bool
}

// LANStatus says whether LAN discovery runs, and if not, why.
type LANStatus struct {
	On     bool
	Reason string // why it is off
}

// lanNoAddress is the reason LAN discovery is off when the node listens
// on no LAN address.
const lanNoAddress = "no LAN address in use"

// lanRecheck is how often the LAN addresses are checked without an
// address event.
const lanRecheck = 30 * time.Second

func (l *lan) HandlePeerFound(ai peer.AddrInfo) { l.peerFound(ai) }

// begin starts LAN discovery if a LAN address is in use, and the watcher
// that turns it on and off as addresses come and go.
func (l *lan) begin() {
	l.update()
	sub, err := l.host.EventBus().Subscribe(new(event.EvtLocalAddressesUpdated))
	if err != nil {
		l.log.Warn("cannot follow address changes; LAN discovery checks them every 30 s", "err", err)
	}
	started := l.work.goDo(func() {
		var changed <-chan any
		if sub != nil {
			defer sub.Close()
			changed = sub.Out()
		}
		tick := time.NewTicker(lanRecheck)
		defer tick.Stop()
		for {
			select {
			case <-l.ctx.Done():
				return
			case _, ok := <-changed:
				if !ok {
					changed = nil
					continue
				}
			case <-tick.C:
			}
			l.update()
		}
	})
	if !started && sub != nil {
		sub.Close()
	}
}

// update starts, restarts or stops the mDNS service for the LAN
// addresses in use now, and reports a change of status.
func (l *lan) update() {
	l.runMu.Lock()
	defer l.runMu.Unlock()
	if l.closed {
		return
	}
	addrs := lanAddrs(l.host.Network().ListenAddresses())
	key := fmt.Sprint(addrs)
	// Unchanged: nothing to do, unless the service failed to start.
	if l.checked && key == l.key && (l.svc != nil || len(addrs) == 0) {
		return
	}
	if l.svc != nil {
		l.svc.Close()
		l.svc = nil
	}
	l.key, l.checked = key, true
	st := LANStatus{Reason: lanNoAddress}
	if len(addrs) > 0 {
		svc := mdns.NewMdnsService(lanHost{l.host, addrs}, MDNSService, l)
		if err := svc.Start(); err != nil {
			l.log.Warn("LAN discovery cannot start", "err", err)
			st.Reason = "cannot start: " + err.Error()
		} else {
			l.svc, st = svc, LANStatus{On: true}
		}
	}
	l.setStatus(st)
}

// statusNow is the status, and whether update decided it yet.
func (l *lan) statusNow() (LANStatus, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.status, l.known
}

// setStatus records the status and, when it changed, logs and emits it.
func (l *lan) setStatus(st LANStatus) {
	l.mu.Lock()
	changed := l.status != st || !l.known
	l.status, l.known = st, true
	l.mu.Unlock()
	if !changed {
		return
	}
	if st.On {
		l.log.Info("LAN discovery is on")
	} else {
		l.log.Info("LAN discovery is off: " + st.Reason)
	}
	l.emit(Event{Kind: EventLAN, LAN: &st})
}

// stop ends the mDNS service, if it runs, for good.
func (l *lan) stop() {
	l.runMu.Lock()
	defer l.runMu.Unlock()
	l.closed = true
	if l.svc != nil {
		l.svc.Close()
		l.svc = nil
	}
}

// discovered reports whether p was found on the LAN.
func (l *lan) discovered(p peer.ID) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.found[p]
	return ok
}

// lanHandshakeTimeout bounds the handshake with a newly found LAN peer;
// lanRetry spaces attempts with a peer whose handshake failed; lanYield is
// how long the peer with the greater ID leaves the other to dial first.
const (
	lanHandshakeTimeout = 15 * time.Second
	lanRetry            = 30 * time.Second
	lanYield            = 2 * time.Second
)

func (l *lan) peerFound(ai peer.AddrInfo) {
	if ai.ID == l.host.ID() || ai.ID == "" || l.work.closed() {
		return
	}
	addrs := usableAddrs(ai.Addrs)
	if len(addrs) == 0 {
		return
	}
	l.host.Peerstore().AddAddrs(ai.ID, addrs, peerstoreTTL)
	isNew, try := l.note(ai.ID)
	if isNew {
		l.log.Info("found on the LAN", "peer", ai.ID, "addrs", addrs)
		l.peerEv.now(ai.ID)
	}
	if !try {
		return
	}
	verdict := l.book.facts(ai.ID).verdict // replaced by every handshake (recordVerified)
	l.work.goDo(func() { l.handshake(ai.ID, verdict) })
}

// note records that p was found, and says whether it is new and whether
// to try a handshake now: not while a session or a dial exists, nor
// within lanRetry of the last try.
func (l *lan) note(p peer.ID) (isNew, try bool) {
	busy := l.sessions.busy(p)
	l.mu.Lock()
	defer l.mu.Unlock()
	last, seen := l.found[p]
	try = !busy && time.Since(last) >= lanRetry
	if try {
		last = time.Now()
	}
	l.found[p] = last
	return !seen, try
}

// handshake opens a session with a peer found on the LAN. The peer with
// the greater ID waits lanYield first: the other side dials, and get then
// finds its session (or its dial in progress) and adds none. If a
// handshake happened meanwhile, the other side did its part: even if that
// session has ended already, the peer has left and dialing its old
// addresses would only hang.
func (l *lan) handshake(p peer.ID, verdict *identity.Verdict) {
	if l.host.ID() > p {
		if !l.sleep(lanYield) || l.book.facts(p).verdict != verdict {
			return
		}
	}
	ctx, cancel := context.WithTimeout(l.ctx, lanHandshakeTimeout)
	defer cancel()
	if _, err := l.sessions.get(ctx, p); err != nil {
		l.log.Info("handshake with LAN peer", "peer", p, "err", err)
	}
}

// usableAddrs keeps dialable addresses, in LAN-first order.
func usableAddrs(addrs []ma.Multiaddr) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range addrs {
		if !isCircuit(a) {
			out = append(out, a)
		}
	}
	return lanFirst(out)
}

// lanHost is the host as mDNS sees it: go-libp2p's mDNS announces every
// interface address, loopback included, and takes its A record from the
// first IPv4 one (127.0.0.1 on most machines). Only addresses other
// machines on the LAN can use are announced: the LAN addresses update
// found, without loopback and link-local ones.
type lanHost struct {
	host.Host
	addrs []ma.Multiaddr
}

func (h lanHost) Network() network.Network { return lanNetwork{h.Host.Network(), h.addrs} }

type lanNetwork struct {
	network.Network
	addrs []ma.Multiaddr
}

func (n lanNetwork) InterfaceListenAddresses() ([]ma.Multiaddr, error) { return n.addrs, nil }

// lanAddrs are the LAN addresses among listen, the listeners' addresses:
// wildcard ones resolved to the interfaces' addresses now, then only IP
// addresses that are neither loopback, link-local nor unspecified, and no
// relay circuits.
func lanAddrs(listen []ma.Multiaddr) []ma.Multiaddr {
	ifaces, err := manet.InterfaceMultiaddrs()
	if err != nil {
		return nil
	}
	resolved, err := manet.ResolveUnspecifiedAddresses(listen, ifaces)
	if err != nil {
		return nil // nothing resolved: no IP address at all
	}
	var out []ma.Multiaddr
	for _, a := range resolved {
		if isCircuit(a) {
			continue
		}
		ip, err := manet.ToIP(a)
		if err != nil || ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsUnspecified() {
			continue
		}
		out = append(out, a)
	}
	return out
}
