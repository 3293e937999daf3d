package node

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"
)

// Relay client.
//
// For each configured relay the node keeps a reservation: it connects,
// reserves a slot (circuit relay v2), protects the connection from the
// connection manager, and refreshes the reservation well before it
// expires. When the connection to the relay drops (a relay restart), it
// reserves again at once, backing off from one second up to a minute while
// the relay is away — never go-libp2p autorelay's hour. Active reservations
// add <relay addr>/p2p/<relay>/p2p-circuit to the node's addresses. Peers
// are also dialed through every configured relay when their direct
// addresses fail, so two peers that share a relay need only peer IDs.

// RelayInfo is the state of one configured relay.
type RelayInfo struct {
	Addr     string    // the relay's multiaddr, as configured
	ID       peer.ID   // the relay's peer ID
	Reserved bool      // a reservation is active
	Expires  time.Time // when the reservation ends unless refreshed
	Err      string    // the last failure, if any
	// Mailbox: our mailbox is registered there (bundle published), with
	// this many one-time prekeys of each kind left.
	Mailbox               bool
	PrekeysEC, PrekeysKEM int
}

const (
	// relayTag protects relay connections in the connection manager.
	relayTag = "certchat-relay"
	// refreshMargin: a reservation is refreshed this long before expiry
	// (or at half its lifetime, if shorter).
	refreshMargin = 10 * time.Minute
	// reserveTimeout bounds one reservation attempt.
	reserveTimeout = 20 * time.Second
)

// relays holds the reservation state. Its own lock: the address factory
// runs inside libp2p and must never wait for the node's lock.
type relays struct {
	mu    sync.Mutex
	list  []*relayState
	byID  map[peer.ID]*relayState
	drops map[peer.ID]chan struct{}
}

type relayState struct {
	addr     string
	info     peer.AddrInfo
	reserved bool
	expires  time.Time
	err      string
	mailbox  bool
	prekeys  [2]int
	// mail wakes the mailbox loop (the relay said mail arrived);
	// fresh wakes it when a reservation is made.
	mail, fresh chan struct{}
}

// ParseRelayAddr checks a relay multiaddr: a transport address followed
// by /p2p/<relay peer id>.
func ParseRelayAddr(s string) (*peer.AddrInfo, error) {
	a, err := ma.NewMultiaddr(s)
	if err != nil {
		return nil, fmt.Errorf("relay %q is not a multiaddr: %w", s, err)
	}
	info, err := peer.AddrInfoFromP2pAddr(a)
	if err != nil || len(info.Addrs) == 0 {
		return nil, fmt.Errorf("relay %s: give the full address, ending in /p2p/<relay peer id>", s)
	}
	return info, nil
}

// parseRelays reads the configured relay multiaddrs.
func parseRelays(addrs []string) (*relays, error) {
	rs := &relays{byID: map[peer.ID]*relayState{}, drops: map[peer.ID]chan struct{}{}}
	for _, s := range addrs {
		info, err := ParseRelayAddr(s)
		if err != nil {
			return nil, err
		}
		if _, dup := rs.byID[info.ID]; dup {
			continue
		}
		st := &relayState{addr: s, info: *info, mail: make(chan struct{}, 1), fresh: make(chan struct{}, 1)}
		rs.list = append(rs.list, st)
		rs.byID[info.ID] = st
		rs.drops[info.ID] = make(chan struct{}, 1)
	}
	return rs, nil
}

// isRelay reports whether p is a configured relay. byID is written only
// by parseRelays, so it needs no lock.
func (rs *relays) isRelay(p peer.ID) bool {
	_, ok := rs.byID[p]
	return ok
}

// circuitAddrs are our addresses through relays with active reservations.
func (rs *relays) circuitAddrs() []ma.Multiaddr {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	var out []ma.Multiaddr
	for _, st := range rs.list {
		if st.reserved {
			out = append(out, throughRelay(st.info)...)
		}
	}
	return out
}

// throughRelay are <relay addr>/p2p/<relay>/p2p-circuit for each of the
// relay's addresses.
func throughRelay(info peer.AddrInfo) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range info.Addrs {
		c, err := ma.NewMultiaddr(fmt.Sprintf("%s/p2p/%s/p2p-circuit", a, info.ID))
		if err == nil {
			out = append(out, c)
		}
	}
	return out
}

// relayOptions are the libp2p options for relay use: our circuit
// addresses are added to the host's own, and `--listen none` means no
// direct listener at all (reachable only through relays).
func (n *Node) relayOptions() []libp2p.Option {
	opts := []libp2p.Option{libp2p.AddrsFactory(func(addrs []ma.Multiaddr) []ma.Multiaddr {
		return append(slices.Clone(addrs), n.relays.circuitAddrs()...)
	})}
	if len(n.cfg.Listen) == 1 && n.cfg.Listen[0] == "none" {
		opts = append(opts, libp2p.NoListenAddrs)
	}
	return opts
}

