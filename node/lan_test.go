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
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/certchat/certchat/internal/testproc"
	"github.com/certchat/certchat/node"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
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

// lanTestDedup: one session per pair whatever mDNS does. The daemons found
// each other at the same moment (all started together); then the test's own
// responder on the switch announces every daemon again under 20 fresh
// instance names each (so each daemon "finds" each peer 20 more times),
// and finally a canary peer, announced 10 times, whose address refuses
// connections. No new session, no storm of peer events, and the canary is
// tried once (a retry spacing after a failure).
func lanTestDedup(t *testing.T, ln *lanNet, all []*lanDaemon, listening time.Time) {
	// Count only after every delayed dial (lanYield) would have happened.
	time.Sleep(time.Until(listening.Add(lanYield + time.Second)))
	for _, d := range all {
		for _, o := range all {
			if d != o {
				if s := d.sessions(0, o.id); len(s) != 1 {
					t.Errorf("%s has %d sessions with %s, want 1: %q", d.name, len(s), o.name, s)
				}
				if n := d.onlineTransitions(0, o.id); n != 1 {
					t.Errorf("%s saw %s come online %d times, want 1", d.name, o.name, n)
				}
			}
		}
	}
	// The two ends agree on who dialed.
	for i, d := range all {
		for _, o := range all[i+1:] {
			ds, os := d.sessions(0, o.id), o.sessions(0, d.id)
			if len(ds) == 1 && len(os) == 1 && strings.Contains(ds[0], "outgoing=true") == strings.Contains(os[0], "outgoing=true") {
				t.Errorf("%s and %s disagree on who dialed:\n%s\n%s", d.name, o.name, ds[0], os[0])
			}
		}
	}
	if t.Failed() {
		return
	}

	canaryKey, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	canary, err := peer.IDFromPrivateKey(canaryKey)
	if err != nil {
		t.Fatal(err)
	}
	marks := map[*lanDaemon][2]int{}
	for _, d := range all {
		marks[d] = [2]int{d.mark(), d.logMark()}
	}
	inj := lanNewInjector(t, ln.ns("switch"))
	const repeats = 20
	for i := range repeats {
		for _, d := range all {
			inj.announce(t, fmt.Sprintf("dup%d-%s", i, d.name), d.listenAddrs(), net.ParseIP(d.ip))
		}
		time.Sleep(10 * time.Millisecond)
	}
	canaryAddr := fmt.Sprintf("/ip4/%s/tcp/9/p2p/%s", lanSwitchIP, canary) // nothing listens: refused
	for i := range 10 {
		inj.announce(t, fmt.Sprintf("canary%d", i), []string{canaryAddr}, net.ParseIP(lanSwitchIP))
		time.Sleep(20 * time.Millisecond)
	}
	// The canary is the last thing announced: once a daemon reports it,
	// it has had every duplicate too.
	for _, d := range all {
		m := marks[d]
		d.waitEvent(t, m[0], "the canary peer discovered", lanWait, func(e lanEvent) bool {
			return e.Event == "peer" && e.PeerID == canary.String() && e.Discovered
		})
		d.waitLog(t, m[1], "the handshake with the canary failing", lanWait, func(l string) bool {
			return strings.Contains(l, `msg="handshake with LAN peer"`) && strings.Contains(l, "peer="+canary.String())
		})
	}
	time.Sleep(time.Second) // let anything a duplicate might cause happen
	var report []string
	for _, d := range all {
		m := marks[d]
		var counts []string
		for _, o := range all {
			if d == o {
				continue
			}
			if s := d.sessions(m[1], o.id); len(s) != 0 {
				t.Errorf("%s opened %d new sessions with %s after duplicate announcements: %q", d.name, len(s), o.name, s)
			}
			n := d.peerEvents(m[0], o.id)
			if n > 2 {
				t.Errorf("%s emitted %d peer events about %s during the duplicate announcements; want at most 2", d.name, n, o.name)
			}
			counts = append(counts, fmt.Sprintf("%d peer events about %s", n, o.name))
		}
		tries := d.countLogs(m[1], func(l string) bool {
			return strings.Contains(l, `msg="handshake with LAN peer"`) && strings.Contains(l, "peer="+canary.String())
		})
		if tries != 1 {
			t.Errorf("%s tried the unreachable canary %d times after 10 announcements, want 1", d.name, tries)
		}
		if n := d.peerEvents(m[0], canary.String()); n > 2 {
			t.Errorf("%s emitted %d peer events about the canary; want at most 2", d.name, n)
		}
		report = append(report, fmt.Sprintf("%s: %s, %d canary attempts", d.name, strings.Join(counts, ", "), tries))
	}
	t.Logf("after %d re-announcements of every daemon and 10 of the canary: %s", repeats, strings.Join(report, "; "))
}

