package node

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/e2e/ratchet"
	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
)

// Every message goes through the Double Ratchet (e2e/ratchet), live or
// through a relay's mailbox, so both paths share one state. Each
// transmission seals a fresh envelope and commits the new state before the
// envelope leaves; the plaintext is an inner frame (text or receipt) and
// receivers drop duplicates by message ID. A live session with no ratchet
// yet seeds one from its TLS exporter (docs/PROTOCOL.md §11); a peer
// reached only through its mailbox is met with PQXDH from its bundle.

// ratchetKeys holds the ratchet state in memory, backed by the store. One
// lock for all peers: the operations take microseconds.
type ratchetKeys struct {
	mu    sync.Mutex
	local *ratchet.LocalKeys
	sets  map[peer.ID]*ratchet.SessionSet
	// unsent are envelopes sealed for a mailbox whose deposit failed, by
	// peer and message: the next attempt deposits the same envelope, so
	// retries while a relay is away or full do not each cost a message
	// number (a gap the receiver must skip, at most ratchet.MaxSkip).
	unsent map[peer.ID]map[e2e.MessageID][]byte
}

// initRatchet loads the local ratchet keys, creating them on first run.
func (n *Node) initRatchet() error {
	n.rk.sets = map[peer.ID]*ratchet.SessionSet{}
	data, err := n.store.ratchetGet(keyLocal)
	switch {
	case errors.Is(err, errNoRecord):
		k, err := ratchet.NewLocalKeys(n.id.Signer(), []byte(n.id.PeerID()), n.cfg.Now())
		if err != nil {
			return err
		}
		enc, err := k.MarshalBinary()
		if err != nil {
			return err
		}
		if err := n.store.commitRatchet(ratchetWrite{local: enc}); err != nil {
			return err
		}
		n.rk.local = k
		return nil
	case err != nil:
		return err
	}
	k, err := ratchet.UnmarshalLocalKeys(data, n.id.Signer())
	if err != nil {
		return fmt.Errorf("ratchet keys: %w", err)
	}
	n.rk.local = k
	return nil
}

// setFor returns p's session set. Callers hold rk.mu.
func (n *Node) setFor(p peer.ID) (*ratchet.SessionSet, error) {
	if s, ok := n.rk.sets[p]; ok {
		return s, nil
	}
	data, err := n.store.ratchetGet(setKey(p))
	if err == nil {
		s, err := ratchet.UnmarshalSessionSet(data)
		if err != nil {
			return nil, fmt.Errorf("ratchet state with %s: %w", identity.ShortID(p), err)
		}
		n.rk.sets[p] = s
		return s, nil
	}
	if !errors.Is(err, errNoRecord) {
		return nil, err
	}
	key, err := identity.KeyFromPeerID(p)
	if err != nil {
		return nil, err
	}
	s, err := ratchet.NewSessionSet(n.rk.local, []byte(p), key)
	if err != nil {
		return nil, err
	}
	n.rk.sets[p] = s
	return s, nil
}

// commitSet persists p's new set (and local keys) with fn's changes, then
// swaps them in. Callers hold rk.mu.
func (n *Node) commitSet(p peer.ID, set *ratchet.SessionSet, local *ratchet.LocalKeys, fn func(*bolt.Tx) error) error {
	w := ratchetWrite{peer: p, fn: fn}
	var err error
	if w.set, err = set.MarshalBinary(); err != nil {
		return err
	}
	if local != nil {
		if w.local, err = local.MarshalBinary(); err != nil {
			return err
		}
	}
	if err := n.store.commitRatchet(w); err != nil {
		return err
	}
	n.rk.sets[p] = set
	if local != nil {
		n.rk.local = local
	}
	return nil
}

// hasSession reports whether p's set has an active session to send on. A
// session seeded as the TLS server cannot send before it has opened the
// client's first envelope (lost if the connection broke): it does not
// count, so a new session is seeded or initiated instead.
func (n *Node) hasSession(p peer.ID) bool {
	n.rk.mu.Lock()
	defer n.rk.mu.Unlock()
	s, err := n.setFor(p)
	if err != nil {
		return false
	}
	_, _, err = s.Seal(nil, n.cfg.Now()) // functional: s is unchanged
	return err == nil
}

// innerFrame is a ratchet plaintext: one frame, text or receipt. An empty
// plaintext carries nothing (it only confirms a seeded session).
func innerFrame(t e2e.FrameType, payload []byte) ([]byte, error) {
	return e2e.AppendFrame(nil, t, payload)
}

