package node_test

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certchat/certchat/internal/testproc"
	"github.com/certchat/certchat/node"
)

// tamperProxy forwards TCP connections to target and flips one bit of
// the first connection's client-to-target bytes at offset flipAt (after
// the transport and chat handshakes, inside the file's chunks): a
// tampering relay on the path.
type tamperProxy struct {
	ln      net.Listener
	target  string
	flipAt  int64
	conns   atomic.Int32
	flipped atomic.Bool
	// firstClosed is closed when the tampered connection has ended.
	firstClosed chan struct{}
	wg          sync.WaitGroup
}

func startTamperProxy(t *testing.T, target string, flipAt int64) *tamperProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tamperProxy{ln: ln, target: target, flipAt: flipAt, firstClosed: make(chan struct{})}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.wg.Wait()
	})
	return p
}

func (p *tamperProxy) serve() {
	defer p.wg.Done()
	var open sync.WaitGroup
	var conns []net.Conn
	var mu sync.Mutex
	defer func() {
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		open.Wait()
	}()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		mu.Lock()
		conns = append(conns, c, up)
		mu.Unlock()
		first := p.conns.Add(1) == 1
		open.Add(2)
		var both sync.WaitGroup
		both.Add(2)
		go func() {
			defer open.Done()
			defer both.Done()
			p.copy(up, c, first)
			up.Close()
			c.Close()
		}()
		go func() {
			defer open.Done()
			defer both.Done()
			io.Copy(c, up)
			up.Close()
			c.Close()
		}()
		if first {
			go func() {
				both.Wait()
				close(p.firstClosed)
			}()
		}
	}
}

// copy forwards src to dst, flipping the bit at flipAt if tamper.
func (p *tamperProxy) copy(dst io.Writer, src io.Reader, tamper bool) {
	buf := make([]byte, 32<<10)
	var at int64
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if tamper && at <= p.flipAt && p.flipAt < at+int64(n) {
				buf[p.flipAt-at] ^= 0x10
				p.flipped.Store(true)
			}
			at += int64(n)
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestFileTamperingRelay sends a file on a path that changes a byte in
// flight, after the handshakes, in the middle of the chunks: libp2p's
// transport security (an AEAD keyed to the peers' identities) fails the
// connection, nothing of it is written as good, and the transfer resumes
// on a new connection and ends with the file right.
func TestFileTamperingRelay(t *testing.T) {
	t.Parallel()
	downloads := t.TempDir()
	// TCP only: every byte between the two goes through the proxy or
	// through a connection made after it.
	alice := startNode(t, newHome(t, "alice"), "/ip4/127.0.0.1/tcp/0")
	bob := startNodeWith(t, newHome(t, "bob"), func(c *node.Config) {
		c.Downloads = downloads
		c.RetryMin = 200 * time.Millisecond
	}, "/ip4/127.0.0.1/tcp/0")
	for _, p := range [][2]*testNode{{alice, bob}, {bob, alice}} {
		if err := p[0].Contacts().Trust(p[1].ID(), true); err != nil {
			t.Fatal(err)
		}
	}
	// Alice reaches Bob only through the proxy.
	direct := bob.tcpAddr()
	parts := strings.Split(direct, "/") // "", ip4, 127.0.0.1, tcp, PORT, p2p, ID
	proxy := startTamperProxy(t, "127.0.0.1:"+parts[4], 1<<20+4321)
	_, port, _ := net.SplitHostPort(proxy.ln.Addr().String())
	parts[4] = port
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := alice.Connect(ctx, strings.Join(parts, "/")); err != nil {
		t.Fatal(err)
	}
	path, data := writeFile(t, t.TempDir(), "t.bin", 4<<20+777)
	fi := sendAccepted(t, alice, bob, path, 15*time.Second)
	// The tampered connection ends (its transport's check fails) while
	// the file is still on its way.
	select {
	case <-proxy.firstClosed:
	case <-time.After(time.Minute):
		t.Fatal("the tampered connection was not closed")
	}
	if !proxy.flipped.Load() {
		t.Fatal("the proxy closed before it reached the byte to flip: nothing was tampered with")
	}
	done := bob.waitFile(node.EventFileDone, fi.ID, 2*time.Minute)
	// The whole file's SHA-256 matched (else no done) and every byte is
	// the sender's.
	checkReceived(t, done.Path, data)
	alice.waitFile(node.EventFileDone, fi.ID, 15*time.Second)
	t.Logf("connections through the proxy: %d", proxy.conns.Load())
}

// TestFileTamperingRelayHop puts the proxy between the sender and a
// `chat relay`, the only path between the two: the bit flipped on that
// hop fails the sender's connection to the relay (and the circuit in
// it); the sender connects to the relay again, the receiver comes back
// on a new circuit, and the file ends right.
func TestFileTamperingRelayHop(t *testing.T) {
	t.Parallel()
	r := testproc.StartRelay(t, testproc.RelayOptions{})
	parts := strings.Split(r.Addr, "/") // "", ip4, 127.0.0.1, tcp, PORT, p2p, ID
	if len(parts) < 7 || parts[3] != "tcp" {
		t.Fatalf("the relay's address %s is not TCP", r.Addr)
	}
	proxy := startTamperProxy(t, "127.0.0.1:"+parts[4], 1<<20+4321)
	_, port, _ := net.SplitHostPort(proxy.ln.Addr().String())
	parts[4] = port
	downloads := t.TempDir()
	alice := relayOnly(t, "alice", strings.Join(parts, "/"), nil)
	bob := relayOnly(t, "bob", r.Addr, func(c *node.Config) {
		c.Downloads = downloads
		c.RetryMin = 200 * time.Millisecond
	})
	linkThroughRelay(t, alice, bob)
	path, data := writeFile(t, t.TempDir(), "hop.bin", 4<<20+777)
	fi := sendAccepted(t, alice, bob, path, 20*time.Second)
	select {
	case <-proxy.firstClosed:
	case <-time.After(time.Minute):
		t.Fatal("the tampered connection was not closed")
	}
	if !proxy.flipped.Load() {
		t.Fatal("the proxy closed before it reached the byte to flip: nothing was tampered with")
	}
	done := bob.waitFile(node.EventFileDone, fi.ID, 2*time.Minute)
	checkReceived(t, done.Path, data)
	// The rest came through the relay (the sender reconnects to it by
	// its peer ID, through the proxy or at the address the relay told).
	if info := bob.PeerInfo(alice.ID()); info.Path != node.PathRelay && info.Path != node.PathNone {
		t.Errorf("the path was %s, not the relay", info.Path)
	}
}
