package node

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/e2e/ratchet"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Every message goes through the Double Ratchet (e2e/ratchet), live or
// through a relay's mailbox, so both paths share one state. Each
// transmission seals a fresh envelope; the new state is committed before
// the envelope leaves when the seal took a new sending lease (about one
// seal in ratchet.SendLease, docs/PROTOCOL.md §12.12.1), and otherwise
// only kept in memory: the committed state already covers its key. The
// plaintext is an inner frame (text or receipt) and
// receivers drop duplicates by message ID. A live session with no ratchet
// yet seeds one from its TLS exporter (docs/PROTOCOL.md §12.8); a peer
// reached only through its mailbox is met with PQXDH from its bundle
// (§12.6).

// ratchetKeys owns the ratchet state in memory, backed by the store: the
// local keys, each peer's session set, envelopes sealed for a mailbox and
// not yet deposited, and the first contacts of each peer. mu guards
// local, sets, held, unsent, firstContacts, stateBuf and copies, and is held across the
// store commit of a new state, so states are committed in the order they
// are made; it is taken by the read loops, the outbox workers and the
// mailbox loops. One lock for all peers: each operation takes microseconds, plus
// an fsync when it commits.
type ratchetKeys struct {
	store  *store.Store
	log    *slog.Logger
	signer ed25519.PrivateKey
	self   peer.ID
	now    func() time.Time

	mu    sync.Mutex
	local *ratchet.LocalKeys
	// sets are the session sets in the store (read once), and the new
	// empty ones of peers we may message.
	sets map[peer.ID]*ratchet.SessionSet
	// held are strangers' sets that are not in the store (ratchet_held.go):
	// in memory only, bounded, until something of theirs is kept.
	held heldSets
	// unsent are envelopes sealed for a mailbox whose deposit failed, by
	// peer and message: the next attempt deposits the same envelope, so
	// retries while a relay is away or full do not each cost a message
	// number (a gap the receiver must skip, at most ratchet.MaxSkip).
	unsent map[peer.ID]map[e2e.MessageID][]byte
	// firstContacts counts the first contacts (new PQXDH sessions)
	// accepted from each peer in the current day (firstContactLimits).
	firstContacts map[peer.ID]firstContactCount
	// groupOK says whether a peer may post to a group (groups.mayPost).
	groupOK func(peer.ID, store.GroupID) error
	// keepOK and groupKeepOK say whether a private message from a peer,
	// or a message in a group, may be kept now (strangers.keep and
	// keepInGroup: peers we may not message are bounded).
	keepOK      func(peer.ID) error
	groupKeepOK func(store.GroupID) error
	// mayMessage says whether we may message a peer (peerBook.mayMessage):
	// the sets of those we may not are held in memory until something of
	// theirs is kept (holdOnly).
	mayMessage func(peer.ID) error
	// stateBuf is where encode puts each new session set before the
	// store seals it; all zeros between uses.
	stateBuf []byte
	// copies is storeGroupSealed's list of members' copies, reused from
	// message to message; empty (and cleared) between uses.
	copies []groupCopy
	// setsWritten counts the session sets written by sealing and seeding
	// (commitSet, storeGroupSealed): what the sending lease saves, for
	// tests and benchmarks.
	setsWritten uint64
}

type firstContactCount struct {
	n     int
	since time.Time
}

// A peer may start at most maxFirstContacts new sessions by first contact
// (PQXDH) a day: each one fills an entry of the signed prekey's replay
// record (ratchet.MaxSeenBaseKeys), which must hold it as long as the
// prekey is accepted, so one identity sending thousands of empty first
// contacts would otherwise fill it and make everyone's first contacts
// fail until the prekey rotates. Counts are kept in memory for at most
// maxFirstContactPeers peers (a restart forgets them: a sender gains at
// most maxFirstContacts more per restart). Together with rotating early
// (needsRotation), only many identities can fill a record, and then the
// node publishes a new signed prekey first.
const (
	maxFirstContacts     = 8
	firstContactWindow   = 24 * time.Hour
	maxFirstContactPeers = 4096
)

