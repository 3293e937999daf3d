//go:build linux

package node_test

// TestLAN proves LAN discovery with multicast DNS for real: `chat daemon
// --json` processes run in their own network namespaces, joined by a Linux
// bridge, and find each other only through mDNS packets on that bridge.
//
// Topology (names carry the test's PID and a run number; everything is
// created by the test and deleted in t.Cleanup; the root namespace is never
// touched):
//
//	ns alice           ns bob             ns carol
//	eth0 10.213.7.1    eth0 10.213.7.2    eth0 10.213.7.3   eth1 10.213.99.1 ── eth0 10.213.99.2
//	  │                  │                  │                                   (ns island: a second
//	  pa ────────────────pb─────────────────pc                                   network only carol
//	  └──────── br0 10.213.7.254 (ns switch, mcast_snooping 0) ─┘                is on)
//
// Every host namespace has lo up, a default route via 10.213.7.254 (the
// switch namespace, which does not forward: addresses outside 10.213.7.0/24
// are black holes, as on a real LAN) and a route for 224.0.0.0/4 on eth0.
// The switch namespace also hosts the test's own mDNS sniffer and injector.
//
// It needs root and iproute2 (`ip`); without them it skips, unless
// CERTCHAT_CI is set, when it fails instead.

import (
	"net"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certchat/certchat/internal/testproc"
)

const (
	lanPrefix    = "10.213.7." // the bridged test LAN, /24
	lanSwitchIP  = "10.213.7.254"
	lanIslandIP  = "10.213.99.1" // carol's second interface, unreachable from the LAN
	lanIsland2IP = "10.213.99.2"
	lanWait      = 20 * time.Second // default bound for one expected event
)

// lanRuns numbers TestLAN runs in this process (go test -count=N), so
// namespace names stay unique.
var lanRuns atomic.Int32

func TestLAN(t *testing.T) {
	lanRequire(t)
	began := time.Now()
	bin := testproc.ChatBinary(t)
	t.Logf("chat binary ready after %v", time.Since(began).Round(10*time.Millisecond))

	ln := lanNewNet(t)
	sniff := lanStartSniffer(t, ln.ns("switch"))
	t.Logf("namespaces ready after %v", time.Since(began).Round(10*time.Millisecond))

	alice := lanNewDaemon(t, bin, "alice", ln.ns("alice"), lanPrefix+"1", began)
	bob := lanNewDaemon(t, bin, "bob", ln.ns("bob"), lanPrefix+"2", began)
	carol := lanNewDaemon(t, bin, "carol", ln.ns("carol"), lanPrefix+"3", began)
	all := []*lanDaemon{alice, bob, carol}

	t.Cleanup(func() {
		// On failure, or with CERTCHAT_LAN_DUMP=1: what each daemon logged
		// and reported, and what crossed the switch.
		if t.Failed() || os.Getenv("CERTCHAT_LAN_DUMP") != "" {
			for _, d := range all {
				d.dump(t)
			}
			t.Log(sniff.summary())
		}
	})
	for _, d := range all {
		d.start(t)
	}
	for _, d := range all {
		d.waitEvent(t, 0, "listening", lanWait, func(e lanEvent) bool { return e.Event == "listening" })
	}
	listening := time.Now()
	t.Logf("daemons listening after %v", listening.Sub(began).Round(10*time.Millisecond))

	steps := []struct {
		name string
		f    func(t *testing.T)
	}{
		{"discovery", func(t *testing.T) { lanTestDiscovery(t, all, sniff) }},
		{"chat", func(t *testing.T) { lanTestChat(t, alice, bob) }},
		{"dedup", func(t *testing.T) { lanTestDedup(t, ln, all, listening) }},
		{"leave_and_return", func(t *testing.T) { lanTestReturn(t, alice, bob, carol) }},
		{"multihomed", func(t *testing.T) { lanTestMultihomed(t, ln, alice, carol, sniff) }},
	}
	for _, s := range steps {
		start := time.Now()
		ok := t.Run(s.name, s.f)
		t.Logf("%s: %v", s.name, time.Since(start).Round(10*time.Millisecond))
		if !ok {
			return // later steps build on this one
		}
	}

	// A clean stop: every daemon quits on command and exits 0 (a daemon
	// built with -race exits 66 if it saw a data race).
	for _, d := range all {
		d.send(t, map[string]any{"cmd": "quit"})
	}
	for _, d := range all {
		if err := d.wait(10 * time.Second); err != nil {
			t.Errorf("%s: did not exit cleanly: %v", d.name, err)
		}
	}
	for _, d := range all {
		if n := d.countLogs(0, func(l string) bool { return strings.Contains(l, "WARNING: DATA RACE") }); n > 0 {
			t.Errorf("%s: the race detector reported %d data races (see its stderr)", d.name, n)
		}
	}
	t.Logf("TestLAN: %v in all", time.Since(began).Round(10*time.Millisecond))
}

