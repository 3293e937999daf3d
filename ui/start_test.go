package ui

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/certchat/certchat/internal/boltfile/bolttest"
	"github.com/certchat/certchat/internal/testproc"
	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/store"
)

// What the node says while it starts reaches the window: Node.Start reads
// the groups (and sets going a resumed file's puller, the mailbox loops,
// the outbox), and what it emits before it returns is published to the
// subscriptions made before it. The window is given one (Options.Events,
// made by `chat` between New and Start); subscribed in Run, after Start,
// it lost those events for good.

// poisonGroups puts a record with a bad key in the groups bucket of the
// store at path: the node's Start cannot read it and says so with an
// error event.
func poisonGroups(t *testing.T, path string) {
	t.Helper()
	bolttest.PutRecord(t, path, "groups", []byte("not a group ID"), []byte("{}"))
}

// The window given a subscription made before Start shows the error
// Start emitted about an unreadable group.
func TestWindowShowsUnreadableGroupAtStart(t *testing.T) {
	bob := newPeer(t, "bob", 0)
	bob.fill() // the database and its buckets
	poisonGroups(t, bob.home.Path(store.FileName))
	n, err := node.New(node.Config{Home: bob.home, Identity: bob.id, Trust: bob.trust, Now: testClock,
		Listen: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	sub := n.Subscribe()
	if err := n.Start(); err != nil {
		sub.Close()
		t.Fatal(err)
	}
	w := openWindow(t, n, 100, 30, Options{Events: sub})
	w.waitText("Some groups could not be read")
}

// The same through `chat` itself, in a terminal (tmux): the window the
// command opens shows the error Start emitted.
func TestTmuxUnreadableGroupAtStart(t *testing.T) {
	t.Parallel()
	tm := newTmux(t)
	bin := testproc.ChatBinary(t)
	home, _ := newHome(t, bin, "bob")
	run := fmt.Sprintf("%s --home %s --listen /ip4/127.0.0.1/tcp/0 --no-mdns", bin, home)
	// A first run makes the database and its buckets.
	tm.start("first", run)
	tm.waitFor("first", "Welcome to certchat, bob.")
	tm.typeLine("first", "/quit")
	if status := tm.waitExit("first"); status != "0" {
		t.Fatalf("the first run exited with %s:\n%s", status, tm.capture("first"))
	}
	poisonGroups(t, filepath.Join(home, store.FileName))
	tm.start("bob", run)
	tm.waitFor("bob", "Welcome to certchat, bob.", "Some groups could not be read")
	tm.typeLine("bob", "/quit")
	if status := tm.waitExit("bob"); status != "0" {
		t.Fatalf("bob exited with %s:\n%s", status, tm.capture("bob"))
	}
}
