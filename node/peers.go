package node

import (
	"crypto/x509"
	"slices"
	"sync"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	ma "github.com/multiformats/go-multiaddr"
)

// peerBook owns what the node knows of each peer's identity: the verdict
// of the last handshake this run, the peer's certificate chain (also of a
// key whose handshake was refused as a changed key), and the records kept
// between runs in the store (name, addresses, certificate). Whether a key
// is a changed key is never remembered: it is evaluated from its chain
// and the trust store when asked (verdictNow), so it is the same after a
// restart, online or not. mu guards byPeer, may and updates; it is taken
// by the read loops (handshakes), the outbox workers (mayMessage) and
// callers of the Node's API, and no other lock is taken under it.
type peerBook struct {
	*core
	mu     sync.Mutex
	byPeer map[peer.ID]*peerFacts
	// may holds mayMessage's last yes for each peer, so that a group
	// message's copies (one decision per member in Groups.post and one
	// per outbox round) do not decide again what did not change
	// (mayYes). updates counts the changes to byPeer (a handshake, a
	// chain read from the store): a decision that one overlapped is not
	// kept, as it may have read the chain before it.
	may     map[peer.ID]mayYes
	updates uint64
	// recMu makes each change of a stored record (editRecord) a read
	// and a write that no other change comes between: a handshake's
	// chain, the addresses saved after identify (on a worker, up to
	// seconds later) and those saved on a connection would otherwise
	// write back what another had replaced. Nothing else is locked
	// under it.
	recMu sync.Mutex
}

// mayYes is a kept decision that messages may go to a peer. It holds
// while the trust store's contents are those of generation gen
// (identity.TrustStore.GenerationSince: a contact blocked, a key
// accepted, a CA added or removed changes it) and the peer's facts are
// unchanged (peerBook.update drops it), and, for a peer trusted for its
// CA's certificate rather than as a contact, while the time is within
// [from, until] (the certificate's and its CA's validity).
type mayYes struct {
	gen         uint64
	from, until time.Time // zero: no limit (a contact)
}

// holds reports whether y still decides for generation gen; now is
// asked only if the decision has a time limit.
func (y mayYes) holds(gen uint64, now func() time.Time) bool {
	if y.gen != gen {
		return false
	}
	if y.until.IsZero() {
		return true
	}
	t := now()
	return !t.Before(y.from) && !t.After(y.until)
}

// peerFacts is what one handshake, or its failure, established.
type peerFacts struct {
	verdict *identity.Verdict   // from the last handshake
	chain   []*x509.Certificate // the peer's chain from the last handshake, leaf first
}

// peerstoreTTL is how long learned addresses are kept in memory; they are
// also saved in the store.
const peerstoreTTL = 24 * time.Hour

func newPeerBook(c *core) *peerBook {
	return &peerBook{core: c, byPeer: map[peer.ID]*peerFacts{}, may: map[peer.ID]mayYes{}}
}

// facts is a copy of what is known of p this run.
func (b *peerBook) facts(p peer.ID) peerFacts {
	b.mu.Lock()
	defer b.mu.Unlock()
	if f, ok := b.byPeer[p]; ok {
		return *f
	}
	return peerFacts{}
}

// update changes p's facts under the lock, and drops what mayMessage
// decided from them.
func (b *peerBook) update(p peer.ID, f func(*peerFacts)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	pf, ok := b.byPeer[p]
	if !ok {
		pf = &peerFacts{}
		b.byPeer[p] = pf
	}
	f(pf)
	delete(b.may, p)
	b.updates++
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
	b.editRecord(p, func(rec *store.PeerRecord, _ bool) bool {
		rec.Name, rec.CertDER, rec.Intermediates = identity.DisplayName(cert), cert.Raw, nil
		for _, c := range chain[1:] {
			rec.Intermediates = append(rec.Intermediates, c.Raw)
		}
		return true
	})
}

// editRecord reads p's stored record (ok: there was one), lets edit
// change it, and stores it with the peer's current addresses if edit
// says so, with no other change of the record in between (recMu).
func (b *peerBook) editRecord(p peer.ID, edit func(rec *store.PeerRecord, ok bool) bool) {
	b.recMu.Lock()
	defer b.recMu.Unlock()
	rec, ok := b.record(p)
	if edit(&rec, ok) {
		b.saveRecord(p, rec)
	}
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
	b.editRecord(p, func(*store.PeerRecord, bool) bool { return true })
}

