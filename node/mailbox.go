package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/e2e/ratchet"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/mailbox"
	"github.com/certchat/certchat/store"
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

// mailboxes is the node's side of relay mailboxes. It keeps no state of
// its own: what it learns of each relay's mailbox it records in relays
// (under relays.mu), and envelopes waiting to be deposited live in
// ratchetKeys. One loop per relay fetches; the outbox workers deposit.
type mailboxes struct {
	*core
	rk       *ratchetKeys
	relays   *relays
	out      *outbox
	sessions *sessions
	peerEv   *peerEvents
	// strangers tells refusals of strangers' messages once.
	strangers *strangers
}

const (
	// prekeysLow: below this many one-time prekeys of a kind at a relay,
	// more are uploaded.
	prekeysLow = 20
	// prekeysBatch is how many of each kind one upload adds.
	prekeysBatch = 40
	// fetchEvery is the polling interval, in case a notification is lost.
	fetchEvery = time.Minute
)

var errNoMailbox = errors.New("the peer has no mailbox at any relay we know")

// errRelayUnreachable marks a mailbox request the relay did not answer: it
// could not be reached, or the connection broke.
var errRelayUnreachable = errors.New("relay not reachable")

func (mb *mailboxes) client() mailbox.Client { return mailbox.Client{Host: mb.host} }

// serveNotify answers our relays' notifications that mail arrived (the
// mailbox loop of each relay is started with its keeper, relays.run).
func (mb *mailboxes) serveNotify() {
	mb.host.SetStreamHandler(mailbox.NotifyProtocol, func(s network.Stream) {
		from := s.Conn().RemotePeer()
		s.Close()
		if st, ok := mb.relays.get(from); ok {
			signal(st.mail)
		}
	})
}

// loop registers and fetches at one relay until the node stops or the
// relay is dropped.
func (mb *mailboxes) loop(st *relayState) {
	published := false
	for {
		select {
		case <-st.mail:
		case <-st.fresh:
			published = false
		case <-time.After(fetchEvery):
		case <-mb.ctx.Done():
			return
		case <-st.gone:
			return
		}
		if !published {
			ok, err := mb.publish(st.info.ID)
			mb.relays.setMailbox(st, err == nil, ok)
			if err != nil {
				mb.log.Info("publish prekeys", "relay", st.info.ID, "err", err)
				continue
			}
			published = true
		}
		if err := mb.fetch(st.info.ID); err != nil {
			mb.log.Info("fetch mailbox", "relay", st.info.ID, "err", err)
		}
	}
}