// errTooManyFirstContacts refuses a first contact past maxFirstContacts.
var errTooManyFirstContacts = fmt.Errorf("too many new sessions from this peer today (at most %d)", maxFirstContacts)

// loadRatchetKeys loads the local ratchet keys, creating them on first run.
func loadRatchetKeys(st *store.Store, log *slog.Logger, id *identity.Identity, now func() time.Time) (*ratchetKeys, error) {
	rk := &ratchetKeys{store: st, log: log, signer: id.Signer(), self: id.PeerID(), now: now,
		sets: map[peer.ID]*ratchet.SessionSet{}, held: heldSets{maxSets: maxHeldSets, maxBytes: maxHeldSetBytes},
		unsent: map[peer.ID]map[e2e.MessageID][]byte{}}
	data, err := st.Ratchets().LocalKeys()
	if errors.Is(err, store.ErrNotFound) {
		k, err := ratchet.NewLocalKeys(rk.signer, []byte(rk.self), now())
		if err != nil {
			return nil, err
		}
		return rk, rk.commitLocal(k)
	}
	if err != nil {
		return nil, err
	}
	if rk.local, err = ratchet.UnmarshalLocalKeys(data, rk.signer); err != nil {
		return nil, fmt.Errorf("ratchet keys: %w", err)
	}
	return rk, nil
}

// commitLocal persists new local keys, then swaps them in. Callers hold
// mu, or own rk alone.
func (rk *ratchetKeys) commitLocal(k *ratchet.LocalKeys) error {
	enc, err := k.MarshalBinary()
	if err != nil {
		return err
	}
	if err := rk.store.Ratchets().SaveRatchet(store.Ratchet{Local: enc}); err != nil {
		return err
	}
	rk.local = k
	return nil
}

