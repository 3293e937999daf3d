package node

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/certchat/certchat/transfer"
	"github.com/libp2p/go-libp2p/core/network"
)

// A receiver's file stream that reaches the sender before the sender's
// end of their chat session is up is served once it is: the receiver
// opens the stream as soon as its own end is up, which may be a moment
// before the sender's (the sender's end of a session the receiver
// started comes with the handshake's last flight). Before, the sender
// refused it ("no verified chat session") and the receiver waited for
// its next retry: with retries an hour apart, the file never resumed
// (TestFileResumesAfterSenderRestart failed so, once in about 25 runs
// on a loaded machine). Here bob's stream comes while alice holds no
// session with him, and her sessions come back 300 ms later.
func TestFileStreamWaitsForSession(t *testing.T) {
	alice, bob := fileSenderPair(t, fileHooks{})
	fi := offerNotes(t, alice, bob)
	held := alice.sessions.ofPeer(bob.ID())
	for _, cs := range held {
		alice.sessions.remove(cs)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		for _, cs := range held {
			alice.sessions.add(cs)
		}
	}()
	s := openWant(t, bob, alice, fi.ID)
	defer s.Reset()
	if typ, payload, err := readAnswer(s, 30*time.Second); err != nil || typ == fsError {
		t.Fatalf("frame %#x %q, err %v: alice refused the stream", typ, payload, err)
	}
}

// A refused file stream reads as the refusal, with its code, not as a
// stream reset: the receiver tells "try again later" from "over" by it.
func TestFileStreamRefusalArrives(t *testing.T) {
	alice, bob := fileSenderPair(t, fileHooks{})
	for range 20 {
		s := openWant(t, bob, alice, [16]byte{1, 2, 3})
		wantRefusal(t, s, 30*time.Second, fsErrUnknown)
		s.Reset()
	}
}

// A receiver's file stream that finds no chat session with it, and none
// comes within sessionWait, is refused as such ("no verified chat
// session"): the receiver retries later. Here alice holds no session
// with bob (his are taken out of her table) and waits 200 ms, not 10 s:
// a refusal read within 5 s is hers.
func TestFileStreamWithoutSessionIsRefused(t *testing.T) {
	alice, bob := fileSenderPair(t, fileHooks{sessionWait: 200 * time.Millisecond})
	fi := offerNotes(t, alice, bob)
	for _, cs := range alice.sessions.ofPeer(bob.ID()) {
		alice.sessions.remove(cs)
	}
	s := openWant(t, bob, alice, fi.ID)
	defer s.Reset()
	wantRefusal(t, s, 5*time.Second, fsErrNoSession)
}

// A refused file stream whose receiver reads the refusal and never hangs
// up is reset after refusalLinger: the sender's handler does not wait on
// it for ever. Here the linger is 200 ms, not 5 s: bob, who keeps
// writing, finds the stream reset well within 3 s.
func TestRefusedFileStreamLingersAtMost(t *testing.T) {
	alice, bob := fileSenderPair(t, fileHooks{refusalLinger: 200 * time.Millisecond})
	s := openWant(t, bob, alice, [16]byte{1, 2, 3})
	defer s.Reset()
	wantRefusal(t, s, 3*time.Second, fsErrUnknown)
	// Alice closed her side after the refusal and reads until bob hangs
	// up, which he does not: his writes go through until she gives up.
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := s.Write([]byte{0}); err != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("alice still holds the refused stream after 3 s")
		}
	}
}

// fileSenderPair starts alice, whose file streams run with hooks, and
// bob, with chat sessions between them.
func fileSenderPair(t *testing.T, hooks fileHooks) (alice, bob *offNode) {
	t.Helper()
	alice, bob = offNewNode(t, "alice", nil, false), offNewNode(t, "bob", nil, true)
	alice.files.hooks = hooks
	if err := alice.Start(); err != nil {
		t.Fatal(err)
	}
	offLink(t, alice, bob)
	return alice, bob
}

// readAnswer reads the sender's first frame on file stream s, waiting at
// most d.
func readAnswer(s network.Stream, d time.Duration) (byte, []byte, error) {
	s.SetReadDeadline(time.Now().Add(d))
	return readFS(bufio.NewReader(s), nil)
}

// wantRefusal reads a refusal with code on file stream s within d.
func wantRefusal(t *testing.T, s network.Stream, d time.Duration, code byte) {
	t.Helper()
	typ, payload, err := readAnswer(s, d)
	if err != nil || typ != fsError || len(payload) == 0 || payload[0] != code {
		t.Fatalf("frame %#x %q, err %v: want the refusal %#x", typ, payload, err, code)
	}
}

// offerNotes has from offer to a small file and waits until to has the
// offer.
func offerNotes(t *testing.T, from, to *offNode) FileInfo {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(path, []byte("what the meeting decided"), 0o600); err != nil {
		t.Fatal(err)
	}
	fi, err := from.Files().Send(to.ID(), path)
	if err != nil {
		t.Fatal(err)
	}
	to.offWait("the offer", func(e Event) bool { return e.Kind == EventFileOffer && e.File.ID == fi.ID })
	return fi
}

// openWant opens a file stream from from to to and asks for transfer id
// from its start.
func openWant(t *testing.T, from, to *offNode, id [16]byte) network.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := from.host.NewStream(ctx, to.ID(), ProtocolFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFS(s, fsWant, wantPayload(transfer.ID(id), 0, nil)); err != nil {
		s.Reset()
		t.Fatal(err)
	}
	return s
}
