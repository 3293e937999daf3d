package node

import (
	"container/list"

	"github.com/certchat/certchat/e2e/ratchet"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Strangers' ratchet state is held in memory only until something of
// theirs is kept (docs/PROTOCOL.md §10 "Messages from strangers", §12.8;
// docs/SECURITY.md). Any key may open a live session and ask for a seed,
// or send an empty envelope, a receipt, a chunk or group changes: none of
// that is bounded by the bounds on strangers (they count kept records),
// so the session set it leaves, written to the store and kept in memory,
// let keys made by the thousand grow both without end. A peer we may not
// message whose set is not in the store therefore has its new sets held
// here instead, least recently used first out past maxHeldSets sets or
// maxHeldSetBytes of their encodings; its set is written to the store in the
// transaction that keeps a message of it (or when we seal for it, or once
// it may be messaged: the next commit of its set writes it). A stranger
// whose set was dropped (or lost with a restart) is not cut off: its next
// envelope does not open (ratchet.ErrUnknownSession) and the receiver
// seeds a new session on the live session, on which the sender writes its
// pending messages again (§10 "Seeding the ratchet on a live channel").
//
// 256 sets: four times the strangers that may have messages waiting
// (maxStrangerConversations), so that many newcomers may be between
// their seed and their first kept message at once, a round trip each;
// an attacker who makes keys faster than that can delay a newcomer's
// message (each reseed is answered), not keep it out of the store for
// good once the flood stops. A seeded and confirmed set encodes to about
// 450 bytes, so 256 take about 115 KB; the bytes bound caps what a stranger
// can make a held set grow to (skipped keys, 76 bytes each, up to 2,000
// a session): 4 MiB in all, whatever they send.
const (
	maxHeldSets     = 256
	maxHeldSetBytes = 4 << 20
)

// heldSets is the ratchet keys' strangers' sets that are not in the
// store, least recently used at the front. Guarded by ratchetKeys.mu.
type heldSets struct {
	maxSets, maxBytes int
	bytes             int
	order             list.List // of *heldSet
	by                map[peer.ID]*list.Element
}

type heldSet struct {
	p    peer.ID
	set  *ratchet.SessionSet
	size int // its encoding's length
}

// get returns p's held set, as used now.
func (h *heldSets) get(p peer.ID) (*ratchet.SessionSet, bool) {
	e, ok := h.by[p]
	if !ok {
		return nil, false
	}
	h.order.MoveToBack(e)
	return e.Value.(*heldSet).set, true
}

// has says whether p's set is held (not in the store).
func (h *heldSets) has(p peer.ID) bool {
	_, ok := h.by[p]
	return ok
}

// put holds p's new set, whose encoding is size bytes long, dropping the
// least recently used others past the bounds (never p's).
func (h *heldSets) put(p peer.ID, set *ratchet.SessionSet, size int) {
	if h.by == nil {
		h.by = map[peer.ID]*list.Element{}
	}
	if e, ok := h.by[p]; ok {
		hs := e.Value.(*heldSet)
		h.bytes += size - hs.size
		hs.set, hs.size = set, size
		h.order.MoveToBack(e)
	} else {
		h.by[p] = h.order.PushBack(&heldSet{p: p, set: set, size: size})
		h.bytes += size
	}
	for h.order.Len() > 1 && (h.order.Len() > h.maxSets || h.bytes > h.maxBytes) {
		h.drop(h.order.Front().Value.(*heldSet).p)
	}
}

// drop forgets p's held set (written to the store, or evicted).
func (h *heldSets) drop(p peer.ID) {
	e, ok := h.by[p]
	if !ok {
		return
	}
	h.bytes -= e.Value.(*heldSet).size
	h.order.Remove(e)
	delete(h.by, p)
}

// len is the number of sets held.
func (h *heldSets) len() int { return h.order.Len() }

// holdOnly says whether a new set of p that keeps nothing (a seed, or an
// envelope that leaves no record) stays in memory only: p is a peer we
// may not message whose set is not in the store. Callers hold mu, and
// have called setFor(p).
func (rk *ratchetKeys) holdOnly(p peer.ID) bool {
	if _, stored := rk.sets[p]; stored || rk.mayMessage == nil {
		return false
	}
	return rk.mayMessage(p) != nil
}

// hold takes in p's new set, whose encoding is size bytes long, without
// writing it (holdOnly), and new local keys (nil: unchanged) that the
// caller has written. Callers hold mu.
func (rk *ratchetKeys) hold(p peer.ID, set *ratchet.SessionSet, size int, local *ratchet.LocalKeys) {
	rk.held.put(p, set, size)
	if local != nil {
		rk.local = local
	}
}

// commitSeed commits p's newly seeded set (commitSet), or holds it in
// memory only if p is a stranger whose set is not in the store
// (holdOnly). Callers hold mu.
func (rk *ratchetKeys) commitSeed(p peer.ID, set *ratchet.SessionSet) error {
	if !rk.holdOnly(p) {
		return rk.commitSet(p, set)
	}
	w, err := rk.encode(p, set, nil)
	size := len(w.Set)
	clear(rk.stateBuf)
	if err != nil {
		return err
	}
	rk.hold(p, set, size, nil)
	return nil
}