// setFor returns p's session set: the one in memory, else the stored one,
// else a new empty one (kept in memory only for a peer we may message: a
// stranger's is made again at each use until it holds a session, so keys
// whose envelopes never open leave nothing). Callers hold mu.
func (rk *ratchetKeys) setFor(p peer.ID) (*ratchet.SessionSet, error) {
	if s, ok := rk.sets[p]; ok {
		return s, nil
	}
	if s, ok := rk.held.get(p); ok {
		return s, nil
	}
	data, err := rk.store.Ratchets().SessionSet(p)
	if err == nil {
		s, err := ratchet.UnmarshalSessionSet(data)
		if err != nil {
			return nil, fmt.Errorf("ratchet state with %s: %w", identity.ShortID(p), err)
		}
		rk.sets[p] = s
		return s, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	key, err := identity.KeyFromPeerID(p)
	if err != nil {
		return nil, err
	}
	s, err := ratchet.NewSessionSet(rk.local, []byte(p), key)
	if err != nil {
		return nil, err
	}
	if !rk.holdOnly(p) {
		rk.sets[p] = s
	}
	return s, nil
}

// encode is the store record of p's new set and local keys (nil:
// unchanged). The set is encoded into rk.stateBuf, which the store seals
// a copy of at once (store.Ratchets' writes): the caller erases it
// (clear(rk.stateBuf)) once the record is written, since it holds every
// secret of the set, and the next set reuses it rather than leaving one
// to the collector. Callers hold mu.
func (rk *ratchetKeys) encode(p peer.ID, set *ratchet.SessionSet, local *ratchet.LocalKeys) (store.Ratchet, error) {
	w := store.Ratchet{Peer: p}
	var err error
	if rk.stateBuf, err = set.AppendBinary(rk.stateBuf[:0]); err != nil {
		return w, err
	}
	w.Set = rk.stateBuf
	if local != nil {
		w.Local, err = local.MarshalBinary()
	}
	return w, err
}

// swap takes in a committed state (a set held in memory until now is in
// the store). Callers hold mu.
func (rk *ratchetKeys) swap(p peer.ID, set *ratchet.SessionSet, local *ratchet.LocalKeys) {
	rk.sets[p] = set
	rk.held.drop(p)
	if local != nil {
		rk.local = local
	}
}

// commitSet persists p's new set, then swaps it in. Callers hold mu.
func (rk *ratchetKeys) commitSet(p peer.ID, set *ratchet.SessionSet) error {
	w, err := rk.encode(p, set, nil)
	defer clear(rk.stateBuf)
	if err != nil {
		return err
	}
	if err := rk.store.Ratchets().SaveRatchet(w); err != nil {
		return err
	}
	rk.setsWritten++
	rk.swap(p, set, nil)
	return nil
}

// hasSession reports whether p's set has an active session to send on. A
// session seeded as the TLS server cannot send before it has opened the
// client's first envelope (lost if the connection broke): it does not
// count, so a new session is seeded or initiated instead.
func (rk *ratchetKeys) hasSession(p peer.ID) bool {
	rk.mu.Lock()
	defer rk.mu.Unlock()
	s, err := rk.setFor(p)
	if err != nil {
		return false
	}
	_, _, err = s.Seal(nil, rk.now()) // functional: s is unchanged
	return err == nil
}

// innerFrame is a ratchet plaintext: one frame, text, message or receipt. An empty
// plaintext carries nothing (it only confirms a seeded session).
func innerFrame(t e2e.FrameType, payload []byte) ([]byte, error) {
	return e2e.AppendFrame(nil, t, payload)
}

// textPlaintext is the ratchet plaintext of a message: a plain text is a
// text frame, which every version reads; a reply, an edit, a deletion or
// a reaction is a message frame (docs/PROTOCOL.md §7).
func textPlaintext(m store.Message) ([]byte, error) {
	if m.Group != (store.GroupID{}) {
		return groupPlaintext(m)
	}
	if m.Kind == store.KindText && m.ReplyTo == (e2e.MessageID{}) {
		payload, err := (e2e.Text{ID: m.ID, SentAt: m.SentAt, Stream: m.Stream, Number: m.Number, Body: m.Body}).Marshal()
		if err != nil {
			return nil, err
		}
		return innerFrame(e2e.FrameText, payload)
	}
	w := e2e.Message{ID: m.ID, SentAt: m.SentAt, Stream: m.Stream, Number: m.Number, Body: m.Body, ReplyTo: m.ReplyTo}
	switch m.Kind {
	case store.KindEdit:
		w.EditOf = m.Target
	case store.KindDelete:
		w.DeleteOf, w.Body = m.Target, ""
	case store.KindReact:
		w.ReactTo, w.Emoji, w.Body = m.Target, m.Emoji, ""
	}
	payload, err := w.Marshal()
	if err != nil {
		return nil, err
	}
	return innerFrame(e2e.FrameMessage, payload)
}

// fromWire is the store form of a received message frame.
func fromWire(w e2e.Message, p peer.ID, now time.Time) *store.Message {
	m := &store.Message{ID: w.ID, Peer: p, SentAt: w.SentAt, StoredAt: now, Body: w.Body, Stream: w.Stream, Number: w.Number,
		ReplyTo: w.ReplyTo, Target: w.Target()}
	switch w.Kind() {
	case e2e.KindEdit:
		m.Kind = store.KindEdit
	case e2e.KindDelete:
		m.Kind = store.KindDelete
	case e2e.KindReact:
		m.Kind, m.Emoji = store.KindReact, w.Emoji
	}
	return m
}

// seal seals a plaintext for p, committing the new state first when the
// seal took a new lease (sealAll).
func (rk *ratchetKeys) seal(p peer.ID, plaintext []byte) ([]byte, error) {
	envs, err := rk.sealAll(p, [][]byte{plaintext})
	if err != nil {
		return nil, err
	}
	return envs[0], nil
}

// sealText seals a stored outgoing message.
func (rk *ratchetKeys) sealText(m store.Message) ([]byte, error) {
	pt, err := rk.plaintext(m)
	if err != nil {
		return nil, err
	}
	return rk.seal(m.Peer, pt)
}

// sealReceipt seals a receipt for a message p sent.
func (rk *ratchetKeys) sealReceipt(p peer.ID, id e2e.MessageID) ([]byte, error) {
	pt, err := innerFrame(e2e.FrameReceipt, e2e.Receipt{ID: id, Status: e2e.ReceiptStored}.Marshal())
	if err != nil {
		return nil, err
	}
	return rk.seal(p, pt)
}

// sealAll seals plaintexts for p, in order, committing the new state once
// for all of them when a seal took a new sending lease (ratchet.SealLeased:
// the first seal on a chain, then about one in ratchet.SendLease); the
// others only swap the new state in. Invariant: a state is committed
// before any envelope under a key past the committed lease leaves, so a
// restart never seals a key again. If sealing stops early, it returns the
// envelopes sealed so far (their state committed when needed) and the
// error; no envelope and the error if none could be sealed.
func (rk *ratchetKeys) sealAll(p peer.ID, pts [][]byte) ([][]byte, error) {
	rk.mu.Lock()
	defer rk.mu.Unlock()
	set, err := rk.setFor(p)
	if err != nil {
		return nil, err
	}
	var envs [][]byte
	var sealErr error
	commit := false
	for _, pt := range pts {
		env, next, c, err := set.SealLeased(pt, rk.now())
		if err != nil {
			sealErr = err
			break
		}
		envs, set, commit = append(envs, env), next, commit || c
	}
	if len(envs) == 0 {
		return nil, sealErr
	}
	// A set held in memory (a stranger's) is written once we seal for
	// its peer: what we send it is kept.
	if !commit && !rk.held.has(p) {
		rk.swap(p, set, nil)
		return envs, sealErr
	}
	if err := rk.commitSet(p, set); err != nil {
		return nil, err
	}
	return envs, sealErr
}

// opened is what an envelope carried.
type opened struct {
	text    *store.Message // a new or repeated incoming message (or edit, deletion, reaction)
	isNew   bool
	rec     store.Received // what storing it did
	receipt *store.Message // the outgoing message a receipt acknowledged
	changed bool           // the receipt changed its status
	info    ratchet.Info
	file    *fileArrival // a file offer, control or chunk (fileframes.go)
	grp     *groupOpened // a group message or group changes (groups_recv.go)
	// hold: the sender's set may stay in memory only (holdOnly): what
	// keeps nothing leaves it unwritten, and says so in unsaved.
	hold, unsaved bool
}

// open opens an envelope from p. The new ratchet state and the message or
// receipt it carried are committed together; on any failure nothing
// changes. The plaintext must be empty or exactly one text or receipt frame.
func (rk *ratchetKeys) open(p peer.ID, env []byte) (opened, error) {
	rk.mu.Lock()
	defer rk.mu.Unlock()
	set, err := rk.setFor(p)
	if err != nil {
		return opened{}, err
	}
	if rk.firstContactRefused(p, set, env) {
		return opened{}, errTooManyFirstContacts
	}
	o, err := set.Open(rk.local, env, rk.now())
	if err != nil {
		return opened{}, err
	}
	if o.Info.FirstContact && !rk.firstContactAllowed(p) {
		return opened{}, errTooManyFirstContacts // nothing committed: the base key is not recorded
	}
	f, err := innerOf(o.Plaintext)
	if err != nil {
		return opened{}, err
	}
	w, err := rk.encode(p, o.Set, o.Keys)
	defer clear(rk.stateBuf)
	if err != nil {
		return opened{}, err
	}
	res := opened{info: o.Info, hold: rk.holdOnly(p)}
	if err := rk.commitInner(p, w, f, &res); err != nil {
		return opened{}, err
	}
	if res.unsaved {
		rk.hold(p, o.Set, len(w.Set), o.Keys)
	} else {
		rk.swap(p, o.Set, o.Keys)
	}
	if o.Info.FirstContact {
		rk.countFirstContact(p)
	}
	return res, nil
}

// firstContactRefused reports whether env is a first contact (an initial
// envelope for a session set does not hold) from a peer past its
// first contacts today, from the envelope's header alone: a flood past
// the bound then costs a look-up under mu, which every peer's messages
// wait on, not a PQXDH and a signature check each. What the header
// claims proves nothing, and needs to: a forged one is refused here only
// when the peer's own are, and one that passes is checked by Open in
// full. Called with mu held.
func (rk *ratchetKeys) firstContactRefused(p peer.ID, set *ratchet.SessionSet, env []byte) bool {
	if rk.firstContactAllowed(p) {
		return false
	}
	id, initial, err := ratchet.PeekSessionID(env)
	return err == nil && initial && !slices.Contains(set.Sessions(), id)
}

// firstContactAllowed reports whether p may start another session by
// first contact today. Called with mu held.
func (rk *ratchetKeys) firstContactAllowed(p peer.ID) bool {
	c, ok := rk.firstContacts[p]
	return !ok || rk.now().Sub(c.since) >= firstContactWindow || c.n < maxFirstContacts
}

// countFirstContact counts a first contact accepted from p, forgetting
// old counts when there are many. Called with mu held.
func (rk *ratchetKeys) countFirstContact(p peer.ID) {
	now := rk.now()
	if rk.firstContacts == nil {
		rk.firstContacts = map[peer.ID]firstContactCount{}
	}
	if _, ok := rk.firstContacts[p]; !ok && len(rk.firstContacts) >= maxFirstContactPeers {
		for q, c := range rk.firstContacts {
			if now.Sub(c.since) >= firstContactWindow {
				delete(rk.firstContacts, q)
			}
		}
		for q := range rk.firstContacts { // still full: forget one at random
			if len(rk.firstContacts) < maxFirstContactPeers {
				break
			}
			delete(rk.firstContacts, q)
		}
	}
	c := rk.firstContacts[p]
	if now.Sub(c.since) >= firstContactWindow {
		c = firstContactCount{since: now}
	}
	c.n++
	rk.firstContacts[p] = c
}

// needsRotation reports whether the signed prekey should be replaced now
// (by age, or because its replay record is filling up).
func (rk *ratchetKeys) needsRotation() bool {
	rk.mu.Lock()
	defer rk.mu.Unlock()
	return rk.local.NeedsRotation(rk.now())
}

// innerOf parses a ratchet plaintext: nil for an empty one.
func innerOf(pt []byte) (*e2e.Frame, error) {
	if len(pt) == 0 {
		return nil, nil
	}
	r := bytes.NewReader(pt)
	f, err := e2e.ReadFrame(r)
	if err != nil || r.Len() != 0 {
		return nil, fmt.Errorf("%w: sealed plaintext is not one frame", e2e.ErrMalformed)
	}
	if f.Type != e2e.FrameText && f.Type != e2e.FrameMessage && f.Type != e2e.FrameReceipt && !isFileFrame(f.Type) && f.Type != e2e.FrameGroupChange && f.Type != e2e.FrameGroupWant {
		return nil, fmt.Errorf("%w: sealed frame of type %s", e2e.ErrUnknownFrame, f.Type)
	}
	return &f, nil
}

// commitInner commits the new state w with what the frame f asks of the
// store, in one transaction. A receipt naming a record that cannot be
// read is passed over with a warning (the state still moves on: the
// envelope was opened); any other store error changes nothing.
func (rk *ratchetKeys) commitInner(p peer.ID, w store.Ratchet, f *e2e.Frame, res *opened) error {
	now := rk.now()
	switch {
	case f == nil:
		return rk.saveState(w, res)
	case isFileFrame(f.Type):
		return rk.commitFile(p, w, f, res)
	case f.Type == e2e.FrameText:
		t, err := e2e.ParseText(f.Payload)
		if err != nil {
			return err
		}
		if err := rk.mayKeep(p); err != nil {
			return err
		}
		m := &store.Message{ID: t.ID, Peer: p, SentAt: t.SentAt, StoredAt: now, Body: t.Body, Stream: t.Stream, Number: t.Number}
		res.text = m
		res.rec, err = rk.store.Ratchets().SaveRatchetWithIncoming(w, m, now)
		res.isNew = res.rec.New
		return err
	case f.Type == e2e.FrameGroupChange:
		return rk.commitGroupChanges(p, w, f, res)
	case f.Type == e2e.FrameGroupWant:
		return rk.commitGroupWant(w, f, res)
	case f.Type == e2e.FrameMessage:
		wm, err := e2e.ParseMessage(f.Payload)
		if err != nil {
			return err
		}
		if wm.Group != (store.GroupID{}) {
			return rk.commitGroupMessage(p, w, wm, res)
		}
		if err := rk.mayKeep(p); err != nil {
			return err
		}
		m := fromWire(wm, p, now)
		res.text = m
		res.rec, err = rk.store.Ratchets().SaveRatchetWithIncoming(w, m, now)
		res.isNew = res.rec.New
		return err
	}
	rc, err := e2e.ParseReceipt(f.Payload)
	if err != nil {
		return err
	}
	if res.hold {
		// We sealed nothing for it (its set would be stored): the
		// receipt keeps nothing.
		w.Set, res.unsaved = nil, true
	}
	m, changed, err := rk.store.Ratchets().SaveRatchetWithReceipt(w, rc.ID, p, now)
	var bad *store.CorruptError
	if errors.As(err, &bad) {
		rk.log.Warn("a receipt names a message that cannot be read; passed over", "peer", p, "err", err)
		return rk.saveState(w, res)
	}
	if err == nil && m.ID == rc.ID {
		res.receipt, res.changed = &m, changed
	}
	return err
}

// saveState commits the new state w of an envelope that keeps nothing
// (an empty one, a receipt, a chunk, group changes, a group message
// refused or held): a stranger's set not in the store stays in memory
// (res.hold; only new local keys are written, as a first contact's
// replay record must be). Called with mu held.
func (rk *ratchetKeys) saveState(w store.Ratchet, res *opened) error {
	if res.hold {
		w.Set, res.unsaved = nil, true
		if w.Local == nil {
			return nil
		}
	}
	return rk.store.Ratchets().SaveRatchet(w)
}

// mayKeep says whether a private message from p may be kept
// (ErrStrangerFull: it is neither stored nor acknowledged, and the state
// does not move). Called with mu held.
func (rk *ratchetKeys) mayKeep(p peer.ID) error {
	if rk.keepOK == nil {
		return nil
	}
	return rk.keepOK(p)
}

// seedResponder starts a ratchet session as the TLS server of a live
// session, from the exporter secret, and returns the offer to send.
func (rk *ratchetKeys) seedResponder(p peer.ID, secret []byte) ([]byte, error) {
	rk.mu.Lock()
	defer rk.mu.Unlock()
	set, err := rk.setFor(p)
	if err != nil {
		return nil, err
	}
	offer, next, err := set.SeedResponder(secret, rk.now())
	if err != nil {
		return nil, err
	}
	return offer, rk.commitSeed(p, next)
}

// seedInitiator starts a ratchet session as the TLS client from the
// server's offer, and returns the empty envelope that confirms it (the
// server cannot send until it opens one of ours), sealed on the new
// session, whichever is active, in one step and one commit (PROTOCOL
// §12.8). When two live sessions cross, the active one may be our own
// offer on the other, with no sending chain yet: sealed on it, the
// confirmation failed ("ratchet: no sending session") and the session was
// closed.
func (rk *ratchetKeys) seedInitiator(p peer.ID, secret, offer []byte) ([]byte, error) {
	rk.mu.Lock()
	defer rk.mu.Unlock()
	set, err := rk.setFor(p)
	if err != nil {
		return nil, err
	}
	confirm, next, err := set.SeedInitiator(secret, offer, rk.now())
	if err != nil {
		return nil, err
	}
	return confirm, rk.commitSeed(p, next)
}

// initiate starts a ratchet session with p from its prekey bundle (PQXDH).
// A bundle whose signatures do not verify is refused: nothing is sent.
func (rk *ratchetKeys) initiate(p peer.ID, bundle []byte) error {
	b, err := ratchet.ParseBundle(bundle)
	if err != nil {
		return err
	}
	rk.mu.Lock()
	defer rk.mu.Unlock()
	set, err := rk.setFor(p)
	if err != nil {
		return err
	}
	next, err := set.InitiateFromBundle(rk.local, b, rk.now())
	if err != nil {
		return err
	}
	return rk.commitSet(p, next)
}

// ratchetPublish is a bundle and fresh one-time prekeys to upload.
type ratchetPublish struct {
	base    *ratchet.Bundle
	ec, kem []ratchet.Prekey
}

// newPrekeys makes count one-time prekeys of each kind (rotating the
// signed prekeys when due) and returns what to upload with the bundle.
func (rk *ratchetKeys) newPrekeys(count int) (ratchetPublish, error) {
	rk.mu.Lock()
	defer rk.mu.Unlock()
	local := rk.local
	now := rk.now()
	var err error
	if local.NeedsRotation(now) {
		if local, err = local.RotateSignedPrekeys(now); err != nil {
			return ratchetPublish{}, err
		}
	}
	oldEC, oldKEM := local.OneTimePrekeys()
	if count > 0 {
		if local, err = local.GenerateOneTimePrekeys(count, now); err != nil {
			return ratchetPublish{}, err
		}
	}
	if local != rk.local {
		if err := rk.commitLocal(local); err != nil {
			return ratchetPublish{}, err
		}
	}
	ec, kem := local.OneTimePrekeys()
	return ratchetPublish{base: local.Bundle(), ec: newOnes(oldEC, ec), kem: newOnes(oldKEM, kem)}, nil
}

func newOnes(old, all []ratchet.Prekey) []ratchet.Prekey {
	var out []ratchet.Prekey
	for _, k := range all {
		if !slices.ContainsFunc(old, func(o ratchet.Prekey) bool { return o.ID == k.ID }) {
			out = append(out, k)
		}
	}
	return out
}

// mailboxEnvelope is the envelope to deposit for m: the one sealed for an
// earlier attempt that failed, else a new one (kept until deposited).
func (rk *ratchetKeys) mailboxEnvelope(m store.Message) ([]byte, error) {
	rk.mu.Lock()
	env, ok := rk.unsent[m.Peer][m.ID]
	rk.mu.Unlock()
	if ok {
		return env, nil
	}
	env, err := rk.sealText(m)
	if err != nil {
		return nil, err
	}
	rk.mu.Lock()
	defer rk.mu.Unlock()
	if rk.unsent[m.Peer] == nil {
		rk.unsent[m.Peer] = map[e2e.MessageID][]byte{}
	}
	rk.unsent[m.Peer][m.ID] = env
	return env, nil
}

// deposited forgets the kept envelope of a message now at a relay.
func (rk *ratchetKeys) deposited(p peer.ID, id e2e.MessageID) {
	rk.mu.Lock()
	defer rk.mu.Unlock()
	delete(rk.unsent[p], id)
}

// keepUnsent forgets the undeposited envelopes for p of messages that are
// no longer waiting to be deposited (delivered live meanwhile, or failed).
func (rk *ratchetKeys) keepUnsent(p peer.ID, pending []store.Message) {
	rk.mu.Lock()
	defer rk.mu.Unlock()
	for id := range rk.unsent[p] {
		if indexOf(pending, id) < 0 {
			delete(rk.unsent[p], id)
		}
	}
}
