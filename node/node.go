package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Node is a running certchat peer: the coordinator of the parts that each
// own their state (doc.go lists them, their goroutines and their locks).
// Its methods are the API that the window, the daemon and the one-shot
// commands use.
type Node struct {
	*core
	cancel context.CancelFunc

	book     *peerBook
	sessions *sessions
	rk       *ratchetKeys
	out      *outbox
	receipts *receiptQueue
	mail     *mailboxes
	relays   *relays
	dht      *dhtNode
	lan      *lan
	peerEv   *peerEvents
	ind      *Indications
	files    *transfers
	groups   *Groups
	// strangers bounds what peers we may not message leave with us.
	strangers *strangers
	msgs      *Messages
	contacts  *Contacts
}

// New opens the message store and starts the libp2p host. Start begins
// discovery and delivery.
func New(cfg Config) (*Node, error) {
	cfg.defaults()
	if cfg.Identity == nil || cfg.Trust == nil {
		return nil, errors.New("node: config needs an identity and a trust store")
	}
	st, err := store.OpenIdentity(cfg.DBPath, cfg.Identity)
	if err != nil {
		return nil, err
	}
	n, err := newNode(cfg, st)
	if err != nil {
		st.Close()
		return nil, err
	}
	return n, nil
}

// newNode builds the node's parts on an open store and starts the host.
func newNode(cfg Config, st *store.Store) (*Node, error) {
	ep, err := e2e.NewEndpoint(e2e.Config{
		Identity:     cfg.Identity,
		Trust:        cfg.Trust,
		Policy:       e2e.Policy{AllowUnknown: true, RequirePostQuantum: cfg.RequirePostQuantum},
		Now:          cfg.Now,
		KeyLogWriter: cfg.KeyLogWriter,
	})
	if err != nil {
		return nil, err
	}
	rk, err := loadRatchetKeys(st, cfg.Logger, cfg.Identity, cfg.Now)
	if err != nil {
		return nil, err
	}
	rs, err := parseRelays(cfg.Relays)
	if err != nil {
		return nil, err
	}
	c := &core{cfg: cfg, log: cfg.Logger, id: cfg.Identity, trust: cfg.Trust, ep: ep, store: st,
		events: newBroker(), work: &workers{}}
	if err := c.startHost(rs.options(cfg.Listen)); err != nil {
		return nil, err
	}
	n := &Node{core: c}
	c.ctx, n.cancel = context.WithCancel(context.Background())
	n.wire(rk, rs)
	return n, nil
}

// wire connects the parts to the core and to each other.
func (n *Node) wire(rk *ratchetKeys, rs *relays) {
	c := n.core
	n.rk, n.relays = rk, rs
	n.book = newPeerBook(c)
	n.peerEv = newPeerEvents(c)
	n.sessions = &sessions{core: c, byPeer: map[peer.ID]*peerSessions{}}
	n.out = &outbox{core: c, workers: map[peer.ID]*outboxWorker{}}
	n.out.fan = newFanout(n.out)
	n.out.fwd = newForwardPlan(n.out)
	n.mail = &mailboxes{core: c}
	n.lan = &lan{core: c, found: map[peer.ID]time.Time{}}
	n.dht = &dhtNode{core: c, relays: rs}
	n.receipts = &receiptQueue{work: c.work, done: c.ctx.Done(), record: n.out.acknowledged, seen: n.out.seen,
		takeGroup: n.out.takeGroupCopies}
	n.ind = newIndications(c)
	n.files = newTransfers(c)
	n.groups = newGroups(c)
	n.groups.out, n.groups.book, n.groups.rk = n.out, n.book, rk
	rk.groupOK = n.groups.mayPost
	n.strangers = newStrangers(c, n.book, n.groups)
	rk.keepOK, rk.groupKeepOK = n.strangers.keep, n.strangers.keepInGroup
	rk.mayMessage = n.book.mayMessage

	// Who calls whom.
	rs.core, rs.mail = c, n.mail
	n.peerEv.info, n.peerEv.isRelay = n.PeerInfo, rs.isRelay
	s := n.sessions
	s.rk, s.book, s.out, s.mail, s.relays, s.peerEv, s.receipts, s.ind, s.dht = rk, n.book, n.out, n.mail, rs, n.peerEv, n.receipts, n.ind, n.dht
	s.groups, s.strangers = n.groups, n.strangers
	s.held = &receiptHolds{core: c}
	s.fwd = &forwarding{core: c, sessions: s, groups: n.groups, rk: rk}
	n.groups.held.ack = func(p peer.ID, id e2e.MessageID) { n.mail.sendReceipt(p, id, s.newest(p)) }
	n.groups.held.keepOK, n.groups.held.tell = n.strangers.keepInGroup, n.strangers.tell
	n.groups.sendSealed = n.mail.sendSealed
	o := n.out
	o.sessions, o.rk, o.mail, o.book = s, rk, n.mail, n.book
	mb := n.mail
	mb.rk, mb.relays, mb.out, mb.sessions, mb.peerEv, mb.strangers = rk, rs, o, s, n.peerEv, n.strangers
	n.lan.sessions, n.lan.book, n.lan.peerEv = s, n.book, n.peerEv
	s.files = n.files
	n.ind.sessions = s
	n.msgs = &Messages{core: c, book: n.book, out: o, groups: n.groups}
	n.contacts = &Contacts{core: c, book: n.book, sessions: s, out: o, peerEv: n.peerEv}
	f := n.files
	f.rk, f.sessions, f.out, f.mail, f.book = rk, s, o, mb, n.book
}