// lanTestReturn: bob stops (SIGTERM); alice's message to him waits in her
// outbox; bob starts again and is found and reconnected by mDNS alone, and
// the message is delivered, with again one session per pair.
func lanTestReturn(t *testing.T, alice, bob, carol *lanDaemon) {
	mark := alice.mark()
	bob.stop(t)
	alice.waitEvent(t, mark, "bob offline", lanWait, func(e lanEvent) bool {
		return e.Event == "peer" && e.PeerID == bob.id && !e.Online
	})
	acc := alice.call(t, map[string]any{"cmd": "send", "to": bob.id, "text": "while you were away"})
	id := acc[len(acc)-1].ID
	time.Sleep(1500 * time.Millisecond) // alice's outbox tries and fails meanwhile
	h := alice.call(t, map[string]any{"cmd": "history", "peer": bob.id, "limit": 5})
	var status string
	for _, m := range h[len(h)-1].Messages {
		if m.ID == id {
			status = m.Status
		}
	}
	if status != "sending" {
		t.Fatalf("alice's message to the stopped bob has status %q, want sending (in the outbox)", status)
	}

	aMark, aLog, cMark, cLog := alice.mark(), alice.logMark(), carol.mark(), carol.logMark()
	restarted := time.Now()
	bob.start(t)
	bLog := bob.logMarkRun()
	got := bob.waitEvent(t, bob.runStart(), "the queued message "+id, lanWait, func(e lanEvent) bool { return e.Event == "message" && e.ID == id })
	if got.From != alice.id || got.Text != "while you were away" {
		t.Errorf("bob received %s", got.raw)
	}
	alice.waitEvent(t, 0, "delivered "+id, lanWait, func(e lanEvent) bool { return e.Event == "delivered" && e.ID == id })
	t.Logf("bob restarted; the queued message was delivered %v later", time.Since(restarted).Round(10*time.Millisecond))
	for _, o := range []*lanDaemon{alice, carol} {
		bob.waitEvent(t, bob.runStart(), o.name+" rediscovered and online", lanWait, func(e lanEvent) bool {
			return e.Event == "peer" && e.PeerID == o.id && e.Discovered && e.Online && e.Name == o.name
		})
	}
	carol.waitEvent(t, cMark, "bob back online", lanWait, func(e lanEvent) bool {
		return e.Event == "peer" && e.PeerID == bob.id && e.Online
	})
	alice.waitEvent(t, aMark, "bob back online", lanWait, func(e lanEvent) bool {
		return e.Event == "peer" && e.PeerID == bob.id && e.Online
	})
	// One session per pair again. Discovery alone (bob and carol) must
	// not make two; see lanStrictOutboxDedup for alice and bob. And the
	// message arrived once, however many sessions carried it.
	time.Sleep(lanYield + 500*time.Millisecond) // past any delayed dial
	n := 0
	for _, e := range bob.eventsSince(bob.runStart()) {
		if e.Event == "message" && e.ID == id {
			n++
		}
	}
	if n != 1 {
		t.Errorf("bob reported the queued message %d times, want once", n)
	}
	for _, c := range []struct {
		d    *lanDaemon
		from int
		o    *lanDaemon
	}{{carol, cLog, bob}, {bob, bLog, carol}, {alice, aLog, bob}, {bob, bLog, alice}} {
		s := c.d.sessions(c.from, c.o.id)
		switch {
		case len(s) == 1:
		case c.o == carol || c.d == carol || lanStrictOutboxDedup:
			t.Errorf("after bob's return %s has %d new sessions with %s, want 1: %q", c.d.name, len(s), c.o.name, s)
		default:
			t.Logf("KNOWN ISSUE (node/chat.go dial, not discovery): after bob's return %s has %d new sessions with %s, want 1: %q",
				c.d.name, len(s), c.o.name, s)
		}
	}
}

