package node

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/e2e/ratchet"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// What arrives on a live session: sealed envelopes (texts, messages and
// receipts), ratchet seeds, plain receipts (stored or seen), settings and
// typing.

func (t *sessions) handleFrame(cs *chatSession, f e2e.Frame) error {
	switch f.Type {
	case e2e.FrameText, e2e.FrameMessage:
		return fmt.Errorf("%w: messages must be sealed (envelope frames), not sent as %s frames", e2e.ErrMalformed, f.Type)
	case e2e.FrameEnvelope:
		// Copies: the session reuses the payload's memory, and ratchet
		// state may keep parts of what it opens.
		return t.receiveEnvelope(cs, bytes.Clone(f.Payload))
	case e2e.FrameRatchetInit:
		return t.receiveRatchetInit(cs, bytes.Clone(f.Payload))
	case e2e.FrameReceipt:
		r, err := e2e.ParseReceipt(f.Payload)
		if err != nil {
			return err
		}
		if r.Status == e2e.ReceiptSeen {
			if t.ind.honoursSeen(cs) {
				t.receipts.addSeen(cs.peer, r.ID)
			}
			return nil
		}
		t.receipts.add(cs.peer, r.ID)
		return nil
	case e2e.FrameSettings:
		s, err := e2e.ParseSettings(f.Payload)
		if err != nil {
			return err
		}
		t.ind.receiveSettings(cs, s)
		return nil
	case e2e.FrameForward:
		return t.fwd.frame(cs, f.Payload)
	case e2e.FrameForwarded:
		return t.fwd.receive(cs, f.Payload)
	case e2e.FrameForwardRefused:
		r, err := e2e.ParseForwardRefused(f.Payload)
		if err != nil {
			return err
		}
		t.out.fwd.refused(cs.peer, r)
		return nil
	case e2e.FrameTyping:
		ty, err := e2e.ParseTyping(f.Payload)
		if err != nil {
			return err
		}
		t.ind.receiveTyping(cs, bool(ty))
		return nil
	}
	t.log.Debug("frame ignored", "peer", cs.peer, "type", f.Type)
	return nil
}

// receiveEnvelope opens a sealed message or receipt. The message is
// stored (once, whatever the retries) with the new ratchet state, then
// acknowledged: the receipt means "stored durably".
func (t *sessions) receiveEnvelope(cs *chatSession, env []byte) error {
	res, err := t.rk.open(cs.peer, env)
	switch {
	case errors.Is(err, ratchet.ErrDuplicate):
		t.log.Info("duplicate envelope dropped", "peer", cs.peer)
		return nil
	case errors.Is(err, ratchet.ErrNoSession), errors.Is(err, ratchet.ErrUnknownSession),
		errors.Is(err, ratchet.ErrTooManySkipped), errors.Is(err, ratchet.ErrReplay):
		// The peer sealed for a session we do not have (we lost state, or
		// it predates a seed), or one whose direction cannot go on (a gap
		// beyond MAX_SKIP): start a new one; the peer writes its
		// unacknowledged messages again on it.
		return t.reseedFor(cs, err)
	case errors.Is(err, ErrStrangerFull):
		// Not acknowledged: the sender keeps it, and writes it again.
		t.strangers.tell(cs.peer, err)
		return nil
	case err != nil:
		return t.openFailed(cs, err)
	}
	cs.setSeeding(false) // the peer seals in a session we have
	if res.grp != nil {
		res.grp.live = len(env) // its receipt may be held (receipts_hold.go)
	}
	t.delivered(cs.peer, res, cs)
	return nil
}

// maxLiveOpenFailures bounds the envelopes on one live session that are
// not authentic or not well formed (badEnvelope), or first contacts past
// the sender's bound. TLS carries the peer's bytes intact, so such an
// envelope is the peer's own doing; a peer that writes them without end
// would have each tried under the ratchet keys' lock (a first contact of
// garbage costs a PQXDH) and told to the user. Past the bound the
// session is closed as broken, with one event; the peer's client dials
// again and writes its unacknowledged messages on the new session. What
// an honest peer may send and we cannot open (sealed for a session we
// lost: a reseed; an expired key, a prekey gone) and our own failures
// (the store) are told as before, and do not count.
const maxLiveOpenFailures = 8

// errBadEnvelopes closes a session past maxLiveOpenFailures.
var errBadEnvelopes = errors.New("too many messages that could not be opened")

// openFailed tells the user of an envelope from cs's peer that could not
// be opened, up to maxLiveOpenFailures on cs; past it, the error closes
// cs (readLoop). Only the read loop counts.
func (t *sessions) openFailed(cs *chatSession, err error) error {
	if badEnvelope(err) {
		cs.openFailures++
	}
	if cs.openFailures > maxLiveOpenFailures {
		return fmt.Errorf("%w (%d on this session; the last: %w)", errBadEnvelopes, cs.openFailures, err)
	}
	t.emitError(cs.peer, fmt.Errorf("a message from %s could not be opened and was dropped: %w", identity.ShortID(cs.peer), err))
	return nil
}

