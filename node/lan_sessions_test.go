//go:build linux

package node_test

import (
	"crypto/rand"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestLAN's steps about sessions (lan_test.go has the test, its topology
// and the first steps): one session per pair however often mDNS announces,
// a peer that stops and returns, a peer with an unreachable second address.

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
			t.Logf("KNOWN ISSUE (node/dial.go, not discovery): after bob's return %s has %d new sessions with %s, want 1: %q",
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
