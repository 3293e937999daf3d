package node

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/e2e/ratchet"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/mailbox"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Offline delivery through relay mailboxes (docs/PROTOCOL.md §11).
//
// A node with relays registers a mailbox at each: it publishes its prekey
// bundle and one-time prekeys (topped up when few are left), fetches what
// waits for it whenever the relay says mail arrived, when a reservation
// is (re)made and every minute, opens each envelope, stores the message,
// acknowledges it to the sender, and only then deletes it at the relay.
//
// A message to a peer that cannot be reached directly is sealed (PQXDH
// from the peer's bundle if there is no session yet) and deposited at one
// of the peer's relays: the status becomes "queued" and, when the receipt
// comes back, "delivered". It stays in the outbox until then, and is also
// written live as soon as the peer is reachable, so order holds; the
// receiver drops whichever copy comes second.

const (
	// prekeysLow: below this many one-time prekeys of a kind at a relay,
	// more are uploaded.
	prekeysLow = 20
	// prekeysBatch is how many of each kind one upload adds.
	prekeysBatch = 40
	// fetchEvery is the polling interval, in case a notification is lost.
	fetchEvery = time.Minute
)

// mailboxClient is the node's side of relay mailboxes.
func (n *Node) mailboxClient() mailbox.Client { return mailbox.Client{Host: n.host} }

// serveMailboxes runs the mailbox loop of each configured relay.
func (n *Node) serveMailboxes() {
	n.host.SetStreamHandler(mailbox.NotifyProtocol, func(s network.Stream) {
		from := s.Conn().RemotePeer()
		s.Close()
		if st, ok := n.relays.byID[from]; ok {
			signal(st.mail)
		}
	})
	for _, st := range n.relays.list {
		n.wg.Add(1)
		go n.mailboxLoop(st)
	}
}

// mailboxLoop registers and fetches at one relay.
func (n *Node) mailboxLoop(st *relayState) {
	defer n.wg.Done()
	published := false
	for {
		select {
		case <-st.mail:
		case <-st.fresh:
			published = false
		case <-time.After(fetchEvery):
		case <-n.ctx.Done():
			return
		}
		if !published {
			ok, err := n.publish(st.info.ID)
			n.relays.mu.Lock()
			st.mailbox = err == nil
			st.prekeys = [2]int{int(ok.PrekeysEC), int(ok.PrekeysKEM)}
			n.relays.mu.Unlock()
			if err != nil {
				n.log.Info("publish prekeys", "relay", st.info.ID, "err", err)
				continue
			}
			published = true
		}
		if err := n.fetchMail(st.info.ID); err != nil {
			n.log.Info("fetch mailbox", "relay", st.info.ID, "err", err)
		}
	}
}

// publish registers our mailbox at a relay and tops up one-time prekeys.
func (n *Node) publish(relay peer.ID) (mailbox.OK, error) {
	pub, err := n.newPrekeys(0)
	if err != nil {
		return mailbox.OK{}, err
	}
	base, err := pub.base.MarshalBinary()
	if err != nil {
		return mailbox.OK{}, err
	}
	ok, err := n.mailboxClient().Publish(n.ctx, relay, mailbox.Publish{Bundle: base})
	if err != nil || ok.PrekeysEC >= prekeysLow && ok.PrekeysKEM >= prekeysLow {
		return ok, err
	}
	if pub, err = n.newPrekeys(prekeysBatch); err != nil {
		return ok, err
	}
	req, err := publishRequest(pub)
	if err != nil {
		return ok, err
	}
	if ok, err = n.mailboxClient().Publish(n.ctx, relay, req); err == nil {
		n.log.Info("published prekeys", "relay", relay, "one_time_ec", ok.PrekeysEC, "one_time_kem", ok.PrekeysKEM)
	}
	return ok, err
}

// publishRequest encodes a bundle and each new one-time prekey as a bundle
// carrying just that prekey, which the relay verifies and hands out whole.
func publishRequest(pub ratchetPublish) (mailbox.Publish, error) {
	var req mailbox.Publish
	var err error
	if req.Bundle, err = pub.base.MarshalBinary(); err != nil {
		return req, err
	}
	if req.OneTimeEC, err = carrying(pub.base, pub.ec, func(b *ratchet.Bundle, k *ratchet.Prekey) { b.OneTimePrekey = k }); err != nil {
		return req, err
	}
	req.OneTimeKEM, err = carrying(pub.base, pub.kem, func(b *ratchet.Bundle, k *ratchet.Prekey) { b.OneTimeKEM = k })
	return req, err
}

