package node_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/store"
	"github.com/certchat/certchat/transfer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
)

// A peer restarts (closed, started again on the same home) in the
// middle of a live file: once both are online again the transfer
// resumes by itself, from the chunks the receiver kept, and the file
// ends intact, done once on each side. The receiver's hook holds the
// transfer after some chunks, so that the restart lands half-way
// whatever the machine's speed.

// restartFileSize and restartPauseAt: a file of a few MiB (65 chunks),
// held by the receiver after it wrote chunk restartPauseAt.
const (
	restartFileSize = 4<<20 + 777
	restartPauseAt  = 20
)

// noRetries makes a node's retries an hour apart: a transfer these
// tests see resume was woken by something (a start, a connection), not
// by one of that node's retries coming round.
func noRetries(c *node.Config) { c.RetryMin, c.RetryMax = time.Hour, time.Hour }

// restartPeers: alice sends a file to bob, who listens on a port of his
// own across restarts (as Config.RememberPorts keeps it) and has no
// retries.
type restartPeers struct {
	t          *testing.T
	alice, bob *testNode
	bobListen  string
	bobConfig  func(*node.Config)
	held       chan struct{} // closed once bob's puller is held
	release    chan struct{} // close to let it go on
	id         transfer.ID
	data       []byte
}

// startRestartPeers starts alice (aliceConfig changes her configuration)
// and bob, who trust each other, connected, and has alice send bob the
// file, which he accepts; bob's puller is then held after chunk
// restartPauseAt until release is closed or bob closes.
func startRestartPeers(t *testing.T, aliceConfig func(*node.Config)) *restartPeers {
	t.Helper()
	downloads := t.TempDir()
	rp := &restartPeers{t: t, held: make(chan struct{}), release: make(chan struct{}),
		bobListen: fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", freePort(t)),
		bobConfig: func(c *node.Config) { noRetries(c); c.Downloads = downloads }}
	rp.alice = startNodeWith(t, newHome(t, "alice"), aliceConfig, "/ip4/127.0.0.1/tcp/0")
	rp.bob = startNodeWith(t, newHome(t, "bob"), rp.bobConfig, rp.bobListen)
	trustEachOther(t, rp.alice, rp.bob)
	if _, err := connect(t, rp.alice, rp.bob); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	rp.bob.ReceiveChunksForTest(func(ctx context.Context, i int) {
		if i != restartPauseAt {
			return
		}
		once.Do(func() { close(rp.held) })
		select {
		case <-ctx.Done():
		case <-rp.release:
		}
	})
	path, data := writeFile(t, t.TempDir(), "restart.bin", restartFileSize)
	rp.id, rp.data = sendAccepted(t, rp.alice, rp.bob, path, 15*time.Second).ID, data
	select {
	case <-rp.held:
	case <-time.After(time.Minute):
		t.Fatalf("chunk %d never arrived", restartPauseAt)
	}
	return rp
}

// restartBob closes bob and starts him again on his home and port.
func (rp *restartPeers) restartBob() {
	rp.t.Helper()
	if err := rp.bob.Close(); err != nil {
		rp.t.Fatal(err)
	}
	rp.bob = startNodeWith(rp.t, rp.bob.home, rp.bobConfig, rp.bobListen)
}

// finished waits for the file done at bob, then at alice: bob's copy has
// the SHA-256 of what alice sent, and neither says done twice. It
// returns the first progress bob showed meanwhile.
func (rp *restartPeers) finished() (first node.FileInfo) {
	rp.t.Helper()
	first, done := rp.bob.resumed(rp.id)
	if done.State != store.TransferDone {
		rp.t.Fatalf("done in state %s", done.State)
	}
	got, err := os.ReadFile(done.Path)
	if err != nil {
		rp.t.Fatal(err)
	}
	if sha256.Sum256(got) != sha256.Sum256(rp.data) {
		rp.t.Fatalf("%s: %d bytes, not the %d sent", done.Path, len(got), len(rp.data))
	}
	rp.alice.waitFile(node.EventFileDone, rp.id, 2*time.Minute)
	for _, tn := range []*testNode{rp.bob, rp.alice} {
		tn.quiet(time.Second, "a second file_done", func(e node.Event) bool {
			return e.Kind == node.EventFileDone && e.File.ID == rp.id
		})
	}
	return first
}

// restarted checks what bob showed first after his restart: at least
// the chunks he held before it, which he resumes from.
func (rp *restartPeers) restarted(first node.FileInfo) {
	rp.t.Helper()
	if kept := int64(restartPauseAt * transfer.ChunkSize); first.Bytes < kept {
		rp.t.Errorf("bob showed %d bytes held after his restart, not the %d he kept", first.Bytes, kept)
	}
}

