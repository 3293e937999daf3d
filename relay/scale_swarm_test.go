//go:build linux

// The client swarm of TestRelayScale: lightweight libp2p hosts that
// reserve a slot on the relay, and the counting of failures.

package relay_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certchat/certchat/certdht"
	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/e2e/ratchet"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/mailbox"
	"github.com/libp2p/go-libp2p"
	kaddht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// scalePeer is one client host with a reservation.
type scalePeer struct {
	id  *identity.Identity
	h   host.Host
	ep  *e2e.Endpoint
	dht *kaddht.IpfsDHT // with CERTCHAT_SCALE_DHT
}

// scaleSwarm is every client host and chat.
type scaleSwarm struct {
	trust *identity.TrustStore
	n     atomic.Int64
	dht   bool // each host also joins the DHT and registers a mailbox (joinDHT)

	mu    sync.Mutex
	all   []*scalePeer
	chats map[peer.ID]*scaleChat // by responder
	list  []*scaleChat
}

func (sw *scaleSwarm) close() {
	sw.mu.Lock()
	all, list := sw.all, sw.list
	sw.mu.Unlock()
	for _, c := range list {
		c.closing.Store(true)
		if c.sess != nil {
			c.sess.Close()
		}
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, p := range all {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if p.dht != nil {
				p.dht.Close()
			}
			p.h.Close()
		}()
	}
	wg.Wait()
}

// newPeer makes a host whose key is a fresh certchat identity's.
func (sw *scaleSwarm) newPeer() (*scalePeer, error) {
	id, err := identity.Generate(fmt.Sprintf("scale-%d", sw.n.Add(1)), time.Now().Add(-time.Minute), 24*time.Hour)
	if err != nil {
		return nil, err
	}
	key, err := id.Libp2pKey()
	if err != nil {
		return nil, err
	}
	h, err := libp2p.New(
		libp2p.Identity(key),
		libp2p.NoListenAddrs,
		libp2p.EnableRelay(),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.ResourceManager(&network.NullResourceManager{}),
		libp2p.DisableMetrics(),
	)
	if err != nil {
		return nil, err
	}
	ep, err := e2e.NewEndpoint(e2e.Config{Identity: id, Trust: sw.trust, Policy: e2e.Policy{AllowUnknown: true}})
	if err != nil {
		h.Close()
		return nil, err
	}
	p := &scalePeer{id: id, h: h, ep: ep}
	h.SetStreamHandler(e2e.ProtocolChat, func(s network.Stream) { sw.respond(p, s) })
	sw.mu.Lock()
	sw.all = append(sw.all, p)
	sw.mu.Unlock()
	return p, nil
}

// reserveAll makes n hosts that each connect to the relay and reserve a
// slot, par at a time. It returns the hosts that hold a reservation, the
// failures by reason, and the time each successful connect + reserve took.
func (sw *scaleSwarm) reserveAll(relay peer.AddrInfo, n, par int) ([]*scalePeer, map[string]int, []time.Duration) {
	var (
		mu    sync.Mutex
		ok    []*scalePeer
		lat   []time.Duration
		fails = map[string]int{}
		wg    sync.WaitGroup
		next  atomic.Int64
	)
	for range min(par, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				p, d, err := sw.reserve(relay)
				mu.Lock()
				if err != nil {
					fails[reason(err)]++
				} else {
					ok = append(ok, p)
					lat = append(lat, d)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return ok, fails, lat
}

func (sw *scaleSwarm) reserve(relay peer.AddrInfo) (*scalePeer, time.Duration, error) {
	p, err := sw.newPeer()
	if err != nil {
		return nil, 0, fmt.Errorf("host: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	began := time.Now()
	if err := p.h.Connect(ctx, relay); err != nil {
		p.h.Close()
		return nil, 0, fmt.Errorf("connect: %w", err)
	}
	if _, err := client.Reserve(ctx, p.h, relay); err != nil {
		p.h.Close()
		return nil, 0, err
	}
	d := time.Since(began)
	if sw.dht {
		if err := p.joinDHT(ctx, relay); err != nil {
			p.h.Close()
			return nil, 0, err
		}
	}
	return p, d, nil
}

// joinDHT makes the host what a node is to its relay besides a
// reservation (CERTCHAT_SCALE_DHT): a DHT client that publishes its signed
// peer record with its circuit address, and a mailbox registered with a
// prekey bundle and 40 one-time prekeys of each kind.
func (p *scalePeer) joinDHT(ctx context.Context, relay peer.AddrInfo) error {
	d, err := certdht.New(p.h, certdht.Client, func() []peer.AddrInfo { return []peer.AddrInfo{relay} }, certdht.Validator{})
	if err != nil {
		return err
	}
	p.dht = d
	key, err := p.id.Libp2pKey()
	if err != nil {
		return err
	}
	circuit, err := ma.NewMultiaddr(fmt.Sprintf("%s/p2p/%s/p2p-circuit", relay.Addrs[0], relay.ID))
	if err != nil {
		return err
	}
	val, err := certdht.SealPeerRecord(key, []ma.Multiaddr{circuit})
	if err != nil {
		return err
	}
	for d.RoutingTable().Size() == 0 { // identify with the relay
		select {
		case <-ctx.Done():
			return fmt.Errorf("dht: the relay never entered the routing table: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := d.PutValue(ctx, certdht.RecordKey(p.h.ID(), certdht.EpochOf(time.Now())), val); err != nil {
		return fmt.Errorf("dht: publish: %w", err)
	}
	keys, err := ratchet.NewLocalKeys(p.id.Signer(), []byte(p.h.ID()), time.Now())
	if err != nil {
		return err
	}
	if keys, err = keys.GenerateOneTimePrekeys(40, time.Now()); err != nil {
		return err
	}
	base, err := keys.Bundle().MarshalBinary()
	if err != nil {
		return err
	}
	req := mailbox.Publish{Bundle: base}
	ec, kem := keys.OneTimePrekeys()
	for i := range ec {
		b := *keys.Bundle()
		b.OneTimePrekey = &ec[i]
		enc, err := b.MarshalBinary()
		if err != nil {
			return err
		}
		req.OneTimeEC = append(req.OneTimeEC, enc)
	}
	for i := range kem {
		b := *keys.Bundle()
		b.OneTimeKEM = &kem[i]
		enc, err := b.MarshalBinary()
		if err != nil {
			return err
		}
		req.OneTimeKEM = append(req.OneTimeKEM, enc)
	}
	if _, err := (mailbox.Client{Host: p.h}).Publish(ctx, relay.ID, req); err != nil {
		return fmt.Errorf("mailbox: publish: %w", err)
	}
	return nil
}

// reason names a failure for counting.
func reason(err error) string {
	var re client.ReservationError
	if errors.As(err, &re) {
		return "reserve: " + re.Status.String()
	}
	s := peerIDs.ReplaceAllString(err.Error(), "<peer>")
	s = ports.ReplaceAllString(s, "/tcp/<port>")
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}

var (
	peerIDs = regexp.MustCompile(`12D3KooW[1-9A-HJ-NP-Za-km-z]+`)
	ports   = regexp.MustCompile(`/tcp/[0-9]+`)
)

func countFails(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
