package e2e_test

// Test fixtures shared by the e2e tests and benchmarks: real libp2p hosts on
// 127.0.0.1, parties (an identity, a trust store, a clock and an endpoint
// on one of those hosts), a session runner with a fixed conversation, and
// the test man-in-the-middle (wire.go).

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// testTimeout bounds every wait in a test so that a broken case fails
// instead of hanging the suite.
const testTimeout = 10 * time.Second

// epoch is the fixed "now" of the tests' clocks.
var epoch = time.Now().Truncate(time.Second)

func TestMain(m *testing.M) {
	code := m.Run()
	world.close()
	os.Exit(code)
}

// node is a libp2p host on 127.0.0.1 and the identity whose key is the
// host's key (so the host's peer ID is the identity's).
type node struct {
	name string
	h    host.Host
	id   *identity.Identity
}

// Key is the node's Ed25519 identity key.
func (n *node) key() ed25519.PrivateKey { return n.id.Signer() }

// world is the set of hosts every test shares: making hosts is the slow
// part of a test, and streams on distinct protocol IDs keep cases apart.
var world testWorld

type testWorld struct {
	once  sync.Once
	err   error
	hosts []host.Host

	alice, bob, mallory, carol *node
	// split runs a libp2p host whose key is NOT its TLS identity key:
	// split.h has a key of its own, split.id is another key.
	split *node
}

func (w *testWorld) close() {
	for _, h := range w.hosts {
		h.Close()
	}
}

func newHost(key ed25519.PrivateKey) (host.Host, error) {
	k, err := identity.Libp2pKey(key)
	if err != nil {
		return nil, err
	}
	return libp2p.New(
		libp2p.Identity(k),
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.DisableRelay(),
		libp2p.ResourceManager(&network.NullResourceManager{}),
	)
}

func newNode(name string, tlsID *identity.Identity) (*node, error) {
	id, err := identity.Generate(name, epoch, 0)
	if err != nil {
		return nil, err
	}
	h, err := newHost(id.Signer())
	if err != nil {
		return nil, err
	}
	world.hosts = append(world.hosts, h)
	if tlsID != nil {
		id = tlsID
	}
	return &node{name: name, h: h, id: id}, nil
}

// hosts returns the shared hosts, making them on first use.
func hosts(t testing.TB) *testWorld {
	t.Helper()
	world.once.Do(func() {
		mk := func(name string) *node {
			if world.err != nil {
				return nil
			}
			n, err := newNode(name, nil)
			world.err = err
			return n
		}
		world.alice, world.bob, world.mallory, world.carol = mk("alice"), mk("bob"), mk("mallory"), mk("carol")
		if world.err != nil {
			return
		}
		other, err := identity.Generate("split", epoch, 0)
		if err != nil {
			world.err = err
			return
		}
		world.split, world.err = newNode("split", other)
		if world.err != nil {
			return
		}
		// Every host knows every other's addresses, so NewStream dials.
		all := []*node{world.alice, world.bob, world.mallory, world.carol, world.split}
		for _, a := range all {
			for _, b := range all {
				if a != b {
					a.h.Peerstore().AddAddrs(b.h.ID(), b.h.Addrs(), time.Hour)
				}
			}
		}
	})
	if world.err != nil {
		t.Fatal(world.err)
	}
	return &world
}

// clock is a settable clock for Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: epoch} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// party is one side of a test: the identity it presents, its contacts,
// its clock and its endpoint, on a host.
type party struct {
	n     *node
	id    *identity.Identity
	trust *identity.TrustStore
	clock *clock
	ep    *e2e.Endpoint
	cfg   e2e.Config
}

// partyOpt adjusts a party's configuration before its endpoint is made.
type partyOpt func(*party)

func withIdentity(id *identity.Identity) partyOpt { return func(p *party) { p.cfg.Identity = id } }
func withPolicy(pol e2e.Policy) partyOpt          { return func(p *party) { p.cfg.Policy = pol } }
func withTimeout(d time.Duration) partyOpt {
	return func(p *party) { p.cfg.HandshakeTimeout = d }
}
func withMaxHalfOpen(n int) partyOpt { return func(p *party) { p.cfg.MaxHalfOpen = n } }
func withTicketAge(d time.Duration) partyOpt {
	return func(p *party) { p.cfg.Policy.MaxTicketAge = d }
}