// Start registers the chat protocol, restores known peers, starts LAN
// discovery and relays, and resumes the outbox.
func (n *Node) Start() (err error) {
	// The file part follows the node's events (an offer left at a relay
	// takes its small file along): it subscribes before anything here can
	// emit, since a session, a mailbox loop or the outbox may queue or
	// send an offer while Start still reads the groups.
	fileEvents := n.events.subscribe()
	defer func() {
		if err != nil {
			fileEvents.Close() // the file part never took it
		}
	}()
	n.work.goDo(n.peerEv.run)
	n.host.SetStreamHandler(e2e.ProtocolChat, n.sessions.handleStream)
	n.host.Network().Notify(&network.NotifyBundle{
		ConnectedF:    func(_ network.Network, c network.Conn) { n.onConnected(c) },
		DisconnectedF: func(_ network.Network, c network.Conn) { n.onDisconnected(c.RemotePeer()) },
	})
	n.watchIdentify()
	n.book.restore()
	if n.cfg.MDNS {
		n.lan.begin()
	}
	if err := n.relays.start(); err != nil {
		return err
	}
	if err := n.dht.start(); err != nil {
		return err
	}
	n.watchAddrs()
	n.groups.load()
	pending, err := n.out.resume()
	if err != nil {
		return err
	}
	n.files.start(fileEvents)
	n.work.goDo(func() { n.greetContacts(pending) })
	return nil
}

// Close stops the node: sessions are closed properly, workers end, the
// store is closed. Subscribers receive what was queued, then C closes.
func (n *Node) Close() error {
	if !n.work.stop() {
		return nil
	}
	n.lan.stop()
	n.cancel()
	n.sessions.held.closeAll(n.sessions.all()) // held receipts first
	n.host.RemoveStreamHandler(e2e.ProtocolChat)
	n.files.stop()
	n.dht.close()
	if err := n.hp.close(); err != nil {
		n.log.Debug("close hole punching", "err", err)
	}
	err := n.host.Close()
	n.work.wait()
	n.events.closeAll()
	if serr := n.store.Close(); err == nil {
		err = serr
	}
	return err
}

// Subscribe returns a stream of events. It starts with a listening event
// for the current addresses and, with LAN discovery configured and
// started, a LAN event for its status; then come the events published
// after the call, and only those. Start sets going what may emit before
// it returns (a resumed file's puller, the mailbox loops, the outbox,
// reading the groups): a caller that must see every event (the daemon,
// the chat window) subscribes between New and Start. A later subscriber
// learns how things stand from the node (Files().List, Groups().List,
// PeerInfo).
func (n *Node) Subscribe() *Subscription {
	first := []Event{{Kind: EventListening, Time: n.cfg.Now(), Addrs: n.Addrs()}}
	if st, known := n.lan.statusNow(); n.cfg.MDNS && known {
		first = append(first, Event{Kind: EventLAN, Time: n.cfg.Now(), LAN: &st})
	}
	return n.events.subscribe(first...)
}

// LAN reports whether LAN discovery runs (Config.MDNS), and if not, why.
func (n *Node) LAN() LANStatus {
	if !n.cfg.MDNS {
		return LANStatus{Reason: "turned off (--no-mdns)"}
	}
	if st, known := n.lan.statusNow(); known {
		return st
	}
	return LANStatus{Reason: "not started yet"}
}

