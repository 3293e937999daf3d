package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p/core/peer"
)

// inUse is what the limiter holds: every count, and the entries its
// maps keep.
func (h *halfOpen) inUse() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return fmt.Sprintf("total %d, relayed %d, %d peers, %d addresses", h.total, h.relayed, len(h.peers), len(h.ips))
}

const idle = "total 0, relayed 0, 0 peers, 0 addresses"

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

// TestHalfOpenLimiter: the caps per peer, per address block, through
// relays and in all, and that every place comes back.
func TestHalfOpenLimiter(t *testing.T) {
	caps := halfOpenCaps{total: 64, perPeer: 4, perIP: 16, relayed: 32}
	type try struct {
		peer peer.ID
		from Origin
		// want is the cap that refuses it ("" when it gets a place).
		want string
	}
	// many is n tries from distinct peers, each from the origin that
	// from(i) names.
	many := func(n int, prefix string, from func(i int) Origin, want string) []try {
		out := make([]try, n)
		for i := range out {
			out[i] = try{peer.ID(fmt.Sprintf("%s-%d", prefix, i)), from(i), want}
		}
		return out
	}
	same := func(o Origin) func(int) Origin { return func(int) Origin { return o } }
	v4 := func(i int) Origin { return Origin{IP: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})} }
	cat := func(parts ...[]try) []try {
		var out []try
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	a := Origin{IP: ip("192.0.2.1")}
	b := Origin{IP: ip("192.0.2.2")}
	fromPeer := func(n int, p peer.ID, o Origin, want string) []try {
		out := make([]try, n)
		for i := range out {
			out[i] = try{p, o, want}
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		tries []try
	}{
		{"per peer", cat(
			fromPeer(4, "mallory", a, ""),
			fromPeer(3, "mallory", a, "from this peer"),
			fromPeer(2, "mallory", b, "from this peer"), // another address is the same peer
			fromPeer(1, "alice", a, ""),                 // another peer on that address is not
			fromPeer(3, "mallory", Origin{}, "from this peer"),
		)},
		{"per IPv4 address", cat(
			many(16, "m", same(a), ""),
			many(3, "n", same(a), "from 192.0.2.1"),
			many(1, "o", same(Origin{IP: ip("::ffff:192.0.2.1")}), "from 192.0.2.1"), // mapped
			many(1, "alice", same(b), ""),
		)},
		{"per IPv6 /64", cat(
			many(16, "m", func(i int) Origin { return Origin{IP: ip(fmt.Sprintf("2001:db8:1:2::%x", i+1))} }, ""),
			many(2, "n", same(Origin{IP: ip("2001:db8:1:2:ffff::1")}), "from 2001:db8:1:2::/64"),
			many(1, "z", same(Origin{IP: ip("fe80::1%eth0")}), ""),
			many(1, "alice", same(Origin{IP: ip("2001:db8:1:3::1")}), ""),
		)},
		{"relayed", cat(
			// One relay's address: its cap per address.
			many(16, "r", same(Origin{IP: ip("198.51.100.7"), Relayed: true}), ""),
			many(1, "s", same(Origin{IP: ip("198.51.100.7"), Relayed: true}), "from relay 198.51.100.7"),
			// Many relays: the cap for all relayed handshakes.
			many(16, "t", func(i int) Origin { return Origin{IP: netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), Relayed: true} }, ""),
			many(2, "u", func(i int) Origin {
				return Origin{IP: netip.AddrFrom4([4]byte{203, 0, 113, byte(100 + i)}), Relayed: true}
			}, "through relays"),
			// A direct peer still gets a place.
			many(1, "alice", same(a), ""),
		)},
		{"unknown origin", cat(
			many(40, "m", same(Origin{}), ""), // only per peer and in all
		)},
		{"in all", cat(
			many(64, "m", v4, ""),
			many(2, "n", func(i int) Origin { return v4(1000 + i) }, "in all"),
			many(1, "o", same(Origin{}), "in all"),
		)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHalfOpen(caps)
			var releases []func()
			for i, tr := range tc.tries {
				release, err := h.acquire(tr.peer, tr.from)
				switch {
				case tr.want == "" && err != nil:
					t.Fatalf("try %d (%s from %v): refused: %v", i, tr.peer, tr.from, err)
				case tr.want != "" && err == nil:
					t.Fatalf("try %d (%s from %v): got a place, want refused %q (%s)", i, tr.peer, tr.from, tr.want, h.inUse())
				case tr.want != "" && (!errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), tr.want)):
					t.Fatalf("try %d (%s from %v): %v, want ErrBusy %q", i, tr.peer, tr.from, err, tr.want)
				case err == nil:
					releases = append(releases, release)
				}
			}
			// Every place comes back, once: each release twice.
			for _, r := range releases {
				r()
				r()
			}
			if got := h.inUse(); got != idle {
				t.Errorf("after releasing every place: %s", got)
			}
			// Then what was refused gets a place.
			for i, tr := range tc.tries {
				if tr.want == "" {
					continue
				}
				release, err := h.acquire(tr.peer, tr.from)
				if err != nil {
					t.Fatalf("try %d again, all places free: %v", i, err)
				}
				release()
			}
			if got := h.inUse(); got != idle {
				t.Errorf("at the end: %s", got)
			}
		})
	}
}

