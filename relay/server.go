package relay

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync"

	"github.com/certchat/certchat/certdht"
	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p"
	kaddht "github.com/libp2p/go-libp2p-kad-dht"
	p2pcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	circuit "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

// DefaultListen are the relay's listen addresses: fixed ports, so the
// addresses shared with clients stay valid across restarts.
var DefaultListen = []string{
	"/ip4/0.0.0.0/tcp/4001",
	"/ip4/0.0.0.0/udp/4001/quic-v1",
	"/ip6/::/tcp/4001",
	"/ip6/::/udp/4001/quic-v1",
}

// KeyFile is the relay's key in the home: unencrypted (the relay runs
// unattended), mode 0600, created on first run.
const KeyFile = "relay.key"

// Config sets up a relay server.
type Config struct {
	Home   identity.Home
	Listen []string
	Limits Limits
	// RecordDir, if set, receives every byte the relay forwards.
	RecordDir string
	// Mailbox bounds the mailbox for offline peers (home/mailbox.db);
	// NoMailbox turns it off.
	Mailbox   MailboxLimits
	NoMailbox bool
	// Bootstrap are other relays (full multiaddrs) to join in the certchat
	// DHT; NoDHT keeps the relay out of it (dht.go).
	Bootstrap []string
	NoDHT     bool
	Logger    *slog.Logger
}

// Server is a running relay.
type Server struct {
	host    host.Host
	relay   *circuit.Relay
	mailbox *mailboxServer
	log     *slog.Logger

	dht     *kaddht.IpfsDHT // nil with NoDHT
	stop    context.CancelFunc
	dhtDone chan struct{} // closed when the provide loop has ended

	closeOnce sync.Once
	closeErr  error
}

// NewServer starts a relay.
func NewServer(cfg Config) (*Server, error) { return newServer(cfg, nil) }

// newServer starts a relay whose service sees the host through wrap, if
// given (tests use it to tamper with forwarded bytes).
func newServer(cfg Config, wrap func(host.Host) host.Host) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if len(cfg.Listen) == 0 {
		cfg.Listen = DefaultListen
	}
	if err := cfg.Limits.check(); err != nil {
		return nil, err
	}
	limits := cfg.Limits.withDefaults()
	boot, err := parseBootstrap(cfg.Bootstrap)
	if err != nil {
		return nil, err
	}
	key, err := loadOrCreateKey(cfg.Home)
	if err != nil {
		return nil, err
	}
	h, err := newRelayHost(key, cfg.Listen, limits)
	if err != nil {
		return nil, err
	}
	var rh host.Host = h
	if cfg.RecordDir != "" {
		if err := os.MkdirAll(cfg.RecordDir, 0o700); err != nil {
			h.Close()
			return nil, fmt.Errorf("record dir: %w", err)
		}
		rh = &recordingHost{Host: h, dir: cfg.RecordDir}
	}
	if wrap != nil {
		rh = wrap(rh)
	}
	r, err := circuit.New(rh, circuit.WithResources(limits.resources()))
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("start relay service: %w", err)
	}
	srv := &Server{host: h, relay: r, log: cfg.Logger}
	if !cfg.NoMailbox {
		// The mailbox sees the host as the relay service does, so
		// --record-dir records what it stores and serves too.
		if srv.mailbox, err = openMailbox(cfg.Home.Path("mailbox.db"), rh, cfg.Mailbox, cfg.Logger); err != nil {
			r.Close()
			h.Close()
			return nil, err
		}
	}
	var ctx context.Context
	ctx, srv.stop = context.WithCancel(context.Background())
	if !cfg.NoDHT {
		if err := srv.startDHT(ctx, h, boot); err != nil {
			srv.Close()
			return nil, err
		}
	}
	cfg.Logger.Info("relay started", "peer", h.ID(), "reservations", limits.MaxReservations,
		"circuit_duration", limits.CircuitDuration, "circuit_data", limits.CircuitData, "mailbox", !cfg.NoMailbox,
		"dht", !cfg.NoDHT, "bootstrap", len(boot))
	return srv, nil
}

