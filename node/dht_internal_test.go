package node

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/internal/testproc"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// The certchat DHT with real `chat relay` processes joined by --bootstrap:
// finding a peer by peer ID alone when it uses another relay.

// dhtRelays starts n relays, each joined to the one before it.
func dhtRelays(t *testing.T, n int, args ...string) []*testproc.Relay {
	t.Helper()
	var out []*testproc.Relay
	for i := range n {
		a := slices.Clone(args)
		if i > 0 {
			a = append(a, "--bootstrap", out[i-1].Addr)
		}
		out = append(out, testproc.StartRelay(t, testproc.RelayOptions{Args: a}))
	}
	return out
}

// dhtNewNode starts a node on the given relays; listen "none" makes it
// reachable only through them.
func dhtNewNode(t *testing.T, name string, relays []string, listen string, before ...func(*Node)) *offNode {
	t.Helper()
	h := identity.Home{Dir: t.TempDir()}
	id, err := h.Init(name, nil, identity.DefaultKDF, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ts, err := h.TrustStore()
	if err != nil {
		t.Fatal(err)
	}
	logs := &offLog{}
	n, err := New(Config{Home: h, Identity: id, Trust: ts, Listen: []string{listen}, Relays: relays,
		RetryMin: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond, Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	on := &offNode{Node: n, t: t, sub: n.Subscribe(), logs: logs}
	for _, f := range before {
		f(n)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return on
}

// dhtReserved waits until on holds reservations on want relays, and
// returns their peer IDs.
func dhtReserved(t *testing.T, on *offNode, want int, why string) []peer.ID {
	t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	var got []peer.ID
	for time.Now().Before(deadline) {
		got = got[:0]
		for _, r := range on.Relays() {
			if r.Reserved {
				got = append(got, r.ID)
			}
		}
		if len(got) == want {
			return got
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: %d relays reserved, want %d: %+v", why, len(got), want, on.Relays())
	return nil
}

// dhtPublished waits until on's peer record in the DHT, as seen by from,
// holds a circuit address through each of the relays in through.
func dhtPublished(t *testing.T, from, on *offNode, through ...string) []ma.Multiaddr {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var got []ma.Multiaddr
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		got, _ = from.dht.lookup(ctx, from.dht.d.Load(), on.ID())
		cancel()
		all := true
		for _, r := range through {
			info, _ := ParseRelayAddr(r)
			all = all && slices.ContainsFunc(got, func(a ma.Multiaddr) bool {
				return isCircuit(a) && slices.Contains(mustSplitRelay(a), info.ID.String())
			})
		}
		if all && len(got) > 0 {
			return got
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s's peer record never named relays %v: %v", on.ID(), through, got)
	return nil
}

// mustSplitRelay are the values of a circuit address's /p2p components.
func mustSplitRelay(a ma.Multiaddr) []string {
	var out []string
	for _, c := range a {
		if c.Code() == ma.P_P2P {
			out = append(out, c.Value())
		}
	}
	return out
}

// Alice uses relay A, bob relay C only, and bob listens on nothing: he is
// reachable only through C. Alice knows nothing but bob's peer ID; the
// DHT (three relays, joined by --bootstrap) gives her bob's signed record
// with his circuit address, and they chat.
func TestDHTFindPeerByIDAcrossRelays(t *testing.T) {
	start := time.Now()
	rs := dhtRelays(t, 3)
	t.Logf("relays up in %v", time.Since(start))
	onlyOne := func(n *Node) { n.cfg.RelayCount = -1 } // no relays from the DHT
	var events *Subscription
	alice := dhtNewNode(t, "alice", []string{rs[0].Addr}, "/ip4/127.0.0.1/tcp/0", onlyOne, func(n *Node) { events = n.Subscribe() })
	bob := dhtNewNode(t, "bob", []string{rs[2].Addr}, "none", onlyOne)
	dhtPublished(t, alice, bob, rs[2].Addr)
	t.Logf("record found at %v", time.Since(start))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	connectStart := time.Now()
	if _, err := alice.Connect(ctx, bob.ID().String()); err != nil {
		t.Fatalf("connect by bare peer ID: %v", err)
	}
	t.Logf("connected by peer ID in %v", time.Since(connectStart))
	if err := alice.Trust().Pin(bob.ID(), "bob", identity.StateTOFU, time.Now()); err != nil {
		t.Fatal(err)
	}
	m, err := alice.Send(bob.ID(), "found you through the DHT")
	if err != nil {
		t.Fatal(err)
	}
	bob.offWait("alice's message", offIsMessage(m.ID))
	alice.offWait("the receipt", func(e Event) bool {
		return e.Kind == EventStatus && e.Message.ID == m.ID && e.Message.Status == store.StatusDelivered
	})
	// The relays alice met in the DHT and on the way to bob are no chat
	// peers: no peer event names them.
	timeout := time.After(300 * time.Millisecond)
	for {
		select {
		case e := <-events.C:
			for _, r := range rs {
				if e.Kind == EventPeer && e.Peer.ID == r.Info.ID {
					t.Fatalf("a peer event for relay %s", r.Info.ID)
				}
			}
			continue
		case <-timeout:
		}
		break
	}
}

// A node that knows one relay finds a second in the DHT and reserves on
// it; when that relay goes away, it finds the third in its place.
func TestDHTRelaysFoundAndReplaced(t *testing.T) {
	rs := dhtRelays(t, 3)
	byID := map[peer.ID]*testproc.Relay{}
	for _, r := range rs {
		byID[r.Info.ID] = r
	}
	alice := dhtNewNode(t, "alice", []string{rs[0].Addr}, "/ip4/127.0.0.1/tcp/0", func(n *Node) {
		n.relays.grace = 2 * time.Second
	})
	first := dhtReserved(t, alice, 2, "a second relay from the DHT")
	var found peer.ID
	for _, p := range first {
		if p != rs[0].Info.ID {
			found = p
		}
	}
	if byID[found] == nil {
		t.Fatalf("reserved on %s, not one of the relays", found)
	}
	for _, r := range alice.Relays() {
		if r.ID == found && !r.Discovered || r.ID == rs[0].Info.ID && r.Discovered {
			t.Fatalf("Discovered is wrong: %+v", r)
		}
	}
	byID[found].Kill()
	deadline := time.Now().Add(40 * time.Second)
	for time.Now().Before(deadline) {
		ids := map[peer.ID]bool{}
		for _, r := range alice.Relays() {
			if r.Reserved {
				ids[r.ID] = true
			}
		}
		if len(ids) == 2 && !ids[found] && ids[rs[0].Info.ID] {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the lost relay was not replaced: %+v", alice.Relays())
}

// Without relays there is no DHT, as before it existed; Config.NoDHT
// (--no-dht) keeps a node with relays out of it.
func TestDHTOffWithoutRelaysOrWithNoDHT(t *testing.T) {
	alone := offNewNode(t, "alone", nil, true)
	if alone.dht.on() {
		t.Fatal("a node without relays joined the DHT")
	}
	if _, err := alone.dht.find(context.Background(), alone.ID()); !errors.Is(err, errDHTOff) {
		t.Fatalf("find without a DHT: %v", err)
	}
	relay := "/ip4/127.0.0.1/tcp/9/p2p/" + alone.ID().String() // never reached
	h := identity.Home{Dir: t.TempDir()}
	id, err := h.Init("off", nil, identity.DefaultKDF, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ts, err := h.TrustStore()
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(Config{Home: h, Identity: id, Trust: ts, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Relays: []string{relay}, NoDHT: true})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	if n.dht.on() {
		t.Fatal("NoDHT: the node joined the DHT")
	}
}