// tcpPair is a connection on loopback TCP and its other end, from a
// listener no one else dials.
func tcpPair(ln net.Listener) (net.Conn, net.Conn, error) {
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return nil, nil, err
	}
	if a := <-accepted; a != nil {
		return c, a, nil
	}
	c.Close()
	return nil, nil, errors.New("accept failed")
}

// TestHalfOpenNoLeak: 1,000 handshakes at one responder, eight at once
// from one peer and address, that succeed, fail a check, stall until the
// deadline, send garbage or hang up at once; some are refused (more than
// MaxHalfOpenPerPeer at once). Afterwards every place is free. (On a
// loaded machine a complete handshake may miss the short deadline too:
// one more failure.)
func TestHalfOpenNoLeak(t *testing.T) {
	now := time.Now()
	ids := make([]*identity.Identity, 2)
	stores := make([]*identity.TrustStore, 2)
	for i, name := range []string{"client", "server"} {
		var err error
		if ids[i], err = identity.Generate(name, now, 0); err != nil {
			t.Fatal(err)
		}
		if stores[i], err = identity.OpenTrustStore(filepath.Join(t.TempDir(), "trust.json")); err != nil {
			t.Fatal(err)
		}
	}
	stores[0].Pin(ids[1].PeerID(), "", identity.StateTOFU, now)
	stores[1].Pin(ids[0].PeerID(), "", identity.StateTOFU, now)
	client, err := NewEndpoint(Config{Identity: ids[0], Trust: stores[0]})
	if err != nil {
		t.Fatal(err)
	}
	server, err := NewEndpoint(Config{Identity: ids[1], Trust: stores[1], HandshakeTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	from := Origin{IP: ip("127.0.0.1")}
	listen := func() net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		return ln
	}
	cid, sid := ids[0].PeerID(), ids[1].PeerID()

	const attempts, workers = 1000, 8
	var (
		next    atomic.Int64
		count   = map[string]int{}
		countMu sync.Mutex
		wg      sync.WaitGroup
	)
	tally := func(kind string, err error) {
		outcome := "ok"
		switch {
		case errors.Is(err, ErrBusy):
			outcome = "busy"
		case err != nil:
			outcome = "failed"
		}
		countMu.Lock()
		count[kind+" "+outcome]++
		countMu.Unlock()
	}
	for range workers {
		wg.Add(1)
		ln := listen() // one each: a pair is what it accepts after its dial
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)); i <= attempts; i = int(next.Add(1)) {
				ca, cb, err := tcpPair(ln)
				if err != nil {
					t.Error(err)
					return
				}
				done := make(chan error, 1)
				go func() {
					sess, err := server.ServerFrom(context.Background(), cb, cid, from)
					if err == nil {
						sess.Close()
					}
					cb.Close()
					done <- err
				}()
				var kind string
				switch i % 16 {
				case 0, 1, 4:
					kind = "complete"
					if sess, err := client.Client(context.Background(), ca, sid, sid); err == nil {
						sess.Close()
					}
				case 2:
					kind = "wrong-peer" // the responder's check fails
					go client.Client(context.Background(), ca, sid, cid)
				case 3:
					kind = "stall" // until the responder's deadline
					ca.Write([]byte{0x16, 0x03, 0x01})
					io.Copy(io.Discard, ca)
				case 5, 6, 7, 8, 9, 10:
					kind = "garbage"
					go ca.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
					go io.Copy(io.Discard, ca)
				default:
					kind = "hang-up"
					ca.Close()
				}
				err = <-done
				ca.Close()
				tally(kind, err)
				if errors.Is(err, ErrBusy) {
					time.Sleep(5 * time.Millisecond) // as a client would, before it tries again
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("outcomes: %v", count)
	if got := server.halfOpen.inUse(); got != idle {
		t.Errorf("after %d handshakes: %s", attempts, got)
	}
	for _, want := range []string{"complete ok", "wrong-peer failed", "stall failed", "garbage failed", "hang-up failed"} {
		if count[want] == 0 {
			t.Errorf("no %q among the outcomes: the test does not cover it", want)
		}
	}
	if count["complete busy"]+count["garbage busy"]+count["hang-up busy"] == 0 {
		t.Error("no attempt was refused: the test does not cover refusals")
	}
	// And the responder still works.
	ca, cb, err := tcpPair(listen())
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	defer cb.Close()
	serr := make(chan error, 1)
	go func() { _, err := server.ServerFrom(context.Background(), cb, cid, from); serr <- err }()
	if _, err := client.Client(context.Background(), ca, sid, sid); err != nil {
		t.Errorf("a handshake after the 1,000: %v (responder: %v)", err, <-serr)
	}
}
