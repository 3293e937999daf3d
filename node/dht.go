package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certchat/certchat/certdht"
	"github.com/certchat/certchat/identity"
	kaddht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// The certchat DHT, client side (docs/PROTOCOL.md §16).
//
// A node with relays (and without Config.NoDHT) joins the certchat DHT
// through them: client mode, a server only while AutoNAT finds it
// publicly reachable. It publishes its signed peer record (its addresses,
// the circuit addresses through its relays included) under the day's
// record key, again when its addresses change, every half hour and as the
// day ends; and a dial to a peer with no known address, or whose known
// addresses fail, looks the peer up there first. Without relays there is
// no DHT, as before it existed.

const (
	// dhtLookupTimeout bounds one lookup of a peer.
	dhtLookupTimeout = 10 * time.Second
	// dhtMissSpacing: after a lookup that found nothing, the same peer is
	// not looked up again for this long (the outbox retries every minute).
	dhtMissSpacing = 10 * time.Second
	// dhtRepublish is how often the peer record is published when
	// nothing changes; records live certdht.Epoch to two days.
	dhtRepublish = 30 * time.Minute
	// dhtNextEpoch: this long before the day ends, the record is also
	// published under the next day's key.
	dhtNextEpoch = 2 * time.Hour
	// dhtPublishTimeout bounds one publication.
	dhtPublishTimeout = 30 * time.Second
)

// errDHTOff: the node runs no DHT (no relays, or Config.NoDHT).
var errDHTOff = errors.New("the certchat DHT is off (no relay configured, or --no-dht)")

// dhtNode is the node's part in the DHT. d is set once by start; misses
// and published are its own state.
type dhtNode struct {
	*core
	relays *relays

	d         atomic.Pointer[kaddht.IpfsDHT]
	published atomic.Int64 // Unix nanoseconds of the last publication, 0 before

	mu     sync.Mutex
	misses map[peer.ID]time.Time // lookups that found nothing, by when

	relayMiss int // keepRelays' rounds in a row that found too few relays (its own)
}

// start joins the DHT through the configured relays and starts
// publishing our peer record.
func (x *dhtNode) start() error {
	if x.cfg.NoDHT || !x.relays.configured() {
		return nil
	}
	// The relays we keep now, configured and discovered, are the
	// bootstrap nodes: a routing table that empties (a relay lost) refills
	// from them.
	boot := func() []peer.AddrInfo {
		var out []peer.AddrInfo
		for _, st := range x.relays.all() {
			out = append(out, st.info)
		}
		return out
	}
	d, err := certdht.New(x.host, certdht.Auto, boot, certdht.Validator{Now: x.cfg.Now})
	if err != nil {
		return err
	}
	x.d.Store(d)
	if x.cfg.RelayCount > 0 {
		x.work.goDo(x.keepRelays)
	}
	sub, err := x.host.EventBus().Subscribe(new(event.EvtLocalAddressesUpdated))
	if err != nil {
		return fmt.Errorf("follow address changes for the DHT: %w", err)
	}
	if !x.work.goDo(func() { x.publishLoop(sub) }) {
		sub.Close()
	}
	return nil
}

// close leaves the DHT.
func (x *dhtNode) close() {
	if d := x.d.Load(); d != nil {
		if err := d.Close(); err != nil {
			x.log.Debug("close the DHT", "err", err)
		}
	}
}

// on reports whether the node runs the DHT.
func (x *dhtNode) on() bool { return x.d.Load() != nil }