// lanStrictOutboxDedup makes a second session between alice and bob after
// bob's return a failure. It is off because of a known bug outside LAN
// discovery: alice's outbox starts dialing bob's old addresses as soon as
// the message is queued, and that dial lasts seconds (QUIC to a closed
// port only times out). When bob comes back, he dials alice (a session);
// alice's old dial then completes over bob's new connection and opens a
// second session, because Node.dial does not look again for a session
// that arrived while it connected. Turn it on once Node.dial does.
const lanStrictOutboxDedup = true

// lanYield is node's lanYield (discovery.go): how long the peer with the
// greater ID waits before dialing a peer it found.
const lanYield = 2 * time.Second

// lanTestMultihomed: carol also has 10.213.99.1 on a second interface,
// which she announces but nobody on the LAN can reach; alice and carol
// still chat, through carol's bridge address.
func lanTestMultihomed(t *testing.T, ln *lanNet, alice, carol *lanDaemon, sniff *lanSniffer) {
	tcpPort := ""
	for _, a := range carol.listenAddrs() {
		if m := regexp.MustCompile(`^/ip4/` + regexp.QuoteMeta(lanIslandIP) + `/tcp/(\d+)/`).FindStringSubmatch(a); m != nil {
			tcpPort = m[1]
		}
	}
	if tcpPort == "" {
		t.Fatalf("carol does not listen on her second address %s: %q", lanIslandIP, carol.listenAddrs())
	}
	a, ok := sniff.announcement(carol.id, carol.ip)
	if !ok || !slices.ContainsFunc(a.txt, func(s string) bool { return strings.HasPrefix(s, "dnsaddr=/ip4/"+lanIslandIP+"/") }) {
		t.Errorf("carol's mDNS announcement does not carry her second address %s: %q", lanIslandIP, a.txt)
	}
	// The premise: from alice's namespace, carol's second address is a
	// black hole and her bridge address answers.
	err := lanInNetns(ln.ns("alice"), func() error {
		if c, err := net.DialTimeout("tcp", net.JoinHostPort(lanIslandIP, tcpPort), 1500*time.Millisecond); err == nil {
			c.Close()
			return fmt.Errorf("alice reached carol's second address %s", lanIslandIP)
		}
		c, err := net.DialTimeout("tcp", net.JoinHostPort(carol.ip, tcpPort), 5*time.Second)
		if err != nil {
			return fmt.Errorf("alice cannot reach carol's bridge address: %w", err)
		}
		return c.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
	alice.call(t, map[string]any{"cmd": "trust", "peer": carol.id})
	carol.call(t, map[string]any{"cmd": "trust", "peer": alice.id})
	lanExchange(t, alice, carol, "hello carol, whichever your address")
	lanExchange(t, carol, alice, "hello alice, from the bridge side")
	for _, p := range [][2]*lanDaemon{{alice, carol}, {carol, alice}} {
		got := p[0].peers(t)[p[1].id]
		if !got.Online || got.Path != "lan" || got.Trust != "tofu" {
			t.Errorf("%s: peers says %s is %s; want online, path lan, trust tofu", p[0].name, p[1].name, got.raw)
		}
	}
}

// ---- environment ----

func lanRequire(t *testing.T) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (to create network namespaces)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		missing = append(missing, "the ip command (iproute2)")
	}
	if len(missing) == 0 {
		return
	}
	testproc.SkipUnlessCI(t, "LAN discovery test needs "+strings.Join(missing, " and "))
}

// lanEnv is the environment for chat commands: ours without CERTCHAT_*
// settings, which would change what the daemons do.
func lanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CERTCHAT_") {
			env = append(env, kv)
		}
	}
	return env
}

// ---- the network ----

type lanNet struct {
	prefix string
}

func (ln *lanNet) ns(role string) string { return ln.prefix + role }

