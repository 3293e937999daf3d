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
// of the last handshake this run, the peer's certificate chain (also of a
// key whose handshake was refused as a changed key), and the records kept
// between runs in the store (name, addresses, certificate). Whether a key
// is a changed key is never remembered: it is evaluated from its chain
// and the trust store when asked (verdictNow), so it is the same after a
// restart, online or not. mu guards byPeer; it is taken
// by the read loops (handshakes), the outbox workers (mayMessage) and
// callers of the Node's API, and no other lock is taken under it.
type peerBook struct {
	*core
	mu     sync.Mutex
	byPeer map[peer.ID]*peerFacts
	// keyIDs holds contacts' peer IDs that mayMessage found to be the
	// canonical IDs of Ed25519 keys (a fact about the ID that never
	// changes), so that a group message's copies do not check each
	// member's again.
	keyIDs sync.Map // peer.ID → struct{}
}

// peerFacts is what one handshake, or its failure, established.
type peerFacts struct {
	verdict *identity.Verdict   // from the last handshake
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

// keyChanged keeps the chain of a key whose handshake was refused because
// it claims a contact's name, this run and in its stored record, so that
// it is still known as a changed key after a restart (verdictNow).
func (b *peerBook) keyChanged(p peer.ID, v *identity.Verdict) {
	if len(v.Chain) == 0 {
		return
	}
	// Stored first: once the chain is seen in memory, the key shows as
	// changed, and the node may be closed before a later write.
	b.saveChain(p, v.Chain)
	b.update(p, func(f *peerFacts) { f.chain = v.Chain })
}

// recordVerified notes what a handshake established about a peer, this
// run and in the peer's stored record (its chain, not the verdict).
func (b *peerBook) recordVerified(p peer.ID, v identity.Verdict, chain []*x509.Certificate) {
	b.update(p, func(f *peerFacts) { f.verdict, f.chain = &v, chain })
	if err := b.trust.NoteCertName(p, identity.DisplayName(chain[0])); err != nil {
		b.log.Warn("note certificate name", "peer", p, "err", err)
	}
	b.saveChain(p, chain)
}

// saveChain stores the peer's chain and the name its certificate says.
func (b *peerBook) saveChain(p peer.ID, chain []*x509.Certificate) {
	cert := chain[0]
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
	// Kept, so that deciding whether to send (every outbox pass) reads
	// and parses the record once; a handshake replaces it.
	b.update(p, func(f *peerFacts) {
		if f.chain == nil {
			f.chain = chain
		}
	})
	return chain
}

// verdictNow evaluates p's last seen chain, live or stored, against the
// trust store now: CA-verified only by a CA the user trusts now, changed
// while it claims the name of a contact with another key. It is a
// function of the key and what is stored, never of a verdict kept from an
// earlier handshake; false if no chain is known.
func (b *peerBook) verdictNow(p peer.ID) (identity.Verdict, bool) {
	chain := b.chain(p)
	if len(chain) == 0 {
		return identity.Verdict{}, false
	}
	v, err := b.trust.Evaluate(chain, p, b.cfg.Now())
	if err != nil {
		b.log.Warn("the peer's last certificate does not evaluate", "peer", p, "err", err)
		return identity.Verdict{}, false
	}
	return v, true
}

// changedKey is p's verdict when p is a changed key now: its last
// certificate claims the name of a contact with another key.
func (b *peerBook) changedKey(p peer.ID) *identity.Verdict {
	if v, ok := b.verdictNow(p); ok && v.State == identity.StateChanged {
		return &v
	}
	return nil
}

// storedChangedKeys are the peers, not in skip and not contacts, whose
// stored chain makes them a changed key now.
func (b *peerBook) storedChangedKeys(skip map[peer.ID]bool) []peer.ID {
	recs, err := b.store.Peers()
	if err != nil {
		b.log.Warn("some stored peer records cannot be read", "err", err)
	}
	var out []peer.ID
	for p, r := range recs {
		if skip[p] || r.CertDER == nil {
			continue
		}
		_, known, err := b.trust.Contact(p)
		if err != nil {
			b.log.Warn("cannot read the trust store", "peer", p, "err", err)
			continue
		}
		if !known && b.changedKey(p) != nil {
			out = append(out, p)
		}
	}
	return out
}

// mayMessage says whether messages may go to p now.
func (b *peerBook) mayMessage(p peer.ID) error {
	if p == b.host.ID() {
		return ErrSelf
	}
	if _, ok := b.keyIDs.Load(p); !ok {
		if _, err := identity.KeyFromPeerID(p); err != nil {
			return err
		}
	}
	c, known, err := b.trust.Contact(p)
	switch {
	case err != nil:
		return err
	case known && c.State == identity.StateUntrusted:
		return ErrBlocked
	case known:
		b.keyIDs.Store(p, struct{}{}) // a contact's: kept while it runs
		return nil
	}
	v, ok := b.verdictNow(p)
	switch {
	case ok && v.State == identity.StateChanged:
		return ErrKeyChanged
	case ok && v.State == identity.StateCAVerified:
		return nil
	}
	return ErrNotTrusted
}