// carrying encodes one copy of base per prekey, attach putting the prekey
// in its one-time field (at most MaxPrekeysPerPublish).
func carrying(base *ratchet.Bundle, keys []ratchet.Prekey, attach func(*ratchet.Bundle, *ratchet.Prekey)) ([][]byte, error) {
	var out [][]byte
	for i := range keys[:min(len(keys), mailbox.MaxPrekeysPerPublish)] {
		b := *base
		attach(&b, &keys[i])
		enc, err := b.MarshalBinary()
		if err != nil {
			return nil, err
		}
		out = append(out, enc)
	}
	return out, nil
}

// fetchMail fetches, opens, stores and deletes everything waiting at a relay.
func (n *Node) fetchMail(relay peer.ID) error {
	c := n.mailboxClient()
	for n.ctx.Err() == nil {
		items, err := c.Fetch(n.ctx, relay, mailbox.MaxFetch)
		if err != nil {
			return err
		}
		var done []uint64
		for _, it := range items.Items {
			if n.receiveMail(it) {
				done = append(done, it.ID)
			}
		}
		if err := c.Ack(n.ctx, relay, done); err != nil {
			return err
		}
		if !items.More || len(done) == 0 {
			return nil
		}
	}
	return nil
}

// receiveMail handles one envelope from a mailbox and says whether it may
// be deleted: yes once stored, or when it can never be opened.
func (n *Node) receiveMail(it mailbox.Item) bool {
	from := it.From
	if _, err := identity.KeyFromPeerID(from); err != nil || from == n.id.PeerID() {
		return true
	}
	if c, ok, _ := n.trust.Contact(from); ok && c.State == identity.StateUntrusted {
		n.log.Info("mail from a rejected key dropped", "from", from)
		return true
	}
	res, err := n.open(from, it.Envelope)
	switch {
	case errors.Is(err, ratchet.ErrDuplicate):
		return true
	case isRatchetError(err):
		n.emitError(from, fmt.Errorf("a sealed message from %s could not be opened and was discarded: %w", identity.ShortID(from), err))
		return true
	case err != nil:
		n.log.Error("open mail", "from", from, "err", err)
		return false // e.g. the database: try again later
	}
	if res.isNew && res.text != nil {
		n.emitPeer(from) // a first contact by mail: the peer appears
	}
	n.delivered(from, res, n.liveSession(from))
	return true
}