// publishLoop publishes our peer record now, whenever our addresses
// change (a reservation made or lost), every dhtRepublish, and under the
// next day's key as the day ends. A failure (no DHT server reached yet)
// is retried with backoff from a quarter second to a minute.
func (x *dhtNode) publishLoop(sub event.Subscription) {
	defer sub.Close()
	const firstRetry = 250 * time.Millisecond // the routing table fills as the relays are identified
	backoff := firstRetry
	for {
		wait := dhtRepublish
		if err := x.publish(); err != nil {
			x.log.Info("publish the peer record in the DHT; will retry", "in", backoff, "err", err)
			wait = jitter(backoff)
			backoff = min(2*backoff, time.Minute)
		} else {
			backoff = firstRetry
			now := x.cfg.Now()
			dayEnd := time.Unix((certdht.EpochOf(now)+1)*int64(certdht.Epoch/time.Second), 0)
			if left := dayEnd.Sub(now) - dhtNextEpoch; left > 0 {
				wait = min(wait, left)
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-x.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case _, ok := <-sub.Out():
			t.Stop()
			if !ok {
				return
			}
			// Addresses change in bursts (several reservations, identify):
			// publish once they settle.
			if !x.settle(sub) {
				return
			}
		}
	}
}

// settle waits until no address change has come for half a second.
func (x *dhtNode) settle(sub event.Subscription) bool {
	for {
		t := time.NewTimer(500 * time.Millisecond)
		select {
		case <-x.ctx.Done():
			t.Stop()
			return false
		case _, ok := <-sub.Out():
			t.Stop()
			if !ok {
				return false
			}
		case <-t.C:
			return true
		}
	}
}

// publish puts our signed peer record under today's key (and tomorrow's
// too in the day's last hours).
func (x *dhtNode) publish() error {
	d := x.d.Load()
	key, err := x.id.Libp2pKey()
	if err != nil {
		return err
	}
	val, err := certdht.SealPeerRecord(key, x.host.Addrs())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(x.ctx, dhtPublishTimeout)
	defer cancel()
	now := x.cfg.Now()
	epochs := []int64{certdht.EpochOf(now)}
	if certdht.EpochOf(now.Add(dhtNextEpoch)) != epochs[0] {
		epochs = append(epochs, epochs[0]+1)
	}
	for _, e := range epochs {
		if err := d.PutValue(ctx, certdht.RecordKey(x.host.ID(), e), val); err != nil {
			return err
		}
	}
	x.published.Store(now.UnixNano())
	x.log.Debug("peer record published in the DHT", "addrs", len(x.host.Addrs()))
	return nil
}

// find looks p up in the DHT: its signed peer record (today's key, then
// yesterday's). The addresses found go to the peerstore; it returns them. A peer not found is not looked up again for dhtMissSpacing.
func (x *dhtNode) find(ctx context.Context, p peer.ID) ([]ma.Multiaddr, error) {
	d := x.d.Load()
	if d == nil {
		return nil, errDHTOff
	}
	x.mu.Lock()
	if at, ok := x.misses[p]; ok && time.Since(at) < dhtMissSpacing {
		x.mu.Unlock()
		return nil, fmt.Errorf("not in the DHT (looked up %s ago)", time.Since(at).Round(time.Second))
	}
	x.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, dhtLookupTimeout)
	defer cancel()
	x.waitRoutingTable(ctx, d)
	began := time.Now()
	addrs, err := x.lookup(ctx, d, p)
	x.log.Debug("looked up a peer in the DHT", "peer", p, "addrs", len(addrs), "took", time.Since(began).Round(time.Millisecond), "err", err)
	x.mu.Lock()
	if x.misses == nil {
		x.misses = map[peer.ID]time.Time{}
	}
	if len(addrs) == 0 {
		x.misses[p] = time.Now()
	} else {
		delete(x.misses, p)
	}
	x.mu.Unlock()
	if len(addrs) == 0 {
		return nil, err
	}
	x.host.Peerstore().AddAddrs(p, addrs, peerstoreTTL)
	return addrs, nil
}

