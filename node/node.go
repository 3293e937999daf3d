package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	ma "github.com/multiformats/go-multiaddr"
)

// Node is a running certchat peer.
type Node struct {
	cfg    Config
	log    *slog.Logger
	id     *identity.Identity
	trust  *identity.TrustStore
	host   host.Host
	cm     *connmgr.BasicConnMgr
	ep     *e2e.Endpoint
	store  *Store
	events *broker

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	relays *relays // never nil; empty without relays

	dirtyMu      sync.Mutex
	dirty        map[peer.ID]struct{} // peers with an event to publish
	dirtyWake    chan struct{}
	relayEmitter event.Emitter
	rk           ratchetKeys
	receipts     receiptQueue

	mu      sync.Mutex
	peers   map[peer.ID]*peerState
	closing bool
	stopLAN func()
}

// New opens the message store and starts the libp2p host. Start begins
// discovery and delivery.
func New(cfg Config) (*Node, error) {
	cfg.defaults()
	if cfg.Identity == nil || cfg.Trust == nil {
		return nil, errors.New("node: config needs an identity and a trust store")
	}
	store, err := OpenIdentityStore(cfg.DBPath, cfg.Identity)
	if err != nil {
		return nil, err
	}
	ep, err := e2e.NewEndpoint(e2e.Config{
		Identity:     cfg.Identity,
		Trust:        cfg.Trust,
		Policy:       e2e.Policy{AllowUnknown: true},
		Now:          cfg.Now,
		KeyLogWriter: cfg.KeyLogWriter,
	})
	if err != nil {
		store.Close()
		return nil, err
	}
	n := &Node{
		cfg: cfg, log: cfg.Logger, id: cfg.Identity, trust: cfg.Trust, ep: ep, store: store,
		events: newBroker(), peers: map[peer.ID]*peerState{},
		dirty: map[peer.ID]struct{}{}, dirtyWake: make(chan struct{}, 1),
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	if err := n.initRatchet(); err != nil {
		store.Close()
		return nil, err
	}
	if n.relays, err = parseRelays(cfg.Relays); err != nil {
		store.Close()
		return nil, err
	}
	listen := cfg.Listen
	if len(listen) == 1 && listen[0] == "none" {
		listen = nil
	}
	if err := portsFree(listen); err != nil {
		store.Close()
		return nil, err
	}
	asked, saved := n.listenAddrs(listen)
	n.host, n.cm, err = newHost(cfg.Identity, asked, n.relayOptions()...)
	if err != nil {
		store.Close()
		return nil, err
	}
	n.rememberPorts(listen, asked, saved)
	if len(n.relays.list) > 0 {
		if n.relayEmitter, err = n.host.EventBus().Emitter(new(event.EvtAutoRelayAddrsUpdated)); err != nil {
			n.host.Close()
			store.Close()
			return nil, err
		}
	}
	return n, nil
}

// Start registers the chat protocol, restores known peers, starts LAN
// discovery and relays, and resumes the outbox.
func (n *Node) Start() error {
	n.wg.Add(1)
	go n.notifyPeers()
	n.host.SetStreamHandler(e2e.ProtocolChat, n.handleStream)
	n.host.Network().Notify(&network.NotifyBundle{
		ConnectedF:    func(_ network.Network, c network.Conn) { n.onConnected(c) },
		DisconnectedF: func(_ network.Network, c network.Conn) { n.onDisconnected(c.RemotePeer()) },
	})
	n.restorePeers()
	if n.cfg.MDNS {
		if err := n.startMDNS(); err != nil {
			return fmt.Errorf("lan discovery: %w", err)
		}
	}
	if err := n.startRelays(); err != nil {
		return err
	}
	n.watchAddrs()
	peers, err := n.store.OutboxPeers()
	if err != nil {
		return err
	}
	for _, p := range peers {
		n.kick(p)
	}
	n.wg.Add(1)
	go n.greetContacts(peers)
	return nil
}

// Close stops the node: sessions are closed properly, workers end, the
// store is closed. Subscribers receive what was queued, then C closes.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closing {
		n.mu.Unlock()
		return nil
	}
	n.closing = true
	var sessions []*chatSession
	for _, ps := range n.peers {
		sessions = append(sessions, ps.sessions...)
	}
	stopLAN := n.stopLAN
	n.mu.Unlock()
	if stopLAN != nil {
		stopLAN()
	}
	n.cancel()
	for _, cs := range sessions {
		cs.s.CloseWith(e2e.CloseGoingAway, "shutting down")
	}
	n.host.RemoveStreamHandler(e2e.ProtocolChat)
	err := n.host.Close()
	n.wg.Wait()
	n.events.closeAll()
	if serr := n.store.Close(); err == nil {
		err = serr
	}
	return err
}

// Subscribe returns a stream of events. It starts with a listening event
// for the current addresses, so a subscriber that comes late misses nothing
// it needs.
func (n *Node) Subscribe() *Subscription {
	return n.events.subscribe(Event{Kind: EventListening, Time: n.cfg.Now(), Addrs: n.Addrs()})
}