// isRatchetError reports errors that mean an envelope will never open.
func isRatchetError(err error) bool {
	for _, e := range []error{ratchet.ErrMalformed, ratchet.ErrVersion, ratchet.ErrBadSignature, ratchet.ErrIdentityMismatch,
		ratchet.ErrAuth, ratchet.ErrExpired, ratchet.ErrTooManySkipped, ratchet.ErrReplay, ratchet.ErrUnknownPrekey,
		ratchet.ErrPrekeyExhausted, ratchet.ErrUnknownSession, ratchet.ErrNoSession, ratchet.ErrTooLarge,
		e2e.ErrMalformed, e2e.ErrUnknownFrame} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// liveSession is p's newest live session, or nil.
func (n *Node) liveSession(p peer.ID) *chatSession {
	n.mu.Lock()
	defer n.mu.Unlock()
	if ps, ok := n.peers[p]; ok && len(ps.sessions) > 0 {
		return ps.sessions[len(ps.sessions)-1]
	}
	return nil
}

// sendReceipt acknowledges a stored message: live when possible, else
// sealed into the sender's mailbox. If both fail, the sender writes the
// message again when it reaches us, and that copy is acknowledged.
func (n *Node) sendReceipt(p peer.ID, id e2e.MessageID, cs *chatSession) {
	if cs != nil {
		if err := cs.s.SendReceipt(e2e.Receipt{ID: id, Status: e2e.ReceiptStored}); err == nil {
			return
		}
	}
	relays := n.mailboxRelays(p)
	if len(relays) == 0 {
		return // nowhere to deposit: sealing would only skip a message number
	}
	env, err := n.sealReceipt(p, id)
	if err != nil {
		n.log.Info("seal receipt", "peer", p, "err", err)
		return
	}
	if err := n.depositAny(relays, p, env); err != nil {
		n.log.Info("deposit receipt", "peer", p, "err", err)
	}
}

// mailboxRelays are the relays where p may have a mailbox: those in its
// circuit addresses first, then ours.
func (n *Node) mailboxRelays(p peer.ID) []peer.ID {
	var out []peer.ID
	for _, a := range n.host.Peerstore().Addrs(p) {
		relayAddr, _ := ma.SplitFunc(a, func(c ma.Component) bool { return c.Protocol().Code == ma.P_CIRCUIT })
		if relayAddr == nil || !isCircuit(a) {
			continue
		}
		info, err := peer.AddrInfoFromP2pAddr(relayAddr)
		if err != nil || slices.Contains(out, info.ID) {
			continue
		}
		n.host.Peerstore().AddAddrs(info.ID, info.Addrs, peerstoreTTL)
		out = append(out, info.ID)
	}
	for _, st := range n.relays.list {
		if !slices.Contains(out, st.info.ID) {
			out = append(out, st.info.ID)
		}
	}
	return out
}

// depositAny deposits an envelope for p at the first of relays (p's
// mailboxRelays) that takes it. A full mailbox is reported at once.
func (n *Node) depositAny(relays []peer.ID, p peer.ID, env []byte) error {
	var last error = errNoMailbox
	for _, r := range relays {
		_, err := n.mailboxClient().Deposit(n.ctx, r, p, env)
		if err == nil {
			return nil
		}
		err = mailboxErr(err)
		if errors.Is(err, mailbox.ErrQuotaFull) || errors.Is(err, mailbox.ErrTooLarge) || errors.Is(err, mailbox.ErrRateLimited) {
			return err
		}
		last = err
	}
	return last
}

var errNoMailbox = errors.New("the peer has no mailbox at any relay we know")

// errRelayUnreachable marks a mailbox request the relay did not answer: it
// could not be reached, or the connection broke.
var errRelayUnreachable = errors.New("relay not reachable")

// mailboxErr marks an error of a mailbox request with errRelayUnreachable
// unless it is the relay's answer (an error, or a malformed answer).
func mailboxErr(err error) error {
	var answer *mailbox.Error
	if err == nil || errors.As(err, &answer) || errors.Is(err, mailbox.ErrMalformed) {
		return err
	}
	return fmt.Errorf("%w: %w", errRelayUnreachable, err)
}

// queueAtRelay seals the outbox messages not yet queued and deposits them
// at p's relay, starting a ratchet session from p's bundle if there is none.
func (n *Node) queueAtRelay(p peer.ID, msgs []Message) error {
	var pending []Message
	for _, m := range msgs {
		if m.Status == StatusSending || m.Status == StatusSent {
			pending = append(pending, m)
		}
	}
	if len(pending) == 0 {
		return nil
	}
	relays := n.mailboxRelays(p)
	if len(relays) == 0 {
		return errNoMailbox
	}
	n.keepUnsent(p, pending)
	if !n.hasSession(p) {
		if err := n.initiateFromRelays(relays, p); err != nil {
			return err
		}
	}
	for _, m := range pending {
		env, err := n.mailboxEnvelope(m)
		if err != nil {
			return err
		}
		if err := n.depositAny(relays, p, env); err != nil {
			return err // env is kept for the next attempt
		}
		n.rk.mu.Lock()
		delete(n.rk.unsent[p], m.ID)
		n.rk.mu.Unlock()
		n.setStatus(m, StatusQueued, "")
	}
	return nil
}

// mailboxEnvelope is the envelope to deposit for m: the one sealed for an
// earlier attempt that failed, else a new one (kept until deposited).
func (n *Node) mailboxEnvelope(m Message) ([]byte, error) {
	n.rk.mu.Lock()
	env, ok := n.rk.unsent[m.Peer][m.ID]
	n.rk.mu.Unlock()
	if ok {
		return env, nil
	}
	env, err := n.sealText(m)
	if err != nil {
		return nil, err
	}
	n.rk.mu.Lock()
	if n.rk.unsent == nil {
		n.rk.unsent = map[peer.ID]map[e2e.MessageID][]byte{}
	}
	if n.rk.unsent[m.Peer] == nil {
		n.rk.unsent[m.Peer] = map[e2e.MessageID][]byte{}
	}
	n.rk.unsent[m.Peer][m.ID] = env
	n.rk.mu.Unlock()
	return env, nil
}

// keepUnsent forgets the undeposited envelopes for p of messages that are
// no longer waiting to be deposited (delivered live meanwhile, or failed).
func (n *Node) keepUnsent(p peer.ID, pending []Message) {
	n.rk.mu.Lock()
	defer n.rk.mu.Unlock()
	for id := range n.rk.unsent[p] {
		if !slices.ContainsFunc(pending, func(m Message) bool { return m.ID == id }) {
			delete(n.rk.unsent[p], id)
		}
	}
}

// initiateFromRelays fetches p's bundle from its relays and starts a
// session (PQXDH). A bundle that does not verify is refused.
func (n *Node) initiateFromRelays(relays []peer.ID, p peer.ID) error {
	var last, refused error = errNoMailbox, nil
	for _, r := range relays {
		b, err := n.mailboxClient().FetchBundle(n.ctx, r, p)
		if err != nil {
			last = mailboxErr(err)
			continue
		}
		if err := n.initiate(p, b); err != nil {
			// A bundle that does not verify is refused; another of the
			// peer's relays may hand out a good one.
			refused = fmt.Errorf("bundle of %s from relay %s: %w", identity.ShortID(p), identity.ShortID(r), err)
			continue
		}
		return nil
	}
	if refused != nil {
		return refused // what the user must hear of, whatever the other relays said
	}
	return last
}
