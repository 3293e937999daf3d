package node_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// testNode is a real node on 127.0.0.1 with its own home folder.
type testNode struct {
	*node.Node
	home identity.Home
	sub  *node.Subscription
	t    testing.TB
}

func newHome(t testing.TB, name string) identity.Home {
	t.Helper()
	h := identity.Home{Dir: t.TempDir()}
	if _, err := h.Init(name, nil, identity.DefaultKDF, time.Now()); err != nil {
		t.Fatal(err)
	}
	return h
}

func startNode(t testing.TB, h identity.Home, listen ...string) *testNode {
	t.Helper()
	return startNodeWith(t, h, nil, listen...)
}

// startNodeWith is startNode with a change to the configuration.
func startNodeWith(t testing.TB, h identity.Home, change func(*node.Config), listen ...string) *testNode {
	t.Helper()
	return startNodeThen(t, h, change, nil, listen...)
}

// startNodeThen is startNodeWith, calling before (if not nil) on the
// node before it starts: to set a test hook.
func startNodeThen(t testing.TB, h identity.Home, change func(*node.Config), before func(*node.Node), listen ...string) *testNode {
	t.Helper()
	id, err := h.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := h.TrustStore()
	if err != nil {
		t.Fatal(err)
	}
	if len(listen) == 0 {
		listen = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
	}
	cfg := node.Config{Home: h, Identity: id, Trust: ts, Listen: listen,
		RetryMin: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond}
	if change != nil {
		change(&cfg)
	}
	n, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tn := &testNode{Node: n, home: h, sub: n.Subscribe(), t: t}
	if before != nil {
		before(n)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tn.Close() })
	return tn
}

// waitFor reads events until match returns true, failing after 15 s.
func (tn *testNode) waitFor(what string, match func(node.Event) bool) node.Event {
	tn.t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case e, ok := <-tn.sub.C:
			if !ok {
				tn.t.Fatalf("%s: events closed while waiting for %s", tn.ID(), what)
			}
			if match(e) {
				return e
			}
		case <-timeout:
			tn.t.Fatalf("%s: timed out waiting for %s", tn.ID(), what)
		}
	}
}

func trustEachOther(t testing.TB, nodes ...*testNode) {
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				if err := a.Contacts().Trust(b.ID(), false); err != nil {
					t.Fatal(err)
				}
				a.Host().Peerstore().AddAddrs(b.ID(), b.Host().Addrs(), time.Hour)
			}
		}
	}
}

func TestThreeNodesReceipts(t *testing.T) {
	nodes := []*testNode{
		startNode(t, newHome(t, "alice")),
		startNode(t, newHome(t, "bob")),
		startNode(t, newHome(t, "carol")),
	}
	trustEachOther(t, nodes...)
	for i, from := range nodes {
		for j, to := range nodes {
			if i == j {
				continue
			}
			text := fmt.Sprintf("hello from %d to %d", i, j)
			m, err := from.Send(to.ID(), text)
			if err != nil {
				t.Fatal(err)
			}
			got := to.waitFor("message "+text, func(e node.Event) bool {
				return e.Kind == node.EventMessage && e.Message.ID == m.ID
			})
			if got.Message.Body != text || got.Message.Peer != from.ID() {
				t.Fatalf("got %+v", got.Message)
			}
			from.waitFor("receipt", func(e node.Event) bool {
				return e.Kind == node.EventStatus && e.Message.ID == m.ID && e.Message.Status == store.StatusDelivered
			})
		}
	}
	for _, n := range nodes {
		for _, other := range nodes {
			if n == other {
				continue
			}
			h, err := n.History(other.ID(), 0, 10)
			if err != nil || len(h) != 2 {
				t.Fatalf("history %v: %d messages, err %v", other.ID(), len(h), err)
			}
		}
	}
}