func lanIP(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func lanNewNet(t *testing.T) *lanNet {
	ln := &lanNet{prefix: fmt.Sprintf("cclan%dr%d", os.Getpid(), lanRuns.Add(1))}
	sw := ln.ns("switch")
	for _, role := range []string{"switch", "alice", "bob", "carol", "island"} {
		ns := ln.ns(role)
		exec.Command("ip", "netns", "del", ns).Run() // a leftover from a crashed run with this PID
		lanIP(t, "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v\n%s", ns, err, out)
			}
		})
		lanIP(t, "-n", ns, "link", "set", "lo", "up")
	}
	// The switch: snooping off, so the bridge floods multicast to every port.
	lanIP(t, "-n", sw, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
	lanIP(t, "-n", sw, "addr", "add", lanSwitchIP+"/24", "dev", "br0")
	lanIP(t, "-n", sw, "link", "set", "br0", "up")
	lanIP(t, "-n", sw, "route", "add", "224.0.0.0/4", "dev", "br0")
	for i, host := range []string{"alice", "bob", "carol"} {
		ns, port := ln.ns(host), "p"+host[:1]
		lanIP(t, "-n", sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
		lanIP(t, "-n", sw, "link", "set", port, "master", "br0", "up")
		lanIP(t, "-n", ns, "addr", "add", fmt.Sprintf("%s%d/24", lanPrefix, i+1), "dev", "eth0")
		lanIP(t, "-n", ns, "link", "set", "eth0", "up")
		lanIP(t, "-n", ns, "route", "add", "default", "via", lanSwitchIP)
		lanIP(t, "-n", ns, "route", "add", "224.0.0.0/4", "dev", "eth0")
	}
	// carol's second network: a veth to a namespace nobody else is on.
	carol, island := ln.ns("carol"), ln.ns("island")
	lanIP(t, "-n", carol, "link", "add", "eth1", "type", "veth", "peer", "name", "eth0", "netns", island)
	lanIP(t, "-n", carol, "addr", "add", lanIslandIP+"/24", "dev", "eth1")
	lanIP(t, "-n", carol, "link", "set", "eth1", "up")
	lanIP(t, "-n", island, "addr", "add", lanIsland2IP+"/24", "dev", "eth0")
	lanIP(t, "-n", island, "link", "set", "eth0", "up")
	return ln
}

// lanInNetns runs f on an OS thread inside the named network namespace.
// Sockets f creates belong to that namespace for their whole life.
func lanInNetns(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer self.Close()
		target, err := os.Open(filepath.Join("/var/run/netns", ns))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := lanSetns(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter %s: %w", ns, err)
			return
		}
		ferr := f()
		if err := lanSetns(self); err != nil {
			// The thread stays locked and ends with this goroutine.
			errc <- errors.Join(ferr, fmt.Errorf("leave %s: %w", ns, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

func lanSetns(f *os.File) error { return unix.Setns(int(f.Fd()), unix.CLONE_NEWNET) }

var lanMDNSGroup = &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353}

const lanService = node.MDNSService + ".local."

// ---- the sniffer: every mDNS packet seen on the switch ----

type lanAnnouncement struct {
	from     string
	instance string
	txt      []string
	a        []net.IP
}

type lanSniffer struct {
	mu      sync.Mutex
	packets map[string][2]int // source IP: queries, responses
	seen    []lanAnnouncement
}

func lanStartSniffer(t *testing.T, ns string) *lanSniffer {
	s := &lanSniffer{packets: map[string][2]int{}}
	var conn *net.UDPConn
	err := lanInNetns(ns, func() error {
		ifi, err := net.InterfaceByName("br0")
		if err != nil {
			return err
		}
		conn, err = net.ListenMulticastUDP("udp4", ifi, lanMDNSGroup)
		return err
	})
	if err != nil {
		t.Fatalf("mDNS sniffer: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			var m dns.Msg
			if m.Unpack(buf[:n]) != nil {
				continue
			}
			src := from.IP.String()
			s.mu.Lock()
			c := s.packets[src]
			if m.Response {
				c[1]++
			} else {
				c[0]++
			}
			s.packets[src] = c
			rrs := append(append(slices.Clone(m.Answer), m.Ns...), m.Extra...)
			var a []net.IP
			for _, rr := range rrs {
				if r, ok := rr.(*dns.A); ok {
					a = append(a, r.A)
				}
			}
			for _, rr := range rrs {
				if r, ok := rr.(*dns.TXT); ok && m.Response && strings.HasSuffix(r.Hdr.Name, "."+lanService) {
					s.seen = append(s.seen, lanAnnouncement{from: src, instance: strings.TrimSuffix(r.Hdr.Name, "."+lanService), txt: r.Txt, a: a})
				}
			}
			s.mu.Unlock()
		}
	}()
	return s
}

// announcement returns the last announcement from ip that names peer id.
func (s *lanSniffer) announcement(id, ip string) (lanAnnouncement, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.seen) - 1; i >= 0; i-- {
		a := s.seen[i]
		if a.from == ip && slices.ContainsFunc(a.txt, func(t string) bool { return strings.HasSuffix(t, "/p2p/"+id) }) {
			return a, true
		}
	}
	return lanAnnouncement{}, false
}

func (s *lanSniffer) summary() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	b.WriteString("mDNS packets seen on the switch (source: queries/responses):")
	srcs := make([]string, 0, len(s.packets))
	for src := range s.packets {
		srcs = append(srcs, src)
	}
	slices.Sort(srcs)
	for _, src := range srcs {
		fmt.Fprintf(&b, " %s: %d/%d;", src, s.packets[src][0], s.packets[src][1])
	}
	fmt.Fprintf(&b, " %d announcements with TXT records", len(s.seen))
	return b.String()
}

// ---- the injector: the test's own mDNS responses on the LAN ----

type lanInjector struct{ conn *net.UDPConn }

func lanNewInjector(t *testing.T, ns string) *lanInjector {
	var conn *net.UDPConn
	err := lanInNetns(ns, func() (err error) {
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(lanSwitchIP)})
		return err
	})
	if err != nil {
		t.Fatalf("mDNS injector: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return &lanInjector{conn: conn}
}

// announce sends one unsolicited mDNS response for a certchat service
// instance with addrs (full multiaddrs with /p2p/) as dnsaddr TXT records,
// as go-libp2p's mDNS service does.
func (in *lanInjector) announce(t *testing.T, instance string, addrs []string, ip net.IP) {
	t.Helper()
	inst := instance + "." + lanService
	host := instance + ".local."
	hdr := func(name string, typ uint16) dns.RR_Header {
		return dns.RR_Header{Name: name, Rrtype: typ, Class: dns.ClassINET, Ttl: 120}
	}
	var txt []string
	for _, a := range addrs {
		txt = append(txt, "dnsaddr="+a)
	}
	m := new(dns.Msg)
	m.Response, m.Authoritative = true, true
	m.Answer = []dns.RR{
		&dns.PTR{Hdr: hdr(lanService, dns.TypePTR), Ptr: inst},
		&dns.SRV{Hdr: hdr(inst, dns.TypeSRV), Port: 4001, Target: host},
		&dns.TXT{Hdr: hdr(inst, dns.TypeTXT), Txt: txt},
		&dns.A{Hdr: hdr(host, dns.TypeA), A: ip},
	}
	buf, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.conn.WriteToUDP(buf, lanMDNSGroup); err != nil {
		t.Fatalf("mDNS injector: %v", err)
	}
}

// ---- the daemons ----

type lanMessage struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// lanEvent is one JSON line from a daemon.
type lanEvent struct {
	Event      string       `json:"event"`
	Ref        string       `json:"ref"`
	PeerID     string       `json:"peer_id"`
	Name       string       `json:"name"`
	Trust      string       `json:"trust"`
	Path       string       `json:"path"`
	Online     bool         `json:"online"`
	Discovered bool         `json:"discovered"`
	ID         string       `json:"id"`
	From       string       `json:"from"`
	To         string       `json:"to"`
	Text       string       `json:"text"`
	Error      string       `json:"error"`
	Addrs      []string     `json:"addrs"`
	Messages   []lanMessage `json:"messages"`

	raw string
	run int           // which start of the daemon
	at  time.Duration // since the test began
}

type lanDaemon struct {
	name, ns, ip, home, bin, id string
	began                       time.Time

	mu       sync.Mutex
	events   []lanEvent
	logs     []string // stderr lines of every run, each prefixed with its run
	wake     chan struct{}
	run      int
	runEvent int // index of the first event of the current run
	runLog   int
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	exited   chan struct{}
	exitErr  error
	refs     atomic.Int64
}

func lanNewDaemon(t *testing.T, bin, name, ns, ip string, began time.Time) *lanDaemon {
	t.Helper()
	d := &lanDaemon{name: name, ns: ns, ip: ip, bin: bin, began: began, home: filepath.Join(t.TempDir(), name), wake: make(chan struct{})}
	// A race-enabled binary sleeps a second at exit unless told not to.
	quick := append(lanEnv(), "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	cmd := exec.Command(bin, "init", "--home", d.home, "--name", name, "--no-passphrase")
	cmd.Env = quick
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chat init %s: %v\n%s", name, err, out)
	}
	cmd = exec.Command(bin, "id", "--home", d.home, "--json")
	cmd.Env = quick
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chat id %s: %v", name, err)
	}
	var id struct {
		PeerID string `json:"peer_id"`
	}
	if err := json.Unmarshal(out, &id); err != nil || id.PeerID == "" {
		t.Fatalf("chat id %s: %v: %s", name, err, out)
	}
	d.id = id.PeerID
	t.Cleanup(func() { d.kill() })
	return d
}

// start runs the daemon in its namespace: ip netns exec NS chat daemon --json.
func (d *lanDaemon) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", d.ns, d.bin, "daemon", "--json", "--home", d.home)
	cmd.Env = lanEnv()
	cmd.WaitDelay = 5 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	d.run++
	run := d.run
	d.runEvent, d.runLog = len(d.events), len(d.logs)
	d.mu.Unlock()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", d.name, err)
	}
	exited := make(chan struct{})
	var readers sync.WaitGroup
	readers.Add(2)
	go func() {
		defer readers.Done()
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			e := lanEvent{raw: sc.Text(), run: run, at: time.Since(d.began)}
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				e.Event = "unparsable"
			}
			d.mu.Lock()
			d.events = append(d.events, e)
			d.signalLocked()
			d.mu.Unlock()
		}
	}()
	go func() {
		defer readers.Done()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			d.mu.Lock()
			d.logs = append(d.logs, fmt.Sprintf("[run %d] %s", run, sc.Text()))
			d.signalLocked()
			d.mu.Unlock()
		}
	}()
	go func() {
		readers.Wait()
		err := cmd.Wait()
		d.mu.Lock()
		d.exitErr = err
		d.signalLocked()
		d.mu.Unlock()
		close(exited)
	}()
	d.mu.Lock()
	d.cmd, d.stdin, d.exited, d.exitErr = cmd, stdin, exited, nil
	d.mu.Unlock()
}