// seal seals a plaintext for p, committing the new state first.
func (n *Node) seal(p peer.ID, plaintext []byte) ([]byte, error) {
	n.rk.mu.Lock()
	defer n.rk.mu.Unlock()
	set, err := n.setFor(p)
	if err != nil {
		return nil, err
	}
	env, next, err := set.Seal(plaintext, n.cfg.Now())
	if err != nil {
		return nil, err
	}
	if err := n.commitSet(p, next, nil, nil); err != nil {
		return nil, err
	}
	return env, nil
}

// sealText seals a stored outgoing message.
func (n *Node) sealText(m Message) ([]byte, error) {
	pt, err := textPlaintext(m)
	if err != nil {
		return nil, err
	}
	return n.seal(m.Peer, pt)
}

// textPlaintext is the ratchet plaintext of a message: its text frame.
func textPlaintext(m Message) ([]byte, error) {
	payload, err := (e2e.Text{ID: m.ID, SentAt: m.SentAt, Stream: m.Stream, Number: m.Number, Body: m.Body}).Marshal()
	if err != nil {
		return nil, err
	}
	return innerFrame(e2e.FrameText, payload)
}

// sealTexts seals plaintexts for p, in order, with one commit of the new
// state for all of them: a batch costs one fsync, and no envelope leaves
// before the commit. If sealing stops early, it returns the envelopes
// sealed so far (committed) and the error; no envelope and the error if
// none could be sealed.
func (n *Node) sealTexts(p peer.ID, pts [][]byte) ([][]byte, error) {
	n.rk.mu.Lock()
	defer n.rk.mu.Unlock()
	set, err := n.setFor(p)
	if err != nil {
		return nil, err
	}
	var envs [][]byte
	var sealErr error
	for _, pt := range pts {
		env, next, err := set.Seal(pt, n.cfg.Now())
		if err != nil {
			sealErr = err
			break
		}
		envs, set = append(envs, env), next
	}
	if len(envs) == 0 {
		return nil, sealErr
	}
	if err := n.commitSet(p, set, nil, nil); err != nil {
		return nil, err
	}
	return envs, sealErr
}

// sealReceipt seals a receipt for a message p sent.
func (n *Node) sealReceipt(p peer.ID, id e2e.MessageID) ([]byte, error) {
	pt, err := innerFrame(e2e.FrameReceipt, e2e.Receipt{ID: id, Status: e2e.ReceiptStored}.Marshal())
	if err != nil {
		return nil, err
	}
	return n.seal(p, pt)
}

// opened is what an envelope carried.
type opened struct {
	text    *Message // a new or repeated incoming message
	isNew   bool
	receipt *Message // the outgoing message a receipt acknowledged
	changed bool     // the receipt changed its status
	info    ratchet.Info
}

// open opens an envelope from p. The new ratchet state and the message or
// receipt it carried are committed together; on any failure nothing
// changes. The plaintext must be empty or exactly one text or receipt frame.
func (n *Node) open(p peer.ID, env []byte) (opened, error) {
	n.rk.mu.Lock()
	defer n.rk.mu.Unlock()
	set, err := n.setFor(p)
	if err != nil {
		return opened{}, err
	}
	o, err := set.Open(n.rk.local, env, n.cfg.Now())
	if err != nil {
		return opened{}, err
	}
	res := opened{info: o.Info}
	fn, err := n.applyInner(p, o.Plaintext, &res)
	if err != nil {
		return opened{}, err
	}
	if err := n.commitSet(p, o.Set, o.Keys, fn); err != nil {
		return opened{}, err
	}
	return res, nil
}

