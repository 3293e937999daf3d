package relay

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/e2e/ratchet"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/mailbox"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/time/rate"
)

// MailboxLimits bound what the mailbox stores and serves. Zero fields
// take DefaultMailboxLimits.
type MailboxLimits struct {
	MaxItems    int           // envelopes kept per recipient
	MaxPerPeer  int           // of those, from any one sender
	MaxBytes    int64         // bytes kept per recipient
	TTL         time.Duration // an envelope not fetched in this time is deleted
	DepositRate float64       // deposits per second per sender (burst ×10)
	BundleRate  float64       // bundle fetches per second per requester (burst 10)
	MaxPrekeys  int           // one-time prekeys kept per kind per peer
	MaxMailbox  int           // mailboxes registered in all
	PublishRate float64       // publishes per second per peer (burst 5)
	Idle        time.Duration // a mailbox its owner has not used in this time is removed (at least TTL)
}

// DefaultMailboxLimits suit a group's relay.
var DefaultMailboxLimits = MailboxLimits{
	MaxItems:    1000,
	MaxPerPeer:  200,
	MaxBytes:    32 << 20,
	TTL:         14 * 24 * time.Hour,
	DepositRate: 5,
	BundleRate:  0.2,
	MaxPrekeys:  200,
	MaxMailbox:  4096,
	PublishRate: 0.1,
	Idle:        30 * 24 * time.Hour,
}

func (l MailboxLimits) withDefaults() MailboxLimits {
	d := DefaultMailboxLimits
	orDefault(&l.MaxItems, d.MaxItems)
	orDefault(&l.MaxPerPeer, min(d.MaxPerPeer, l.MaxItems))
	orDefault(&l.MaxBytes, d.MaxBytes)
	orDefault(&l.TTL, d.TTL)
	orDefault(&l.DepositRate, d.DepositRate)
	orDefault(&l.BundleRate, d.BundleRate)
	orDefault(&l.MaxPrekeys, d.MaxPrekeys)
	orDefault(&l.MaxMailbox, d.MaxMailbox)
	orDefault(&l.PublishRate, d.PublishRate)
	orDefault(&l.Idle, d.Idle)
	l.Idle = max(l.Idle, l.TTL)
	return l
}

// The mailbox database (home/mailbox.db):
//
//	bundles      peer → its base prekey bundle (registration)
//	usage        peer → u32 items || u64 bytes
//	pairs        recipient || sender → u32 items from that sender
//	otec/<peer>  sequence → bundle carrying one X25519 one-time prekey
//	otkem/<peer> sequence → bundle carrying one ML-KEM one-time prekey
//	mail/<peer>  sequence → u64 deposited (Unix ms) || u32 len || from || envelope
//	seen         peer → u64 last use by its owner (Unix ms): publish, fetch, ack
//
// A mailbox whose owner has not used it for Idle is removed with all it
// holds, so registrations of peers that left do not fill MaxMailbox for
// ever. A client registers again whenever it makes a reservation.
var (
	bktSeen    = []byte("seen")
	bktBundles = []byte("bundles")
	bktUsage   = []byte("usage")
	bktOTEC    = []byte("otec")
	bktOTKEM   = []byte("otkem")
	bktMail    = []byte("mail")
	bktPairs   = []byte("pairs")
)

// sweepEvery is how often expired envelopes are deleted.
const sweepEvery = 10 * time.Minute

type mailboxServer struct {
	db        *bolt.DB
	h         host.Host
	lim       MailboxLimits
	log       *slog.Logger
	now       func() time.Time
	deposit   *limiters
	bundle    *limiters
	publishes *limiters
	ctx       context.Context // cancelled by close: ends notifications
	cancel    context.CancelFunc
	done      chan struct{}
	mu        sync.Mutex // guards closed, wg.Add and used
	closed    bool
	wg        sync.WaitGroup
	used      map[peer.ID]time.Time // owners' uses since the last sweep (bucket seen)
}

