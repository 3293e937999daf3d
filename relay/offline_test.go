package relay_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/e2e/ratchet"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/mailbox"
	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/relay"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Offline delivery against a relay whose mailbox misbehaves
// (relay.Mischief, mischief_internal_test.go): real nodes, reachable only
// through the relay, and a real relay on 127.0.0.1. Each test asserts what
// the users see (events, statuses, outboxes) and what is stored, and that
// nothing corrupted or duplicated reaches the history. The node's own
// tests (node/offline_internal_test.go) check the ratchet state byte for
// byte; these check the whole path.

// offWorld is a relay with a mailbox (mischievous or honest).
type offWorld struct {
	t     *testing.T
	srv   *relay.Server
	x     *relay.Mischief
	addrs []string
}

func offStartRelay(t *testing.T, x *relay.Mischief, lim relay.MailboxLimits) *offWorld {
	t.Helper()
	if x == nil {
		x = &relay.Mischief{}
	}
	srv, err := relay.NewMischievousServer(relay.Config{Home: identity.Home{Dir: t.TempDir()},
		Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Mailbox: lim}, x)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return &offWorld{t: t, srv: srv, x: x, addrs: srv.Addrs()}
}

// register makes a peer that registers its mailbox at the relay and goes
// offline; it returns its home, to come back later.
func (w *offWorld) register(name string) (identity.Home, peer.ID) {
	w.t.Helper()
	h := newHomeAt(w.t, name)
	n, sub := startAt(w.t, h, w.addrs)
	waitCircuit(w.t, sub)
	waitMailbox(w.t, n)
	id := n.ID()
	n.Close()
	return h, id
}

// online starts a peer from its home, reachable through the relay.
func (w *offWorld) online(h identity.Home) (*node.Node, *node.Subscription) {
	w.t.Helper()
	n, sub := startAt(w.t, h, w.addrs)
	w.t.Cleanup(func() { n.Close() })
	waitCircuit(w.t, sub)
	return n, sub
}

// sender starts a new peer that trusts to and sends it texts, waiting
// until each is queued at the relay.
func (w *offWorld) sender(name string, to peer.ID, texts ...string) (*node.Node, *node.Subscription, identity.Home, []store.Message) {
	w.t.Helper()
	h := newHomeAt(w.t, name)
	n, sub := w.online(h)
	if err := n.Contacts().Trust(to, false); err != nil {
		w.t.Fatal(err)
	}
	var ms []store.Message
	for _, text := range texts {
		m, err := n.Send(to, text)
		if err != nil {
			w.t.Fatal(err)
		}
		ms = append(ms, m)
	}
	for _, m := range ms {
		offWaitStatus(w.t, sub, m, store.StatusQueued)
	}
	return n, sub, h, ms
}

func offWaitStatus(t *testing.T, sub *node.Subscription, m store.Message, st store.Status) {
	t.Helper()
	waitEvent(t, sub, fmt.Sprintf("%q %s", m.Body, st), func(e node.Event) bool {
		return e.Kind == node.EventStatus && e.Message.ID == m.ID && e.Message.Status == st
	})
}

// offCollect gathers events for d.
func offCollect(sub *node.Subscription, d time.Duration) []node.Event {
	var out []node.Event
	timeout := time.After(d)
	for {
		select {
		case e := <-sub.C:
			out = append(out, e)
		case <-timeout:
			return out
		}
	}
}

// offMessages waits for message events until every id in want arrived,
// then a while longer, and fails on a message shown twice or one not
// sent. It returns the bodies in arrival order.
func offMessages(t *testing.T, sub *node.Subscription, want []store.Message, quiet time.Duration) []string {
	t.Helper()
	sent := map[e2e.MessageID]store.Message{}
	for _, m := range want {
		sent[m.ID] = m
	}
	seen := map[e2e.MessageID]int{}
	var order []string
	check := func(e node.Event) {
		if e.Kind != node.EventMessage {
			return
		}
		m, ok := sent[e.Message.ID]
		if !ok {
			t.Errorf("unexpected message %q", e.Message.Body)
			return
		}
		if e.Message.Body != m.Body {
			t.Errorf("message %s shows %q, sent %q", m.ID, e.Message.Body, m.Body)
		}
		seen[m.ID]++
		order = append(order, e.Message.Body)
	}
	for len(seen) < len(sent) {
		check(waitEvent(t, sub, fmt.Sprintf("%d messages", len(sent)), func(e node.Event) bool { return e.Kind == node.EventMessage }))
	}
	for _, e := range offCollect(sub, quiet) {
		check(e)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("message %q shown %d times", sent[id].Body, n)
		}
	}
	return order
}