// rememberIdentified saves the addresses of c's peer in its record again
// once identify on c has brought them, if the record lacks one. A peer
// that dialed us is often verified (recordVerified saves its record)
// before our identify of it completes, the more so on a loaded machine:
// its record then keeps no address, and after a restart we cannot reach
// it, so a file it sends us never resumes (the receiver asks, PROTOCOL
// §15.5) and our outbox waits for it to come to us.
func (b *peerBook) rememberIdentified(c network.Conn) {
	ids, ok := b.host.(interface{ IDService() identify.IDService })
	if !ok {
		return
	}
	select {
	case <-ids.IDService().IdentifyWait(c): // closed also when it fails
	case <-b.ctx.Done():
		return
	}
	p := c.RemotePeer()
	b.editRecord(p, func(rec *store.PeerRecord, ok bool) bool {
		return ok && slices.ContainsFunc(b.host.Peerstore().Addrs(p), func(a ma.Multiaddr) bool {
			return !slices.Contains(rec.Addrs, a.String())
		})
	})
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
func (b *peerBook) mayMessage(p peer.ID) error { return b.mayMessageSince(p, time.Now()) }

// decisionRecheck is how often an outbox worker whose peer we may not
// message (not accepted yet, blocked) looks at the trust store again. A
// decision made in this process wakes it at once (Contacts.trusted); one
// made in another (`chat contacts add` beside a running daemon or
// window) only changes trust.json, which nothing watches: the worker
// finds it at its next look, a stat of the file
// (TestAcceptedElsewhereSendsWhatWaits).
const decisionRecheck = 2 * time.Second

// trustRecheck is how old a look at the trust store an outbox worker
// accepts before it writes (mayMessageSince): a group message's 100
// copies, written by 100 workers, then cost a stat of trust.json or two
// rather than 100. Changes made in this process are seen at once; another
// process's change, by the workers within trustRecheck.
const trustRecheck = 5 * time.Millisecond

// mayMessageSince is mayMessage with the trust store as compared with the
// disk at since or later (identity.TrustStore.GenerationSince). A yes is
// kept (mayYes) and given again, for a map look-up, while nothing it
// was drawn from changed; a no is decided anew each time.
func (b *peerBook) mayMessageSince(p peer.ID, since time.Time) error {
	if p == b.host.ID() {
		return ErrSelf
	}
	gen, err := b.trust.GenerationSince(since)
	if err != nil {
		return err
	}
	b.mu.Lock()
	y, kept := b.may[p]
	updates := b.updates
	b.mu.Unlock()
	if kept && y.holds(gen, b.cfg.Now) {
		return nil
	}
	// What is read from here on is of generation gen or later: a yes
	// kept as gen's is decided again at the next change, never missed.
	y, err = b.decideMay(p, since)
	if err != nil {
		return err
	}
	y.gen = gen
	b.mu.Lock()
	if b.updates == updates {
		b.may[p] = y
	}
	b.mu.Unlock()
	return nil
}

// decideMay decides whether messages may go to p now, from the trust
// store and p's last seen chain, and on a yes how long it holds.
func (b *peerBook) decideMay(p peer.ID, since time.Time) (mayYes, error) {
	if _, err := identity.KeyFromPeerID(p); err != nil {
		return mayYes{}, err
	}
	c, known, err := b.trust.ContactSince(p, since)
	switch {
	case err != nil:
		return mayYes{}, err
	case known && c.State == identity.StateUntrusted:
		return mayYes{}, ErrBlocked
	case known:
		return mayYes{}, nil
	}
	v, ok := b.verdictNow(p)
	switch {
	case ok && v.State == identity.StateChanged:
		return mayYes{}, ErrKeyChanged
	case ok && v.State == identity.StateCAVerified && !v.ValidUntil.IsZero():
		return mayYes{from: v.ValidFrom, until: v.ValidUntil}, nil
	}
	return mayYes{}, ErrNotTrusted
}
