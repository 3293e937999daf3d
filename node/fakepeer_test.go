package node_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// fakePeer speaks the chat protocol frame by frame: a libp2p host from its
// own identity and an e2e session, without a node behind it. Tests use it
// to send what a correct node never would (the same message twice, a
// receipt for someone else's message, a reused message ID).
type fakePeer struct {
	t      *testing.T
	id     *identity.Identity
	host   host.Host
	sess   *e2e.Session
	frames chan e2e.Frame
	ended  chan error // the session's end: io.EOF for a proper close
}

func newFakePeer(t *testing.T, name string) *fakePeer {
	t.Helper()
	id, err := identity.Generate(name, time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key, err := id.Libp2pKey()
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.Identity(key), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	fp := &fakePeer{t: t, id: id, host: h}
	t.Cleanup(func() {
		if fp.sess != nil {
			fp.sess.Close()
		}
		h.Close()
	})
	return fp
}

func (fp *fakePeer) ID() peer.ID { return fp.id.PeerID() }

// dial connects to tn and runs the client handshake.
func (fp *fakePeer) dial(tn *testNode) error {
	fp.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	addr, err := ma.NewMultiaddr(tn.tcpAddr())
	if err != nil {
		return err
	}
	info, err := peer.AddrInfoFromP2pAddr(addr)
	if err != nil {
		return err
	}
	if err := fp.host.Connect(ctx, *info); err != nil {
		return err
	}
	s, err := fp.host.NewStream(ctx, info.ID, e2e.ProtocolChat)
	if err != nil {
		return err
	}
	// An empty trust store: every peer is unknown, and allowed.
	ts, err := identity.OpenTrustStore(filepath.Join(fp.t.TempDir(), "trust.json"))
	if err != nil {
		return err
	}
	ep, err := e2e.NewEndpoint(e2e.Config{Identity: fp.id, Trust: ts, Policy: e2e.Policy{AllowUnknown: true}})
	if err != nil {
		return err
	}
	sess, err := ep.Client(ctx, s, s.Conn().RemotePeer(), info.ID)
	if err != nil {
		return err
	}
	fp.sess = sess
	fp.frames = make(chan e2e.Frame, 1024)
	fp.ended = make(chan error, 1)
	go func() {
		for {
			f, err := sess.Receive()
			if err != nil {
				fp.ended <- err
				close(fp.frames)
				return
			}
			f.Payload = bytes.Clone(f.Payload) // Receive reuses its buffer
			fp.frames <- f
		}
	}()
	return nil
}

func (fp *fakePeer) sendText(t e2e.Text) {
	fp.t.Helper()
	if err := fp.sess.SendText(t); err != nil {
		fp.t.Fatalf("fake peer: send text: %v", err)
	}
}

// closedBy waits for the node to close the session and returns its code.
func (fp *fakePeer) closedBy() e2e.CloseCode {
	fp.t.Helper()
	timeout := time.After(15 * time.Second)
	for open := true; open; {
		select {
		case _, open = <-fp.frames:
		case <-timeout:
			fp.t.Fatal("the node did not close the session")
		}
	}
	if err := <-fp.ended; !errors.Is(err, io.EOF) {
		fp.t.Fatalf("session ended without a close frame: %v", err)
	}
	code, _, _ := fp.sess.CloseReason()
	return code
}
