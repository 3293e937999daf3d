package relay

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/e2e/ratchet"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/mailbox"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
)

// This file has two parts: a mischievous mailbox for the offline-delivery
// tests of relay_test (exported to them, test builds only), and unit tests
// of the mailbox server that call it directly, with a clock of their own.

// Mischief is what a mischievous mailbox does wrong. The zero value is an
// honest mailbox; fields may be changed while it runs (under Lock).
type Mischief struct {
	mu sync.Mutex
	m  *mailboxServer

	// BadBundleSignature flips a bit of the signed prekey's signature in
	// every bundle handed out.
	BadBundleSignature bool
	// FreezeBundles hands out, for each peer, the first bundle it handed
	// out (with the same one-time prekeys) to every later requester.
	FreezeBundles bool
	// DropDeposits answers deposits "ok" and stores nothing.
	DropDeposits bool
	// DuplicateDeposits stores every deposit twice (two items).
	DuplicateDeposits bool
	// ReverseFetch answers fetches with the items in reverse order.
	ReverseFetch bool
	// Hold hides the items it returns true for from fetches.
	Hold func(mailbox.Item) bool
	// ClaimSender answers items deposited by a key as deposited by its value.
	ClaimSender map[peer.ID]peer.ID
	// Readdress stores deposits for a key in the mailbox of its value.
	Readdress map[peer.ID]peer.ID

	frozen    map[peer.ID][]byte
	dropped   int
	deposits  int
	bundles   int
	fetches   int
	fakeIDSeq uint64
}

// Lock and Unlock guard changes to the fields while the mailbox runs.
func (x *Mischief) Lock()   { x.mu.Lock() }
func (x *Mischief) Unlock() { x.mu.Unlock() }

// Release stops holding items back and tells the recipient that mail waits.
func (x *Mischief) Release(to peer.ID) {
	x.mu.Lock()
	x.Hold = nil
	x.mu.Unlock()
	x.m.notify(to)
}

// Counts reports deposits answered, deposits dropped and bundles handed out.
func (x *Mischief) Counts() (deposits, dropped, bundles int) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.deposits, x.dropped, x.bundles
}

// NewMischievousServer starts a relay whose mailbox misbehaves as x says.
func NewMischievousServer(cfg Config, x *Mischief) (*Server, error) {
	srv, err := NewServer(cfg)
	if err != nil {
		return nil, err
	}
	if srv.mailbox == nil {
		srv.Close()
		return nil, errors.New("mischief needs a mailbox")
	}
	x.m = srv.mailbox
	srv.host.SetStreamHandler(mailbox.Protocol, x.handle)
	return srv, nil
}

// MailboxUsage reports what the relay holds for p: its usage counters and
// the items really stored.
func MailboxUsage(srv *Server, p peer.ID) (items int, size int64, stored int) {
	srv.mailbox.db.View(func(tx *bolt.Tx) error {
		items, size = usage(tx, p)
		if b := tx.Bucket(bktMail).Bucket([]byte(p)); b != nil {
			stored = countKeys(b)
		}
		return nil
	})
	return items, size, stored
}

// MailboxDiskUsage reports the size of the mailbox database and the bytes
// of the pages that hold the stored envelopes (allocated and in use).
func MailboxDiskUsage(srv *Server) (file, alloc, inuse int64) {
	srv.mailbox.db.View(func(tx *bolt.Tx) error {
		file = tx.Size()
		st := tx.Bucket(bktMail).Stats()
		alloc = int64(st.BranchAlloc + st.LeafAlloc)
		inuse = int64(st.BranchInuse + st.LeafInuse)
		return nil
	})
	return file, alloc, inuse
}

func (x *Mischief) handle(s network.Stream) {
	defer s.Close()
	s.SetDeadline(time.Now().Add(30 * time.Second))
	f, err := e2e.ReadFrame(s)
	if err != nil {
		s.Reset()
		return
	}
	t, answer := x.serve(s.Conn().RemotePeer(), f)
	out, err := e2e.AppendFrame(nil, t, answer)
	if err != nil {
		s.Reset()
		return
	}
	s.Write(out)
}

func (x *Mischief) serve(from peer.ID, f e2e.Frame) (e2e.FrameType, []byte) {
	x.mu.Lock()
	defer x.mu.Unlock()
	switch f.Type {
	case mailbox.TypeDeposit:
		req, err := mailbox.ParseDeposit(f.Payload)
		if err != nil {
			break
		}
		x.deposits++
		if x.DropDeposits {
			x.dropped++
			x.fakeIDSeq++
			return mailbox.TypeOK, mailbox.OK{ID: 1<<40 + x.fakeIDSeq}.Marshal()
		}
		if to, ok := x.Readdress[req.To]; ok {
			req.To = to
			f.Payload = req.Marshal()
		}
		if x.DuplicateDeposits {
			if t, out := x.m.serve(from, f); t != mailbox.TypeOK {
				return t, out
			}
		}
		return x.m.serve(from, f)
	case mailbox.TypeFetch:
		x.fetches++
		t, out := x.m.serve(from, f)
		items, err := mailbox.ParseItems(out)
		if t != mailbox.TypeItems || err != nil {
			return t, out
		}
		if x.Hold != nil {
			items.Items = slices.DeleteFunc(items.Items, x.Hold)
		}
		if x.ReverseFetch {
			slices.Reverse(items.Items)
		}
		for i, it := range items.Items {
			if claimed, ok := x.ClaimSender[it.From]; ok {
				items.Items[i].From = claimed
			}
		}
		return t, items.Marshal()
	case mailbox.TypeFetchBundle:
		req, err := mailbox.ParseFetchBundle(f.Payload)
		if err != nil {
			break
		}
		var out []byte
		if b, ok := x.frozen[req.Peer]; ok && x.FreezeBundles {
			out = b
		} else {
			t, answer := x.m.serve(from, f)
			if t != mailbox.TypeBundle {
				return t, answer
			}
			out = answer
			if x.FreezeBundles {
				if x.frozen == nil {
					x.frozen = map[peer.ID][]byte{}
				}
				x.frozen[req.Peer] = out
			}
		}
		x.bundles++
		if x.BadBundleSignature {
			a, err := mailbox.ParseBundleAnswer(out)
			if err != nil {
				break
			}
			b, err := ratchet.ParseBundle(a.Bundle)
			if err != nil {
				break
			}
			b.SignedPrekey.Signature = bytes.Clone(b.SignedPrekey.Signature)
			b.SignedPrekey.Signature[10] ^= 0x04
			enc, _ := b.MarshalBinary()
			out = mailbox.BundleAnswer{Bundle: enc}.Marshal()
		}
		return mailbox.TypeBundle, out
	}
	return x.m.serve(from, f)
}

