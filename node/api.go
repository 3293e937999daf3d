package node

import (
	"crypto/x509"
	"fmt"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// History returns a page of the conversation with p: up to limit messages
// before sequence number before (0 for the newest), oldest first.
func (n *Node) History(p peer.ID, before uint64, limit int) ([]store.Message, error) {
	return n.store.History(p, before, limit)
}

// Conversations lists conversations, most recent first.
func (n *Node) Conversations() ([]store.Conversation, error) { return n.store.Conversations() }

// MarkRead clears a conversation's unread count.
func (n *Node) MarkRead(p peer.ID) error { return n.store.MarkRead(p) }

// Search finds messages containing text, newest first.
func (n *Node) Search(text string, limit int) ([]store.Message, error) {
	return n.store.Search(text, limit)
}

// LiveSession describes the open session with a peer, for /whois.
type LiveSession struct {
	Info        e2e.Info
	Certificate *x509.Certificate
	Verdict     identity.Verdict
	// PostQuantum: the key exchange was hybrid post-quantum
	// (X25519MLKEM768), not X25519 alone.
	PostQuantum bool
}

// Session reports the newest live session with p.
func (n *Node) Session(p peer.ID) (LiveSession, bool) {
	cs := n.sessions.newest(p)
	if cs == nil {
		return LiveSession{}, false
	}
	s := cs.s
	info := s.Info()
	return LiveSession{Info: info, Certificate: s.PeerCertificates()[0], Verdict: s.Peer(), PostQuantum: info.PostQuantum()}, true
}

// Certificate is the peer's last seen certificate, live or stored.
func (n *Node) Certificate(p peer.ID) (*x509.Certificate, bool) {
	return n.book.certificate(p)
}

// TrustPeer pins p's key (trust on first use), or marks it verified after
// the user compared fingerprints. It works before p was ever seen: the
// peer ID embeds the key. A pending key change for p is accepted: p takes
// over the contact it claimed.
func (n *Node) TrustPeer(p peer.ID, verified bool) error {
	return n.trustPeer(p, verified, true)
}

// TrustNewPeer pins an unknown key (trust on first use), as a first
// contact's Accept does. Unlike TrustPeer it never accepts a key change:
// if p's certificate claims the name of a contact with another key, it
// changes nothing and returns ErrKeyChanged, so a decision taken before
// the certificate arrived cannot replace that contact.
func (n *Node) TrustNewPeer(p peer.ID) error {
	return n.trustPeer(p, false, false)
}

// TrustAsOther pins a key whose certificate claims a contact's name as a
// different person: a new contact, labelled base with the first free
// suffix (" (2)", " (3)", ...), leaving the contact it was confused with
// as it is. It returns the label given.
func (n *Node) TrustAsOther(p peer.ID, base string) (string, error) {
	if p == n.host.ID() {
		return "", ErrSelf
	}
	label, err := n.trust.PinDistinct(p, base, identity.StateTOFU, n.cfg.Now())
	if err != nil {
		return "", fmt.Errorf("trust %s: %w", identity.ShortID(p), err)
	}
	n.trusted(p)
	return label, nil
}

func (n *Node) trustPeer(p peer.ID, verified, acceptChange bool) error {
	if p == n.host.ID() {
		return ErrSelf
	}
	state := identity.StateTOFU
	if verified {
		state = identity.StateVerified
	}
	// Whether p is a changed key is evaluated now, from its last chain
	// and the trust store, never from a flag of an earlier handshake.
	changed := n.book.changedKey(p)
	if !acceptChange && changed != nil {
		return fmt.Errorf("trust %s: %w", identity.ShortID(p), ErrKeyChanged)
	}
	var err error
	if changed != nil && changed.Previous != nil {
		err = n.trust.AcceptChange(changed.Previous.PeerID, p, changed.Name, state, n.cfg.Now())
	} else {
		name := ""
		if c, ok := n.Certificate(p); ok {
			name = identity.DisplayName(c)
		}
		if err = n.trust.Pin(p, "", state, n.cfg.Now()); err == nil && name != "" {
			err = n.trust.NoteCertName(p, name)
		}
	}
	if err != nil {
		return fmt.Errorf("trust %s: %w", identity.ShortID(p), err)
	}
	n.trusted(p)
	if changed != nil && changed.Previous != nil {
		// The replaced key is untrusted now: like a blocked one, its live
		// sessions end (handshakes check trust only when they start).
		n.sessions.closePeer(changed.Previous.PeerID, "key replaced by the user")
		n.out.failAll(changed.Previous.PeerID, "not sent: this key was replaced by a new one; send it again to reach the new key")
		n.peerEv.now(changed.Previous.PeerID)
	}
	return nil
}

// trusted follows the pinning of p's key: subscribers hear of the new
// state, and what waits for p goes out.
func (n *Node) trusted(p peer.ID) {
	n.peerEv.now(p)
	n.out.kick(p)
}

// Block rejects p's key: its sessions close and nothing more is exchanged
// until the user trusts it again.
func (n *Node) Block(p peer.ID) error {
	if err := n.trust.Pin(p, "", identity.StateUntrusted, n.cfg.Now()); err != nil {
		return fmt.Errorf("block %s: %w", identity.ShortID(p), err)
	}
	n.sessions.closePeer(p, "rejected by the user")
	n.peerEv.now(p)
	return nil
}

// Rename gives the contact p a new label. A name that reads the same as
// another contact's is refused (identity.ErrNameTaken), as is a peer that
// is not a contact (identity.ErrUnknownContact).
func (n *Node) Rename(p peer.ID, name string) error {
	if p == n.host.ID() {
		return ErrSelf
	}
	if err := n.trust.Rename(p, name, n.cfg.Now()); err != nil {
		return fmt.Errorf("rename %s: %w", identity.ShortID(p), err)
	}
	n.peerEv.now(p)
	return nil
}

// Remove forgets the contact p, as `chat contacts remove` does: its key
// is no longer pinned, so nothing is sent to it until the user accepts it
// again, and a message from it is a first contact's. The conversation
// stays.
func (n *Node) Remove(p peer.ID) error {
	if err := n.trust.Remove(p); err != nil {
		return fmt.Errorf("remove %s: %w", identity.ShortID(p), err)
	}
	n.peerEv.now(p)
	return nil
}

// Relays reports the configured relays and their reservations.
func (n *Node) Relays() []RelayInfo { return n.relays.info() }
