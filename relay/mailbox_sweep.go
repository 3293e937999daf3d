// The mailbox's sweepers: deleting envelopes past the TTL and removing
// mailboxes their owners have not used for Idle.

package relay

import (
	"encoding/binary"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
)

// sweepEvery is how often expired envelopes are deleted.
const sweepEvery = 10 * time.Minute

// sweeper deletes envelopes older than the TTL.
func (m *mailboxServer) sweeper() {
	defer m.wg.Done()
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		m.sweep()
		select {
		case <-t.C:
		case <-m.done:
			return
		}
	}
}

func (m *mailboxServer) sweep() {
	m.sweepMail()
	m.sweepIdle()
}

// sweepIdle records the owners' uses since the last sweep, then removes
// mailboxes unused for Idle. A mailbox with no record (registered by a
// relay version that kept none) starts counting now.
func (m *mailboxServer) sweepIdle() {
	m.mu.Lock()
	used := m.used
	m.used = map[peer.ID]time.Time{}
	m.mu.Unlock()
	now := m.now()
	var removed int
	err := m.db.Update(func(tx *bolt.Tx) error {
		seen := tx.Bucket(bktSeen)
		var idle []peer.ID
		// One pass over the registrations: a use by a peer with no
		// mailbox here (a fetch) is not recorded.
		err := tx.Bucket(bktBundles).ForEach(func(k, _ []byte) error {
			var last uint64
			if t, ok := used[peer.ID(k)]; ok {
				last = uint64(t.UnixMilli())
				if err := seen.Put(k, u64(last)); err != nil {
					return err
				}
			} else if v := seen.Get(k); len(v) == 8 {
				last = binary.BigEndian.Uint64(v)
			} else {
				return seen.Put(k, u64(uint64(now.UnixMilli())))
			}
			if now.Sub(time.UnixMilli(int64(last))) > m.lim.Idle {
				idle = append(idle, peer.ID(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, p := range idle {
			if err := removeMailbox(tx, p); err != nil {
				return err
			}
		}
		removed = len(idle)
		return nil
	})
	if err != nil {
		m.log.Error("mailbox idle sweep", "err", err)
		return
	}
	if removed > 0 {
		m.log.Info("removed idle mailboxes", "count", removed, "idle", m.lim.Idle)
	}
}

// sweepMail deletes envelopes older than the TTL.
func (m *mailboxServer) sweepMail() {
	cutoff := m.now().Add(-m.lim.TTL)
	err := m.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bktMail).ForEachBucket(func(k []byte) error {
			b := tx.Bucket(bktMail).Bucket(k)
			items, size := usage(tx, peer.ID(k))
			c := b.Cursor()
			for id, v := c.First(); id != nil; id, v = c.First() {
				it, ok := decodeItem(0, v)
				if ok && it.Deposited.After(cutoff) {
					break
				}
				items--
				size -= int64(len(it.Envelope))
				if ok {
					if err := addPair(tx, peer.ID(k), it.From, -1); err != nil {
						return err
					}
					if err := itemGone(tx, peer.ID(k), binary.BigEndian.Uint64(id), int64(len(it.Envelope))); err != nil {
						return err
					}
				}
				if err := c.Delete(); err != nil {
					return err
				}
			}
			return setUsage(tx, peer.ID(k), max(items, 0), max(size, 0))
		})
	})
	if err != nil {
		m.log.Error("mailbox sweep", "err", err)
	}
}