// waitRoutingTable gives a node whose routing table is empty (it has
// just started, or the relays in it left) a moment to fill it from the
// relays it keeps: a lookup with an empty table fails at once.
func (x *dhtNode) waitRoutingTable(ctx context.Context, d *kaddht.IpfsDHT) {
	if d.RoutingTable().Size() > 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := d.Bootstrap(ctx); err != nil { // refill from our relays
		x.log.Debug("DHT bootstrap", "err", err)
	}
	for d.RoutingTable().Size() == 0 {
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// lookup is find's search: the newest valid record of p, today's key
// first. There is no FIND_NODE fallback: its lookup would end by dialing
// the peer itself, and a stream to a peer behind NAT that we reach only
// through a relay waits for a direct connection until the lookup times
// out. A peer without a record is dialed through our relays (reach).
func (x *dhtNode) lookup(ctx context.Context, d *kaddht.IpfsDHT, p peer.ID) ([]ma.Multiaddr, error) {
	e := certdht.EpochOf(x.cfg.Now())
	var last error
	for _, epoch := range []int64{e, e - 1} {
		ch, err := d.SearchValue(ctx, certdht.RecordKey(p, epoch))
		if err != nil {
			last = err
			continue
		}
		var best *peer.PeerRecord
		for v := range ch {
			pr, err := certdht.OpenPeerRecord(v)
			if err != nil || pr.PeerID != p {
				continue // the DHT validated it; this is belt and braces
			}
			if best == nil || pr.Seq > best.Seq {
				best = pr
			}
		}
		if best != nil && len(best.Addrs) > 0 {
			return best.Addrs, nil
		}
	}
	if last != nil {
		x.log.Debug("DHT lookup failed", "peer", p, "err", last)
	}
	return nil, fmt.Errorf("%s: %w", identity.ShortID(p), errNotInDHT)
}

// relayCheckEvery is how often the relay keeper looks at the relays when
// no reservation is lost meanwhile.
const relayCheckEvery = time.Minute

// keepRelays keeps Config.RelayCount relays with a reservation: it drops
// discovered relays without one for their grace (relays.grace), and adds
// relays found in the DHT while too few are reserved or trying.
func (x *dhtNode) keepRelays() {
	for {
		t := time.NewTimer(x.checkRelays())
		select {
		case <-x.ctx.Done():
			t.Stop()
			return
		case <-x.relays.lost:
			t.Stop()
		case <-t.C:
		}
	}
}

// checkRelays is one round of keepRelays; it returns when to look again.
// A relay counts when it holds a reservation or is still within its grace
// (relays.grace) to get one; a discovered relay past its grace without
// one is dropped, and discovered relays beyond RelayCount are dropped too
// (those not reserved first, then the newest).
func (x *dhtNode) checkRelays() time.Duration {
	now := x.cfg.Now()
	good, next := 0, relayCheckEvery
	var trying, reserved []*relayState // discovered relays that count, in the order they came
	for _, st := range x.relays.all() {
		x.relays.mu.Lock()
		isReserved, since := st.reserved, st.since
		x.relays.mu.Unlock()
		isTrying := !isReserved && now.Sub(since) < x.relays.grace
		switch {
		case isReserved:
			good++
			if st.discovered {
				reserved = append(reserved, st)
			}
		case isTrying:
			good++
			next = min(next, since.Add(x.relays.grace).Sub(now)+10*time.Millisecond)
			if st.discovered {
				trying = append(trying, st)
			}
		case st.discovered:
			x.relays.remove(st)
		}
	}
	// Too many: drop discovered relays still trying, then the newest.
	slices.Reverse(reserved)
	for _, st := range append(trying, reserved...) {
		if good <= x.cfg.RelayCount {
			break
		}
		x.relays.remove(st)
		good--
	}
	need := x.cfg.RelayCount - good
	if need <= 0 {
		return next
	}
	ctx, cancel := context.WithTimeout(x.ctx, dhtLookupTimeout)
	defer cancel()
	d := x.d.Load()
	x.waitRoutingTable(ctx, d)
	for info := range d.FindProvidersAsync(ctx, certdht.RelayKey, 20) {
		if info.ID == x.host.ID() || len(info.Addrs) == 0 {
			continue
		}
		if x.relays.add(info) {
			if need--; need == 0 {
				break
			}
		}
	}
	if need > 0 {
		// Too few relays in the DHT (yet): look again from 5 s, doubling
		// up to 5 minutes while there are none to add.
		x.relayMiss = min(x.relayMiss+1, 7)
		return min(next, 5*time.Second<<(x.relayMiss-1))
	}
	x.relayMiss = 0
	return next
}

// errNotInDHT: no DHT server had a peer record of the peer.
var errNotInDHT = errors.New("not found in the certchat DHT")

// newAddrs are the addresses of found not in tried.
func newAddrs(found, tried []ma.Multiaddr) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range found {
		if !slices.ContainsFunc(tried, a.Equal) {
			out = append(out, a)
		}
	}
	return out
}

// FindPeer looks p up in the certchat DHT and returns the addresses its
// signed peer record lists (circuit addresses through its relays
// included), which are also remembered for dialing. It fails with an
// error if the DHT is off or holds no record of p.
func (n *Node) FindPeer(ctx context.Context, p peer.ID) ([]ma.Multiaddr, error) {
	return n.dht.find(ctx, p)
}
