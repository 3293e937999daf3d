package node

import (
	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/e2e/ratchet"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// One durable write per group message. Sealing each member's copy in its
// outbox worker would commit each member's ratchet state on its own: one
// fsync per member, serialized on the ratchet lock. Instead the copies
// for every member with a session are sealed when the message is stored,
// and the new states that must be committed are written in the
// transaction that stores it: those whose seal took a new sending lease
// (ratchet.SealLeased), every member's about once in ratchet.SendLease
// messages; the others are swapped in memory only, since the committed
// state already covers their keys. Invariant: a state is committed before
// any envelope under a key past its committed lease leaves. The envelopes
// wait in memory (unsent, as a mailbox envelope whose deposit failed
// does) for the member's worker, which writes them on the live session or
// deposits them at the relay. After a crash before they left, the worker
// seals the copies again: the receiver skips the lost keys.

// storeGroupSealed stores m for members and seals its copies, in one
// write; members without a session are sealed later by their workers.
// Each new state that must be committed (a new lease) is encoded into
// rk.stateBuf, sealed into the transaction and erased before the next: one
// buffer, reused from message to message, and no copy of a state left
// behind for the collector. The list of copies is reused too (rk.copies),
// cleared after.
func (rk *ratchetKeys) storeGroupSealed(m *store.GroupMessage, members []peer.ID) error {
	rk.mu.Lock()
	defer rk.mu.Unlock()
	copies := rk.copies[:0]
	defer func() { clear(copies); rk.copies = copies[:0] }()
	for _, p := range members {
		if s, err := rk.setFor(p); err == nil {
			copies = append(copies, groupCopy{p: p, set: s})
		}
	}
	written := 0
	err := rk.store.Groups().AddGroupOutgoingSealed(m, members, func(m *store.GroupMessage, put func(store.Ratchet) error) error {
		pt, err := groupPlaintext(m.AsMessage())
		if err != nil {
			return err
		}
		now := rk.now()
		for i := range copies {
			c := &copies[i]
			c.next, c.env = nil, nil
			env, next, commit, err := c.set.SealLeased(pt, now)
			if err != nil {
				continue // no session to send on: the worker seals it
			}
			if !commit && !rk.held.has(c.p) { // within the committed lease: nothing to write
				// (a stranger's set held in memory is written: what we
				// send it is kept)
				c.next, c.env = next, env
				continue
			}
			w, err := rk.encode(c.p, next, nil)
			if err == nil {
				err = put(w)
			}
			clear(rk.stateBuf)
			if err != nil {
				return err
			}
			written++
			c.next, c.env = next, env
		}
		return nil
	})
	if err != nil {
		return err
	}
	rk.setsWritten += uint64(written)
	for _, c := range copies {
		if c.next == nil {
			continue
		}
		rk.swap(c.p, c.next, nil)
		if rk.unsent[c.p] == nil {
			rk.unsent[c.p] = map[e2e.MessageID][]byte{}
		}
		rk.unsent[c.p][m.ID] = c.env
	}
	return nil
}

// groupCopy is a member's copy of a group message in storeGroupSealed.
type groupCopy struct {
	p    peer.ID
	set  *ratchet.SessionSet // loaded before the transaction
	next *ratchet.SessionSet // nil: not sealed (no session)
	env  []byte
}

// sealBatch seals msgs for p in order, taking the envelopes sealed when a
// group message was stored; the others are sealed with one commit per
// run (a nil plaintext is made from its message). Like sealAll it
// returns what it sealed before an error. The envelopes are appended to
// out (the worker's, reused).
func (rk *ratchetKeys) sealBatch(p peer.ID, msgs []store.Message, pts [][]byte, out [][]byte) ([][]byte, error) {
	for i := 0; i < len(msgs); {
		if env, ok := rk.takeSealed(p, msgs[i].ID); ok {
			out = append(out, env)
			i++
			continue
		}
		j := i + 1
		for j < len(msgs) && !rk.hasSealed(p, msgs[j].ID) {
			j++
		}
		for k := i; k < j; k++ {
			if pts[k] != nil {
				continue
			}
			// The outbox took it for sealed already; it is not (any more).
			pt, err := rk.plaintext(msgs[k])
			if err != nil {
				return out, err
			}
			pts[k] = pt
		}
		envs, err := rk.sealAll(p, pts[i:j])
		out = append(out, envs...)
		if err != nil {
			return out, err
		}
		i = j
	}
	return out, nil
}

func (rk *ratchetKeys) takeSealed(p peer.ID, id e2e.MessageID) ([]byte, bool) {
	rk.mu.Lock()
	defer rk.mu.Unlock()
	env, ok := rk.unsent[p][id]
	if ok {
		delete(rk.unsent[p], id)
	}
	return env, ok
}

func (rk *ratchetKeys) hasSealed(p peer.ID, id e2e.MessageID) bool {
	rk.mu.Lock()
	defer rk.mu.Unlock()
	_, ok := rk.unsent[p][id]
	return ok
}