func newParty(t testing.TB, n *node, opts ...partyOpt) *party {
	t.Helper()
	ts, err := identity.OpenTrustStore(filepath.Join(t.TempDir(), "trust.json"))
	if err != nil {
		t.Fatal(err)
	}
	p := &party{n: n, trust: ts, clock: newClock()}
	p.cfg = e2e.Config{Identity: n.id, Trust: ts, Now: p.clock.Now}
	for _, o := range opts {
		o(p)
	}
	p.id = p.cfg.Identity
	if p.ep, err = e2e.NewEndpoint(p.cfg); err != nil {
		t.Fatal(err)
	}
	return p
}

// pin makes the party trust other's key on first use (a contact).
func (p *party) pin(t testing.TB, other peer.ID, name string, state identity.State) {
	t.Helper()
	if err := p.trust.Pin(other, name, state, epoch); err != nil {
		t.Fatal(err)
	}
}

// pair makes two parties that know each other (tofu).
func pair(t testing.TB, a, b *node, aOpts, bOpts []partyOpt) (*party, *party) {
	pa, pb := newParty(t, a, aOpts...), newParty(t, b, bOpts...)
	pa.pin(t, pb.id.PeerID(), "", identity.StateTOFU)
	pb.pin(t, pa.id.PeerID(), "", identity.StateTOFU)
	return pa, pb
}

// --- certificates -------------------------------------------------------