// Relays reports the configured relays and their reservations.
func (n *Node) Relays() []RelayInfo {
	n.relays.mu.Lock()
	defer n.relays.mu.Unlock()
	out := make([]RelayInfo, 0, len(n.relays.list))
	for _, st := range n.relays.list {
		out = append(out, RelayInfo{Addr: st.addr, ID: st.info.ID, Reserved: st.reserved, Expires: st.expires, Err: st.err,
			Mailbox: st.mailbox, PrekeysEC: st.prekeys[0], PrekeysKEM: st.prekeys[1]})
	}
	return out
}

// startRelays starts one reservation keeper per relay.
func (n *Node) startRelays() error {
	if len(n.relays.list) == 0 {
		return nil
	}
	n.host.Network().Notify(&network.NotifyBundle{
		DisconnectedF: func(nw network.Network, c network.Conn) {
			p := c.RemotePeer()
			if ch, ok := n.relays.drops[p]; ok && nw.Connectedness(p) != network.Connected {
				signal(ch)
			}
		},
	})
	for _, st := range n.relays.list {
		n.wg.Add(1)
		go n.keepReservation(st)
	}
	n.serveMailboxes()
	return nil
}

func (n *Node) keepReservation(st *relayState) {
	defer n.wg.Done()
	drop := n.relays.drops[st.info.ID]
	backoff := time.Second
	for n.ctx.Err() == nil {
		rsvp, err := n.reserve(st)
		if err != nil {
			n.setRelay(st, false, time.Time{}, err.Error())
			n.log.Info("relay reservation failed; will retry", "relay", st.info.ID, "in", backoff, "err", err)
			n.sleep(jitter(backoff), drop)
			backoff = min(2*backoff, time.Minute)
			continue
		}
		backoff = time.Second
		n.setRelay(st, true, rsvp.Expiration, "")
		signal(st.fresh)
		n.log.Info("relay reservation", "relay", st.info.ID, "expires", rsvp.Expiration,
			"limit_duration", rsvp.LimitDuration, "limit_data", rsvp.LimitData)
		select {
		case <-drop:
			n.setRelay(st, false, time.Time{}, "connection to the relay lost")
			n.log.Info("relay connection lost; reserving again", "relay", st.info.ID)
		case <-time.After(refreshIn(rsvp.Expiration, n.cfg.Now())):
		case <-n.ctx.Done():
		}
	}
}

// refreshIn is when to refresh a reservation that expires at exp.
func refreshIn(exp, now time.Time) time.Duration {
	left := exp.Sub(now)
	return max(min(left-refreshMargin, left/2), time.Second)
}

// reserve connects to the relay and reserves a slot.
func (n *Node) reserve(st *relayState) (*client.Reservation, error) {
	ctx, cancel := context.WithTimeout(n.ctx, reserveTimeout)
	defer cancel()
	if err := n.host.Connect(ctx, st.info); err != nil {
		return nil, fmt.Errorf("reach relay: %w", err)
	}
	n.cm.Protect(st.info.ID, relayTag)
	rsvp, err := client.Reserve(ctx, n.host, st.info)
	if err != nil {
		return nil, fmt.Errorf("reserve: %w", err)
	}
	return rsvp, nil
}

// setRelay records a reservation change and announces the new addresses.
func (n *Node) setRelay(st *relayState, reserved bool, exp time.Time, errText string) {
	n.relays.mu.Lock()
	changed := st.reserved != reserved
	st.reserved, st.expires, st.err = reserved, exp, errText
	n.relays.mu.Unlock()
	if changed {
		n.addrsChanged()
	}
}

// addrsChanged makes libp2p recompute and announce our addresses (identify
// push to connected peers) and emits a listening event. The host updates
// addresses when told that relay addresses changed; our address factory
// supplies them, so the event carries none itself.
func (n *Node) addrsChanged() {
	if n.relayEmitter != nil {
		n.relayEmitter.Emit(event.EvtAutoRelayAddrsUpdated{})
	}
	n.emit(Event{Kind: EventListening, Addrs: n.Addrs()})
}

// sleep waits d, or until woken, or shutdown.
func (n *Node) sleep(d time.Duration, wake <-chan struct{}) {
	select {
	case <-time.After(d):
	case <-wake:
	case <-n.ctx.Done():
	}
}

// viaRelays are addresses of p through each configured relay.
func (n *Node) viaRelays(p peer.ID) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, st := range n.relays.list {
		if st.info.ID == p {
			continue
		}
		for _, c := range throughRelay(st.info) {
			if a, err := ma.NewMultiaddr(fmt.Sprintf("%s/p2p/%s", c, p)); err == nil {
				out = append(out, a)
			}
		}
	}
	return out
}