func TestOutboxWaitsForReceiver(t *testing.T) {
	alice := startNode(t, newHome(t, "alice"))
	bobHome := newHome(t, "bob")
	bobID := mustID(t, bobHome)
	if err := alice.Contacts().Trust(bobID, false); err != nil {
		t.Fatal(err)
	}
	var sent []string
	for i := 0; i < 5; i++ {
		m, err := alice.Send(bobID, fmt.Sprintf("message %d", i))
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, m.ID.String())
	}
	bob := startNode(t, bobHome)
	bob.Contacts().Trust(alice.ID(), false)
	alice.Host().Peerstore().AddAddrs(bob.ID(), bob.Host().Addrs(), time.Hour)
	alice.Contacts().Trust(bobID, false) // kicks the outbox
	for i := 0; i < 5; i++ {
		e := bob.waitFor("message", func(e node.Event) bool { return e.Kind == node.EventMessage })
		if e.Message.ID.String() != sent[i] {
			t.Fatalf("message %d arrived out of order: %s", i, e.Message.Body)
		}
	}
}

func mustID(t testing.TB, h identity.Home) peer.ID {
	chain, err := h.LoadChain()
	if err != nil {
		t.Fatal(err)
	}
	id, err := identity.CertPeerID(chain[0])
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// tcpAddr is the node's first full TCP multiaddr on 127.0.0.1.
func (tn *testNode) tcpAddr() string {
	tn.t.Helper()
	for _, a := range tn.Addrs() {
		if strings.HasPrefix(a, "/ip4/127.0.0.1/tcp/") {
			return a
		}
	}
	tn.t.Fatalf("%s has no TCP address on 127.0.0.1: %v", tn.ID(), tn.Addrs())
	return ""
}

// connect runs a handshake from a to b by multiaddr.
func connect(t *testing.T, a, b *testNode) (node.PeerInfo, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return a.Connect(ctx, b.tcpAddr())
}

// send sends and fails the test on error.
func (tn *testNode) send(to peer.ID, text string) store.Message {
	tn.t.Helper()
	m, err := tn.Send(to, text)
	if err != nil {
		tn.t.Fatalf("send %q: %v", text, err)
	}
	return m
}

// waitDelivered waits for the receipt of m.
func (tn *testNode) waitDelivered(m store.Message) {
	tn.t.Helper()
	tn.waitFor("receipt of "+m.Body, func(e node.Event) bool {
		return e.Kind == node.EventStatus && e.Message.ID == m.ID && e.Message.Status == store.StatusDelivered
	})
}

// waitMessage waits for the incoming message with m's ID.
func (tn *testNode) waitMessage(m store.Message) store.Message {
	tn.t.Helper()
	e := tn.waitFor("message "+m.Body, func(e node.Event) bool {
		return e.Kind == node.EventMessage && e.Message.ID == m.ID
	})
	return *e.Message
}

// waitPeer waits for a peer event about p that satisfies ok.
func (tn *testNode) waitPeer(p peer.ID, what string, ok func(node.PeerInfo) bool) node.PeerInfo {
	tn.t.Helper()
	if info := tn.PeerInfo(p); ok(info) {
		return info
	}
	// The info that satisfied ok, read when the event came: the event's
	// own copy may be older (it was computed when it was published).
	var got node.PeerInfo
	tn.waitFor(what, func(e node.Event) bool {
		if e.Kind != node.EventPeer || e.Peer.ID != p {
			return false
		}
		got = tn.PeerInfo(p)
		return ok(got)
	})
	return got
}

// quiet fails if an event matching bad arrives within d.
func (tn *testNode) quiet(d time.Duration, what string, bad func(node.Event) bool) {
	tn.t.Helper()
	timeout := time.After(d)
	for {
		select {
		case e, ok := <-tn.sub.C:
			if !ok {
				return
			}
			if bad(e) {
				tn.t.Fatalf("%s: unexpected %s: %+v", tn.ID(), what, e)
			}
		case <-timeout:
			return
		}
	}
}

// eventually polls cond until it holds, failing after 15 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNodeWrongIdentity opens a home's database with another identity
// through node.New: the storage key comes from the identity key.
func TestNodeWrongIdentity(t *testing.T) {
	alice := newHome(t, "alice")
	n := startNode(t, alice)
	db := alice.Path("chat.db")
	n.Close()
	mallory := newHome(t, "mallory")
	id, err := mallory.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	ts, _ := mallory.TrustStore()
	_, err = node.New(node.Config{Home: mallory, Identity: id, Trust: ts, DBPath: db, Listen: []string{"/ip4/127.0.0.1/tcp/0"}})
	if !errors.Is(err, store.ErrWrongKey) {
		t.Fatalf("node.New on another identity's database: %v, want store.ErrWrongKey", err)
	}
}

func bodies(ms []store.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Body
	}
	return out
}