// lanTestDiscovery: each daemon finds the others by multicast, reports
// them as discovered, and after the automatic handshake knows them by
// their certificate name, trust unknown, online on the LAN.
func lanTestDiscovery(t *testing.T, all []*lanDaemon, sniff *lanSniffer) {
	for _, d := range all {
		for _, o := range all {
			if d == o {
				continue
			}
			d.waitEvent(t, 0, o.name+" discovered", lanWait, func(e lanEvent) bool {
				return e.Event == "peer" && e.PeerID == o.id && e.Discovered
			})
			d.waitEvent(t, 0, o.name+" verified by handshake (name, trust unknown, online)", lanWait, func(e lanEvent) bool {
				return e.Event == "peer" && e.PeerID == o.id && e.Name == o.name && e.Trust == "unknown" && e.Online
			})
		}
	}
	for _, d := range all {
		peers := d.peers(t)
		for _, o := range all {
			if d == o {
				continue
			}
			p, ok := peers[o.id]
			switch {
			case !ok:
				t.Errorf("%s: peers does not list %s", d.name, o.name)
			case !p.Discovered || p.Name != o.name || p.Trust != "unknown" || !p.Online || p.Path != "lan":
				t.Errorf("%s: peers says %s is %s; want discovered, named %q, trust unknown, online, path lan", d.name, o.name, p.raw, o.name)
			}
		}
	}
	// The discovery really went over the wire: the sniffer on the switch
	// saw each daemon's announcement, sent from its LAN address, with its
	// addresses as dnsaddr TXT records.
	for _, d := range all {
		a, ok := sniff.announcement(d.id, d.ip)
		if !ok {
			t.Errorf("the switch saw no mDNS announcement of %s from %s", d.name, d.ip)
			continue
		}
		if !slices.ContainsFunc(a.txt, func(s string) bool { return strings.HasPrefix(s, "dnsaddr=/ip4/"+d.ip+"/") }) {
			t.Errorf("%s's announcement lacks its LAN address: %q", d.name, a.txt)
		}
		// Only what others on the LAN can use is announced: no loopback,
		// and the A record is the LAN address, not 127.0.0.1.
		if slices.ContainsFunc(a.txt, func(s string) bool {
			return strings.Contains(s, "/ip4/127.") || strings.Contains(s, "/ip6/::1/")
		}) {
			t.Errorf("%s announces loopback addresses: %q", d.name, a.txt)
		}
		for _, ip := range a.a {
			if ip.To4() != nil && !ip.Equal(net.ParseIP(d.ip)) {
				t.Errorf("%s's A record is %v, want its LAN address %s", d.name, ip, d.ip)
			}
		}
	}
	if a, ok := sniff.announcement(all[0].id, all[0].ip); ok {
		t.Logf("alice's announcement: instance %s, A %v, TXT %q", a.instance, a.a, a.txt)
	}
}

// lanTestChat: after trust both ways, messages go both ways over the LAN
// and are acknowledged.
func lanTestChat(t *testing.T, a, b *lanDaemon) {
	a.call(t, map[string]any{"cmd": "trust", "peer": b.id})
	b.call(t, map[string]any{"cmd": "trust", "peer": a.id})
	lanExchange(t, a, b, "hello bob, over the LAN")
	lanExchange(t, b, a, "hello alice, over the LAN too")
	for _, p := range [][2]*lanDaemon{{a, b}, {b, a}} {
		d, o := p[0], p[1]
		got := d.peers(t)[o.id]
		if got.Trust != "tofu" || !got.Online || got.Path != "lan" {
			t.Errorf("%s: peers says %s is %s; want trust tofu, online, path lan", d.name, o.name, got.raw)
		}
		// Every peer event that showed o online said lan: never relay or direct.
		for _, e := range d.eventsSince(0) {
			if e.Event == "peer" && e.PeerID == o.id && e.Online && e.Path != "lan" {
				t.Errorf("%s: peer event with path %q: %s", d.name, e.Path, e.raw)
			}
		}
	}
}

// lanExchange sends one message from a to b and waits until b has it and
// a has b's receipt.
func lanExchange(t *testing.T, from, to *lanDaemon, text string) {
	t.Helper()
	mark := to.mark()
	acc := from.call(t, map[string]any{"cmd": "send", "to": to.id, "text": text})
	id := acc[len(acc)-1].ID
	got := to.waitEvent(t, mark, "message "+id, lanWait, func(e lanEvent) bool { return e.Event == "message" && e.ID == id })
	if got.From != from.id || got.Text != text {
		t.Errorf("%s received %s; want from %s text %q", to.name, got.raw, from.name, text)
	}
	from.waitEvent(t, 0, "delivered "+id, lanWait, func(e lanEvent) bool { return e.Event == "delivered" && e.ID == id && e.To == to.id })
}
