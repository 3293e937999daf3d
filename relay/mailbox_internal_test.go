// Unit tests of the mailbox server that call it directly, with a clock of
// their own: the helpers the mailbox_*_internal_test.go files share, and
// the tests of owner-only access, restarts, fetch sizes and the client's
// errors.

package relay

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/e2e/ratchet"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/mailbox"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
)

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