func (d *lanDaemon) signalLocked() {
	close(d.wake)
	d.wake = make(chan struct{})
}

// wait waits for the current run to exit and returns its exit error.
func (d *lanDaemon) wait(timeout time.Duration) error {
	d.mu.Lock()
	exited := d.exited
	d.mu.Unlock()
	if exited == nil {
		return nil
	}
	select {
	case <-exited:
	case <-time.After(timeout):
		return fmt.Errorf("still running after %v", timeout)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.exitErr
}

// stop ends the daemon with SIGTERM, as a user or init system would.
func (d *lanDaemon) stop(t *testing.T) {
	t.Helper()
	d.mu.Lock()
	cmd := d.cmd
	d.mu.Unlock()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM %s: %v", d.name, err)
	}
	if err := d.wait(10 * time.Second); err != nil {
		t.Fatalf("%s after SIGTERM: %v", d.name, err)
	}
}

// kill stops whatever still runs: SIGTERM, then SIGKILL.
func (d *lanDaemon) kill() {
	d.mu.Lock()
	cmd, exited := d.cmd, d.exited
	d.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
}

func (d *lanDaemon) send(t *testing.T, cmd map[string]any) {
	t.Helper()
	b, _ := json.Marshal(cmd)
	d.mu.Lock()
	stdin := d.stdin
	d.mu.Unlock()
	if _, err := stdin.Write(append(b, '\n')); err != nil {
		t.Fatalf("%s: write command %s: %v", d.name, b, err)
	}
}

