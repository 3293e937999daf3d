package e2e_test

import (
	"context"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
)

// pipeSessions runs a handshake between two fresh identities over
// net.Pipe, where every write waits until the other side reads: the
// harshest stream for anything that holds a lock across a write.
func pipeSessions(t *testing.T) (client, server *e2e.Session) {
	t.Helper()
	now := time.Now()
	ids := make([]*identity.Identity, 2)
	stores := make([]*identity.TrustStore, 2)
	for i, name := range []string{"a", "b"} {
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
	ca, cb := net.Pipe()
	epA, _ := e2e.NewEndpoint(e2e.Config{Identity: ids[0], Trust: stores[0]})
	epB, _ := e2e.NewEndpoint(e2e.Config{Identity: ids[1], Trust: stores[1]})
	var wg sync.WaitGroup
	var errB error
	wg.Add(1)
	go func() {
		defer wg.Done()
		server, errB = epB.Server(context.Background(), cb, ids[0].PeerID())
	}()
	client, err := epA.Client(context.Background(), ca, ids[1].PeerID(), ids[1].PeerID())
	wg.Wait()
	if err != nil || errB != nil {
		t.Fatalf("handshake: client %v, server %v", err, errB)
	}
	t.Cleanup(func() { ca.Close(); cb.Close() })
	return client, server
}

// Both sides send and receive at once: a Receive must never wait behind
// its own side's blocked Send, or two peers deadlock.
func TestConcurrentSendReceive(t *testing.T) {
	a, b := pipeSessions(t)
	const frames = 20
	payload := make([]byte, 64<<10)
	var wg sync.WaitGroup
	for _, s := range []*e2e.Session{a, b} {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for range frames {
				if err := s.Send(e2e.FrameEnvelope, payload); err != nil {
					t.Errorf("send: %v", err)
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for range frames {
				if _, err := s.Receive(); err != nil {
					t.Errorf("receive: %v", err)
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("deadlock: sends and receives on both sides did not finish")
	}
}

// Close returns even while a Send is blocked on a peer that stopped
// reading.
func TestCloseWhileSendBlocked(t *testing.T) {
	a, _ := pipeSessions(t) // the server never reads again
	go a.Send(e2e.FrameEnvelope, make([]byte, 64<<10))
	time.Sleep(100 * time.Millisecond)
	closed := make(chan struct{})
	go func() { a.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hung behind a blocked Send")
	}
}