// resumed waits, with a generous deadline, for transfer id to be done
// at tn, failing if it fails; it returns the first progress seen and
// the end.
func (tn *testNode) resumed(id transfer.ID) (first, done node.FileInfo) {
	tn.t.Helper()
	timeout := time.After(2 * time.Minute)
	for {
		select {
		case e, ok := <-tn.sub.C:
			if !ok {
				tn.t.Fatal("events closed")
			}
			if e.File == nil || e.File.ID != id {
				continue
			}
			switch e.Kind {
			case node.EventFileFailed:
				tn.t.Fatalf("%s: the file failed: %s", tn.ID(), e.File.Error)
			case node.EventFileProgress:
				if first.ID == (transfer.ID{}) {
					first = *e.File
				}
			case node.EventFileDone:
				return first, *e.File
			}
		case <-timeout:
			fi, err := tn.Files().Get(id)
			tn.t.Fatalf("%s: the file never resumed: %+v %v", tn.ID(), fi, err)
		}
	}
}

// waitAway waits until tn says that transfer id waits for peer to come
// online, and checks it is still active (the peer asked for it).
func (tn *testNode) waitAway(id transfer.ID, peer *testNode) {
	tn.t.Helper()
	want := fmt.Sprintf("waiting for %s to come online", identity.ShortID(peer.ID()))
	e := tn.waitFor(want, func(e node.Event) bool {
		return e.Kind == node.EventFileProgress && e.File.ID == id && strings.HasPrefix(e.File.Notice, want)
	})
	fi, err := tn.Files().Get(id)
	if err != nil || fi.State != store.TransferActive || fi.Notice != e.File.Notice {
		tn.t.Fatalf("%s: while the peer is away the transfer is %+v, %v", tn.ID(), fi, err)
	}
}

// closeListeners stops tn accepting connections (its relay transport
// aside, which has no relay here): what a node behind a NAT is to its
// peers. It can still dial. It returns the addresses it closed.
func (tn *testNode) closeListeners() []ma.Multiaddr {
	nw := tn.Host().Network()
	var addrs []ma.Multiaddr
	for _, a := range nw.ListenAddresses() {
		if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err != nil {
			addrs = append(addrs, a)
		}
	}
	nw.(*swarm.Swarm).ListenClose(addrs...)
	return addrs
}

// The receiver restarts; it reaches the sender, and asks again from its
// start, with no retry needed. (This worked already: a regression
// guard.)
func TestFileResumesAfterReceiverRestart(t *testing.T) {
	rp := startRestartPeers(t, noRetries)
	rp.restartBob()
	rp.restarted(rp.finished())
}

// The receiver restarts and cannot reach the sender (behind a NAT, no
// relay in common), which can reach it. The sender keeps the receiver
// of a file it has begun to send reachable: it says the file waits for
// the receiver, dials it until it is back, and the receiver, woken by
// the connection, asks again. Before, the sender had nothing to send
// and never dialed: the file waited for good, though both were online.
func TestFileResumesAfterReceiverRestartSenderUnreachable(t *testing.T) {
	rp := startRestartPeers(t, nil)
	rp.alice.closeListeners()
	if err := rp.bob.Close(); err != nil {
		t.Fatal(err)
	}
	rp.alice.waitAway(rp.id, rp.bob)
	rp.bob = startNodeWith(t, rp.bob.home, rp.bobConfig, rp.bobListen)
	rp.restarted(rp.finished())
}

// The mirror case: the sender restarts (on a new address, which the
// receiver cannot know) while the receiver cannot be reached either, so
// its greeting at start fails. It shows the file as active and waiting
// for the receiver, not as waiting to be accepted, and once the
// receiver can be reached it dials it and the receiver resumes. Before,
// it set the file back to waiting (shown as "waiting for bob to
// accept") and dialed only once.
func TestFileResumesAfterSenderRestart(t *testing.T) {
	rp := startRestartPeers(t, noRetries)
	if err := rp.alice.Close(); err != nil {
		t.Fatal(err)
	}
	addrs := rp.bob.closeListeners()
	close(rp.release)
	rp.alice = startNodeWith(t, rp.alice.home, nil, "/ip4/127.0.0.1/tcp/0")
	rp.alice.waitAway(rp.id, rp.bob)
	for _, a := range addrs {
		if err := rp.bob.Host().Network().Listen(a); err != nil {
			t.Fatal(err)
		}
	}
	rp.finished()
}

// The receiver restarts while the sender is gone: it says, in one line,
// that the file waits for the sender, and the dial's error goes to the
// log. Before, the notice carried the dial's error, a list of addresses
// over several lines.
func TestFileWaitingForSenderNoticeOneLine(t *testing.T) {
	rp := startRestartPeers(t, nil)
	if err := rp.bob.Close(); err != nil {
		t.Fatal(err)
	}
	if err := rp.alice.Close(); err != nil {
		t.Fatal(err)
	}
	rp.bob = startNodeWith(t, rp.bob.home, rp.bobConfig, rp.bobListen)
	e := rp.bob.waitFor("bob's file waiting for alice", func(e node.Event) bool {
		return e.Kind == node.EventFileProgress && e.File.ID == rp.id && e.File.Notice != ""
	})
	want := fmt.Sprintf("waiting for %s to come online to finish restart.bin", identity.ShortID(rp.alice.ID()))
	if n := e.File.Notice; !strings.HasPrefix(n, want) || strings.ContainsAny(n, "\r\n") || strings.Contains(n, "/ip4/") {
		t.Errorf("bob's notice is %q, want one line starting %q", n, want)
	}
}