func (n *Node) emit(e Event) {
	if e.Time.IsZero() {
		e.Time = n.cfg.Now()
	}
	n.events.publish(e)
}

func (n *Node) emitError(p peer.ID, err error) {
	n.emit(Event{Kind: EventError, PeerID: p, Err: err.Error()})
}

// ID is this node's peer ID.
func (n *Node) ID() peer.ID { return n.host.ID() }

// Identity is this node's identity.
func (n *Node) Identity() *identity.Identity { return n.id }

// Trust is the trust store the node uses.
func (n *Node) Trust() *identity.TrustStore { return n.trust }

// Store is the message store.
func (n *Node) Store() *Store { return n.store }

// Host is the libp2p host.
func (n *Node) Host() host.Host { return n.host }

// Addrs are the node's full multiaddrs (with /p2p/), to share.
func (n *Node) Addrs() []string { return FullAddrs(n.host) }

// FullAddrs are a host's addresses with /p2p/<its peer ID>, as people
// share them.
func FullAddrs(h host.Host) []string {
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

// watchAddrs emits a listening event now and whenever the addresses change.
func (n *Node) watchAddrs() {
	n.emit(Event{Kind: EventListening, Addrs: n.Addrs()})
	sub, err := n.host.EventBus().Subscribe(new(event.EvtLocalAddressesUpdated))
	if err != nil {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer sub.Close()
		for {
			select {
			case <-n.ctx.Done():
				return
			case _, ok := <-sub.Out():
				if !ok {
					return
				}
				// Subscribers hear only of changes (Subscription.enqueue).
				n.emit(Event{Kind: EventListening, Addrs: n.Addrs()})
			}
		}
	}()
}

// Connect reaches a peer by full multiaddr (…/p2p/<id>) or by peer ID
// (known addresses), runs the handshake and returns what it learned.
func (n *Node) Connect(ctx context.Context, target string) (PeerInfo, error) {
	p, err := n.addTarget(target)
	if err != nil {
		return PeerInfo{}, err
	}
	if _, err := n.session(ctx, p); err != nil {
		return n.PeerInfo(p), err
	}
	return n.PeerInfo(p), nil
}

// addTarget parses a multiaddr or peer ID and records the addresses.
func (n *Node) addTarget(target string) (peer.ID, error) {
	if len(target) > 0 && target[0] == '/' {
		addr, err := ma.NewMultiaddr(target)
		if err != nil {
			return "", fmt.Errorf("%q is not a multiaddr: %w", target, err)
		}
		info, err := peer.AddrInfoFromP2pAddr(addr)
		if err != nil {
			return "", fmt.Errorf("%s: the address must end with /p2p/<peer id>", target)
		}
		if info.ID == n.host.ID() {
			return "", ErrSelf
		}
		n.host.Peerstore().AddAddrs(info.ID, info.Addrs, peerstoreTTL)
		n.rememberAddrs(info.ID)
		return info.ID, nil
	}
	p, err := identity.ParsePeerID(target)
	if err != nil {
		return "", err
	}
	if p == n.host.ID() {
		return "", ErrSelf
	}
	return p, nil
}

// peerstoreTTL is how long learned addresses are kept in memory; they are
// also saved in the store.
const peerstoreTTL = 24 * time.Hour

// Send stores a message to a peer and queues it for delivery. When Send
// returns, the message survives a crash and will be delivered (once) when
// the peer is reachable; events report its progress.
func (n *Node) Send(to peer.ID, text string) (Message, error) {
	if err := n.mayMessage(to); err != nil {
		return Message{}, err
	}
	m := Message{ID: e2e.NewMessageID(), Peer: to, SentAt: n.cfg.Now(), Body: text}
	m.StoredAt = m.SentAt
	if _, err := (e2e.Text{ID: m.ID, SentAt: m.SentAt, Body: text}).Marshal(); err != nil {
		return Message{}, err
	}
	if err := n.store.AddOutgoing(&m); err != nil {
		return Message{}, fmt.Errorf("store message: %w", err)
	}
	n.emit(Event{Kind: EventStatus, Message: &m})
	n.kick(to)
	return m, nil
}

// mayMessage says whether messages may go to p now.
func (n *Node) mayMessage(p peer.ID) error {
	if p == n.host.ID() {
		return ErrSelf
	}
	if _, err := identity.KeyFromPeerID(p); err != nil {
		return err
	}
	c, known, err := n.trust.Contact(p)
	if err != nil {
		return err
	}
	// ps's fields are guarded by n.mu: read them under it.
	n.mu.Lock()
	var changed, caVerified bool
	if ps := n.peers[p]; ps != nil {
		changed = ps.changed != nil
		caVerified = ps.verdict != nil && ps.verdict.State == identity.StateCAVerified
	}
	n.mu.Unlock()
	switch {
	case known && c.State == identity.StateUntrusted:
		return ErrBlocked
	case changed:
		return ErrKeyChanged
	case known:
		return nil
	case caVerified:
		return nil
	}
	if rec, ok := n.peerRecord(p); ok && rec.CAVerified {
		return nil
	}
	return ErrNotTrusted
}
