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

// Contacts is the node's part that trusts, blocks, renames and removes
// peers (Node.Contacts). It has no state of its own: the trust store and
// the peer book hold it; it tells the sessions, the outbox and the peer
// events what a decision changes. Its methods run on the API's callers.
type Contacts struct {
	*core
	book     *peerBook
	sessions *sessions
	out      *outbox
	peerEv   *peerEvents
}

// Contacts is the node's part for trust decisions about peers.
func (n *Node) Contacts() *Contacts { return n.contacts }

// Trust pins p's key (trust on first use), or marks it verified after
// the user compared fingerprints. It works before p was ever seen: the
// peer ID embeds the key. A pending key change for p is accepted: p takes
// over the contact it claimed.
func (c *Contacts) Trust(p peer.ID, verified bool) error {
	return c.trustPeer(p, verified, true)
}

// TrustNew pins an unknown key (trust on first use), as a first
// contact's Accept does. Unlike Trust it never accepts a key change:
// if p's certificate claims the name of a contact with another key, it
// changes nothing and returns ErrKeyChanged, so a decision taken before
// the certificate arrived cannot replace that contact.
func (c *Contacts) TrustNew(p peer.ID) error {
	return c.trustPeer(p, false, false)
}

// TrustAsOther pins a key whose certificate claims a contact's name as a
// different person: a new contact, labelled base with the first free
// suffix (" (2)", " (3)", ...), leaving the contact it was confused with
// as it is. It returns the label given.
func (c *Contacts) TrustAsOther(p peer.ID, base string) (string, error) {
	if p == c.host.ID() {
		return "", ErrSelf
	}
	label, err := c.trust.PinDistinct(p, base, identity.StateTOFU, c.cfg.Now())
	if err != nil {
		return "", fmt.Errorf("trust %s: %w", identity.ShortID(p), err)
	}
	c.trusted(p)
	return label, nil
}

func (c *Contacts) trustPeer(p peer.ID, verified, acceptChange bool) error {
	if p == c.host.ID() {
		return ErrSelf
	}
	state := identity.StateTOFU
	if verified {
		state = identity.StateVerified
	}
	// Whether p is a changed key is evaluated now, from its last chain
	// and the trust store, never from a flag of an earlier handshake.
	changed := c.book.changedKey(p)
	if !acceptChange && changed != nil {
		return fmt.Errorf("trust %s: %w", identity.ShortID(p), ErrKeyChanged)
	}
	var err error
	if changed != nil && changed.Previous != nil {
		err = c.trust.AcceptChange(changed.Previous.PeerID, p, changed.Name, state, c.cfg.Now())
	} else {
		name := ""
		if c, ok := c.book.certificate(p); ok {
			name = identity.DisplayName(c)
		}
		if err = c.trust.Pin(p, "", state, c.cfg.Now()); err == nil && name != "" {
			err = c.trust.NoteCertName(p, name)
		}
	}
	if err != nil {
		return fmt.Errorf("trust %s: %w", identity.ShortID(p), err)
	}
	c.trusted(p)
	if changed != nil && changed.Previous != nil {
		// The replaced key is untrusted now: like a blocked one, its live
		// sessions end (handshakes check trust only when they start).
		c.sessions.closePeer(changed.Previous.PeerID, "key replaced by the user")
		c.out.failAll(changed.Previous.PeerID, "not sent: this key was replaced by a new one; send it again to reach the new key")
		c.peerEv.now(changed.Previous.PeerID)
	}
	return nil
}

// trusted follows the pinning of p's key: subscribers hear of the new
// state, and what waits for p goes out.
func (c *Contacts) trusted(p peer.ID) {
	c.peerEv.now(p)
	c.out.kick(p)
}

// Block rejects p's key: its sessions close and nothing more is exchanged
// until the user trusts it again.
func (c *Contacts) Block(p peer.ID) error {
	if err := c.trust.Pin(p, "", identity.StateUntrusted, c.cfg.Now()); err != nil {
		return fmt.Errorf("block %s: %w", identity.ShortID(p), err)
	}
	c.sessions.closePeer(p, "rejected by the user")
	c.peerEv.now(p)
	return nil
}

// Rename gives the contact p a new label. A name that reads the same as
// another contact's is refused (identity.ErrNameTaken), as is a peer that
// is not a contact (identity.ErrUnknownContact).
func (c *Contacts) Rename(p peer.ID, name string) error {
	if p == c.host.ID() {
		return ErrSelf
	}
	if err := c.trust.Rename(p, name, c.cfg.Now()); err != nil {
		return fmt.Errorf("rename %s: %w", identity.ShortID(p), err)
	}
	c.peerEv.now(p)
	return nil
}

// Remove forgets the contact p, as `chat contacts remove` does: its key
// is no longer pinned, so nothing is sent to it until the user accepts it
// again, and a message from it is a first contact's. The conversation
// stays.
func (c *Contacts) Remove(p peer.ID) error {
	if err := c.trust.Remove(p); err != nil {
		return fmt.Errorf("remove %s: %w", identity.ShortID(p), err)
	}
	c.peerEv.now(p)
	return nil
}

// Relays reports the configured relays and their reservations.
func (n *Node) Relays() []RelayInfo { return n.relays.info() }
