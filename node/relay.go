package node

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/certchat/certchat/mailbox"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
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
//
// With the DHT on (dht.go), relays also come from the DHT: while fewer
// than Config.RelayCount relays hold a reservation, the node adds relays
// that provide under the relay key, and drops a discovered relay that has
// been without a reservation for relayGrace, so another replaces it.
// Configured relays are never dropped.

// RelayInfo is the state of one relay, configured or found in the DHT.
type RelayInfo struct {
	Addr     string    // the relay's multiaddr, as configured
	ID       peer.ID   // the relay's peer ID
	Reserved bool      // a reservation is active
	Expires  time.Time // when the reservation ends unless refreshed
	Err      string    // the last failure, if any
	// Discovered: found in the DHT rather than configured.
	Discovered bool
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
	// relayGrace: a discovered relay without a reservation for this long
	// is dropped (and another found in its place).
	relayGrace = 30 * time.Second
	// relayRetryAfter: a dropped relay is not taken again for this long.
	relayRetryAfter = 10 * time.Minute
)

// relays owns the relays, configured and discovered, and the
// reservation and mailbox state of each. mu guards list, byID, dropped,
// started and the fields of each relayState below it. One keeper
// goroutine per relay reserves (keep), the mailbox loops record what they
// learn, and libp2p's address factory reads the reservations: it runs
// inside libp2p, so no lock but mu (a leaf) is ever taken on that path.
type relays struct {
	*core // set by New once the host exists
	mail  *mailboxes

	emitter event.Emitter // set by start: announces changed relay addresses to libp2p
	// lost wakes the DHT's relay keeper when a reservation is lost.
	lost chan struct{}
	// grace: a discovered relay without a reservation for this long is
	// dropped (relayGrace; tests shorten it before Start).
	grace time.Duration

	mu      sync.Mutex
	list    []*relayState // configured first, then discovered
	byID    map[peer.ID]*relayState
	dropped map[peer.ID]time.Time // discovered relays dropped, by when
	started bool
}

// relayState is one relay. addr, info, discovered, mail, fresh, drop and
// gone never change; the rest is guarded by relays.mu.
type relayState struct {
	addr       string
	info       peer.AddrInfo
	discovered bool
	reserved   bool
	expires    time.Time
	err        string
	since      time.Time // when it was added, or last lost its reservation
	mailbox    bool
	prekeys    [2]int
	// mail wakes the mailbox loop (the relay said mail arrived);
	// fresh wakes it when a reservation is made; drop wakes the keeper
	// when the connection to the relay is lost; gone is closed when a
	// discovered relay is dropped, which ends its loops.
	mail, fresh, drop chan struct{}
	gone              chan struct{}
}

func newRelayState(addr string, info peer.AddrInfo, discovered bool, now time.Time) *relayState {
	return &relayState{addr: addr, info: info, discovered: discovered, since: now,
		mail: make(chan struct{}, 1), fresh: make(chan struct{}, 1), drop: make(chan struct{}, 1), gone: make(chan struct{})}
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
	rs := &relays{byID: map[peer.ID]*relayState{}, dropped: map[peer.ID]time.Time{}, lost: make(chan struct{}, 1), grace: relayGrace}
	for _, s := range addrs {
		info, err := ParseRelayAddr(s)
		if err != nil {
			return nil, err
		}
		if _, dup := rs.byID[info.ID]; dup {
			continue
		}
		st := newRelayState(s, *info, false, time.Time{}) // since: set by start
		rs.list = append(rs.list, st)
		rs.byID[info.ID] = st
	}
	return rs, nil
}

// all are the relays now, configured first.
func (rs *relays) all() []*relayState {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return slices.Clone(rs.list)
}

// configured reports whether any relay is configured.
func (rs *relays) configured() bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return len(rs.list) > 0
}

// get is the relay with peer ID p, if it is one of ours.
func (rs *relays) get(p peer.ID) (*relayState, bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	st, ok := rs.byID[p]
	return st, ok
}

// isRelay reports whether p is a relay: one of ours, or a peer that
// identify says runs the circuit relay service (other relays, met in DHT
// lookups or deposits). Connections to them are infrastructure, not chat
// peers. Serving the DHT does not make a relay: a publicly reachable node
// serves it too.
func (rs *relays) isRelay(p peer.ID) bool {
	if _, ok := rs.get(p); ok {
		return true
	}
	if rs.core == nil || rs.host == nil {
		return false
	}
	protos, err := rs.host.Peerstore().SupportsProtocols(p, proto.ProtoIDv2Hop)
	return err == nil && len(protos) > 0
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
			Discovered: st.discovered, Mailbox: st.mailbox, PrekeysEC: st.prekeys[0], PrekeysKEM: st.prekeys[1]})
	}
	return out
}

