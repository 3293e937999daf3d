package node

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/certchat/certchat/mailbox"
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

// relays owns the configured relays and the reservation and mailbox
// state of each. list, byID and drops are written only by parseRelays, so
// they are read without a lock; mu guards the fields of each relayState
// below it. One keeper goroutine per relay reserves (keepReservation),
// the mailbox loops record what they learn, and libp2p's address factory
// reads the reservations: it runs inside libp2p, so no lock but mu (a
// leaf) is ever taken on that path.
type relays struct {
	*core // set by New once the host exists
	mail  *mailboxes

	list    []*relayState
	byID    map[peer.ID]*relayState
	drops   map[peer.ID]chan struct{}
	emitter event.Emitter // set by start: announces changed relay addresses to libp2p

	mu sync.Mutex
}

// relayState is one relay. addr, info, mail and fresh never change; the
// rest is guarded by relays.mu.
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

// options are the libp2p options for relay use: our circuit addresses
// are added to the host's own, and `--listen none` means no direct
// listener at all (reachable only through relays).
func (rs *relays) options(listen []string) []libp2p.Option {
	opts := []libp2p.Option{libp2p.AddrsFactory(func(addrs []ma.Multiaddr) []ma.Multiaddr {
		return append(slices.Clone(addrs), rs.circuitAddrs()...)
	})}
	if len(listen) == 1 && listen[0] == "none" {
		opts = append(opts, libp2p.NoListenAddrs)
	}
	return opts
}

// info reports the configured relays and their reservations.
func (rs *relays) info() []RelayInfo {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	out := make([]RelayInfo, 0, len(rs.list))
	for _, st := range rs.list {
		out = append(out, RelayInfo{Addr: st.addr, ID: st.info.ID, Reserved: st.reserved, Expires: st.expires, Err: st.err,
			Mailbox: st.mailbox, PrekeysEC: st.prekeys[0], PrekeysKEM: st.prekeys[1]})
	}
	return out
}

// start starts one reservation keeper per relay, and the mailbox loops.
func (rs *relays) start() error {
	if len(rs.list) == 0 {
		return nil
	}
	var err error
	if rs.emitter, err = rs.host.EventBus().Emitter(new(event.EvtAutoRelayAddrsUpdated)); err != nil {
		return err
	}
	rs.host.Network().Notify(&network.NotifyBundle{
		DisconnectedF: func(nw network.Network, c network.Conn) {
			p := c.RemotePeer()
			if ch, ok := rs.drops[p]; ok && nw.Connectedness(p) != network.Connected {
				signal(ch)
			}
		},
	})
	for _, st := range rs.list {
		rs.work.goDo(func() { rs.keep(st) })
	}
	rs.mail.serve()
	return nil
}

// keep keeps a reservation on one relay until the node stops.
func (rs *relays) keep(st *relayState) {
	drop := rs.drops[st.info.ID]
	backoff := time.Second
	for rs.ctx.Err() == nil {
		rsvp, err := rs.reserve(st)
		if err != nil {
			rs.set(st, false, time.Time{}, err.Error())
			rs.log.Info("relay reservation failed; will retry", "relay", st.info.ID, "in", backoff, "err", err)
			rs.sleep(jitter(backoff), drop)
			backoff = min(2*backoff, time.Minute)
			continue
		}
		backoff = time.Second
		rs.set(st, true, rsvp.Expiration, "")
		signal(st.fresh)
		rs.log.Info("relay reservation", "relay", st.info.ID, "expires", rsvp.Expiration,
			"limit_duration", rsvp.LimitDuration, "limit_data", rsvp.LimitData)
		if !rs.sleep(refreshIn(rsvp.Expiration, rs.cfg.Now()), drop) && rs.ctx.Err() == nil {
			rs.set(st, false, time.Time{}, "connection to the relay lost")
			rs.log.Info("relay connection lost; reserving again", "relay", st.info.ID)
		}
	}
}

// refreshIn is when to refresh a reservation that expires at exp.
func refreshIn(exp, now time.Time) time.Duration {
	left := exp.Sub(now)
	return max(min(left-refreshMargin, left/2), time.Second)
}

// reserve connects to the relay and reserves a slot.
func (rs *relays) reserve(st *relayState) (*client.Reservation, error) {
	ctx, cancel := context.WithTimeout(rs.ctx, reserveTimeout)
	defer cancel()
	if err := rs.host.Connect(ctx, st.info); err != nil {
		return nil, fmt.Errorf("reach relay: %w", err)
	}
	rs.cm.Protect(st.info.ID, relayTag)
	rsvp, err := client.Reserve(ctx, rs.host, st.info)
	if err != nil {
		return nil, fmt.Errorf("reserve: %w", err)
	}
	return rsvp, nil
}

// set records a reservation change and announces the new addresses.
func (rs *relays) set(st *relayState, reserved bool, exp time.Time, errText string) {
	rs.mu.Lock()
	changed := st.reserved != reserved
	st.reserved, st.expires, st.err = reserved, exp, errText
	rs.mu.Unlock()
	if changed {
		rs.addrsChanged()
	}
}

// setMailbox records whether our mailbox is registered at a relay, and
// how many one-time prekeys it has left.
func (rs *relays) setMailbox(st *relayState, registered bool, ok mailbox.OK) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	st.mailbox = registered
	st.prekeys = [2]int{int(ok.PrekeysEC), int(ok.PrekeysKEM)}
}

// addrsChanged makes libp2p recompute and announce our addresses (identify
// push to connected peers) and emits a listening event. The host updates
// addresses when told that relay addresses changed; our address factory
// supplies them, so the event carries none itself.
func (rs *relays) addrsChanged() {
	if rs.emitter != nil {
		rs.emitter.Emit(event.EvtAutoRelayAddrsUpdated{})
	}
	rs.emit(Event{Kind: EventListening, Addrs: FullAddrs(rs.host)})
}

// via are addresses of p through each configured relay.
func (rs *relays) via(p peer.ID) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, st := range rs.list {
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
