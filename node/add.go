package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/invite"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	ma "github.com/multiformats/go-multiaddr"
)

// Invitations and adding contacts: what a person shares (Invitation) and
// what the one who receives it does with it (Add).

// ErrIsRelay: an address given as a person's is a relay's.
var ErrIsRelay = errors.New("that is a relay, not a person: use it with --relay ADDR (remembered for later starts; /relay shows it), and add people by their invitation or address")

// relayProbeTimeout bounds the connection Add makes to learn whether an
// address is a relay's, before it pins anything.
const relayProbeTimeout = 10 * time.Second

// Invitation is this node's invitation now (package invite): its peer ID,
// name, direct addresses and configured relays, signed with the identity
// key. Addresses change (ports, networks, reservations), so it is made
// afresh each time.
func (n *Node) Invitation() (string, error) {
	inv := invite.Invitation{
		PeerID: n.host.ID(),
		Name:   n.id.Name(),
		Addrs:  invite.Choose(n.host.Addrs()),
		Relays: invite.ChooseRelays(n.relays.addrs()),
		Issued: n.cfg.Now().Truncate(time.Second),
	}
	if len(inv.Name) > 255 {
		inv.Name = "" // 64 characters of four bytes each: the certificate still says it
	}
	return invite.Encode(inv, n.id.Signer())
}

// target is what Add and Connect were given: a peer and the addresses
// it came with; name is an invitation's suggested name.
type target struct {
	id    peer.ID
	addrs []ma.Multiaddr
	name  string
}

// ParseTarget reads an invitation, a full multiaddr (…/p2p/<peer id>)
// or a peer ID. An invitation is verified (invite.Decode).
func ParseTarget(s string) (peer.ID, string, error) {
	t, err := parseTarget(s)
	return t.id, t.name, err
}

func parseTarget(s string) (target, error) {
	switch {
	case invite.IsInvitation(s):
		inv, err := invite.Decode(s)
		if err != nil {
			return target{}, err
		}
		return target{id: inv.PeerID, addrs: inv.DialAddrs(), name: inv.Name}, nil
	case len(s) > 0 && s[0] == '/':
		addr, err := ma.NewMultiaddr(s)
		if err != nil {
			return target{}, fmt.Errorf("%q is not a multiaddr: %w", s, err)
		}
		info, err := peer.AddrInfoFromP2pAddr(addr)
		if err != nil {
			return target{}, fmt.Errorf("%s: the address must end with /p2p/<peer id>", s)
		}
		if _, err := identity.KeyFromPeerID(info.ID); err != nil {
			return target{}, err
		}
		return target{id: info.ID, addrs: info.Addrs}, nil
	}
	if _, err := peer.Decode(s); err != nil {
		// Not the decoder's "invalid cid: selected encoding not
		// supported": what is taken, and how each looks.
		return target{}, fmt.Errorf("%q is not a peer id (12D3KooW…), an invitation (CERTCHAT:…) nor an address (/ip4/…/tcp/…/p2p/PEERID)", s)
	}
	p, err := identity.ParsePeerID(s)
	return target{id: p}, err
}

// resolve parses s and adds its addresses to the peerstore (not yet
// to the stored record: rememberAddrs does that once it is not a relay).
func (n *Node) resolve(s string) (target, error) {
	t, err := parseTarget(s)
	if err != nil {
		return target{}, err
	}
	switch {
	case t.id == n.host.ID():
		return target{}, ErrSelf
	case n.relays.isRelay(t.id):
		return target{}, ErrIsRelay
	}
	if len(t.addrs) > 0 {
		n.host.Peerstore().AddAddrs(t.id, t.addrs, peerstoreTTL)
	}
	return t, nil
}

// Add makes target (an invitation, a full multiaddr or a peer ID) a
// contact and connects to it. name labels the contact; "" takes an
// invitation's suggested name (with a suffix if another contact reads
// the same), else the certificate's name once it is seen. A key already
// trusted keeps its state, and a key that claims a contact's name
// (KEY CHANGED) is not accepted here: the user decides that with
// Contacts.Trust. The addresses are remembered for later runs. An address
// that leads to a relay is refused with ErrIsRelay before anything is
// pinned. The error of the connection, if any, comes with the PeerInfo
// of the contact added.
func (n *Node) Add(ctx context.Context, s, name string) (PeerInfo, error) {
	t, err := n.resolve(s)
	if err != nil {
		return PeerInfo{}, err
	}
	p := t.id
	c, isContact, err := n.trust.Contact(p)
	if err != nil {
		return PeerInfo{}, fmt.Errorf("add %s: %w", identity.ShortID(p), err)
	}
	if len(t.addrs) > 0 && !(isContact && c.State.Trusted()) && n.probeRelay(ctx, p) {
		return PeerInfo{}, ErrIsRelay
	}
	if len(t.addrs) > 0 {
		n.book.rememberAddrs(p)
	}
	if !(isContact && c.State.Trusted()) {
		if n.book.changedKey(p) != nil {
			return n.PeerInfo(p), fmt.Errorf("add %s: %w", identity.ShortID(p), ErrKeyChanged)
		}
		switch {
		case name != "":
			err = n.trust.Pin(p, name, identity.StateTOFU, n.cfg.Now())
		case t.name != "" && !isContact:
			_, err = n.trust.PinDistinct(p, identity.SanitizeName(t.name), identity.StateTOFU, n.cfg.Now())
		default:
			err = n.trust.Pin(p, "", identity.StateTOFU, n.cfg.Now())
		}
		if err != nil {
			return n.PeerInfo(p), fmt.Errorf("add %s: %w", identity.ShortID(p), err)
		}
		n.contacts.trusted(p)
	} else if name != "" {
		if err := n.trust.Pin(p, name, c.State, n.cfg.Now()); err != nil {
			return n.PeerInfo(p), fmt.Errorf("add %s: %w", identity.ShortID(p), err)
		}
		n.peerEv.now(p)
	}
	_, err = n.sessions.get(ctx, p)
	return n.PeerInfo(p), err
}

// probeRelay connects to p (libp2p only, no chat stream) and reports
// whether it is a relay: it offers the circuit relay's hop protocol and
// not the chat protocol. A peer that cannot be reached is not known to be
// one.
func (n *Node) probeRelay(ctx context.Context, p peer.ID) bool {
	ctx, cancel := context.WithTimeout(ctx, relayProbeTimeout)
	defer cancel()
	if err := n.host.Connect(ctx, peer.AddrInfo{ID: p}); err != nil {
		return false
	}
	return n.isRelayPeer(p)
}

// isRelayPeer reports whether identify said p is a relay and not a chat
// peer.
func (n *Node) isRelayPeer(p peer.ID) bool {
	protos, err := n.host.Peerstore().SupportsProtocols(p, proto.ProtoIDv2Hop, e2e.ProtocolChat)
	if err != nil {
		return false
	}
	relay, chat := false, false
	for _, pr := range protos {
		relay = relay || pr == proto.ProtoIDv2Hop
		chat = chat || pr == e2e.ProtocolChat
	}
	return relay && !chat
}

// addrs are the configured relays' addresses, each with /p2p/<relay>.
// list is written only by parseRelays, so it needs no lock.
func (rs *relays) addrs() []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, st := range rs.list {
		full, err := peer.AddrInfoToP2pAddrs(&st.info)
		if err == nil {
			out = append(out, full...)
		}
	}
	return out
}