// publish registers our mailbox at a relay and tops up one-time prekeys.
func (mb *mailboxes) publish(relay peer.ID) (mailbox.OK, error) {
	pub, err := mb.rk.newPrekeys(0)
	if err != nil {
		return mailbox.OK{}, err
	}
	base, err := pub.base.MarshalBinary()
	if err != nil {
		return mailbox.OK{}, err
	}
	ok, err := mb.client().Publish(mb.ctx, relay, mailbox.Publish{Bundle: base})
	if err != nil || ok.PrekeysEC >= prekeysLow && ok.PrekeysKEM >= prekeysLow {
		return ok, err
	}
	if pub, err = mb.rk.newPrekeys(prekeysBatch); err != nil {
		return ok, err
	}
	req, err := publishRequest(pub)
	if err != nil {
		return ok, err
	}
	if ok, err = mb.client().Publish(mb.ctx, relay, req); err == nil {
		mb.log.Info("published prekeys", "relay", relay, "one_time_ec", ok.PrekeysEC, "one_time_kem", ok.PrekeysKEM)
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

// fetch fetches, opens, stores and deletes everything waiting at a relay.
// Envelopes that never open are reported once per sender for the whole
// fetch, with a count (openFailures), not once each: a thousand bad first
// contacts are one event.
func (mb *mailboxes) fetch(relay peer.ID) error {
	c := mb.client()
	failed := &openFailures{}
	defer func() { failed.flush(mb.core) }()
	for mb.ctx.Err() == nil {
		items, err := c.Fetch(mb.ctx, relay, mailbox.MaxFetch)
		if err != nil {
			return err
		}
		var done []uint64
		for _, it := range items.Items {
			if mb.receiveInto(it, failed) {
				done = append(done, it.ID)
			}
		}
		if err := c.Ack(mb.ctx, relay, done); err != nil {
			return err
		}
		if !items.More || len(done) == 0 {
			return nil
		}
	}
	return nil
}

// receive handles one envelope from a mailbox and says whether it may be
// deleted: yes once stored, or when it can never be opened or stored; no
// only after an I/O-type failure, which a later fetch may not meet. So a
// fetch always makes progress past mail that will fail again. An envelope
// that never opens is reported at once (fetch uses receiveInto).
func (mb *mailboxes) receive(it mailbox.Item) bool { return mb.receiveInto(it, nil) }

// receiveInto is receive, counting envelopes that never open in failed
// (reported when the fetch ends) unless it is nil.
func (mb *mailboxes) receiveInto(it mailbox.Item, failed *openFailures) bool {
	from := it.From
	if _, err := identity.KeyFromPeerID(from); err != nil || from == mb.id.PeerID() {
		return true
	}
	c, ok, err := mb.trust.Contact(from)
	if err != nil {
		// Without the trust store we cannot tell a rejected key's mail
		// from a contact's: keep it at the relay for a later fetch.
		mb.log.Error("mail left at the relay: the trust store cannot be read", "from", from, "err", err)
		return false
	}
	if ok && c.State == identity.StateUntrusted {
		mb.log.Info("mail from a rejected key dropped", "from", from)
		return true
	}
	res, err := mb.rk.open(from, it.Envelope)
	switch {
	case errors.Is(err, ratchet.ErrDuplicate):
		return true
	case isRatchetError(err):
		if failed != nil {
			failed.add(from, err)
		} else {
			mb.emitError(from, discarded(1, from, []error{err}))
		}
		return true
	case errors.Is(err, ErrStrangerFull):
		// Dropped at the relay, not acknowledged to its sender, who keeps
		// it and writes it again.
		mb.strangers.tell(from, err)
		return true
	case err != nil && store.Transient(err):
		mb.log.Error("mail could not be stored; trying again later", "from", from, "err", err)
		return false
	case err != nil:
		// It would fail the same way at every fetch, and hold back what
		// comes after it: dropped. A real message is not lost: its sender
		// keeps it until our receipt, and writes it again live.
		mb.log.Warn("mail that can never be stored dropped", "from", from, "err", err)
		return true
	}
	if res.isNew && res.text != nil {
		mb.peerEv.now(from) // a first contact by mail: the peer appears
	}
	if res.info.FirstContact && mb.rk.needsRotation() {
		// The signed prekey's replay record is filling up: publish a new
		// one now rather than at the next reservation, so new first
		// contacts use it while the old one keeps its record.
		for _, st := range mb.relays.all() {
			signal(st.fresh)
		}
	}
	mb.sessions.delivered(from, res, mb.sessions.newest(from))
	return true
}

// openFailures counts, for one fetch, the envelopes of each sender that
// never open, to report them as one error event per sender
// (maxFailureEvents senders; the others share one event).
type openFailures struct {
	order []peer.ID
	by    map[peer.ID]*openFailure
}

type openFailure struct {
	n       int
	reasons []error // distinct, at most maxFailureReasons
}

const (
	maxFailureEvents  = 8
	maxFailureReasons = 4
)

func (f *openFailures) add(p peer.ID, err error) {
	if f.by == nil {
		f.by = map[peer.ID]*openFailure{}
	}
	e, ok := f.by[p]
	if !ok {
		e = &openFailure{}
		f.by[p] = e
		f.order = append(f.order, p)
	}
	e.n++
	if len(e.reasons) < maxFailureReasons && !slices.ContainsFunc(e.reasons, func(r error) bool { return r.Error() == err.Error() }) {
		e.reasons = append(e.reasons, err)
	}
}

// flush emits the events and forgets the counts.
func (f *openFailures) flush(c *core) {
	others, otherSenders := 0, 0
	for i, p := range f.order {
		e := f.by[p]
		if i >= maxFailureEvents {
			others += e.n
			otherSenders++
			continue
		}
		c.emitError(p, discarded(e.n, p, e.reasons))
	}
	if otherSenders > 0 {
		c.emitError("", fmt.Errorf("%d sealed messages from %d other senders could not be opened and were discarded", others, otherSenders))
	}
	f.order, f.by = nil, nil
}

// discarded says that n sealed messages from p did not open, and why
// (reasons, at most maxFailureReasons). Mail sealed for a session this
// node does not hold (ratchet.ErrUnknownSession: a stranger's, held in
// memory and lost in a restart; or one not p's) is said as what it is,
// not as a session ID: p has no receipt for it, still has it, and writes
// it again on the next live session the two share (PROTOCOL §10; seen
// trying a group as a new user: "ratchet: unknown session: 000001a2…").
// errors.Is sees every reason.
func discarded(n int, p peer.ID, reasons []error) error {
	what := "a sealed message from " + identity.ShortID(p) + " could not be opened and was discarded"
	if n > 1 {
		what = fmt.Sprintf("%d sealed messages from %s could not be opened and were discarded", n, identity.ShortID(p))
	}
	var why []string
	for _, r := range reasons {
		w := r.Error()
		if errors.Is(r, ratchet.ErrUnknownSession) {
			w = "sealed for a session this node does not hold (lost in a restart, or not the sender's); the sender still has it and sends it again when you are both online"
		}
		if !slices.Contains(why, w) { // two unknown sessions read the same
			why = append(why, w)
		}
	}
	return discardedError{text: what + ": " + strings.Join(why, "; "), reasons: reasons}
}

// discardedError is discarded's: its text, and the reasons it unwraps to.
type discardedError struct {
	text    string
	reasons []error
}

func (e discardedError) Error() string   { return e.text }
func (e discardedError) Unwrap() []error { return e.reasons }

// isRatchetError reports errors that mean an envelope will never open.
func isRatchetError(err error) bool {
	for _, e := range []error{ratchet.ErrMalformed, ratchet.ErrVersion, ratchet.ErrBadSignature, ratchet.ErrIdentityMismatch,
		ratchet.ErrAuth, ratchet.ErrExpired, ratchet.ErrTooManySkipped, ratchet.ErrReplay, ratchet.ErrUnknownPrekey,
		ratchet.ErrPrekeyExhausted, ratchet.ErrUnknownSession, ratchet.ErrNoSession, ratchet.ErrTooLarge,
		e2e.ErrMalformed, e2e.ErrUnknownFrame, errTooManyFirstContacts} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// sendReceipt acknowledges a stored message: live on cs when possible,
// else sealed into the sender's mailbox. If both fail, the sender writes
// the message again when it reaches us, and that copy is acknowledged.
func (mb *mailboxes) sendReceipt(p peer.ID, id e2e.MessageID, cs *chatSession) {
	if cs != nil {
		mb.receiptWrites.Add(1)
		if err := cs.s.SendReceipt(e2e.Receipt{ID: id, Status: e2e.ReceiptStored}); err == nil {
			return
		}
	}
	err := mb.depositSealed(p, func() ([]byte, error) { return mb.rk.sealReceipt(p, id) })
	if err != nil && !errors.Is(err, errNoMailbox) {
		mb.log.Info("deposit receipt", "peer", p, "err", err)
	}
}

// sendSealed seals plaintext (one inner frame) for p and writes it on
// p's newest live session, or deposits it at p's mailbox when there is
// none or the write failed.
func (mb *mailboxes) sendSealed(p peer.ID, plaintext []byte) error {
	var env []byte
	seal := func() (_ []byte, err error) {
		if env == nil {
			env, err = mb.rk.seal(p, plaintext)
		}
		return env, err
	}
	if cs := mb.sessions.newest(p); cs != nil {
		if _, err := seal(); err != nil {
			return err
		}
		if err := cs.s.Send(e2e.FrameEnvelope, env); err == nil {
			return nil
		}
	}
	return mb.depositSealed(p, seal)
}

// depositSealed leaves the envelope seal makes for p at p's mailbox.
// With no relay to leave it at, nothing is sealed (sealing would only
// skip a message number): errNoMailbox.
func (mb *mailboxes) depositSealed(p peer.ID, seal func() ([]byte, error)) error {
	relays := mb.relaysOf(p)
	if len(relays.all) == 0 {
		return errNoMailbox
	}
	env, err := seal()
	if err != nil {
		return fmt.Errorf("seal: %w", err)
	}
	return mb.deposit(mb.ctx, relays, p, env)
}

// peerRelays are the relays where a peer may have a mailbox: all of them,
// its own first (those its circuit addresses name, from identify or its
// signed peer record in the DHT), then ours; theirs counts its own.
type peerRelays struct {
	all    []peer.ID
	theirs int
}

// relaysOf are the relays where p may have a mailbox.
func (mb *mailboxes) relaysOf(p peer.ID) peerRelays {
	var out []peer.ID
	for _, a := range mb.host.Peerstore().Addrs(p) {
		relayAddr, _ := ma.SplitFunc(a, func(c ma.Component) bool { return c.Protocol().Code == ma.P_CIRCUIT })
		if relayAddr == nil || !isCircuit(a) {
			continue
		}
		info, err := peer.AddrInfoFromP2pAddr(relayAddr)
		if err != nil || slices.Contains(out, info.ID) {
			continue
		}
		mb.host.Peerstore().AddAddrs(info.ID, info.Addrs, peerstoreTTL)
		out = append(out, info.ID)
	}
	theirs := len(out)
	for _, st := range mb.relays.all() {
		if !slices.Contains(out, st.info.ID) {
			out = append(out, st.info.ID)
		}
	}
	return peerRelays{all: out, theirs: theirs}
}

// deposit leaves an envelope for p at each of p's own relays, so that
// losing one of them loses nothing (the receiver fetches from all and
// keeps each message once). It succeeds if one of them took it. When p
// names no relay, or none of its relays took it, the first of ours that
// takes it has it. It stops when ctx ends, a request in flight too.
func (mb *mailboxes) deposit(ctx context.Context, relays peerRelays, p peer.ID, env []byte) error {
	var errs []error
	ok := 0
	for _, r := range relays.all[:relays.theirs] {
		_, err := mb.client().Deposit(ctx, r, p, env)
		if err == nil {
			ok++
			continue
		}
		errs = append(errs, mailboxErr(err))
	}
	if ok > 0 {
		if len(errs) > 0 {
			mb.log.Info("deposited at some of the peer's relays only", "peer", p, "ok", ok, "err", errors.Join(errs...))
		}
		return nil
	}
	for _, err := range errs {
		if errors.Is(err, mailbox.ErrQuotaFull) || errors.Is(err, mailbox.ErrTooLarge) || errors.Is(err, mailbox.ErrRateLimited) {
			return err
		}
	}
	if relays.theirs == len(relays.all) && len(errs) > 0 {
		return errs[len(errs)-1]
	}
	return mb.depositAny(ctx, relays.all[relays.theirs:], p, env)
}

// depositAny deposits an envelope for p at the first of relays that
// takes it. A full mailbox is reported at once.
func (mb *mailboxes) depositAny(ctx context.Context, relays []peer.ID, p peer.ID, env []byte) error {
	var last error = errNoMailbox
	for _, r := range relays {
		_, err := mb.client().Deposit(ctx, r, p, env)
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

// mailboxErr marks an error of a mailbox request with errRelayUnreachable
// unless it is the relay's answer (an error, or a malformed answer).
func mailboxErr(err error) error {
	var answer *mailbox.Error
	if err == nil || errors.As(err, &answer) || errors.Is(err, mailbox.ErrMalformed) {
		return err
	}
	return fmt.Errorf("%w: %w", errRelayUnreachable, err)
}

// offlineNotice reports whether a failure to leave messages at a relay is
// worth telling the user. Not when the peer has no mailbox at any relay we
// know (it uses none, or not one we know: the message waits for the peer
// to come online, as without relays, and its offline state says so), nor
// when a relay is unreachable or limits our rate for now (the outbox
// retries; Relays reports our relays' state). The rest are worth it: the
// peer's mailbox is full, a bundle did not verify, the relay failed.
func offlineNotice(err error) bool {
	for _, quiet := range []error{errNoMailbox, mailbox.ErrNotRegistered, mailbox.ErrNoBundle,
		mailbox.ErrRateLimited, errRelayUnreachable, ErrClosed, context.Canceled} {
		if errors.Is(err, quiet) {
			return false
		}
	}
	return true
}

// queue seals the outbox messages not yet queued and deposits them at p's
// relay, starting a ratchet session from p's bundle if there is none.
func (mb *mailboxes) queue(p peer.ID, msgs []store.Message) error {
	var pending []store.Message
	for _, m := range msgs {
		if m.Status == store.StatusSending || m.Status == store.StatusSent {
			pending = append(pending, m)
		}
	}
	if len(pending) == 0 {
		return nil
	}
	relays := mb.relaysOf(p)
	if len(relays.all) == 0 {
		return errNoMailbox
	}
	mb.rk.keepUnsent(p, pending)
	if !mb.rk.hasSession(p) {
		if err := mb.initiate(relays.all, p); err != nil {
			return err
		}
	}
	for _, m := range pending {
		env, err := mb.rk.mailboxEnvelope(m)
		if err != nil {
			return err
		}
		if err := mb.deposit(mb.ctx, relays, p, env); err != nil {
			return err // env is kept for the next attempt
		}
		mb.rk.deposited(p, m.ID)
		mb.out.setStatus(m, store.StatusQueued, "")
	}
	return nil
}

// initiate fetches p's bundle from its relays and starts a session
// (PQXDH). A bundle that does not verify is refused.
func (mb *mailboxes) initiate(relays []peer.ID, p peer.ID) error {
	var last, refused error = errNoMailbox, nil
	for _, r := range relays {
		b, err := mb.client().FetchBundle(mb.ctx, r, p)
		if err != nil {
			last = mailboxErr(err)
			continue
		}
		if err := mb.rk.initiate(p, b); err != nil {
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