// call sends a command with a fresh ref and returns the events answering
// it, up to and including the final one (ok, accepted, history).
func (d *lanDaemon) call(t *testing.T, cmd map[string]any) []lanEvent {
	t.Helper()
	ref := fmt.Sprintf("%s-%d", d.name, d.refs.Add(1))
	cmd["ref"] = ref
	from := d.mark()
	d.send(t, cmd)
	last := d.waitEvent(t, from, fmt.Sprintf("the answer to %v", cmd), lanWait, func(e lanEvent) bool {
		return e.Ref == ref && e.Event != "peer"
	})
	if last.Event == "error" {
		t.Fatalf("%s: %v: %s", d.name, cmd, last.Error)
	}
	var out []lanEvent
	for _, e := range d.eventsSince(from) {
		if e.Ref == ref {
			out = append(out, e)
		}
	}
	return out
}

// peers asks the daemon for its peer list.
func (d *lanDaemon) peers(t *testing.T) map[string]lanEvent {
	t.Helper()
	out := map[string]lanEvent{}
	for _, e := range d.call(t, map[string]any{"cmd": "peers"}) {
		if e.Event == "peer" {
			out[e.PeerID] = e
		}
	}
	return out
}

// listenAddrs are the daemon's full addresses from its latest listening event.
func (d *lanDaemon) listenAddrs() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := len(d.events) - 1; i >= d.runEvent; i-- {
		if d.events[i].Event == "listening" {
			return d.events[i].Addrs
		}
	}
	return nil
}

