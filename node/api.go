package node

import (
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p/core/peer"
)

// History returns a page of the conversation with p: up to limit messages
// before sequence number before (0 for the newest), oldest first.
func (n *Node) History(p peer.ID, before uint64, limit int) ([]Message, error) {
	return n.store.History(p, before, limit)
}

// Conversations lists conversations, most recent first.
func (n *Node) Conversations() ([]Conversation, error) { return n.store.Conversations() }

// MarkRead clears a conversation's unread count.
func (n *Node) MarkRead(p peer.ID) error { return n.store.MarkRead(p) }

// Search finds messages containing text, newest first.
func (n *Node) Search(text string, limit int) ([]Message, error) {
	return n.store.Search(text, limit)
}

// LiveSession describes the open session with a peer, for /whois.
type LiveSession struct {
	Info        e2e.Info
	Certificate *x509.Certificate
	Verdict     identity.Verdict
}

// Session reports the newest live session with p.
func (n *Node) Session(p peer.ID) (LiveSession, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ps, ok := n.peers[p]
	if !ok || len(ps.sessions) == 0 {
		return LiveSession{}, false
	}
	s := ps.sessions[len(ps.sessions)-1].s
	return LiveSession{Info: s.Info(), Certificate: s.PeerCertificates()[0], Verdict: s.Peer()}, true
}

// Certificate is the peer's last seen certificate, live or stored.
func (n *Node) Certificate(p peer.ID) (*x509.Certificate, bool) {
	n.mu.Lock()
	if ps, ok := n.peers[p]; ok && ps.cert != nil {
		n.mu.Unlock()
		return ps.cert, true
	}
	n.mu.Unlock()
	rec, ok := n.peerRecord(p)
	if !ok || rec.CertDER == nil {
		return nil, false
	}
	c, err := x509.ParseCertificate(rec.CertDER)
	return c, err == nil
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
	n.mu.Lock()
	var changed *identity.Verdict
	if ps, ok := n.peers[p]; ok {
		changed = ps.changed
	}
	n.mu.Unlock()
	if !acceptChange && (changed != nil || n.claimsContact(p)) {
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
		n.closeSessions(changed.Previous.PeerID, "key replaced by the user")
		n.failOutbox(changed.Previous.PeerID, "not sent: this key was replaced by a new one; send it again to reach the new key")
		n.emitPeer(changed.Previous.PeerID)
	}
	return nil
}

// trusted follows the pinning of p's key: a pending key change is settled,
// subscribers hear of the new state, and what waits for p goes out.
func (n *Node) trusted(p peer.ID) {
	n.mu.Lock()
	n.state(p).changed = nil
	n.mu.Unlock()
	n.emitPeer(p)
	n.kick(p)
}

// Block rejects p's key: its sessions close and nothing more is exchanged
// until the user trusts it again.
func (n *Node) Block(p peer.ID) error {
	if err := n.trust.Pin(p, "", identity.StateUntrusted, n.cfg.Now()); err != nil {
		return fmt.Errorf("block %s: %w", identity.ShortID(p), err)
	}
	n.mu.Lock()
	if ps, ok := n.peers[p]; ok {
		ps.changed = nil
	}
	n.mu.Unlock()
	n.closeSessions(p, "rejected by the user")
	n.emitPeer(p)
	return nil
}

// closeSessions ends p's live sessions with a rejected close frame.
func (n *Node) closeSessions(p peer.ID, reason string) {
	n.mu.Lock()
	var sessions []*chatSession
	if ps, ok := n.peers[p]; ok {
		sessions = append(sessions, ps.sessions...)
	}
	n.mu.Unlock()
	for _, cs := range sessions {
		cs.s.CloseWith(e2e.CloseRejected, reason)
	}
}

// failOutbox gives up on every message waiting for p, with a reason the
// user sees: nothing waits forever for a key that will never answer.
func (n *Node) failOutbox(p peer.ID, reason string) {
	msgs, err := n.store.Outbox(p)
	if err != nil {
		n.log.Error("read outbox", "peer", p, "err", err)
		return
	}
	for _, m := range msgs {
		n.fail(m, errors.New(reason))
	}
}

// claimsContact reports whether p's last certificate, evaluated now,
// claims the name of a contact with another key.
func (n *Node) claimsContact(p peer.ID) bool {
	c, ok := n.Certificate(p)
	if !ok {
		return false
	}
	v, err := n.trust.Evaluate([]*x509.Certificate{c}, p, n.cfg.Now())
	return err == nil && v.State == identity.StateChanged
}