// offHistory checks that n stored exactly these messages from p.
func offHistory(t *testing.T, n *node.Node, p peer.ID, want []store.Message) {
	t.Helper()
	hist, err := n.History(p, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != len(want) {
		t.Fatalf("%d messages stored from %s, want %d", len(hist), identity.ShortID(p), len(want))
	}
	for _, w := range want {
		found := 0
		for _, h := range hist {
			if h.ID == w.ID {
				found++
				if h.Body != w.Body {
					t.Fatalf("stored %q for %q", h.Body, w.Body)
				}
			}
		}
		if found != 1 {
			t.Fatalf("%q stored %d times", w.Body, found)
		}
	}
}

// offEmptied waits until the relay holds nothing for p and its usage
// counters say so.
func (w *offWorld) emptied(p peer.ID) {
	w.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		items, size, stored := relay.MailboxUsage(w.srv, p)
		if items == 0 && size == 0 && stored == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	items, size, stored := relay.MailboxUsage(w.srv, p)
	w.t.Fatalf("the mailbox still holds %d items (%d bytes, %d stored)", items, size, stored)
}

// offFirstError waits for the first message or error event and fails
// unless it is an error about from that says want.
func offFirstError(t *testing.T, sub *node.Subscription, from peer.ID, want string) {
	t.Helper()
	e := waitEvent(t, sub, "an error", func(e node.Event) bool {
		return e.Kind == node.EventError || e.Kind == node.EventMessage
	})
	if e.Kind != node.EventError || e.PeerID != from || !strings.Contains(e.Err, want) {
		t.Fatalf("event %s %q for %s", e.Kind, e.Err, identity.ShortID(e.PeerID))
	}
}

func offOutboxStatus(t *testing.T, n *node.Node, p peer.ID, m store.Message) store.Status {
	t.Helper()
	out, err := n.Store().Outbox(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range out {
		if o.ID == m.ID {
			return o.Status
		}
	}
	t.Fatalf("%q is not in the outbox", m.Body)
	return ""
}

// A relay hands out a bundle whose signature does not verify: the sender
// refuses it, deposits nothing, keeps the message in its outbox and tells
// its user why. When the relay hands out the real bundle, the message is
// queued and reaches the peer once.
func TestOfflineBadBundleSignature(t *testing.T) {
	x := &relay.Mischief{BadBundleSignature: true}
	w := offStartRelay(t, x, relay.MailboxLimits{BundleRate: 100})
	bobHome, bob := w.register("bob")
	alice, asub := w.online(newHomeAt(t, "alice"))
	alice.Contacts().Trust(bob, false)
	m, err := alice.Send(bob, "not for a forged bundle")
	if err != nil {
		t.Fatal(err)
	}
	e := waitEvent(t, asub, "an error event", func(e node.Event) bool { return e.Kind == node.EventError })
	if e.PeerID != bob || !strings.Contains(e.Err, "bad signature") || !strings.Contains(e.Err, "outbox") {
		t.Fatalf("error event for %s: %q", identity.ShortID(e.PeerID), e.Err)
	}
	t.Logf("alice is told: %s", e.Err)
	for _, e := range offCollect(asub, 500*time.Millisecond) {
		if e.Kind == node.EventStatus && e.Message.ID == m.ID && e.Message.Status != store.StatusSending {
			t.Fatalf("status %s with a forged bundle", e.Message.Status)
		}
	}
	if deposits, _, bundles := x.Counts(); deposits != 0 || bundles == 0 {
		t.Fatalf("%d deposits, %d bundles handed out", deposits, bundles)
	}
	if items, _, stored := relay.MailboxUsage(w.srv, bob); items != 0 || stored != 0 {
		t.Fatal("something was deposited for bob")
	}
	if st := offOutboxStatus(t, alice, bob, m); st != store.StatusSending {
		t.Fatalf("status %s in the outbox", st)
	}

	x.Lock()
	x.BadBundleSignature = false
	x.Unlock()
	offWaitStatus(t, asub, m, store.StatusQueued)
	alice.Close()
	b, bsub := w.online(bobHome)
	offMessages(t, bsub, []store.Message{m}, 300*time.Millisecond)
	offHistory(t, b, alice.ID(), []store.Message{m})
}

// A relay hands the same one-time prekey to two senders. The first
// contact that arrives first opens; the other is refused as a replay
// (ErrReplay), shown to the recipient as an error, and nothing of it is
// stored. Its sender is not told and does not start over from a fresh
// bundle: its message stays "queued" until the two are online together,
// when the live session seeds a new ratchet session and delivers it, once.
func TestOfflineReusedOneTimePrekey(t *testing.T) {
	x := &relay.Mischief{FreezeBundles: true}
	w := offStartRelay(t, x, relay.MailboxLimits{})
	bobHome, bob := w.register("bob")
	alice, _, _, am := w.sender("alice", bob, "alice's first contact")
	alice.Close()
	carol, _, carolHome, cm := w.sender("carol", bob, "carol's first contact, same one-time prekey")
	carol.Close()
	if _, _, bundles := x.Counts(); bundles != 2 {
		t.Fatalf("%d bundles handed out, want 2", bundles)
	}

	b, bsub := w.online(bobHome)
	var errs []string
	got := map[e2e.MessageID]bool{}
	for len(errs) == 0 || !got[am[0].ID] {
		e := waitEvent(t, bsub, "alice's message and an error for carol's", func(e node.Event) bool {
			return e.Kind == node.EventMessage || e.Kind == node.EventError
		})
		switch e.Kind {
		case node.EventMessage:
			if e.Message.ID != am[0].ID {
				t.Fatalf("message %q", e.Message.Body)
			}
			got[e.Message.ID] = true
		case node.EventError:
			if e.PeerID != carol.ID() || !strings.Contains(e.Err, "replayed") {
				t.Fatalf("error %q for %s", e.Err, identity.ShortID(e.PeerID))
			}
			errs = append(errs, e.Err)
		}
	}
	t.Logf("bob is told: %s", errs[0])
	w.emptied(bob)
	offHistory(t, b, carol.ID(), nil)
	offHistory(t, b, alice.ID(), am)

	carol, csub := w.online(carolHome)
	if st := offOutboxStatus(t, carol, bob, cm[0]); st != store.StatusQueued {
		t.Fatalf("carol's message is %s", st)
	}
	offWaitStatus(t, csub, cm[0], store.StatusDelivered)
	offMessages(t, bsub, cm, 300*time.Millisecond)
	offHistory(t, b, carol.ID(), cm)
}

// A mailbox that stores every envelope twice: each message is shown and
// stored once, the copies are acknowledged silently.
func TestOfflineDuplicatedMail(t *testing.T) {
	w := offStartRelay(t, &relay.Mischief{DuplicateDeposits: true}, relay.MailboxLimits{})
	bobHome, bob := w.register("bob")
	alice, _, _, ms := w.sender("alice", bob, "one", "two")
	alice.Close()
	if items, _, _ := relay.MailboxUsage(w.srv, bob); items != 4 {
		t.Fatalf("%d items for bob, want 2 × 2", items)
	}
	b, bsub := w.online(bobHome)
	offMessages(t, bsub, ms, 500*time.Millisecond)
	w.emptied(bob)
	offHistory(t, b, alice.ID(), ms)
}

// A mailbox that answers in reverse order and holds one envelope back:
// everything opens within the window, each message once; the one held
// back arrives when released. No error is shown. (The gaps the ratchet
// sees are not shown to the user either: see the report.)
func TestOfflineReorderedMail(t *testing.T) {
	x := &relay.Mischief{ReverseFetch: true, Hold: func(it mailbox.Item) bool { return it.ID == 2 }}
	w := offStartRelay(t, x, relay.MailboxLimits{})
	bobHome, bob := w.register("bob")
	alice, _, _, ms := w.sender("alice", bob, "m1", "m2", "m3", "m4", "m5")
	alice.Close()
	b, bsub := w.online(bobHome)
	order := offMessages(t, bsub, []store.Message{ms[0], ms[2], ms[3], ms[4]}, 300*time.Millisecond)
	if strings.Join(order, ",") != "m5,m4,m3,m1" {
		t.Fatalf("arrival order %v", order)
	}
	x.Release(bob)
	offMessages(t, bsub, ms[1:2], 300*time.Millisecond)
	w.emptied(bob)
	offHistory(t, b, alice.ID(), ms)
	for _, e := range offCollect(bsub, 100*time.Millisecond) {
		if e.Kind == node.EventError {
			t.Fatalf("error event: %s", e.Err)
		}
	}
}

// A mailbox that accepts deposits and drops them: the message shows
// "queued" and stays in the sender's outbox; when both are online it is
// delivered live, once.
func TestOfflineDroppedMail(t *testing.T) {
	x := &relay.Mischief{DropDeposits: true}
	w := offStartRelay(t, x, relay.MailboxLimits{})
	bobHome, bob := w.register("bob")
	alice, asub, _, ms := w.sender("alice", bob, "dropped by the relay")
	if _, dropped, _ := x.Counts(); dropped != 1 {
		t.Fatalf("%d deposits dropped", dropped)
	}
	if st := offOutboxStatus(t, alice, bob, ms[0]); st != store.StatusQueued {
		t.Fatalf("outbox status %s", st)
	}
	b, bsub := w.online(bobHome)
	offWaitStatus(t, asub, ms[0], store.StatusDelivered)
	offMessages(t, bsub, ms, 300*time.Millisecond)
	offHistory(t, b, alice.ID(), ms)
}

// A relay that answers fetches claiming another depositor (carol for
// alice's envelope): the envelope does not open for carol (her identity
// did not sign its first-contact key), an error names carol, nothing is
// stored from either; it is acknowledged. Alice's message is still hers to
// deliver: live, once, when both are online.
func TestOfflineMailClaimingAnotherSender(t *testing.T) {
	x := &relay.Mischief{}
	w := offStartRelay(t, x, relay.MailboxLimits{})
	bobHome, bob := w.register("bob")
	_, carol := w.register("carol")
	alice, _, aliceHome, ms := w.sender("alice", bob, "sealed by alice")
	alice.Close()
	x.Lock()
	x.ClaimSender = map[peer.ID]peer.ID{alice.ID(): carol}
	x.Unlock()

	b, bsub := w.online(bobHome)
	offFirstError(t, bsub, carol, "bad signature")
	w.emptied(bob)
	offHistory(t, b, carol, nil)
	offHistory(t, b, alice.ID(), nil)

	x.Lock()
	x.ClaimSender = nil
	x.Unlock()
	_, asub := w.online(aliceHome)
	offWaitStatus(t, asub, ms[0], store.StatusDelivered)
	offMessages(t, bsub, ms, 300*time.Millisecond)
	offHistory(t, b, alice.ID(), ms)
}

// A depositor's envelope for bob re-addressed to carol's mailbox: it does
// not open at carol (the recipient is in its associated data; here the
// first-contact keys do not match hers), an error names the sender, carol
// stores nothing.
func TestOfflineReaddressedMail(t *testing.T) {
	x := &relay.Mischief{}
	w := offStartRelay(t, x, relay.MailboxLimits{})
	_, bob := w.register("bob")
	carolHome, carol := w.register("carol")
	x.Lock()
	x.Readdress = map[peer.ID]peer.ID{bob: carol}
	x.Unlock()
	alice, _, _, _ := w.sender("alice", bob, "for bob only")
	alice.Close()
	if items, _, _ := relay.MailboxUsage(w.srv, carol); items != 1 {
		t.Fatalf("%d items for carol", items)
	}
	c, csub := w.online(carolHome)
	offFirstError(t, csub, alice.ID(), "authentication failed")
	w.emptied(carol)
	offHistory(t, c, alice.ID(), nil)
}

// A full mailbox: the sender's user is told it is full, and the message
// waits in the outbox (not "queued").
func TestOfflineMailboxFullSenderTold(t *testing.T) {
	w := offStartRelay(t, nil, relay.MailboxLimits{MaxItems: 1})
	_, bob := w.register("bob")
	alice, asub, _, ms := w.sender("alice", bob, "fits")
	m2, err := alice.Send(bob, "does not fit")
	if err != nil {
		t.Fatal(err)
	}
	e := waitEvent(t, asub, "an error event", func(e node.Event) bool { return e.Kind == node.EventError })
	if e.PeerID != bob || !strings.Contains(e.Err, "mailbox is full") || !strings.Contains(e.Err, "outbox") {
		t.Fatalf("error event: %q", e.Err)
	}
	t.Logf("alice is told: %s", e.Err)
	if st := offOutboxStatus(t, alice, bob, m2); st != store.StatusSending {
		t.Fatalf("status %s", st)
	}
	if st := offOutboxStatus(t, alice, bob, ms[0]); st != store.StatusQueued {
		t.Fatalf("status %s", st)
	}
}

// Large messages through the mailbox: a fetch answer is one frame, so
// several large envelopes must come in several fetches, not make every
// fetch fail.
func TestOfflineLargeMessagesThroughMailbox(t *testing.T) {
	w := offStartRelay(t, nil, relay.MailboxLimits{})
	bobHome, bob := w.register("bob")
	var texts []string
	for i := 0; i < 5; i++ {
		texts = append(texts, strings.Repeat(string(rune('a'+i)), 60<<10))
	}
	alice, _, _, ms := w.sender("alice", bob, texts...)
	alice.Close()
	b, bsub := w.online(bobHome)
	offMessages(t, bsub, ms, 300*time.Millisecond)
	w.emptied(bob)
	offHistory(t, b, alice.ID(), ms)
}

// --- benchmark ---

// offBenchPeer is a libp2p host with a certchat-like identity and ratchet
// keys, talking to the mailbox with the node's client.
type offBenchPeer struct {
	h    host.Host
	id   peer.ID
	keys *ratchet.LocalKeys
}

func offNewBenchPeer(b *testing.B) *offBenchPeer {
	b.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	key, err := identity.Libp2pKey(priv)
	if err != nil {
		b.Fatal(err)
	}
	h, err := libp2p.New(libp2p.Identity(key), libp2p.NoListenAddrs)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Close() })
	keys, err := ratchet.NewLocalKeys(priv, []byte(h.ID()), time.Now())
	if err != nil {
		b.Fatal(err)
	}
	return &offBenchPeer{h: h, id: h.ID(), keys: keys}
}

