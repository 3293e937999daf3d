package node

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"
)

// Both ends of a chat that runs through a relay try for a direct
// connection at the same delays (tryDirect). Tries made at the same
// moment must not cross: libp2p's TCP dials from the port it listens on,
// so two dials at once can meet in one connection (TCP simultaneous open)
// on which both ends start TLS as the client, and both fail.

// crossLog records why direct dials failed (the "direct connection
// failed" debug lines of directAttempt).
type crossLog struct {
	mu   sync.Mutex
	errs []string
}

func (l *crossLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *crossLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *crossLog) WithGroup(string) slog.Handler            { return l }
func (l *crossLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "direct connection failed" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" {
			l.mu.Lock()
			l.errs = append(l.errs, a.Value.String())
			l.mu.Unlock()
		}
		return true
	})
	return nil
}

// take returns the failures recorded since the last take.
func (l *crossLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.errs
	l.errs = nil
	return out
}

// crossed reports whether err is the failure of a crossed dial: both ends
// of one TCP connection ran the TLS client.
func crossed(err string) bool {
	return strings.Contains(err, "clientHelloMsg")
}

// Two nodes whose chat runs through a relay try for a direct connection
// at the same instant, round after round: each round must end with the
// chat on a direct connection, and no dial may fail crossed. (When both
// ends dialed each other's private addresses at once, a tenth to almost
// half of the rounds crossed here, with -race or without, on 2 cores: 7
// to 14 of 50.) Then the peer with the greater ID dials by itself when the
// other has no address of it to dial.
func TestDirectTriesAtOnceDoNotCross(t *testing.T) {
	const rounds = 50
	// The tries registration starts are parked: this test makes them, on
	// both ends at once. Restored after the nodes are closed (cleanups
	// run last first).
	saved := directAttempts
	directAttempts = []time.Duration{time.Hour}
	t.Cleanup(func() { directAttempts = saved })

	relayAddr, _ := offRelay(t)
	logs := map[string]*crossLog{}
	newNode := func(name string) *offNode {
		logs[name] = &crossLog{}
		return offNewNodeWith(t, name, func(c *Config) {
			c.Relays = []string{relayAddr}
			c.Logger = slog.New(logs[name])
		})
	}
	alice, bob := newNode("alice"), newNode("bob")
	alice.offRegistered()
	bob.offRegistered()
	for _, x := range [][2]*offNode{{alice, bob}, {bob, alice}} {
		if err := x[0].Contacts().Trust(x[1].ID(), false); err != nil {
			t.Fatal(err)
		}
	}
	i := slices.IndexFunc(bob.Addrs(), func(a string) bool { return strings.Contains(a, "/p2p-circuit") })
	if i < 0 {
		t.Fatalf("bob has no relay address: %v", bob.Addrs())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := alice.Connect(ctx, bob.Addrs()[i]); err != nil {
		t.Fatal(err)
	}
	greater, smaller := alice, bob
	if bob.ID() > alice.ID() {
		greater, smaller = bob, alice
	}
	pairs := [][2]*offNode{{alice, bob}, {bob, alice}}

	// waitFor polls cond for up to 10 s.
	waitFor := func(what string, cond func() bool) bool {
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Logf("not within 10 s: %s", what)
				return false
			}
			time.Sleep(10 * time.Millisecond)
		}
		return true
	}
	// directConns are x's connections to y that are not relayed.
	directConns := func(x, y *offNode) []network.Conn {
		var out []network.Conn
		for _, c := range x.host.Network().ConnsToPeer(y.ID()) {
			if !c.Stat().Limited && !isCircuit(c.RemoteMultiaddr()) {
				out = append(out, c)
			}
		}
		return out
	}
	// privateAddrs: x knows an address of y to dial directly (identify
	// reported y's listening addresses over the relayed connection).
	privateAddrs := func(x, y *offNode) bool {
		return slices.ContainsFunc(x.host.Peerstore().Addrs(y.ID()), func(a ma.Multiaddr) bool {
			return !isCircuit(a)
		})
	}
	// onDirect: every live session of the chat runs on a direct
	// connection, at both ends.
	onDirect := func() bool {
		for _, x := range pairs {
			live := x[0].sessions.ofPeer(x[1].ID())
			if len(live) == 0 || slices.ContainsFunc(live, func(cs *chatSession) bool { return cs.conn.Stat().Limited }) {
				return false
			}
		}
		return true
	}
	// relayedOnly brings the chat back to the relay: direct connections
	// closed, one relayed session at both ends.
	relayedOnly := func() {
		t.Helper()
		for _, x := range pairs {
			for _, c := range directConns(x[0], x[1]) {
				if err := c.Close(); err != nil {
					t.Logf("closing a direct connection: %v", err)
				}
			}
		}
		if !waitFor("the direct connections and their sessions to end", func() bool {
			for _, x := range pairs {
				if len(directConns(x[0], x[1])) > 0 || (len(x[0].sessions.ofPeer(x[1].ID())) > 0 && len(x[0].sessions.relayed(x[1].ID())) == 0) {
					return false
				}
			}
			return true
		}) {
			t.Fatal("could not bring the chat back to the relay")
		}
		if len(alice.sessions.relayed(bob.ID())) == 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if _, err := alice.sessions.open(network.WithAllowLimitedConn(ctx, "test"), bob.ID()); err != nil {
				t.Fatalf("a relayed session: %v", err)
			}
		}
		if !waitFor("a relayed session at both ends, and the peer's private addresses", func() bool {
			for _, x := range pairs {
				if len(x[0].sessions.relayed(x[1].ID())) == 0 || !privateAddrs(x[0], x[1]) {
					return false
				}
			}
			return true
		}) {
			t.Fatal("no relayed chat")
		}
	}
	// atOnce makes one try at both ends at the same instant, on their
	// newest relayed sessions, and returns the dials' failures.
	atOnce := func() []string {
		t.Helper()
		start := make(chan struct{})
		var wg sync.WaitGroup
		for _, x := range pairs {
			rel := x[0].sessions.relayed(x[1].ID())
			if len(rel) == 0 {
				t.Fatalf("%s: no relayed session", x[0].id.Name())
			}
			cs := rel[len(rel)-1]
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				x[0].sessions.directAttempt(cs)
			}()
		}
		close(start)
		ended := make(chan struct{})
		go func() { wg.Wait(); close(ended) }()
		select {
		case <-ended:
		case <-time.After(2 * dialTimeout):
			t.Fatal("a try did not end")
		}
		return append(logs["alice"].take(), logs["bob"].take()...)
	}

	crossedRounds, unsettled := 0, 0
	for r := range rounds {
		relayedOnly()
		failed := atOnce()
		if slices.ContainsFunc(failed, crossed) {
			crossedRounds++
			if crossedRounds == 1 {
				t.Logf("round %d: the dials crossed: %v", r, failed)
			}
			continue // nothing moves the chat now: it is relayed for the next round
		}
		if len(failed) > 0 {
			t.Logf("round %d: dials failed: %v", r, failed)
		}
		if !waitFor("the chat on a direct connection", onDirect) {
			unsettled++
		}
	}
	if crossedRounds > 0 || unsettled > 0 {
		t.Errorf("of %d rounds, %d crossed and %d did not settle on a direct connection", rounds, crossedRounds, unsettled)
	}

	// The greater ID dials after its yield when the smaller one has no
	// address to dial.
	relayedOnly()
	smaller.host.Peerstore().ClearAddrs(greater.ID())
	if failed := atOnce(); len(failed) > 0 {
		t.Errorf("dials failed: %v", failed)
	}
	if !waitFor("the chat on a direct connection made by the greater ID", onDirect) {
		t.Error("the greater ID did not dial when the smaller could not")
	}
	if c := directConns(greater, smaller); len(c) == 0 || c[0].Stat().Direction != network.DirOutbound {
		t.Errorf("the direct connection was not the greater ID's: %v", c)
	}
}