// badEnvelope says whether err refused an envelope its sender should
// never have written: forged, tampered, garbage, or a first contact past
// its bound (maxLiveOpenFailures).
func badEnvelope(err error) bool {
	for _, bad := range []error{ratchet.ErrAuth, ratchet.ErrMalformed, ratchet.ErrBadSignature,
		ratchet.ErrIdentityMismatch, ratchet.ErrVersion, e2e.ErrMalformed, errTooManyFirstContacts} {
		if errors.Is(err, bad) {
			return true
		}
	}
	return false
}

// delivered reports what an opened envelope carried and acknowledges a
// message: on the live session cs when there is one, else through the
// sender's mailbox.
func (t *sessions) delivered(p peer.ID, res opened, cs *chatSession) {
	if res.grp != nil {
		t.groupDelivered(p, res.grp, cs)
	}
	if res.text != nil {
		if res.isNew {
			t.reportIncoming(p, res)
		}
		t.mail.sendReceipt(p, res.text.ID, cs)
	}
	if res.receipt != nil && res.changed {
		t.emit(Event{Kind: EventStatus, Message: res.receipt})
	}
	if res.file != nil {
		t.files.arrived(p, res.file)
	}
	t.out.kick(p) // a receipt opens the send window; a first envelope confirms a seed
}

// reportIncoming tells subscribers what a new incoming message did: a
// text arrived, texts changed (an action applied, or actions that waited
// for the text), an action was refused.
func (t *sessions) reportIncoming(p peer.ID, res opened) {
	m := res.text
	if m.Kind == store.KindText {
		// With the actions that waited for it applied (res.rec.Changed),
		// each then reported as a live one is, with the text as it now
		// stands.
		t.emit(Event{Kind: EventMessage, Message: m})
		for i := range res.rec.Applied {
			t.emit(Event{Kind: EventUpdate, Message: m, Action: &res.rec.Applied[i]})
		}
	} else {
		for i := range res.rec.Changed {
			t.emit(Event{Kind: EventUpdate, Message: &res.rec.Changed[i], Action: m})
		}
	}
	if res.rec.Refused != nil {
		what := actionName(m.Kind)
		if m.Kind == store.KindText {
			what = "an edit, deletion or reaction (it waited for the message it names)"
		}
		t.emitError(p, fmt.Errorf("%s sent %s that was refused: %w", identity.ShortID(p), what, res.rec.Refused))
	}
}

// actionName names an action in sentences.
func actionName(k store.Kind) string {
	switch k {
	case store.KindEdit:
		return "an edit"
	case store.KindDelete:
		return "a deletion"
	case store.KindReact:
		return "a reaction"
	}
	return "a message"
}

// reseed starts a new ratchet session over a live session: the TLS client
// asks for a seed, the TLS server offers one. The seed is under way
// until the peer answers (seeds_live.go).
func (t *sessions) reseed(cs *chatSession) {
	cs.setSeeding(true)
	if cs.outgoing {
		if err := cs.s.Send(e2e.FrameRatchetInit, nil); err != nil {
			t.log.Info("ask for a ratchet seed", "peer", cs.peer, "err", err)
		}
		return
	}
	t.offerSeed(cs)
	cs.resetSent()
}

// offerSeed seeds a ratchet session as the TLS server and sends the offer.
func (t *sessions) offerSeed(cs *chatSession) {
	offer, err := t.seedOffer(cs)
	if err != nil {
		t.log.Error("seed a ratchet session", "peer", cs.peer, "err", err)
		return
	}
	if err := cs.s.Send(e2e.FrameRatchetInit, offer); err != nil {
		t.log.Info("send ratchet seed", "peer", cs.peer, "err", err)
	}
}

func (t *sessions) seedOffer(cs *chatSession) ([]byte, error) {
	secret, err := t.exporterSecret(cs)
	if err != nil {
		return nil, err
	}
	return t.rk.seedResponder(cs.peer, secret)
}

// receiveRatchetInit handles a seed request (empty, to the TLS server) or
// a seed offer (to the TLS client).
func (t *sessions) receiveRatchetInit(cs *chatSession, offer []byte) error {
	switch {
	case len(offer) == 0 && !cs.outgoing:
		if err := cs.peerSeed(time.Now()); err != nil {
			return err
		}
		t.reseed(cs)
		return nil
	case len(offer) == 0 || !cs.outgoing:
		return fmt.Errorf("%w: unexpected ratchet-init frame", e2e.ErrMalformed)
	}
	if err := cs.peerSeed(time.Now()); err != nil {
		return err
	}
	cs.setSeeding(false)
	env, err := t.seedAccept(cs, offer)
	if err != nil {
		return fmt.Errorf("ratchet seed: %w", err)
	}
	// The server cannot send until it opens one envelope of ours.
	if err := cs.s.Send(e2e.FrameEnvelope, env); err != nil {
		t.log.Info("confirm ratchet seed", "peer", cs.peer, "err", err)
	}
	cs.resetSent()
	t.out.kick(cs.peer)
	return nil
}

// seedAccept starts a ratchet session as the TLS client from the
// server's offer, and returns the envelope that confirms it.
func (t *sessions) seedAccept(cs *chatSession, offer []byte) ([]byte, error) {
	secret, err := t.exporterSecret(cs)
	if err != nil {
		return nil, err
	}
	return t.rk.seedInitiator(cs.peer, secret, offer)
}