// offEnvelopes seals n texts of size bytes from a to b, as a node does
// after the session is confirmed (normal envelopes).
func offEnvelopes(b *testing.B, a, r *offBenchPeer, n, size int) [][]byte {
	b.Helper()
	now := time.Now()
	as, _ := ratchet.NewSessionSet(a.keys, []byte(r.id), r.keys.Identity())
	rs, _ := ratchet.NewSessionSet(r.keys, []byte(a.id), a.keys.Identity())
	as, err := as.InitiateFromBundle(a.keys, r.keys.Bundle(), now)
	if err != nil {
		b.Fatal(err)
	}
	env, as, _ := as.Seal(nil, now)
	o, err := rs.Open(r.keys, env, now)
	if err != nil {
		b.Fatal(err)
	}
	env, _, _ = o.Set.Seal(nil, now)
	oa, err := as.Open(a.keys, env, now)
	if err != nil {
		b.Fatal(err)
	}
	as = oa.Set
	body := strings.Repeat("x", size)
	out := make([][]byte, n)
	for i := range out {
		payload, _ := (e2e.Text{ID: e2e.NewMessageID(), SentAt: now, Body: body}).Marshal()
		pt, _ := e2e.AppendFrame(nil, e2e.FrameText, payload)
		if out[i], as, err = as.Seal(pt, now); err != nil {
			b.Fatal(err)
		}
	}
	return out
}

