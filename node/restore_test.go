package node_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
)

// A home restored from a backup (issue 11, finding 11): its ratchet state
// is older than its peer's, so what it seals reuses message keys the peer
// has consumed, and the peer drops it as a duplicate, silently. Before,
// the message stayed "sent" for ever. Now a message with no receipt on a
// working session for ResendAfter starts a new ratchet session, is
// written again on it and delivered, and the user is told.
func TestRestoredHome(t *testing.T) {
	aliceHome, bobHome := newHome(t, "alice"), newHome(t, "bob")
	fast := func(c *node.Config) { c.ResendAfter = time.Second }
	alice := startNodeWith(t, aliceHome, fast, "/ip4/127.0.0.1/tcp/0")
	bob := startNodeWith(t, bobHome, fast, "/ip4/127.0.0.1/tcp/0")
	trustEachOther(t, alice, bob)
	exchange := func(a, b *testNode, n int, what string) {
		t.Helper()
		for i := range n {
			m := a.send(b.ID(), fmt.Sprintf("%s %d", what, i))
			b.waitMessage(m)
			a.waitDelivered(m)
		}
	}
	exchange(alice, bob, 2, "before the backup")
	exchange(bob, alice, 2, "reply before the backup")

	alice.Close()
	backup := copyHome(t, aliceHome)
	alice = startNodeWith(t, aliceHome, fast, "/ip4/127.0.0.1/tcp/0")
	alice.Host().Peerstore().AddAddrs(bob.ID(), bob.Host().Addrs(), time.Hour)
	exchange(alice, bob, 5, "after the backup")
	exchange(bob, alice, 1, "reply after the backup")
	alice.Close()

	restoreHome(t, aliceHome, backup)
	alice = startNodeWith(t, aliceHome, fast, "/ip4/127.0.0.1/tcp/0")
	alice.Host().Peerstore().AddAddrs(bob.ID(), bob.Host().Addrs(), time.Hour)
	m := alice.send(bob.ID(), "after the restore")
	alice.waitFor("a notice that messages may have been lost", func(e node.Event) bool {
		return e.Kind == node.EventError && e.PeerID == bob.ID() && strings.Contains(e.Err, "may have been lost")
	})
	bob.waitMessage(m)
	alice.waitDelivered(m)
	// Both directions work on the new session.
	exchange(bob, alice, 1, "reply after the restore")
	exchange(alice, bob, 1, "and again")
}

// copyHome copies a home folder, as a backup would.
func copyHome(t *testing.T, h identity.Home) string {
	t.Helper()
	dst := t.TempDir() + "/backup"
	if err := os.CopyFS(dst, os.DirFS(h.Dir)); err != nil {
		t.Fatal(err)
	}
	return dst
}

// restoreHome puts a backup back in place of the home.
func restoreHome(t *testing.T, h identity.Home, backup string) {
	t.Helper()
	if err := os.RemoveAll(h.Dir); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(h.Dir, os.DirFS(backup)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(h.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
}
