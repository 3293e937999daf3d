// The mailbox's envelope requests: deposit (and the notification it
// sends a connected recipient), fetch and ack.

package relay

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/mailbox"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
)

// depositFrom stores an envelope for a registered recipient, within the
// sender's rate and the recipient's quota.
//
// Each recipient's mailbox is shared: one sender may hold MaxPerPeer of
// its items, one address MaxPerIP and one prefix MaxPerPrefix (and the
// same fractions of its bytes), so a few identities on one network
// cannot fill it for everyone else.
func (m *mailboxServer) depositFrom(from peer.ID, src source, p []byte) (e2e.FrameType, []byte, error) {
	req, err := mailbox.ParseDeposit(p)
	if err != nil {
		return 0, nil, malformed("deposit")
	}
	if len(req.Envelope) > mailbox.MaxEnvelope {
		return 0, nil, &mailbox.Error{Code: mailbox.CodeTooLarge, Message: fmt.Sprintf("envelope larger than %d bytes", mailbox.MaxEnvelope)}
	}
	now := m.now()
	if wait, ok := m.deposit.allow(string(from), now); !ok {
		return 0, nil, &mailbox.Error{Code: mailbox.CodeRateLimited, RetryAfter: wait, Message: "too many deposits"}
	}
	var id uint64
	err = m.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bktBundles).Get([]byte(req.To)) == nil {
			return &mailbox.Error{Code: mailbox.CodeNotRegistered, Message: "the recipient has no mailbox at this relay"}
		}
		items, size := usage(tx, req.To)
		if items+1 > m.lim.MaxItems || size+int64(len(req.Envelope)) > m.lim.MaxBytes {
			return &mailbox.Error{Code: mailbox.CodeQuotaFull, Message: fmt.Sprintf("the recipient's mailbox is full (%d messages, %d bytes)", items, size)}
		}
		if mine := pairCount(tx, req.To, from); mine+1 > m.lim.MaxPerPeer {
			return &mailbox.Error{Code: mailbox.CodeQuotaFull, Message: fmt.Sprintf("you already have %d messages waiting for this recipient", mine)}
		}
		if err := m.sourceShare(tx, req.To, src, int64(len(req.Envelope))); err != nil {
			return err
		}
		if err := addPair(tx, req.To, from, 1); err != nil {
			return err
		}
		b, err := tx.Bucket(bktMail).CreateBucketIfNotExists([]byte(req.To))
		if err != nil {
			return err
		}
		id, _ = b.NextSequence()
		rec := binary.BigEndian.AppendUint64(nil, uint64(now.UnixMilli()))
		rec = binary.BigEndian.AppendUint32(rec, uint32(len(from)))
		rec = append(append(rec, from...), req.Envelope...)
		if err := b.Put(u64(id), rec); err != nil {
			return err
		}
		if err := depositedFrom(tx, req.To, id, int64(len(req.Envelope)), src); err != nil {
			return err
		}
		return setUsage(tx, req.To, items+1, size+int64(len(req.Envelope)))
	})
	if err != nil {
		return 0, nil, err
	}
	m.notify(req.To)
	return mailbox.TypeOK, mailbox.OK{ID: id}.Marshal(), nil
}

// sourceShare refuses a deposit of size bytes for to that would take its
// source's items or bytes past their shares of the mailbox.
func (m *mailboxServer) sourceShare(tx *bolt.Tx, to peer.ID, src source, size int64) error {
	if !src.known() {
		return nil
	}
	for _, s := range []struct {
		key, what string
		max       int
	}{{src.ip, "your address", m.lim.MaxPerIP}, {src.prefix, "your network", m.lim.MaxPerPrefix}} {
		n, bytes := srcCount(tx, shareKey(to, s.key))
		if n+1 > s.max || bytes+size > m.lim.shareBytes(s.max) {
			return &mailbox.Error{Code: mailbox.CodeQuotaFull, Message: fmt.Sprintf("%s already has %d messages (%d bytes) waiting for this recipient", s.what, n, bytes)}
		}
	}
	return nil
}

// notify tells a connected recipient that mail arrived.
func (m *mailboxServer) notify(to peer.ID) {
	if m.h.Network().Connectedness(to) != network.Connected {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		ctx, cancel := context.WithTimeout(m.ctx, 5*time.Second)
		defer cancel()
		s, err := m.h.NewStream(ctx, to, mailbox.NotifyProtocol)
		if err == nil {
			s.Close()
		}
	}()
}

// fetch returns the requester's oldest items; nothing is deleted until Ack.
func (m *mailboxServer) fetch(from peer.ID, p []byte) (e2e.FrameType, []byte, error) {
	req, err := mailbox.ParseFetch(p)
	if err != nil {
		return 0, nil, malformed("fetch")
	}
	var items mailbox.Items
	err = m.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bktMail).Bucket([]byte(from))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		size := 1 + 4 // more, n
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(items.Items) == req.Max {
				items.More = true
				break
			}
			it, ok := decodeItem(binary.BigEndian.Uint64(k), v)
			if !ok {
				continue
			}
			// The answer is one frame: stop before it would not fit (a
			// single envelope always does), so large envelopes waiting
			// never make every fetch fail.
			itemSize := 8 + 4 + len(it.From) + 8 + 4 + len(it.Envelope)
			if len(items.Items) > 0 && size+itemSize > e2e.MaxFramePayload {
				items.More = true
				break
			}
			size += itemSize
			it.Envelope = append([]byte(nil), it.Envelope...)
			items.Items = append(items.Items, it)
		}
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return mailbox.TypeItems, items.Marshal(), nil
}

// ack deletes the requester's items.
func (m *mailboxServer) ack(from peer.ID, p []byte) (e2e.FrameType, []byte, error) {
	req, err := mailbox.ParseAck(p)
	if err != nil {
		return 0, nil, malformed("ack")
	}
	err = m.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bktMail).Bucket([]byte(from))
		if b == nil {
			return nil
		}
		items, size := usage(tx, from)
		for _, id := range req.IDs {
			v := b.Get(u64(id))
			if v == nil {
				continue // already gone: acks are idempotent
			}
			if it, ok := decodeItem(id, v); ok {
				size -= int64(len(it.Envelope))
				if err := addPair(tx, from, it.From, -1); err != nil {
					return err
				}
				if err := itemGone(tx, from, id, int64(len(it.Envelope))); err != nil {
					return err
				}
			}
			items--
			if err := b.Delete(u64(id)); err != nil {
				return err
			}
		}
		return setUsage(tx, from, max(items, 0), max(size, 0))
	})
	if err != nil {
		return 0, nil, err
	}
	return mailbox.TypeOK, mailbox.OK{}.Marshal(), nil
}