// ID is this node's peer ID.
func (n *Node) ID() peer.ID { return n.host.ID() }

// Identity is this node's identity.
func (n *Node) Identity() *identity.Identity { return n.id }

// Trust is the trust store the node uses.
func (n *Node) Trust() *identity.TrustStore { return n.trust }

// Store is the message store.
func (n *Node) Store() *store.Store { return n.store }

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
	// Subscribers hear only of changes (Subscription.enqueue).
	n.follow("address changes", new(event.EvtLocalAddressesUpdated), func(any) {
		n.emit(Event{Kind: EventListening, Addrs: n.Addrs()})
	})
}

// follow runs f, on a worker, on every event of the types the host's
// event bus publishes (as Subscribe takes them), until the node closes.
func (n *Node) follow(what string, types any, f func(e any)) {
	sub, err := n.host.EventBus().Subscribe(types)
	if err != nil {
		n.log.Warn("cannot follow "+what, "err", err)
		return
	}
	started := n.work.goDo(func() {
		defer sub.Close()
		for {
			select {
			case <-n.ctx.Done():
				return
			case e, ok := <-sub.Out():
				if !ok {
					return
				}
				f(e)
			}
		}
	})
	if !started {
		sub.Close()
	}
}

// onConnected wakes the outbox when a peer with pending messages appears,
// and moves a relayed chat to a new direct connection. The peer event
// waits for identify (watchIdentify): only then do we know whether the
// peer is a relay, which is no chat peer.
func (n *Node) onConnected(c network.Conn) {
	p := c.RemotePeer()
	n.out.kick(p)
	n.sessions.onConnected(c)
}

// watchIdentify publishes a peer event when identify has run on a new
// connection (or failed), unless the peer is a relay: relays met in DHT
// lookups and deposits are infrastructure, not chat peers.
func (n *Node) watchIdentify() {
	n.follow("identify", []any{new(event.EvtPeerIdentificationCompleted), new(event.EvtPeerIdentificationFailed)}, func(e any) {
		switch e := e.(type) {
		case event.EvtPeerIdentificationCompleted:
			n.peerEv.changed(e.Peer)
		case event.EvtPeerIdentificationFailed:
			n.peerEv.changed(e.Peer)
		}
	})
}

func (n *Node) onDisconnected(p peer.ID) {
	if n.host.Network().Connectedness(p) != network.Connected {
		n.peerEv.changed(p)
	}
}

// Connect reaches a peer by invitation, full multiaddr (…/p2p/<id>) or
// peer ID (known addresses), runs the handshake and returns what it
// learned. It trusts nothing (Add does); a relay's address fails with
// ErrIsRelay.
func (n *Node) Connect(ctx context.Context, target string) (PeerInfo, error) {
	t, err := n.resolve(target)
	if err != nil {
		return PeerInfo{}, err
	}
	p := t.id
	_, err = n.sessions.get(ctx, p)
	if err != nil && n.isRelayPeer(p) {
		return PeerInfo{}, ErrIsRelay
	}
	if len(t.addrs) > 0 {
		n.book.rememberAddrs(p)
	}
	return n.PeerInfo(p), err
}

// Send stores a message to a peer and queues it for delivery. When Send
// returns, the message survives a crash and will be delivered (once) when
// the peer is reachable; events report its progress.
func (n *Node) Send(to peer.ID, text string) (store.Message, error) {
	return n.msgs.send(store.Message{Peer: to, Body: text})
}

// send stores a text (m's Peer, Body and ReplyTo) and queues it.
func (ms *Messages) send(m store.Message) (store.Message, error) {
	to := m.Peer
	if err := ms.book.mayMessage(to); err != nil {
		return store.Message{}, err
	}
	m.ID, m.SentAt = e2e.NewMessageID(), ms.cfg.Now()
	m.StoredAt = m.SentAt
	if _, err := textPlaintext(m); err != nil { // refused now rather than failed later
		return store.Message{}, err
	}
	if err := ms.store.AddOutgoing(&m); err != nil {
		return store.Message{}, fmt.Errorf("store message: %w", err)
	}
	if m.ReplyTo != (e2e.MessageID{}) {
		if q, err := ms.store.Message(m.ID); err == nil {
			m = q // with its quote
		}
	}
	ms.emit(Event{Kind: EventStatus, Message: &m})
	ms.out.kick(to)
	return m, nil
}