// newRelayHost builds the relay's libp2p host: TCP and QUIC, a connection
// manager that keeps every reserved peer, and resource limits sized for
// the reservation cap rather than a desktop's defaults.
func newRelayHost(key p2pcrypto.PrivKey, listen []string, l Limits) (host.Host, error) {
	conns := l.MaxReservations + l.MaxReservations/4 + 64
	cm, err := connmgr.NewConnManager(conns, conns+conns/4)
	if err != nil {
		return nil, err
	}
	scaling := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&scaling)
	streams := rcmgr.LimitVal(4*conns + 4*l.MaxCircuits)
	partial := rcmgr.PartialLimitConfig{
		System: rcmgr.ResourceLimits{
			Conns: rcmgr.LimitVal(2 * conns), ConnsInbound: rcmgr.LimitVal(2 * conns), ConnsOutbound: rcmgr.LimitVal(conns),
			Streams: streams, StreamsInbound: streams, StreamsOutbound: streams, FD: rcmgr.LimitVal(2 * conns),
		},
		Transient: rcmgr.ResourceLimits{
			Conns: rcmgr.LimitVal(conns), ConnsInbound: rcmgr.LimitVal(conns), ConnsOutbound: rcmgr.LimitVal(conns),
			Streams: streams, StreamsInbound: streams, StreamsOutbound: streams, FD: rcmgr.LimitVal(conns),
		},
		ServiceDefault: rcmgr.ResourceLimits{Streams: streams, StreamsInbound: streams, StreamsOutbound: streams},
	}
	circuitStreamLimits(&partial, streams)
	// DHT clients keep a stream to the relay (kad-dht reuses one per
	// peer): as many as the reservations, not go-libp2p's desktop default.
	partial.Protocol[certdht.ProtocolID] = rcmgr.ResourceLimits{Streams: streams, StreamsInbound: streams, StreamsOutbound: streams}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(partial.Build(scaling.AutoScale())), l.perIPOptions()...)
	if err != nil {
		return nil, err
	}
	h, err := libp2p.New(
		libp2p.Identity(key),
		libp2p.ListenAddrStrings(listen...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.ConnectionManager(cm),
		libp2p.ResourceManager(rm),
		libp2p.DisableRelay(),
		libp2p.ForceReachabilityPublic(),
	)
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("start relay host: %w", err)
	}
	return h, nil
}

// loadOrCreateKey reads home/relay.key, creating it on first run.
func loadOrCreateKey(h identity.Home) (p2pcrypto.PrivKey, error) {
	path := h.Path(KeyFile)
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := h.Ensure(); err != nil {
			return nil, err
		}
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		pemKey, err := identity.EncodePrivateKey(key, nil, identity.KDFParams{})
		if err != nil {
			return nil, err
		}
		if err := identity.WriteFileAtomic(path, pemKey, 0o600); err != nil {
			return nil, err
		}
		return identity.Libp2pKey(key)
	case err != nil:
		return nil, fmt.Errorf("relay key: %w", err)
	}
	key, err := identity.DecodePrivateKey(data, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return identity.Libp2pKey(key)
}

// ID is the relay's peer ID.
func (s *Server) ID() peer.ID { return s.host.ID() }

// Host is the relay's libp2p host.
func (s *Server) Host() host.Host { return s.host }

// Addrs are the relay's full multiaddrs (with /p2p/) to give to clients.
func (s *Server) Addrs() []string { return fullAddrs(s.host) }

// fullAddrs are h's listen addresses with /p2p/<id> appended, or nil if
// they cannot be formed. relay keeps its own copy of node.FullAddrs so
// the server does not depend on the client.
func fullAddrs(h host.Host) []string {
	full, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()})
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(full))
	for _, a := range full {
		out = append(out, a.String())
	}
	return out
}

// Close stops the relay: circuits are reset and connections closed.
// Closing again does nothing and returns the same error.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

func (s *Server) close() error {
	s.stop()
	var derr error
	if s.dht != nil {
		derr = s.dht.Close()
		<-s.dhtDone
	}
	var merr error
	if s.mailbox != nil {
		merr = s.mailbox.close()
	}
	rerr := s.relay.Close()
	herr := s.host.Close()
	s.log.Info("relay stopped")
	return errors.Join(derr, merr, rerr, herr)
}