func offRSS() int64 {
	data, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// TestMailboxBenchRelay is not a test: it is the relay process of
// BenchmarkMailbox10k (the test binary runs itself with this test and
// CERTCHAT_MAILBOX_BENCH_RELAY set to the relay's home). It prints the
// relay's address, then answers each "stats" line on stdin with its live
// heap, RSS and database figures.
func TestMailboxBenchRelay(t *testing.T) {
	home := os.Getenv("CERTCHAT_MAILBOX_BENCH_RELAY")
	if home == "" {
		t.Skip("the relay process of BenchmarkMailbox10k")
	}
	srv, err := relay.NewServer(relay.Config{Home: identity.Home{Dir: home}, Listen: []string{"/ip4/127.0.0.1/tcp/0"},
		Mailbox: relay.MailboxLimits{MaxItems: 1 << 30, MaxBytes: 1 << 40, MaxPerPeer: 1 << 30, DepositRate: 1e9,
			MaxPerIP: 1 << 30, MaxPerPrefix: 1 << 30}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	fmt.Println(srv.Addrs()[0])
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if sc.Text() != "stats" {
			continue
		}
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		file, alloc, inuse := relay.MailboxDiskUsage(srv)
		fmt.Println(ms.HeapAlloc, offRSS(), file, alloc, inuse)
	}
}

// offBenchRelay is the relay process of the benchmark.
type offBenchRelay struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader
	info peer.AddrInfo
}

type offRelayStats struct{ heap, rss, file, alloc, inuse int64 }

func offStartBenchRelay(b *testing.B) *offBenchRelay {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestMailboxBenchRelay$", "-test.v=false")
	cmd.Env = append(os.Environ(), "CERTCHAT_MAILBOX_BENCH_RELAY="+b.TempDir())
	cmd.Stderr = os.Stderr
	in, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	r := &offBenchRelay{cmd: cmd, in: in, out: bufio.NewReader(stdout)}
	b.Cleanup(func() { in.Close(); cmd.Wait() })
	line, err := r.out.ReadString('\n')
	if err != nil {
		b.Fatalf("the relay process printed no address: %v", err)
	}
	info, err := peer.AddrInfoFromString(strings.TrimSpace(line))
	if err != nil {
		b.Fatalf("relay address %q: %v", line, err)
	}
	r.info = *info
	return r
}

func (r *offBenchRelay) stats(b *testing.B) offRelayStats {
	b.Helper()
	fmt.Fprintln(r.in, "stats")
	line, err := r.out.ReadString('\n')
	if err != nil {
		b.Fatal(err)
	}
	var s offRelayStats
	if _, err := fmt.Sscan(line, &s.heap, &s.rss, &s.file, &s.alloc, &s.inuse); err != nil {
		b.Fatalf("stats %q: %v", line, err)
	}
	return s
}

// BenchmarkMailbox10k queues 10,000 envelopes (sealed 200-byte texts,
// normal envelopes of an established session) for one recipient at a
// relay running as its own process on 127.0.0.1, through the real
// protocol and the node's client, then fetches and acknowledges them all
// (64 per fetch, one ack per fetch). It reports deposits/s, fetched+acked
// envelopes/s, and per queued envelope the growth of the relay's
// mailbox.db (file, and pages holding mail) and of its live heap and RSS.
// The relay's per-recipient quota, deposit rate and per-source shares
// are raised so that one sender on 127.0.0.1 can queue 10,000 (defaults:
// 1000 per recipient, 5/s per sender, 250 per IP and 500 per prefix for
// each recipient). See docs/BENCHMARKS.md, "Relay mailbox: 10,000 queued
// envelopes".
//
//	go test -run '^$' -bench 'Mailbox10k' -benchtime 1x -count 3 ./relay/
//
// CERTCHAT_MAILBOX_BENCH_N, _SIZE and _PARALLEL change the number of
// envelopes, the text size and the number of concurrent deposit streams.
func BenchmarkMailbox10k(b *testing.B) {
	n, size, par := 10000, 200, 1
	if v, err := strconv.Atoi(os.Getenv("CERTCHAT_MAILBOX_BENCH_N")); err == nil && v > 0 {
		n = v
	}
	if v, err := strconv.Atoi(os.Getenv("CERTCHAT_MAILBOX_BENCH_SIZE")); err == nil && v > 0 {
		size = v
	}
	if v, err := strconv.Atoi(os.Getenv("CERTCHAT_MAILBOX_BENCH_PARALLEL")); err == nil && v > 0 {
		par = v
	}
	for i := 0; i < b.N; i++ {
		offBenchOnce(b, n, size, par)
	}
}

func offBenchOnce(b *testing.B, n, size, par int) {
	b.StopTimer()
	r := offStartBenchRelay(b)
	alice, bob := offNewBenchPeer(b), offNewBenchPeer(b)
	ctx := context.Background()
	for _, p := range []*offBenchPeer{alice, bob} {
		if err := p.h.Connect(ctx, r.info); err != nil {
			b.Fatal(err)
		}
	}
	base, _ := bob.keys.Bundle().MarshalBinary()
	ac, bc := mailbox.Client{Host: alice.h}, mailbox.Client{Host: bob.h}
	if _, err := bc.Publish(ctx, r.info.ID, mailbox.Publish{Bundle: base}); err != nil {
		b.Fatal(err)
	}
	envs := offEnvelopes(b, alice, bob, n, size)
	total := 0
	for _, e := range envs {
		total += len(e)
	}
	// One deposit and its fetch first, so that the baseline has every
	// bucket and code path warm.
	if _, err := ac.Deposit(ctx, r.info.ID, bob.id, envs[0][:100]); err != nil {
		b.Fatal(err)
	}
	if it, err := bc.Fetch(ctx, r.info.ID, 1); err != nil || bc.Ack(ctx, r.info.ID, []uint64{it.Items[0].ID}) != nil {
		b.Fatal(err)
	}
	s0 := r.stats(b)

	b.StartTimer()
	began := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, par)
	for w := 0; w < par; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += par {
				if _, err := ac.Deposit(ctx, r.info.ID, bob.id, envs[i]); err != nil {
					errs <- fmt.Errorf("deposit %d: %w", i, err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	deposited := time.Since(began)
	b.StopTimer()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	s1 := r.stats(b)

	b.StartTimer()
	began = time.Now()
	got := 0
	for {
		batch, err := bc.Fetch(ctx, r.info.ID, mailbox.MaxFetch)
		if err != nil {
			b.Fatal(err)
		}
		ids := make([]uint64, len(batch.Items))
		for i, it := range batch.Items {
			ids[i] = it.ID
		}
		if err := bc.Ack(ctx, r.info.ID, ids); err != nil {
			b.Fatal(err)
		}
		got += len(ids)
		if !batch.More {
			break
		}
	}
	fetched := time.Since(began)
	b.StopTimer()
	if got != n {
		b.Fatalf("fetched %d of %d", got, n)
	}
	s2 := r.stats(b)

	per := func(d int64) float64 { return float64(d) / float64(n) }
	b.ReportMetric(float64(total)/float64(n), "B/envelope")
	b.ReportMetric(float64(n)/deposited.Seconds(), "deposits/s")
	b.ReportMetric(float64(n)/fetched.Seconds(), "fetched+acked/s")
	b.ReportMetric(per(s1.file-s0.file), "file-B/queued")
	b.ReportMetric(per(s1.alloc-s0.alloc), "pages-B/queued")
	b.ReportMetric(per(s1.heap-s0.heap), "heap-B/queued")
	b.ReportMetric(per(s1.rss-s0.rss), "rss-B/queued")
	b.Logf("%d envelopes of %d bytes (%d-byte texts), %d deposit stream(s): deposits %v, fetch+ack %v",
		n, total/n, size, par, deposited.Round(time.Millisecond), fetched.Round(time.Millisecond))
	b.Logf("relay: mailbox.db %d → %d → %d bytes; mail pages %d → %d → %d bytes (in use %d → %d → %d); heap %d → %d → %d; RSS %d → %d → %d",
		s0.file, s1.file, s2.file, s0.alloc, s1.alloc, s2.alloc, s0.inuse, s1.inuse, s2.inuse,
		s0.heap, s1.heap, s2.heap, s0.rss, s1.rss, s2.rss)
}