// certFor makes an identity for n's key with a self-signed certificate
// valid from notBefore+1h (NewSelfSigned backdates an hour) for validity.
func certFor(t testing.TB, key ed25519.PrivateKey, name string, at time.Time, validity time.Duration) *identity.Identity {
	t.Helper()
	c, err := identity.NewSelfSigned(key, name, at, validity)
	if err != nil {
		t.Fatal(err)
	}
	id, err := identity.FromParts(key, []*x509.Certificate{c})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// issued makes an identity for key with a certificate issued by ca.
func issued(t testing.TB, ca *identity.CA, key ed25519.PrivateKey, name string) *identity.Identity {
	t.Helper()
	pemCSR, err := identity.NewCSR(key, name)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := identity.ParseCSR(pemCSR)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.Issue(csr, epoch, 0)
	if err != nil {
		t.Fatal(err)
	}
	id, err := identity.FromParts(key, []*x509.Certificate{c, ca.Cert})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func newCA(t testing.TB, name string) *identity.CA {
	t.Helper()
	ca, err := identity.NewCA(name, epoch, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// --- running sessions ---------------------------------------------------

// outcome is what one side of a session saw: the handshake's error or
// session, the frames the application was given, and the error that ended
// the conversation (io.EOF after a proper close).
type outcome struct {
	sess    *e2e.Session
	err     error // handshake
	frames  []e2e.Frame
	sendErr error
	endErr  error
}

// failure is the error that made this side give up: the handshake's or,
// when the handshake completed, the one that ended the conversation.
//
// Receiving is what detects an attack after the handshake, so its error
// comes before a failed Send's.
func (o outcome) failure() error {
	switch {
	case o.err != nil:
		return o.err
	case o.endErr != nil && !errors.Is(o.endErr, io.EOF):
		return o.endErr
	}
	return o.sendErr
}

func (o outcome) String() string {
	return fmt.Sprintf("handshake=%v frames=%d send=%v end=%v", o.err, len(o.frames), o.sendErr, o.endErr)
}

// script is what a side does once its handshake completed.
type script func(s *e2e.Session, o *outcome)

// chat is the default client script: send a text, then read until a
// receipt (then close properly) or an error.
func chat(s *e2e.Session, o *outcome) {
	o.sendErr = s.SendText(e2e.Text{ID: e2e.NewMessageID(), SentAt: epoch, Body: "hello"})
	receiveAll(s, o, func(f e2e.Frame) bool { return f.Type == e2e.FrameReceipt })
	s.Close()
}

// answer is the default server script: acknowledge texts until the peer
// closes or an error.
func answer(s *e2e.Session, o *outcome) {
	receiveAll(s, o, func(f e2e.Frame) bool {
		if f.Type == e2e.FrameText {
			if t, err := e2e.ParseText(f.Payload); err == nil {
				s.SendReceipt(e2e.Receipt{ID: t.ID, Status: e2e.ReceiptStored})
			}
		}
		return false
	})
	s.Close()
}

// receiveAll reads frames into o until done says stop or Receive fails.
func receiveAll(s *e2e.Session, o *outcome, done func(e2e.Frame) bool) {
	s.SetReadDeadline(time.Now().Add(testTimeout))
	for {
		f, err := s.Receive()
		if err != nil {
			o.endErr = err
			return
		}
		// Receive reuses the payload's memory: keep a copy.
		f.Payload = bytes.Clone(f.Payload)
		o.frames = append(o.frames, f)
		if done(f) {
			return
		}
	}
}

// run describes one session between two hosts.
type run struct {
	client, server *party
	// expected is the peer the client means to reach (default: the
	// server's host).
	expected peer.ID
	// wrapClient and wrapServer put something between TLS and the stream.
	wrapClient, wrapServer func(network.Stream) e2e.Conn
	// clientScript and serverScript run after a successful handshake
	// (default chat and answer).
	clientScript, serverScript script
	// rawServer replaces the server party with a handler of raw bytes;
	// rawClient replaces the client party.
	rawServer func(network.Stream)
	rawClient func(network.Stream)
	// serverNode is the host the handler runs on when server is nil.
	serverNode, clientNode *node
	// claimClientRemote and claimServerRemote replace the peer the
	// transport authenticated, for attacks below our TLS that libp2p's
	// security would otherwise stop.
	claimClientRemote, claimServerRemote peer.ID
	// also runs extra checks after the session.
	also func(t *testing.T, c, s outcome)
}

var protoSeq atomic.Int64

// newProto is a fresh libp2p protocol ID, so cases on the shared hosts
// never see each other's streams.
func newProto() protocol.ID {
	return protocol.ID(fmt.Sprintf("/certchat-test/%d", protoSeq.Add(1)))
}

// do runs r and returns what each side saw.
func (r run) do(t testing.TB) (client, server outcome) {
	t.Helper()
	sn, cn := r.serverNode, r.clientNode
	if r.server != nil {
		sn = r.server.n
	}
	if r.client != nil {
		cn = r.client.n
	}
	proto := newProto()
	done := make(chan outcome, 1)
	sn.h.SetStreamHandler(proto, func(s network.Stream) {
		if r.rawServer != nil {
			r.rawServer(s)
			s.Close()
			done <- outcome{}
			return
		}
		var c e2e.Conn = s
		if r.wrapServer != nil {
			c = r.wrapServer(s)
		}
		var o outcome
		remote := s.Conn().RemotePeer()
		if r.claimServerRemote != "" {
			remote = r.claimServerRemote
		}
		o.sess, o.err = r.server.ep.Server(context.Background(), c, remote)
		if o.err == nil {
			sc := r.serverScript
			if sc == nil {
				sc = answer
			}
			sc(o.sess, &o)
		}
		s.Close()
		done <- o
	})
	defer sn.h.RemoveStreamHandler(proto)

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	s, err := cn.h.NewStream(ctx, sn.h.ID(), proto)
	if err != nil {
		t.Fatal(err)
	}
	if r.rawClient != nil {
		r.rawClient(s)
		s.Close()
	} else {
		var c e2e.Conn = s
		if r.wrapClient != nil {
			c = r.wrapClient(s)
		}
		expected := r.expected
		if expected == "" {
			expected = sn.h.ID()
		}
		remote := s.Conn().RemotePeer()
		if r.claimClientRemote != "" {
			remote = r.claimClientRemote
		}
		client.sess, client.err = r.client.ep.Client(ctx, c, remote, expected)
		if client.err == nil {
			sc := r.clientScript
			if sc == nil {
				sc = chat
			}
			sc(client.sess, &client)
		}
		s.Close()
	}
	select {
	case server = <-done:
	case <-time.After(testTimeout):
		t.Fatal("the server side did not finish")
	}
	return client, server
}

// wantErr checks that err is the sentinel want (nil: no error).
func wantErr(t testing.TB, side string, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Errorf("%s: unexpected error %v", side, err)
	case want != nil && !errors.Is(err, want):
		t.Errorf("%s: got error %v, want %v", side, err, want)
	}
}

// verdictOf returns the verdict a handshake error carries.
func verdictOf(err error) *identity.Verdict {
	var he *e2e.HandshakeError
	if errors.As(err, &he) {
		return he.Verdict
	}
	return nil
}
