package node

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/certchat/certchat/transfer"
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
	alice, bob := offNewNode(t, "alice", nil, true), offNewNode(t, "bob", nil, true)
	offLink(t, alice, bob)
	path := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(path, []byte("what the meeting decided"), 0o600); err != nil {
		t.Fatal(err)
	}
	fi, err := alice.Files().Send(bob.ID(), path)
	if err != nil {
		t.Fatal(err)
	}
	bob.offWait("the offer", func(e Event) bool { return e.Kind == EventFileOffer && e.File.ID == fi.ID })

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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := bob.host.NewStream(ctx, alice.ID(), ProtocolFile)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	if err := writeFS(s, fsWant, wantPayload(transfer.ID(fi.ID), 0, nil)); err != nil {
		t.Fatal(err)
	}
	s.SetReadDeadline(time.Now().Add(30 * time.Second))
	typ, payload, err := readFS(bufio.NewReader(s), nil)
	if err != nil {
		t.Fatal(err)
	}
	if typ == fsError {
		t.Fatalf("alice refused the stream: %q", payload)
	}
}

// A refused file stream reads as the refusal, with its code, not as a
// stream reset: the receiver tells "try again later" from "over" by it.
func TestFileStreamRefusalArrives(t *testing.T) {
	alice, bob := offNewNode(t, "alice", nil, true), offNewNode(t, "bob", nil, true)
	offLink(t, alice, bob)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range 20 {
		s, err := bob.host.NewStream(ctx, alice.ID(), ProtocolFile)
		if err != nil {
			t.Fatal(err)
		}
		if err := writeFS(s, fsWant, wantPayload(transfer.ID{1, 2, 3}, 0, nil)); err != nil {
			t.Fatal(err)
		}
		s.SetReadDeadline(time.Now().Add(30 * time.Second))
		typ, payload, err := readFS(bufio.NewReader(s), nil)
		s.Reset()
		if err != nil {
			t.Fatalf("reading the refusal: %v", err)
		}
		if typ != fsError || len(payload) == 0 || payload[0] != fsErrUnknown {
			t.Fatalf("frame %#x %q, want the refusal of an unknown transfer", typ, payload)
		}
	}
}
