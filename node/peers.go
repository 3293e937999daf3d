package node

import (
	"crypto/x509"
	"sync"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// peerBook owns what the node knows of each peer's identity: the verdict
// of the last handshake this run, a changed key awaiting the user's
// decision, the peer's certificate, and the records kept between runs in
// the store (name, addresses, certificate). mu guards byPeer; it is taken
// by the read loops (handshakes), the outbox workers (mayMessage) and
// callers of the Node's API, and no other lock is taken under it.
type peerBook struct {
	*core
	mu     sync.Mutex
	byPeer map[peer.ID]*peerFacts
}

// peerFacts is what one handshake, or its failure, established.
type peerFacts struct {
	verdict *identity.Verdict   // from the last handshake
	changed *identity.Verdict   // a changed key awaiting a decision
	chain   []*x509.Certificate // the peer's chain from the last handshake, leaf first
}

// peerstoreTTL is how long learned addresses are kept in memory; they are
// also saved in the store.
const peerstoreTTL = 24 * time.Hour

func newPeerBook(c *core) *peerBook { return &peerBook{core: c, byPeer: map[peer.ID]*peerFacts{}} }

// facts is a copy of what is known of p this run.
func (b *peerBook) facts(p peer.ID) peerFacts {
	b.mu.Lock()
	defer b.mu.Unlock()
	if f, ok := b.byPeer[p]; ok {
		return *f
	}
	return peerFacts{}
}

// update changes p's facts under the lock.
func (b *peerBook) update(p peer.ID, f func(*peerFacts)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	pf, ok := b.byPeer[p]
	if !ok {
		pf = &peerFacts{}
		b.byPeer[p] = pf
	}
	f(pf)
}

// known are the peers met this run.
func (b *peerBook) known() []peer.ID {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]peer.ID, 0, len(b.byPeer))
	for p := range b.byPeer {
		out = append(out, p)
	}
	return out
}

// keyChanged records a changed key awaiting the user's decision.
func (b *peerBook) keyChanged(p peer.ID, v *identity.Verdict) {
	b.update(p, func(f *peerFacts) { f.changed = v })
}

// settle forgets a pending key change: the user decided.
func (b *peerBook) settle(p peer.ID) { b.update(p, func(f *peerFacts) { f.changed = nil }) }

// recordVerified notes what a handshake established about a peer, this
// run and in the peer's stored record (its chain, not the verdict).
func (b *peerBook) recordVerified(p peer.ID, v identity.Verdict, chain []*x509.Certificate) {
	b.update(p, func(f *peerFacts) { f.verdict, f.chain, f.changed = &v, chain, nil })
	cert := chain[0]
	if err := b.trust.NoteCertName(p, identity.DisplayName(cert)); err != nil {
		b.log.Warn("note certificate name", "peer", p, "err", err)
	}
	rec, _ := b.record(p)
	rec.Name, rec.CertDER, rec.Intermediates = identity.DisplayName(cert), cert.Raw, nil
	for _, c := range chain[1:] {
		rec.Intermediates = append(rec.Intermediates, c.Raw)
	}
	b.saveRecord(p, rec)
}

// record reads the stored record of a peer. One that cannot be read is
// logged and taken as none: it is rewritten at the next handshake.
func (b *peerBook) record(p peer.ID) (store.PeerRecord, bool) {
	r, ok, err := b.store.Peer(p)
	if err != nil {
		b.log.Warn("cannot read the peer's stored record; it is replaced at the next handshake", "peer", p, "err", err)
	}
	return r, ok
}

// rememberAddrs saves the peer's current addresses for the next run.
func (b *peerBook) rememberAddrs(p peer.ID) {
	rec, _ := b.record(p)
	b.saveRecord(p, rec)
}

// saveRecord stores a peer record with the peer's current addresses.
func (b *peerBook) saveRecord(p peer.ID, rec store.PeerRecord) {
	rec.Addrs = rec.Addrs[:0]
	for _, a := range b.host.Peerstore().Addrs(p) {
		rec.Addrs = append(rec.Addrs, a.String())
	}
	rec.LastSeen = b.cfg.Now()
	if err := b.store.PutPeer(p, rec); err != nil {
		b.log.Warn("save peer", "peer", p, "err", err)
	}
}

// restore loads saved addresses into the peerstore. Records that cannot
// be read are skipped with a warning each: the others still count.
func (b *peerBook) restore() {
	recs, err := b.store.Peers()
	if err != nil {
		b.log.Warn("some stored peer records cannot be read; their addresses are forgotten", "err", err)
	}
	for p, r := range recs {
		for _, s := range r.Addrs {
			if a, err := ma.NewMultiaddr(s); err == nil {
				b.host.Peerstore().AddAddr(p, a, peerstoreTTL)
			}
		}
	}
}

// certificate is the peer's last seen certificate, live or stored.
func (b *peerBook) certificate(p peer.ID) (*x509.Certificate, bool) {
	chain := b.chain(p)
	if len(chain) == 0 {
		return nil, false
	}
	return chain[0], true
}

// chain is the peer's last seen chain, leaf first, live or stored; none
// if it was never seen or its record cannot be read.
func (b *peerBook) chain(p peer.ID) []*x509.Certificate {
	if c := b.facts(p).chain; c != nil {
		return c
	}
	rec, ok := b.record(p)
	if !ok || rec.CertDER == nil {
		return nil
	}
	var chain []*x509.Certificate
	for _, der := range append([][]byte{rec.CertDER}, rec.Intermediates...) {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			b.log.Warn("the peer's stored certificate does not parse", "peer", p, "err", err)
			return nil
		}
		chain = append(chain, c)
	}
	return chain
}

// caVerified reports whether p's last seen chain verifies now to a CA the
// user trusts now: the current verdict, never one stored earlier.
func (b *peerBook) caVerified(p peer.ID) bool {
	chain := b.chain(p)
	if len(chain) == 0 {
		return false
	}
	v, err := b.trust.Evaluate(chain, p, b.cfg.Now())
	return err == nil && v.State == identity.StateCAVerified
}

// claimsContact reports whether p's last certificate, evaluated now,
// claims the name of a contact with another key.
func (b *peerBook) claimsContact(p peer.ID) bool {
	c, ok := b.certificate(p)
	if !ok {
		return false
	}
	v, err := b.trust.Evaluate([]*x509.Certificate{c}, p, b.cfg.Now())
	return err == nil && v.State == identity.StateChanged
}

// mayMessage says whether messages may go to p now.
func (b *peerBook) mayMessage(p peer.ID) error {
	if p == b.host.ID() {
		return ErrSelf
	}
	if _, err := identity.KeyFromPeerID(p); err != nil {
		return err
	}
	c, known, err := b.trust.Contact(p)
	if err != nil {
		return err
	}
	f := b.facts(p)
	switch {
	case known && c.State == identity.StateUntrusted:
		return ErrBlocked
	case f.changed != nil:
		return ErrKeyChanged
	case known, b.caVerified(p):
		return nil
	}
	return ErrNotTrusted
}
