package relay

import (
	"context"
	"fmt"
	"time"

	"github.com/certchat/certchat/certdht"
	kaddht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// The relay in the certchat DHT (docs/PROTOCOL.md §16): a DHT server
// (always on and publicly reachable, so never in auto mode), joined to
// the other relays given with --bootstrap, and a provider of
// certdht.RelayKey so that clients find it.

// relayProvideEvery is how often the relay announces itself under
// certdht.RelayKey (provider records live 48 hours).
const relayProvideEvery = time.Hour

// parseBootstrap reads --bootstrap addresses: full multiaddrs of other
// relays, ending in /p2p/<peer id>.
func parseBootstrap(addrs []string) ([]peer.AddrInfo, error) {
	var out []peer.AddrInfo
	for _, s := range addrs {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("bootstrap %q is not a multiaddr: %w", s, err)
		}
		info, err := peer.AddrInfoFromP2pAddr(a)
		if err != nil || len(info.Addrs) == 0 {
			return nil, fmt.Errorf("bootstrap %s: give the full address, ending in /p2p/<relay peer id>", s)
		}
		out = append(out, *info)
	}
	return out, nil
}

// startDHT runs the DHT server on h and the loop that provides RelayKey
// until ctx ends.
func (s *Server) startDHT(ctx context.Context, h host.Host, boot []peer.AddrInfo) error {
	d, err := certdht.New(h, certdht.Server, func() []peer.AddrInfo { return boot }, certdht.Validator{})
	if err != nil {
		return err
	}
	s.dht = d
	for _, b := range boot {
		h.Peerstore().AddAddrs(b.ID, b.Addrs, time.Hour)
	}
	s.dhtDone = make(chan struct{})
	go func() {
		defer close(s.dhtDone)
		s.provideLoop(ctx, d, boot)
	}()
	return nil
}

// provideLoop joins the other relays and announces this relay under
// RelayKey: at once, then every relayProvideEvery; a failure (no other
// server reached yet) is retried with backoff up to a minute.
func (s *Server) provideLoop(ctx context.Context, d *kaddht.IpfsDHT, boot []peer.AddrInfo) {
	backoff := time.Second
	for ctx.Err() == nil {
		for _, b := range boot {
			if d.Host().Network().Connectedness(b.ID) != network.Connected {
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				if err := d.Host().Connect(cctx, b); err != nil {
					s.log.Debug("bootstrap relay not reached", "relay", b.ID, "err", err)
				}
				cancel()
			}
		}
		wait := relayProvideEvery
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := d.Provide(pctx, certdht.RelayKey, true)
		cancel()
		if err != nil {
			s.log.Debug("announce the relay in the DHT; will retry", "in", backoff, "err", err)
			wait, backoff = backoff, min(2*backoff, time.Minute)
		} else {
			backoff = time.Second
			s.log.Info("relay announced in the DHT", "routing_table", d.RoutingTable().Size())
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}
