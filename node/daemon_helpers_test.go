package node_test

import "testing"

// The usual start of a process test: alice and bob, an identity each made
// by the chat binary, a `chat daemon --json` on each on 127.0.0.1, each
// daemon trusting the other's peer ID, alice connected to bob.

// daemonPair is alice and bob of a process test: their homes and peer
// IDs, and their daemons once started.
type daemonPair struct {
	t            testing.TB
	aHome, aID   string
	bHome, bID   string
	a, b         *daemon
	aPort, bPort int // 0 (any) unless pairOpts fixed it
}

// pairOpts says how a pair's daemons start: alice's with aFlags, bob's
// with bFlags (after startDaemon's --no-mdns). A daemon with a fixed port
// listens on a port of its own (freePort, taken just before it starts),
// so that the test can start it again on the same address; the others
// on any. verified has link trust each peer as verified, not on first
// use.
type pairOpts struct {
	aFlags, bFlags         []string
	aFixedPort, bFixedPort bool
	verified               bool
}

// newPair makes alice's and bob's identities in dir (procHome).
func newPair(t testing.TB, dir string) *daemonPair {
	t.Helper()
	p := &daemonPair{t: t}
	p.aHome, p.aID = procHome(t, dir, "alice")
	p.bHome, p.bID = procHome(t, dir, "bob")
	return p
}

// procContacts is newPair with each made a contact of the other by `chat
// contacts add`, under the other's name, before any daemon runs.
func procContacts(t testing.TB, dir string) *daemonPair {
	t.Helper()
	p := newPair(t, dir)
	for _, c := range [][]string{
		{"contacts", "add", p.bID, "--name", "bob", "--home", p.aHome},
		{"contacts", "add", p.aID, "--name", "alice", "--home", p.bHome},
	} {
		if r := chat(t, c...); r.code != 0 {
			t.Fatalf("chat %v: %s", c, r.stderr)
		}
	}
	return p
}

// start starts alice's daemon, then bob's (startDaemon: each is waited
// for until it listens, and killed at the end of the test if it still
// runs).
func (p *daemonPair) start(o pairOpts) {
	p.t.Helper()
	if o.aFixedPort {
		p.aPort = freePort(p.t)
	}
	p.a = startDaemon(p.t, "alice", p.aHome, p.aPort, o.aFlags...)
	if o.bFixedPort {
		p.bPort = freePort(p.t)
	}
	p.b = startDaemon(p.t, "bob", p.bHome, p.bPort, o.bFlags...)
}

// link is linkDaemons for the pair: alice and bob trust each other,
// alice connects to bob. It returns alice's answer to connect.
func (p *daemonPair) link(verified bool) event {
	p.t.Helper()
	return linkDaemons(p.t, verified, []*daemon{p.a, p.b}, []string{p.aID, p.bID})[0]
}

// startPair is newPair, start and link: alice's and bob's daemons
// running, each trusting the other, alice connected to bob.
func startPair(t testing.TB, dir string, o pairOpts) *daemonPair {
	t.Helper()
	p := newPair(t, dir)
	p.start(o)
	p.link(o.verified)
	return p
}

// linkDaemons has each daemon trust every other one's peer ID (ids[i] is
// ds[i]'s), as verified if verified, then connects each to every later
// one. It returns the answers to connect, in the order they were asked.
func linkDaemons(t testing.TB, verified bool, ds []*daemon, ids []string) []event {
	t.Helper()
	for i, d := range ds {
		for j, id := range ids {
			if i != j {
				cmd := map[string]any{"cmd": "trust", "peer": id}
				if verified {
					cmd["verified"] = true
				}
				d.do("trust", cmd)
			}
		}
	}
	var connected []event
	for i, d := range ds {
		for _, to := range ds[i+1:] {
			connected = append(connected, d.do("connect", map[string]any{"cmd": "connect", "addr": to.addr()}))
		}
	}
	return connected
}