// start starts one reservation keeper per relay, and the mailbox loops.
// Relays discovered later get theirs when they are added.
func (rs *relays) start() error {
	if !rs.configured() {
		return nil
	}
	var err error
	if rs.emitter, err = rs.host.EventBus().Emitter(new(event.EvtAutoRelayAddrsUpdated)); err != nil {
		return err
	}
	rs.host.Network().Notify(&network.NotifyBundle{
		DisconnectedF: func(nw network.Network, c network.Conn) {
			p := c.RemotePeer()
			if st, ok := rs.get(p); ok && nw.Connectedness(p) != network.Connected {
				signal(st.drop)
			}
		},
	})
	rs.mail.serveNotify()
	rs.mu.Lock()
	rs.started = true
	list := slices.Clone(rs.list)
	for _, st := range list {
		st.since = rs.cfg.Now() // its grace starts now
	}
	rs.mu.Unlock()
	for _, st := range list {
		rs.run(st)
	}
	return nil
}

// run starts a relay's reservation keeper and mailbox loop.
func (rs *relays) run(st *relayState) {
	rs.work.goDo(func() { rs.keep(st) })
	rs.work.goDo(func() { rs.mail.loop(st) })
}

// add adds a relay found in the DHT and starts using it, unless it is
// ours already or was dropped within relayRetryAfter.
func (rs *relays) add(info peer.AddrInfo) bool {
	full := throughRelay(info)
	if len(full) == 0 {
		return false
	}
	addr := strings.TrimSuffix(full[0].String(), "/p2p-circuit")
	rs.mu.Lock()
	_, known := rs.byID[info.ID]
	at, dropped := rs.dropped[info.ID]
	if known || dropped && rs.cfg.Now().Sub(at) < relayRetryAfter || !rs.started {
		rs.mu.Unlock()
		return false
	}
	st := newRelayState(addr, info, true, rs.cfg.Now())
	rs.list = append(rs.list, st)
	rs.byID[info.ID] = st
	rs.mu.Unlock()
	rs.host.Peerstore().AddAddrs(info.ID, info.Addrs, peerstoreTTL)
	rs.log.Info("relay found in the DHT", "relay", info.ID)
	rs.run(st)
	rs.emit(Event{Kind: EventListening, Addrs: FullAddrs(rs.host)}) // the relay list changed
	return true
}

// remove drops a discovered relay: its loops end, its reservation (if
// any) is forgotten, and it is not taken again for relayRetryAfter.
func (rs *relays) remove(st *relayState) {
	rs.mu.Lock()
	i := slices.Index(rs.list, st)
	if i < 0 || !st.discovered {
		rs.mu.Unlock()
		return
	}
	rs.list = slices.Delete(rs.list, i, i+1)
	delete(rs.byID, st.info.ID)
	rs.dropped[st.info.ID] = rs.cfg.Now()
	close(st.gone)
	rs.mu.Unlock()
	rs.cm.Unprotect(st.info.ID, relayTag)
	rs.log.Info("relay dropped: no reservation for a while", "relay", st.info.ID)
	rs.addrsChanged()
}

// keep keeps a reservation on one relay until the node stops or the
// relay is dropped.
func (rs *relays) keep(st *relayState) {
	backoff := time.Second
	for rs.ctx.Err() == nil && !isClosed(st.gone) {
		rsvp, err := rs.reserve(st)
		if err != nil {
			rs.set(st, false, time.Time{}, err.Error())
			rs.log.Info("relay reservation failed; will retry", "relay", st.info.ID, "in", backoff, "err", err)
			rs.sleep(jitter(backoff), st.drop, st.gone)
			backoff = min(2*backoff, time.Minute)
			continue
		}
		backoff = time.Second
		rs.set(st, true, rsvp.Expiration, "")
		signal(st.fresh)
		rs.log.Info("relay reservation", "relay", st.info.ID, "expires", rsvp.Expiration,
			"limit_duration", rsvp.LimitDuration, "limit_data", rsvp.LimitData)
		if !rs.sleep(refreshIn(rsvp.Expiration, rs.cfg.Now()), st.drop, st.gone) && rs.ctx.Err() == nil {
			rs.set(st, false, time.Time{}, "connection to the relay lost")
			rs.log.Info("relay connection lost; reserving again", "relay", st.info.ID)
		}
	}
}

// isClosed reports whether ch is closed.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
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
	if changed && !reserved {
		st.since = rs.cfg.Now()
	}
	rs.mu.Unlock()
	if changed {
		rs.addrsChanged()
	}
	if changed && !reserved {
		signal(rs.lost)
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
	for _, st := range rs.all() {
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