func openMailbox(path string, h host.Host, lim MailboxLimits, log *slog.Logger) (*mailboxServer, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("mailbox database %s is in use by another relay", path)
	}
	if err != nil {
		return nil, fmt.Errorf("mailbox database: %w", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bktBundles, bktUsage, bktOTEC, bktOTKEM, bktMail, bktPairs, bktSeen} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	lim = lim.withDefaults()
	m := &mailboxServer{
		db: db, h: h, lim: lim, log: log, now: time.Now,
		deposit:   newLimiters(rate.Limit(lim.DepositRate), int(10*lim.DepositRate)+1),
		bundle:    newLimiters(rate.Limit(lim.BundleRate), 10),
		publishes: newLimiters(rate.Limit(lim.PublishRate), 5),
		done:      make(chan struct{}),
		used:      map[peer.ID]time.Time{},
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	h.SetStreamHandler(mailbox.Protocol, m.handle)
	m.wg.Add(1)
	go m.sweeper()
	return m, nil
}

func (m *mailboxServer) close() error {
	m.h.RemoveStreamHandler(mailbox.Protocol)
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.cancel()
	close(m.done)
	m.wg.Wait()
	m.sweepIdle() // keeps the uses seen since the last sweep
	return m.db.Close()
}

// handle serves one request on a stream.
func (m *mailboxServer) handle(s network.Stream) {
	defer s.Close()
	s.SetDeadline(time.Now().Add(30 * time.Second))
	from := s.Conn().RemotePeer()
	f, err := e2e.ReadFrame(s)
	if err != nil {
		s.Reset()
		return
	}
	t, answer := m.serve(from, f)
	out, err := e2e.AppendFrame(nil, t, answer)
	if err != nil {
		s.Reset()
		return
	}
	s.Write(out)
}

func (m *mailboxServer) serve(from peer.ID, f e2e.Frame) (e2e.FrameType, []byte) {
	var (
		t   e2e.FrameType
		out []byte
		err error
	)
	switch f.Type {
	case mailbox.TypePublish:
		t, out, err = m.publish(from, f.Payload)
	case mailbox.TypeFetchBundle:
		t, out, err = m.fetchBundle(from, f.Payload)
	case mailbox.TypeDeposit:
		t, out, err = m.depositFrom(from, f.Payload)
	case mailbox.TypeFetch:
		t, out, err = m.fetch(from, f.Payload)
	case mailbox.TypeAck:
		t, out, err = m.ack(from, f.Payload)
	default:
		err = &mailbox.Error{Code: mailbox.CodeMalformed, Message: "unknown request"}
	}
	if err == nil && (f.Type == mailbox.TypePublish || f.Type == mailbox.TypeFetch || f.Type == mailbox.TypeAck) {
		m.mu.Lock()
		m.used[from] = m.now()
		m.mu.Unlock()
	}
	if err != nil {
		var me *mailbox.Error
		if !errors.As(err, &me) {
			m.log.Error("mailbox", "peer", from, "err", err)
			me = &mailbox.Error{Code: mailbox.CodeInternal, Message: "internal error"}
		}
		return mailbox.TypeError, me.Marshal()
	}
	return t, out
}

func malformed(what string) error {
	return &mailbox.Error{Code: mailbox.CodeMalformed, Message: "malformed " + what}
}

// publish registers the requester's mailbox and stores its prekeys. Every
// bundle must verify against the key the requester's peer ID embeds.
func (m *mailboxServer) publish(from peer.ID, p []byte) (e2e.FrameType, []byte, error) {
	req, err := mailbox.ParsePublish(p)
	if err != nil {
		return 0, nil, malformed("publish")
	}
	key, err := identity.KeyFromPeerID(from)
	if err != nil {
		return 0, nil, &mailbox.Error{Code: mailbox.CodeBadBundle, Message: "only Ed25519 peers can have a mailbox"}
	}
	// Before the signatures are checked: each request may carry 129.
	if wait, ok := m.publishes.allow(from, m.now()); !ok {
		return 0, nil, &mailbox.Error{Code: mailbox.CodeRateLimited, RetryAfter: wait, Message: "too many publishes"}
	}
	if err := checkBundle(req.Bundle, key, from, 0); err != nil {
		return 0, nil, err
	}
	for _, b := range req.OneTimeEC {
		if err := checkBundle(b, key, from, 1); err != nil {
			return 0, nil, err
		}
	}
	for _, b := range req.OneTimeKEM {
		if err := checkBundle(b, key, from, 2); err != nil {
			return 0, nil, err
		}
	}
	var ok mailbox.OK
	err = m.db.Update(func(tx *bolt.Tx) error {
		bundles := tx.Bucket(bktBundles)
		if bundles.Get([]byte(from)) == nil && countKeys(bundles) >= m.lim.MaxMailbox {
			return &mailbox.Error{Code: mailbox.CodeQuotaFull, Message: "this relay holds no more mailboxes"}
		}
		if err := bundles.Put([]byte(from), req.Bundle); err != nil {
			return err
		}
		var err error
		if ok.PrekeysEC, err = m.addPrekeys(tx, bktOTEC, from, req.OneTimeEC); err != nil {
			return err
		}
		ok.PrekeysKEM, err = m.addPrekeys(tx, bktOTKEM, from, req.OneTimeKEM)
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	return mailbox.TypeOK, ok.Marshal(), nil
}

// checkBundle verifies a published bundle: kind 0 is a base bundle with no
// one-time prekey, 1 carries exactly one X25519 one-time prekey, 2 exactly
// one ML-KEM one-time prekey.
func checkBundle(data []byte, key []byte, from peer.ID, kind int) error {
	bad := func(why string) error { return &mailbox.Error{Code: mailbox.CodeBadBundle, Message: why} }
	b, err := ratchet.ParseBundle(data)
	if err != nil {
		return bad("bundle does not parse")
	}
	if err := ratchet.VerifyBundle(b, key, []byte(from)); err != nil {
		return bad("bundle signature does not verify for this peer")
	}
	hasEC, hasKEM := b.OneTimePrekey != nil, b.OneTimeKEM != nil
	switch {
	case kind == 0 && (hasEC || hasKEM):
		return bad("base bundle carries one-time prekeys")
	case kind == 1 && (!hasEC || hasKEM):
		return bad("one-time X25519 prekey entry is not one X25519 prekey")
	case kind == 2 && (hasEC || !hasKEM):
		return bad("one-time ML-KEM prekey entry is not one ML-KEM prekey")
	}
	return nil
}

// addPrekeys appends one-time prekey entries, keeping the newest MaxPrekeys.
func (m *mailboxServer) addPrekeys(tx *bolt.Tx, kind []byte, p peer.ID, entries [][]byte) (uint32, error) {
	b, err := tx.Bucket(kind).CreateBucketIfNotExists([]byte(p))
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		seq, _ := b.NextSequence()
		if err := b.Put(u64(seq), e); err != nil {
			return 0, err
		}
	}
	n := countKeys(b)
	for ; n > m.lim.MaxPrekeys; n-- {
		k, _ := b.Cursor().First()
		if err := b.Delete(k); err != nil {
			return 0, err
		}
	}
	return uint32(n), nil
}

// countKeys counts a bucket's keys. (Bucket.Stats misses keys written in
// the same transaction.)
func countKeys(b *bolt.Bucket) int {
	n := 0
	c := b.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n++
	}
	return n
}

// fetchBundle hands out a peer's bundle with one one-time prekey of each
// kind, deleting them: each is used once.
func (m *mailboxServer) fetchBundle(from peer.ID, p []byte) (e2e.FrameType, []byte, error) {
	req, err := mailbox.ParseFetchBundle(p)
	if err != nil {
		return 0, nil, malformed("bundle request")
	}
	if wait, ok := m.bundle.allow(from, m.now()); !ok {
		return 0, nil, &mailbox.Error{Code: mailbox.CodeRateLimited, RetryAfter: wait, Message: "too many bundle requests"}
	}
	var out []byte
	err = m.db.Update(func(tx *bolt.Tx) error {
		base := tx.Bucket(bktBundles).Get([]byte(req.Peer))
		if base == nil {
			return &mailbox.Error{Code: mailbox.CodeNoBundle, Message: "that peer has no mailbox here"}
		}
		b, err := ratchet.ParseBundle(base)
		if err != nil {
			return err
		}
		if e := popPrekey(tx, bktOTEC, req.Peer); e != nil {
			b.OneTimePrekey = e.OneTimePrekey
		}
		if e := popPrekey(tx, bktOTKEM, req.Peer); e != nil {
			b.OneTimeKEM = e.OneTimeKEM
		}
		out, err = b.MarshalBinary()
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	return mailbox.TypeBundle, mailbox.BundleAnswer{Bundle: out}.Marshal(), nil
}

func popPrekey(tx *bolt.Tx, kind []byte, p peer.ID) *ratchet.Bundle {
	b := tx.Bucket(kind).Bucket([]byte(p))
	if b == nil {
		return nil
	}
	k, v := b.Cursor().First()
	if k == nil {
		return nil
	}
	entry, err := ratchet.ParseBundle(v)
	b.Delete(k)
	if err != nil {
		return nil
	}
	return entry
}

// depositFrom stores an envelope for a registered recipient, within the
// sender's rate and the recipient's quota.
func (m *mailboxServer) depositFrom(from peer.ID, p []byte) (e2e.FrameType, []byte, error) {
	req, err := mailbox.ParseDeposit(p)
	if err != nil {
		return 0, nil, malformed("deposit")
	}
	if len(req.Envelope) > mailbox.MaxEnvelope {
		return 0, nil, &mailbox.Error{Code: mailbox.CodeTooLarge, Message: fmt.Sprintf("envelope larger than %d bytes", mailbox.MaxEnvelope)}
	}
	if wait, ok := m.deposit.allow(from, m.now()); !ok {
		return 0, nil, &mailbox.Error{Code: mailbox.CodeRateLimited, RetryAfter: wait, Message: "too many deposits"}
	}
	now := m.now()
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
		return setUsage(tx, req.To, items+1, size+int64(len(req.Envelope)))
	})
	if err != nil {
		return 0, nil, err
	}
	m.notify(req.To)
	return mailbox.TypeOK, mailbox.OK{ID: id}.Marshal(), nil
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

func decodeItem(id uint64, rec []byte) (mailbox.Item, bool) {
	if len(rec) < 12 {
		return mailbox.Item{}, false
	}
	n := int(binary.BigEndian.Uint32(rec[8:12]))
	if 12+n > len(rec) {
		return mailbox.Item{}, false
	}
	from, err := peer.IDFromBytes(rec[12 : 12+n])
	if err != nil {
		return mailbox.Item{}, false
	}
	return mailbox.Item{ID: id, From: from, Deposited: time.UnixMilli(int64(binary.BigEndian.Uint64(rec))), Envelope: rec[12+n:]}, true
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

// removeMailbox deletes p's registration and everything it holds.
func removeMailbox(tx *bolt.Tx, p peer.ID) error {
	k := []byte(p)
	for _, b := range [][]byte{bktOTEC, bktOTKEM, bktMail} {
		if err := tx.Bucket(b).DeleteBucket(k); err != nil && !errors.Is(err, bolt.ErrBucketNotFound) {
			return err
		}
	}
	for _, b := range [][]byte{bktBundles, bktUsage, bktSeen} {
		if err := tx.Bucket(b).Delete(k); err != nil {
			return err
		}
	}
	prefix := append([]byte{byte(len(p))}, p...)
	c := tx.Bucket(bktPairs).Cursor()
	for pk, _ := c.Seek(prefix); pk != nil && bytes.HasPrefix(pk, prefix); pk, _ = c.Seek(prefix) {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
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

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// pairKey is recipient || sender, each length-prefixed.
func pairKey(to, from peer.ID) []byte {
	k := append([]byte{byte(len(to))}, to...)
	return append(append(k, byte(len(from))), from...)
}

// pairCount is how many items from sender wait for recipient.
func pairCount(tx *bolt.Tx, to, from peer.ID) int {
	v := tx.Bucket(bktPairs).Get(pairKey(to, from))
	if len(v) != 4 {
		return 0
	}
	return int(binary.BigEndian.Uint32(v))
}

// addPair changes that count by delta, deleting it at zero.
func addPair(tx *bolt.Tx, to, from peer.ID, delta int) error {
	b := tx.Bucket(bktPairs)
	n := max(pairCount(tx, to, from)+delta, 0)
	if n == 0 {
		return b.Delete(pairKey(to, from))
	}
	return b.Put(pairKey(to, from), binary.BigEndian.AppendUint32(nil, uint32(n)))
}

func usage(tx *bolt.Tx, p peer.ID) (int, int64) {
	v := tx.Bucket(bktUsage).Get([]byte(p))
	if len(v) != 12 {
		return 0, 0
	}
	return int(binary.BigEndian.Uint32(v)), int64(binary.BigEndian.Uint64(v[4:]))
}

func setUsage(tx *bolt.Tx, p peer.ID, items int, size int64) error {
	v := binary.BigEndian.AppendUint32(nil, uint32(items))
	return tx.Bucket(bktUsage).Put([]byte(p), binary.BigEndian.AppendUint64(v, uint64(size)))
}

// limiters are per-peer token buckets, forgotten when idle.
type limiters struct {
	mu    sync.Mutex
	r     rate.Limit
	burst int
	m     map[peer.ID]*limiterEntry
	swept time.Time // last sweep of idle entries
}

type limiterEntry struct {
	l    *rate.Limiter
	seen time.Time
}

func newLimiters(r rate.Limit, burst int) *limiters {
	return &limiters{r: r, burst: burst, m: map[peer.ID]*limiterEntry{}}
}

// allow takes a token for p, or says how long to wait for one.
func (l *limiters) allow(p peer.ID, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.m) > 10000 && now.Sub(l.swept) > time.Minute {
		l.swept = now // at most once a minute: peer IDs are free to make
		for k, e := range l.m {
			if now.Sub(e.seen) > time.Hour {
				delete(l.m, k)
			}
		}
	}
	e, ok := l.m[p]
	if !ok {
		e = &limiterEntry{l: rate.NewLimiter(l.r, l.burst)}
		l.m[p] = e
	}
	e.seen = now
	r := e.l.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, false
	}
	return 0, true
}