func (d *lanDaemon) mark() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.events)
}

func (d *lanDaemon) logMark() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.logs)
}

// runStart and logMarkRun are where the current run's events and logs begin.
func (d *lanDaemon) runStart() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.runEvent
}

func (d *lanDaemon) logMarkRun() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.runLog
}

func (d *lanDaemon) eventsSince(from int) []lanEvent {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.events[from:])
}

// waitEvent waits until an event at index from or later matches.
func (d *lanDaemon) waitEvent(t *testing.T, from int, what string, timeout time.Duration, match func(lanEvent) bool) lanEvent {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		d.mu.Lock()
		for i := from; i < len(d.events); i++ {
			if match(d.events[i]) {
				e := d.events[i]
				d.mu.Unlock()
				return e
			}
		}
		from = len(d.events)
		wake, exited := d.wake, d.exited
		d.mu.Unlock()
		select {
		case <-wake:
		case <-exited:
			t.Fatalf("%s exited (%v) while the test waited for %s", d.name, d.wait(0), what)
		case <-deadline.C:
			t.Fatalf("%s: no %s within %v", d.name, what, timeout)
		}
	}
}

// waitLog waits until a stderr line at index from or later matches.
func (d *lanDaemon) waitLog(t *testing.T, from int, what string, timeout time.Duration, match func(string) bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		d.mu.Lock()
		for i := from; i < len(d.logs); i++ {
			if match(d.logs[i]) {
				d.mu.Unlock()
				return
			}
		}
		from = len(d.logs)
		wake := d.wake
		d.mu.Unlock()
		select {
		case <-wake:
		case <-deadline.C:
			t.Fatalf("%s: no log of %s within %v", d.name, what, timeout)
		}
	}
}

func (d *lanDaemon) countLogs(from int, match func(string) bool) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, l := range d.logs[from:] {
		if match(l) {
			n++
		}
	}
	return n
}

// sessions are the daemon's "session" log lines (one per verified chat
// session it registered) about peer id, from stderr line from on.
func (d *lanDaemon) sessions(from int, id string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, l := range d.logs[from:] {
		if strings.Contains(l, " msg=session ") && strings.Contains(l, " peer="+id+" ") {
			out = append(out, l)
		}
	}
	return out
}

// onlineTransitions counts how often peer events about id went from
// offline to online in the daemon's first run.
func (d *lanDaemon) onlineTransitions(from int, id string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, online := 0, false
	for _, e := range d.events[from:] {
		if e.Event == "peer" && e.PeerID == id && e.Ref == "" {
			if e.Online && !online {
				n++
			}
			online = e.Online
		}
	}
	return n
}

// peerEvents counts unsolicited peer events about id from event from on.
func (d *lanDaemon) peerEvents(from int, id string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, e := range d.events[from:] {
		if e.Event == "peer" && e.PeerID == id && e.Ref == "" {
			n++
		}
	}
	return n
}

// dump logs the daemon's last stderr lines and events, for a failure.
func (d *lanDaemon) dump(t *testing.T) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var b bytes.Buffer
	fmt.Fprintf(&b, "==== %s (%s, %s, peer %s): last stderr lines:\n", d.name, d.ns, d.ip, d.id)
	for _, l := range d.logs[max(0, len(d.logs)-40):] {
		fmt.Fprintf(&b, "  %s\n", l)
	}
	fmt.Fprintf(&b, "==== %s: last events (of %d):\n", d.name, len(d.events))
	for _, e := range d.events[max(0, len(d.events)-40):] {
		fmt.Fprintf(&b, "  %7.3fs [run %d] %s\n", e.at.Seconds(), e.run, e.raw)
	}
	t.Log(b.String())
}