// applyInner parses a plaintext and returns the store change it asks for.
func (n *Node) applyInner(p peer.ID, pt []byte, res *opened) (func(*bolt.Tx) error, error) {
	if len(pt) == 0 {
		return nil, nil
	}
	r := bytes.NewReader(pt)
	f, err := e2e.ReadFrame(r)
	if err != nil || r.Len() != 0 {
		return nil, fmt.Errorf("%w: sealed plaintext is not one frame", e2e.ErrMalformed)
	}
	now := n.cfg.Now()
	switch f.Type {
	case e2e.FrameText:
		t, err := e2e.ParseText(f.Payload)
		if err != nil {
			return nil, err
		}
		m := &Message{ID: t.ID, Peer: p, SentAt: t.SentAt, StoredAt: now, Body: t.Body, Stream: t.Stream, Number: t.Number}
		res.text = m
		return func(tx *bolt.Tx) error {
			var err error
			res.isNew, err = n.store.addIncomingTx(tx, m)
			return err
		}, nil
	case e2e.FrameReceipt:
		rc, err := e2e.ParseReceipt(f.Payload)
		if err != nil {
			return nil, err
		}
		return func(tx *bolt.Tx) error {
			m, changed, err := n.store.setStatusTx(tx, rc.ID, p, StatusDelivered, "", now)
			if err != nil {
				return nil // a receipt for a message we do not have: ignore it
			}
			res.receipt, res.changed = &m, changed
			return nil
		}, nil
	}
	return nil, fmt.Errorf("%w: sealed frame of type %s", e2e.ErrUnknownFrame, f.Type)
}

// seedResponder starts a ratchet session as the TLS server of a live
// session and returns the offer to send.
func (n *Node) seedResponder(cs *chatSession) ([]byte, error) {
	secret, err := exporterSecret(cs, n.id.PeerID())
	if err != nil {
		return nil, err
	}
	n.rk.mu.Lock()
	defer n.rk.mu.Unlock()
	set, err := n.setFor(cs.peer)
	if err != nil {
		return nil, err
	}
	offer, next, err := set.SeedResponder(secret, n.cfg.Now())
	if err != nil {
		return nil, err
	}
	return offer, n.commitSet(cs.peer, next, nil, nil)
}

// seedInitiator starts a ratchet session as the TLS client from the
// server's offer.
func (n *Node) seedInitiator(cs *chatSession, offer []byte) error {
	secret, err := exporterSecret(cs, n.id.PeerID())
	if err != nil {
		return err
	}
	n.rk.mu.Lock()
	defer n.rk.mu.Unlock()
	set, err := n.setFor(cs.peer)
	if err != nil {
		return err
	}
	next, err := set.SeedInitiator(secret, offer, n.cfg.Now())
	if err != nil {
		return err
	}
	return n.commitSet(cs.peer, next, nil, nil)
}

func exporterSecret(cs *chatSession, self peer.ID) ([]byte, error) {
	return cs.s.ExportKeyingMaterial(ratchet.ExporterLabel, ratchet.ExporterContext([]byte(self), []byte(cs.peer)), 32)
}

// initiate starts a ratchet session with p from its prekey bundle (PQXDH).
// A bundle whose signatures do not verify is refused: nothing is sent.
func (n *Node) initiate(p peer.ID, bundle []byte) error {
	b, err := ratchet.ParseBundle(bundle)
	if err != nil {
		return err
	}
	n.rk.mu.Lock()
	defer n.rk.mu.Unlock()
	set, err := n.setFor(p)
	if err != nil {
		return err
	}
	next, err := set.InitiateFromBundle(n.rk.local, b, n.cfg.Now())
	if err != nil {
		return err
	}
	return n.commitSet(p, next, nil, nil)
}

// newPrekeys makes count one-time prekeys of each kind and returns the
// publish request that uploads them with the current bundle.
func (n *Node) newPrekeys(count int) (ratchetPublish, error) {
	n.rk.mu.Lock()
	defer n.rk.mu.Unlock()
	local := n.rk.local
	now := n.cfg.Now()
	if local.NeedsRotation(now) {
		var err error
		if local, err = local.RotateSignedPrekeys(now); err != nil {
			return ratchetPublish{}, err
		}
	}
	oldEC, oldKEM := local.OneTimePrekeys()
	if count > 0 {
		var err error
		if local, err = local.GenerateOneTimePrekeys(count, now); err != nil {
			return ratchetPublish{}, err
		}
	}
	if local != n.rk.local {
		enc, err := local.MarshalBinary()
		if err != nil {
			return ratchetPublish{}, err
		}
		if err := n.store.commitRatchet(ratchetWrite{local: enc}); err != nil {
			return ratchetPublish{}, err
		}
		n.rk.local = local
	}
	ec, kem := local.OneTimePrekeys()
	return ratchetPublish{base: local.Bundle(), ec: newOnes(oldEC, ec), kem: newOnes(oldKEM, kem)}, nil
}

// ratchetPublish is a bundle and fresh one-time prekeys to upload.
type ratchetPublish struct {
	base    *ratchet.Bundle
	ec, kem []ratchet.Prekey
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