// --- unit tests of the mailbox server ---

// mbPeer is an identity with ratchet keys, as a node has.
type mbPeer struct {
	id   peer.ID
	priv ed25519.PrivateKey
	keys *ratchet.LocalKeys
}

func mbNewPeer(t testing.TB) mbPeer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := identity.PeerIDFromKey(priv.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := ratchet.NewLocalKeys(priv, []byte(id), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if keys, err = keys.GenerateOneTimePrekeys(4, time.Now()); err != nil {
		t.Fatal(err)
	}
	return mbPeer{id: id, priv: priv, keys: keys}
}

// publish is the peer's publish request: its base bundle and each of its
// one-time prekeys as a bundle of its own.
func (p mbPeer) publish(t testing.TB) mailbox.Publish {
	t.Helper()
	base := p.keys.Bundle()
	var req mailbox.Publish
	req.Bundle, _ = base.MarshalBinary()
	ec, kem := p.keys.OneTimePrekeys()
	for _, k := range ec {
		b := *base
		b.OneTimePrekey = &k
		enc, _ := b.MarshalBinary()
		req.OneTimeEC = append(req.OneTimeEC, enc)
	}
	for _, k := range kem {
		b := *base
		b.OneTimeKEM = &k
		enc, _ := b.MarshalBinary()
		req.OneTimeKEM = append(req.OneTimeKEM, enc)
	}
	return req
}

// mbClock is a settable clock.
type mbClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *mbClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *mbClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var (
	mbHostOnce sync.Once
	mbHost     host.Host
	mbHostErr  error
)

// mbTestHost is a host without listeners for servers called directly (it
// only answers "is the recipient connected?": never).
func mbTestHost(t testing.TB) host.Host {
	t.Helper()
	mbHostOnce.Do(func() { mbHost, mbHostErr = libp2p.New(libp2p.NoListenAddrs) })
	if mbHostErr != nil {
		t.Fatal(mbHostErr)
	}
	return mbHost
}

// mbOpen opens a mailbox at path with a clock of its own: the sweeper is
// stopped (tests sweep by hand), so the clock can be set without a race.
func mbOpen(t testing.TB, path string, lim MailboxLimits, clock *mbClock) *mailboxServer {
	t.Helper()
	m, err := openMailbox(path, mbTestHost(t), lim, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	close(m.done)
	m.wg.Wait()
	m.done = make(chan struct{})
	m.now = clock.now
	return m
}

// mbCall serves one request as if it came from "from" and decodes an error
// answer.
func mbCall(t testing.TB, m *mailboxServer, from peer.ID, typ e2e.FrameType, payload []byte) (e2e.FrameType, []byte, *mailbox.Error) {
	t.Helper()
	ft, out := m.serve(from, e2e.Frame{Type: typ, Payload: payload})
	if len(out) > e2e.MaxFramePayload {
		t.Fatalf("answer of %d bytes does not fit a frame (%d)", len(out), e2e.MaxFramePayload)
	}
	if ft != mailbox.TypeError {
		return ft, out, nil
	}
	e, err := mailbox.ParseError(out)
	if err != nil {
		t.Fatalf("error answer does not parse: %v", err)
	}
	return ft, out, e
}

func mbDeposit(t testing.TB, m *mailboxServer, from, to peer.ID, env []byte) (uint64, *mailbox.Error) {
	t.Helper()
	_, out, e := mbCall(t, m, from, mailbox.TypeDeposit, mailbox.Deposit{To: to, Envelope: env}.Marshal())
	if e != nil {
		return 0, e
	}
	ok, err := mailbox.ParseOK(out)
	if err != nil {
		t.Fatal(err)
	}
	return ok.ID, nil
}

func mbFetch(t testing.TB, m *mailboxServer, who peer.ID, max int) mailbox.Items {
	t.Helper()
	ft, out, e := mbCall(t, m, who, mailbox.TypeFetch, mailbox.Fetch{Max: max}.Marshal())
	if e != nil || ft != mailbox.TypeItems {
		t.Fatalf("fetch: %v (answer %s)", e, ft)
	}
	items, err := mailbox.ParseItems(out)
	if err != nil {
		t.Fatal(err)
	}
	return items
}

func mbAck(t testing.TB, m *mailboxServer, who peer.ID, ids ...uint64) {
	t.Helper()
	if _, _, e := mbCall(t, m, who, mailbox.TypeAck, mailbox.Ack{IDs: ids}.Marshal()); e != nil {
		t.Fatalf("ack: %v", e)
	}
}

func mbPublish(t testing.TB, m *mailboxServer, who peer.ID, req mailbox.Publish) (mailbox.OK, *mailbox.Error) {
	t.Helper()
	_, out, e := mbCall(t, m, who, mailbox.TypePublish, req.Marshal())
	if e != nil {
		return mailbox.OK{}, e
	}
	ok, err := mailbox.ParseOK(out)
	if err != nil {
		t.Fatal(err)
	}
	return ok, nil
}

func mbUsage(m *mailboxServer, p peer.ID) (int, int64, int) {
	var items, stored int
	var size int64
	m.db.View(func(tx *bolt.Tx) error {
		items, size = usage(tx, p)
		if b := tx.Bucket(bktMail).Bucket([]byte(p)); b != nil {
			stored = countKeys(b)
		}
		return nil
	})
	return items, size, stored
}

func mbEnvelope(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func mbWantCode(t testing.TB, what string, e *mailbox.Error, code mailbox.ErrorCode) {
	t.Helper()
	if e == nil || e.Code != code {
		t.Fatalf("%s: got %v, want error code %d", what, e, code)
	}
}

// Fetch and ack act on the requester's own mailbox only; deposits need a
// registered recipient.
func TestMailboxOwnerOnly(t *testing.T) {
	clock := &mbClock{t: time.Now()}
	m := mbOpen(t, filepath.Join(t.TempDir(), "mailbox.db"), MailboxLimits{}, clock)
	defer m.close()
	alice, bob, carol := mbNewPeer(t), mbNewPeer(t), mbNewPeer(t)

	_, e := mbDeposit(t, m, alice.id, bob.id, mbEnvelope(400))
	mbWantCode(t, "deposit for an unregistered recipient", e, mailbox.CodeNotRegistered)
	if items, _, stored := mbUsage(m, bob.id); items != 0 || stored != 0 {
		t.Fatalf("a refused deposit was stored: %d items, %d stored", items, stored)
	}

	if _, e := mbPublish(t, m, bob.id, bob.publish(t)); e != nil {
		t.Fatal(e)
	}
	env := mbEnvelope(400)
	id, e := mbDeposit(t, m, alice.id, bob.id, env)
	if e != nil {
		t.Fatal(e)
	}
	if got := mbFetch(t, m, carol.id, 64); len(got.Items) != 0 || got.More {
		t.Fatalf("carol fetched bob's mail: %+v", got)
	}
	if got := mbFetch(t, m, alice.id, 64); len(got.Items) != 0 {
		t.Fatalf("the depositor fetched the recipient's mail: %+v", got)
	}
	mbAck(t, m, carol.id, id)
	mbAck(t, m, alice.id, id)
	if items, size, stored := mbUsage(m, bob.id); items != 1 || size != int64(len(env)) || stored != 1 {
		t.Fatalf("an ack by someone else deleted bob's item: %d items, %d bytes, %d stored", items, size, stored)
	}
	got := mbFetch(t, m, bob.id, 64)
	if len(got.Items) != 1 || got.Items[0].ID != id || got.Items[0].From != alice.id || !bytes.Equal(got.Items[0].Envelope, env) {
		t.Fatalf("bob's fetch: %+v", got)
	}
	if d := clock.now().Sub(got.Items[0].Deposited); d < 0 || d > time.Second {
		t.Fatalf("deposit time %v, now %v", got.Items[0].Deposited, clock.now())
	}
	mbAck(t, m, bob.id, id)
	mbAck(t, m, bob.id, id) // idempotent
	if items, size, stored := mbUsage(m, bob.id); items != 0 || size != 0 || stored != 0 {
		t.Fatalf("after the ack: %d items, %d bytes, %d stored", items, size, stored)
	}
}

// A full mailbox (by count or by bytes) refuses with CodeQuotaFull; an
// envelope over the limit with CodeTooLarge; an ack makes room again.
func TestMailboxQuota(t *testing.T) {
	clock := &mbClock{t: time.Now()}
	m := mbOpen(t, filepath.Join(t.TempDir(), "mailbox.db"), MailboxLimits{MaxItems: 3, MaxBytes: 2000, DepositRate: 1000}, clock)
	defer m.close()
	alice, bob := mbNewPeer(t), mbNewPeer(t)
	if _, e := mbPublish(t, m, bob.id, bob.publish(t)); e != nil {
		t.Fatal(e)
	}
	var ids []uint64
	for i := 0; i < 3; i++ {
		id, e := mbDeposit(t, m, alice.id, bob.id, mbEnvelope(400))
		if e != nil {
			t.Fatalf("deposit %d: %v", i, e)
		}
		ids = append(ids, id)
	}
	_, e := mbDeposit(t, m, alice.id, bob.id, mbEnvelope(10))
	mbWantCode(t, "a fourth item", e, mailbox.CodeQuotaFull)
	mbAck(t, m, bob.id, ids[0])
	_, e = mbDeposit(t, m, alice.id, bob.id, mbEnvelope(1201)) // 800 + 1201 > 2000
	mbWantCode(t, "over the byte quota", e, mailbox.CodeQuotaFull)
	if _, e := mbDeposit(t, m, alice.id, bob.id, mbEnvelope(1200)); e != nil {
		t.Fatalf("exactly at the byte quota: %v", e)
	}
	if items, size, stored := mbUsage(m, bob.id); items != 3 || size != 2000 || stored != 3 {
		t.Fatalf("usage %d items, %d bytes, %d stored", items, size, stored)
	}
	_, e = mbDeposit(t, m, alice.id, bob.id, mbEnvelope(mailbox.MaxEnvelope+1))
	mbWantCode(t, "an envelope over the size limit", e, mailbox.CodeTooLarge)
}

// One sender cannot fill someone's mailbox: past its share it is refused
// while others still get in, and an ack gives the share back.
func TestMailboxPerSenderShare(t *testing.T) {
	clock := &mbClock{t: time.Now()}
	m := mbOpen(t, filepath.Join(t.TempDir(), "mailbox.db"), MailboxLimits{MaxItems: 10, MaxPerPeer: 2, DepositRate: 1000}, clock)
	defer m.close()
	alice, bob, carol := mbNewPeer(t), mbNewPeer(t), mbNewPeer(t)
	if _, e := mbPublish(t, m, bob.id, bob.publish(t)); e != nil {
		t.Fatal(e)
	}
	var first uint64
	for i := 0; i < 2; i++ {
		id, e := mbDeposit(t, m, alice.id, bob.id, mbEnvelope(100))
		if e != nil {
			t.Fatalf("deposit %d: %v", i, e)
		}
		if i == 0 {
			first = id
		}
	}
	_, e := mbDeposit(t, m, alice.id, bob.id, mbEnvelope(100))
	mbWantCode(t, "a third item from one sender", e, mailbox.CodeQuotaFull)
	if e != nil && !strings.Contains(e.Message, "already have 2") {
		t.Errorf("message %q does not tell the sender it is its own share", e.Message)
	}
	if _, e := mbDeposit(t, m, carol.id, bob.id, mbEnvelope(100)); e != nil {
		t.Fatalf("another sender refused: %v", e)
	}
	mbAck(t, m, bob.id, first)
	if _, e := mbDeposit(t, m, alice.id, bob.id, mbEnvelope(100)); e != nil {
		t.Fatalf("after an ack the sender's share is back: %v", e)
	}
}

// Deposits and bundle fetches are rate-limited per requester, and the
// answer says when to retry (never "0 s": the wait is rounded up).
func TestMailboxRateLimits(t *testing.T) {
	clock := &mbClock{t: time.Now()}
	m := mbOpen(t, filepath.Join(t.TempDir(), "mailbox.db"), MailboxLimits{}, clock)
	defer m.close()
	alice, bob, carol := mbNewPeer(t), mbNewPeer(t), mbNewPeer(t)
	if _, e := mbPublish(t, m, bob.id, bob.publish(t)); e != nil {
		t.Fatal(e)
	}
	burst := int(10*DefaultMailboxLimits.DepositRate) + 1
	for i := 0; i < burst; i++ {
		if _, e := mbDeposit(t, m, alice.id, bob.id, mbEnvelope(100)); e != nil {
			t.Fatalf("deposit %d of the burst: %v", i, e)
		}
	}
	_, e := mbDeposit(t, m, alice.id, bob.id, mbEnvelope(100))
	mbWantCode(t, "a deposit beyond the burst", e, mailbox.CodeRateLimited)
	if e.RetryAfter < time.Second {
		t.Fatalf("retry after %v: a client would retry at once", e.RetryAfter)
	}
	if !errors.Is(e, mailbox.ErrRateLimited) {
		t.Fatal("errors.Is does not match ErrRateLimited")
	}
	if _, e := mbDeposit(t, m, carol.id, bob.id, mbEnvelope(100)); e != nil {
		t.Fatalf("carol is limited by alice's deposits: %v", e)
	}
	clock.add(time.Second)
	if _, e := mbDeposit(t, m, alice.id, bob.id, mbEnvelope(100)); e != nil {
		t.Fatalf("a second later: %v", e)
	}

	req := mailbox.FetchBundle{Peer: bob.id}.Marshal()
	for i := 0; i < 10; i++ {
		if _, _, e := mbCall(t, m, alice.id, mailbox.TypeFetchBundle, req); e != nil {
			t.Fatalf("bundle %d: %v", i, e)
		}
	}
	_, _, e = mbCall(t, m, alice.id, mailbox.TypeFetchBundle, req)
	mbWantCode(t, "an eleventh bundle", e, mailbox.CodeRateLimited)
	if e.RetryAfter < 4*time.Second || e.RetryAfter > 6*time.Second {
		t.Fatalf("bundle retry after %v, want about 5 s (0.2/s)", e.RetryAfter)
	}
}

// Bundles: the relay hands out each one-time prekey once, then bundles
// without them; a bundle for a peer without a mailbox is CodeNoBundle.
func TestMailboxBundlesOnce(t *testing.T) {
	clock := &mbClock{t: time.Now()}
	m := mbOpen(t, filepath.Join(t.TempDir(), "mailbox.db"), MailboxLimits{BundleRate: 1000}, clock)
	defer m.close()
	alice, bob := mbNewPeer(t), mbNewPeer(t)
	_, _, e := mbCall(t, m, alice.id, mailbox.TypeFetchBundle, mailbox.FetchBundle{Peer: bob.id}.Marshal())
	mbWantCode(t, "bundle of an unregistered peer", e, mailbox.CodeNoBundle)
	ok, e := mbPublish(t, m, bob.id, bob.publish(t))
	if e != nil || ok.PrekeysEC != 4 || ok.PrekeysKEM != 4 {
		t.Fatalf("publish: %+v %v", ok, e)
	}
	seen := map[uint32]bool{}
	for i := 0; i < 5; i++ {
		_, out, e := mbCall(t, m, alice.id, mailbox.TypeFetchBundle, mailbox.FetchBundle{Peer: bob.id}.Marshal())
		if e != nil {
			t.Fatal(e)
		}
		a, err := mailbox.ParseBundleAnswer(out)
		if err != nil {
			t.Fatal(err)
		}
		b, err := ratchet.ParseBundle(a.Bundle)
		if err != nil {
			t.Fatal(err)
		}
		if err := ratchet.VerifyBundle(b, bob.keys.Identity(), []byte(bob.id)); err != nil {
			t.Fatalf("bundle %d does not verify: %v", i, err)
		}
		if i == 4 {
			if b.OneTimePrekey != nil || b.OneTimeKEM != nil {
				t.Fatal("a fifth bundle still carries one-time prekeys: one was handed out twice")
			}
			continue
		}
		if b.OneTimePrekey == nil || b.OneTimeKEM == nil {
			t.Fatalf("bundle %d lacks a one-time prekey", i)
		}
		if seen[b.OneTimePrekey.ID] {
			t.Fatalf("one-time prekey %d handed out twice", b.OneTimePrekey.ID)
		}
		seen[b.OneTimePrekey.ID] = true
	}
	// A new publish with the same base adds no prekeys and keeps the box.
	if ok, e := mbPublish(t, m, bob.id, mailbox.Publish{Bundle: bob.publish(t).Bundle}); e != nil || ok.PrekeysEC != 0 {
		t.Fatalf("republish: %+v %v", ok, e)
	}
}

// Publish verifies every bundle against the requester's key: someone
// else's bundle, a base bundle carrying a one-time prekey, a one-time
// entry of the wrong kind or a tampered one are CodeBadBundle, and nothing
// of the request is stored.
func TestMailboxPublishVerifies(t *testing.T) {
	clock := &mbClock{t: time.Now()}
	m := mbOpen(t, filepath.Join(t.TempDir(), "mailbox.db"), MailboxLimits{}, clock)
	defer m.close()
	alice, bob := mbNewPeer(t), mbNewPeer(t)
	good := bob.publish(t)

	_, e := mbPublish(t, m, alice.id, good)
	mbWantCode(t, "alice publishing bob's bundle", e, mailbox.CodeBadBundle)

	withOT := mailbox.Publish{Bundle: good.OneTimeEC[0]}
	_, e = mbPublish(t, m, bob.id, withOT)
	mbWantCode(t, "a base bundle with a one-time prekey", e, mailbox.CodeBadBundle)

	wrongKind := mailbox.Publish{Bundle: good.Bundle, OneTimeEC: [][]byte{good.OneTimeKEM[0]}}
	_, e = mbPublish(t, m, bob.id, wrongKind)
	mbWantCode(t, "an ML-KEM entry among the X25519 ones", e, mailbox.CodeBadBundle)

	tampered := bytes.Clone(good.OneTimeEC[1])
	tampered[len(tampered)-1] ^= 1 // the one-time prekey's signature
	_, e = mbPublish(t, m, bob.id, mailbox.Publish{Bundle: good.Bundle, OneTimeEC: [][]byte{good.OneTimeEC[0], tampered}})
	mbWantCode(t, "a tampered one-time prekey", e, mailbox.CodeBadBundle)

	_, e = mbPublish(t, m, bob.id, mailbox.Publish{Bundle: []byte{1, 2, 3}})
	mbWantCode(t, "a bundle that does not parse", e, mailbox.CodeBadBundle)

	_, _, e = mbCall(t, m, bob.id, mailbox.TypePublish, []byte{0, 0})
	mbWantCode(t, "a publish that does not parse", e, mailbox.CodeMalformed)
	_, _, e = mbCall(t, m, bob.id, 0x2f, nil)
	mbWantCode(t, "an unknown request", e, mailbox.CodeMalformed)

	m.db.View(func(tx *bolt.Tx) error {
		for _, p := range []peer.ID{alice.id, bob.id} {
			if tx.Bucket(bktBundles).Get([]byte(p)) != nil {
				t.Errorf("a refused publish registered %s", p)
			}
			if b := tx.Bucket(bktOTEC).Bucket([]byte(p)); b != nil && countKeys(b) > 0 {
				t.Errorf("a refused publish stored one-time prekeys of %s", p)
			}
		}
		return nil
	})
	_, e = mbDeposit(t, m, alice.id, bob.id, mbEnvelope(100))
	mbWantCode(t, "a deposit for bob after refused publishes", e, mailbox.CodeNotRegistered)
}

// The TTL sweep deletes what is older than the TTL, and only that, and the
// usage counters follow.
func TestMailboxTTLSweep(t *testing.T) {
	clock := &mbClock{t: time.Now()}
	ttl := 14 * 24 * time.Hour
	m := mbOpen(t, filepath.Join(t.TempDir(), "mailbox.db"), MailboxLimits{TTL: ttl, DepositRate: 1000}, clock)
	defer m.close()
	alice, bob, carol := mbNewPeer(t), mbNewPeer(t), mbNewPeer(t)
	for _, p := range []mbPeer{bob, carol} {
		if _, e := mbPublish(t, m, p.id, p.publish(t)); e != nil {
			t.Fatal(e)
		}
	}
	for i := 0; i < 3; i++ {
		mbDeposit(t, m, alice.id, bob.id, mbEnvelope(300))
	}
	mbDeposit(t, m, alice.id, carol.id, mbEnvelope(200))
	clock.add(ttl / 2)
	fresh, _ := mbDeposit(t, m, alice.id, bob.id, mbEnvelope(500))

	m.sweep()
	if items, size, stored := mbUsage(m, bob.id); items != 4 || size != 1400 || stored != 4 {
		t.Fatalf("a sweep before the TTL deleted something: %d items, %d bytes, %d stored", items, size, stored)
	}
	clock.add(ttl/2 + time.Minute)
	m.sweep()
	if items, size, stored := mbUsage(m, bob.id); items != 1 || size != 500 || stored != 1 {
		t.Fatalf("after the TTL: %d items, %d bytes, %d stored; want the fresh one", items, size, stored)
	}
	if got := mbFetch(t, m, bob.id, 64); len(got.Items) != 1 || got.Items[0].ID != fresh {
		t.Fatalf("bob's mailbox after the sweep: %+v", got)
	}
	if items, size, stored := mbUsage(m, carol.id); items != 0 || size != 0 || stored != 0 {
		t.Fatalf("carol's expired item: %d items, %d bytes, %d stored", items, size, stored)
	}
	// The counters are right: the quota counts only what is left.
	m.lim.MaxItems = 2
	if _, e := mbDeposit(t, m, alice.id, bob.id, mbEnvelope(100)); e != nil {
		t.Fatalf("after the sweep the quota still counts deleted items: %v", e)
	}
}

// A relay restart loses nothing (items, usage, registrations, prekeys),
// and a fetch whose answer is lost before the ack loses nothing either.
func TestMailboxRestartAndLostFetch(t *testing.T) {
	clock := &mbClock{t: time.Now()}
	path := filepath.Join(t.TempDir(), "mailbox.db")
	m := mbOpen(t, path, MailboxLimits{DepositRate: 1000}, clock)
	alice, bob := mbNewPeer(t), mbNewPeer(t)
	if _, e := mbPublish(t, m, bob.id, bob.publish(t)); e != nil {
		t.Fatal(e)
	}
	var envs [][]byte
	for i := 0; i < 70; i++ {
		env := mbEnvelope(100 + i)
		if _, e := mbDeposit(t, m, alice.id, bob.id, env); e != nil {
			t.Fatal(e)
		}
		envs = append(envs, env)
	}
	first := mbFetch(t, m, bob.id, 64)
	again := mbFetch(t, m, bob.id, 64) // the first answer was lost: no ack
	if len(first.Items) != 64 || !first.More || len(again.Items) != 64 {
		t.Fatalf("fetches of %d and %d items (more %v)", len(first.Items), len(again.Items), first.More)
	}
	for i := range first.Items {
		a, b := first.Items[i], again.Items[i]
		if a.ID != b.ID || a.From != b.From || !a.Deposited.Equal(b.Deposited) || !bytes.Equal(a.Envelope, b.Envelope) {
			t.Fatalf("item %d differs between two fetches", i)
		}
		if !bytes.Equal(a.Envelope, envs[i]) {
			t.Fatalf("item %d is not the %dth deposit: fetch is not oldest first", i, i)
		}
	}
	items0, size0, _ := mbUsage(m, bob.id)
	if err := m.close(); err != nil {
		t.Fatal(err)
	}

	m = mbOpen(t, path, MailboxLimits{DepositRate: 1000}, clock)
	defer m.close()
	items1, size1, stored := mbUsage(m, bob.id)
	if items1 != items0 || size1 != size0 || stored != 70 {
		t.Fatalf("after a restart: %d items, %d bytes, %d stored; before: %d items, %d bytes", items1, size1, stored, items0, size0)
	}
	var got [][]byte
	for {
		items := mbFetch(t, m, bob.id, 64)
		var ids []uint64
		for _, it := range items.Items {
			got = append(got, it.Envelope)
			ids = append(ids, it.ID)
		}
		mbAck(t, m, bob.id, ids...)
		if !items.More {
			break
		}
	}
	if len(got) != 70 {
		t.Fatalf("fetched %d items after the restart, want 70", len(got))
	}
	for i := range got {
		if !bytes.Equal(got[i], envs[i]) {
			t.Fatalf("item %d changed across the restart", i)
		}
	}
	_, out, e := mbCall(t, m, alice.id, mailbox.TypeFetchBundle, mailbox.FetchBundle{Peer: bob.id}.Marshal())
	if e != nil {
		t.Fatalf("bob's registration was lost in the restart: %v", e)
	}
	a, _ := mailbox.ParseBundleAnswer(out)
	if b, err := ratchet.ParseBundle(a.Bundle); err != nil || b.OneTimePrekey == nil {
		t.Fatalf("bob's one-time prekeys were lost in the restart (%v)", err)
	}
}

// One fetch answer is one frame: however large the envelopes waiting, the
// answer stays within the frame limit (it says "more"), so a recipient
// with several large messages can still fetch them all.
func TestMailboxFetchFitsOneFrame(t *testing.T) {
	clock := &mbClock{t: time.Now()}
	m := mbOpen(t, filepath.Join(t.TempDir(), "mailbox.db"), MailboxLimits{DepositRate: 1000}, clock)
	defer m.close()
	alice, bob := mbNewPeer(t), mbNewPeer(t)
	if _, e := mbPublish(t, m, bob.id, bob.publish(t)); e != nil {
		t.Fatal(e)
	}
	const n = 8
	for i := 0; i < n; i++ {
		if _, e := mbDeposit(t, m, alice.id, bob.id, mbEnvelope(mailbox.MaxEnvelope)); e != nil {
			t.Fatal(e)
		}
	}
	got, fetches := 0, 0
	for ; fetches < 2*n; fetches++ {
		items := mbFetch(t, m, bob.id, mailbox.MaxFetch) // mbCall checks the frame limit
		if len(items.Items) == 0 {
			t.Fatal("an empty answer while items wait")
		}
		var ids []uint64
		for _, it := range items.Items {
			ids = append(ids, it.ID)
		}
		got += len(ids)
		mbAck(t, m, bob.id, ids...)
		if !items.More {
			break
		}
	}
	if got != n {
		t.Fatalf("fetched %d of %d large items", got, n)
	}
	t.Logf("%d items of %d bytes in %d fetches", n, mailbox.MaxEnvelope, fetches+1)
}

// The mailbox through the network, with the node's client: errors arrive
// as *mailbox.Error that errors.Is matches, with the retry time.
func TestMailboxClientErrors(t *testing.T) {
	srv, err := NewServer(Config{Home: identity.Home{Dir: t.TempDir()}, Listen: []string{"/ip4/127.0.0.1/tcp/0"},
		Mailbox: MailboxLimits{MaxItems: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	bob := mbNewPeer(t)
	bid := bob.id
	key, _ := identity.Libp2pKey(bob.priv)
	bh, err := libp2p.New(libp2p.Identity(key), libp2p.NoListenAddrs)
	if err != nil {
		t.Fatal(err)
	}
	defer bh.Close()
	ah, err := libp2p.New(libp2p.NoListenAddrs)
	if err != nil {
		t.Fatal(err)
	}
	defer ah.Close()
	info := peer.AddrInfo{ID: srv.ID(), Addrs: srv.Host().Addrs()}
	ctx := context.Background()
	for _, h := range []host.Host{ah, bh} {
		if err := h.Connect(ctx, info); err != nil {
			t.Fatal(err)
		}
	}
	ac, bc := mailbox.Client{Host: ah}, mailbox.Client{Host: bh}

	if _, err := ac.Deposit(ctx, srv.ID(), bid, mbEnvelope(100)); !errors.Is(err, mailbox.ErrNotRegistered) {
		t.Fatalf("deposit before bob registered: %v", err)
	}
	if _, err := bc.Publish(ctx, srv.ID(), bob.publish(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := ac.Deposit(ctx, srv.ID(), bid, mbEnvelope(100)); err != nil {
		t.Fatal(err)
	}
	_, err = ac.Deposit(ctx, srv.ID(), bid, mbEnvelope(100))
	var me *mailbox.Error
	if !errors.Is(err, mailbox.ErrQuotaFull) || !errors.As(err, &me) || me.Message == "" {
		t.Fatalf("deposit into a full mailbox: %v", err)
	}
	t.Logf("the sender is told: %v", err)
	if _, err := ac.Deposit(ctx, srv.ID(), bid, mbEnvelope(mailbox.MaxEnvelope+1)); !errors.Is(err, mailbox.ErrTooLarge) {
		t.Fatalf("a too large envelope: %v", err)
	}
	var limited error
	for i := 0; i < 12 && limited == nil; i++ {
		_, limited = ac.FetchBundle(ctx, srv.ID(), bid)
	}
	if !errors.Is(limited, mailbox.ErrRateLimited) || !errors.As(limited, &me) || me.RetryAfter < time.Second {
		t.Fatalf("twelve bundle fetches: %v", limited)
	}
	items, err := ac.Fetch(ctx, srv.ID(), 64)
	if err != nil || len(items.Items) != 0 {
		t.Fatalf("alice fetched %d items of bob's (%v)", len(items.Items), err)
	}
	items, err = bc.Fetch(ctx, srv.ID(), 64)
	if err != nil || len(items.Items) != 1 || items.Items[0].From != ah.ID() {
		t.Fatalf("bob's fetch: %+v %v", items, err)
	}
}

// Registrations are bounded: publishing is rate-limited per peer, and a
// relay holds at most MaxMailbox mailboxes (re-publishing one it holds is
// always allowed). Peer IDs are free to make, so both are needed.
func TestMailboxRegistrationLimits(t *testing.T) {
	clock := &mbClock{t: time.Now()}
	m := mbOpen(t, filepath.Join(t.TempDir(), "mailbox.db"), MailboxLimits{MaxMailbox: 2, PublishRate: 0.1}, clock)
	defer m.close()
	a, b, c := mbNewPeer(t), mbNewPeer(t), mbNewPeer(t)
	for _, p := range []mbPeer{a, b} {
		if _, e := mbPublish(t, m, p.id, p.publish(t)); e != nil {
			t.Fatal(e)
		}
	}
	_, e := mbPublish(t, m, c.id, c.publish(t))
	mbWantCode(t, "a third mailbox", e, mailbox.CodeQuotaFull)
	if _, e := mbPublish(t, m, a.id, mailbox.Publish{Bundle: a.publish(t).Bundle}); e != nil {
		t.Fatalf("re-publishing a held mailbox: %v", e)
	}
	// a has published twice; the burst is 5.
	for i := 0; i < 3; i++ {
		if _, e := mbPublish(t, m, a.id, mailbox.Publish{Bundle: a.publish(t).Bundle}); e != nil {
			t.Fatalf("publish %d: %v", i, e)
		}
	}
	_, e = mbPublish(t, m, a.id, mailbox.Publish{Bundle: a.publish(t).Bundle})
	mbWantCode(t, "a sixth publish at once", e, mailbox.CodeRateLimited)
}

// At most MaxPrekeys one-time prekeys of a kind are kept, the newest.
func TestMailboxPrekeyCap(t *testing.T) {
	clock := &mbClock{t: time.Now()}
	m := mbOpen(t, filepath.Join(t.TempDir(), "mailbox.db"), MailboxLimits{MaxPrekeys: 3}, clock)
	defer m.close()
	bob := mbNewPeer(t) // 4 one-time prekeys of each kind
	ok, e := mbPublish(t, m, bob.id, bob.publish(t))
	if e != nil || ok.PrekeysEC != 3 || ok.PrekeysKEM != 3 {
		t.Fatalf("publish of 4 + 4 with a cap of 3: %+v %v", ok, e)
	}
}

// Idle per-peer limiters are forgotten once there are many.
func TestLimitersForgetIdlePeers(t *testing.T) {
	l := newLimiters(1, 1)
	t0 := time.Now()
	for i := 0; i <= 10000; i++ {
		l.allow(peer.ID(fmt.Sprint(i)), t0)
	}
	l.allow("late", t0.Add(2*time.Hour))
	if n := len(l.m); n != 1 {
		t.Fatalf("%d limiters kept after two idle hours, want 1", n)
	}
}

// A mailbox its owner stops using is removed with all it holds once Idle
// passes, which frees its place under MaxMailbox; one in use stays, and
// the owner registers again when it comes back. Uses are counted from
// publish, fetch and ack, and survive a relay restart.
func TestMailboxIdleRemoval(t *testing.T) {
	clock := &mbClock{t: time.Now()}
	path := filepath.Join(t.TempDir(), "mailbox.db")
	lim := MailboxLimits{TTL: 24 * time.Hour, Idle: 10 * 24 * time.Hour, MaxMailbox: 2, DepositRate: 1000, PublishRate: 1000}
	m := mbOpen(t, path, lim, clock)
	alice, bob, carol, dave := mbNewPeer(t), mbNewPeer(t), mbNewPeer(t), mbNewPeer(t)
	for _, p := range []mbPeer{bob, carol} {
		if _, e := mbPublish(t, m, p.id, p.publish(t)); e != nil {
			t.Fatal(e)
		}
	}
	_, e := mbPublish(t, m, dave.id, dave.publish(t))
	mbWantCode(t, "a third mailbox", e, mailbox.CodeQuotaFull)
	mbDeposit(t, m, alice.id, carol.id, mbEnvelope(100))
	m.sweep()

	// Bob keeps fetching; carol never comes back. A fetch by dave, who
	// has no mailbox, records nothing.
	for days := 3; days <= 12; days += 3 {
		clock.add(3 * 24 * time.Hour)
		mbFetch(t, m, bob.id, 8)
		mbFetch(t, m, dave.id, 8)
		m.sweep()
		if days < 10 && !mbRegistered(m, carol.id) {
			t.Fatalf("carol's mailbox removed after %d days", days)
		}
		if c := m.close(); c != nil { // a restart keeps the record of uses
			t.Fatal(c)
		}
		m = mbOpen(t, path, lim, clock)
	}
	defer m.close()
	if mbRegistered(m, carol.id) || !mbRegistered(m, bob.id) || mbRegistered(m, dave.id) {
		t.Fatalf("after 12 days: carol %v, bob %v, dave %v; want only bob",
			mbRegistered(m, carol.id), mbRegistered(m, bob.id), mbRegistered(m, dave.id))
	}
	m.db.View(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bktOTEC, bktOTKEM, bktMail} {
			if tx.Bucket(b).Bucket([]byte(carol.id)) != nil {
				t.Errorf("%s of carol left behind", b)
			}
		}
		for _, b := range [][]byte{bktUsage, bktSeen} {
			if tx.Bucket(b).Get([]byte(carol.id)) != nil {
				t.Errorf("%s of carol left behind", b)
			}
		}
		if tx.Bucket(bktSeen).Get([]byte(dave.id)) != nil {
			t.Error("a fetch without a mailbox was recorded")
		}
		if n := countKeys(tx.Bucket(bktPairs)); n != 0 {
			t.Errorf("%d sender counts left", n)
		}
		return nil
	})
	if _, e := mbPublish(t, m, dave.id, dave.publish(t)); e != nil {
		t.Fatalf("carol's place is free again, yet: %v", e)
	}
	if _, e := mbPublish(t, m, carol.id, carol.publish(t)); e == nil {
		t.Fatal("carol registered over the limit")
	}
}

func mbRegistered(m *mailboxServer, p peer.ID) bool {
	var ok bool
	m.db.View(func(tx *bolt.Tx) error {
		ok = tx.Bucket(bktBundles).Get([]byte(p)) != nil
		return nil
	})
	return ok
}
