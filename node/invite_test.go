package node_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/internal/testproc"
	"github.com/certchat/certchat/invite"
	"github.com/certchat/certchat/node"
)

// Bob's invitation, added by alice: his key is pinned with the name he
// suggested, his addresses are remembered and a session opens.
func TestAddInvitation(t *testing.T) {
	alice := startNode(t, newHome(t, "alice"))
	bob := startNode(t, newHome(t, "bob"))
	text, err := bob.Invitation()
	if err != nil {
		t.Fatal(err)
	}
	inv, err := invite.Decode(text)
	if err != nil {
		t.Fatal(err)
	}
	if inv.PeerID != bob.ID() || inv.Name != "bob" || len(inv.Addrs) == 0 {
		t.Fatalf("bob's invitation says %+v", inv)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	info, err := alice.Add(ctx, text, "")
	if err != nil {
		t.Fatal(err)
	}
	if !info.Online || info.Trust != identity.StateTOFU || info.Name != "bob" {
		t.Fatalf("after adding bob's invitation: %+v", info)
	}
	c, ok, _ := alice.Trust().Contact(bob.ID())
	if !ok || c.Name != "bob" || c.State != identity.StateTOFU {
		t.Fatalf("contact %+v, %v", c, ok)
	}
	if got := alice.Host().Peerstore().Addrs(bob.ID()); len(got) == 0 {
		t.Fatal("bob's addresses are not known")
	}
	m, err := alice.Send(bob.ID(), "hi bob")
	if err != nil {
		t.Fatal(err)
	}
	bob.waitFor("alice's message", func(e node.Event) bool { return e.Kind == node.EventMessage && e.Message.ID == m.ID })

	// A suggested name another contact has already gets a suffix.
	carol := startNode(t, newHome(t, "bob"))
	carolText, _ := carol.Invitation()
	info, err = alice.Add(ctx, carolText, "")
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "bob (2)" {
		t.Fatalf("a second bob reads %q", info.Name)
	}
}

// An invitation whose addresses were changed is refused, and nothing is
// pinned.
func TestAddTamperedInvitation(t *testing.T) {
	alice := startNode(t, newHome(t, "alice"))
	bob := startNode(t, newHome(t, "bob"))
	text, err := bob.Invitation()
	if err != nil {
		t.Fatal(err)
	}
	// Change one character in the middle: a different byte somewhere in
	// the addresses or the name.
	i := len(text) / 2
	swap := "A"
	if text[i] == 'A' {
		swap = "B"
	}
	bad := text[:i] + swap + text[i+1:]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := alice.Add(ctx, bad, ""); err == nil || !(errors.Is(err, invite.ErrSignature) || errors.Is(err, invite.ErrMalformed)) {
		t.Fatalf("tampered invitation: %v", err)
	}
	if _, ok, _ := alice.Trust().Contact(bob.ID()); ok {
		t.Fatal("a tampered invitation pinned bob")
	}
}

// A relay's address given as a person's: refused with ErrIsRelay, and
// the relay does not become a contact. The relay is a real `chat relay`.
func TestAddRelayRefused(t *testing.T) {
	relay := testproc.StartRelay(t, testproc.RelayOptions{})
	alice := startNode(t, newHome(t, "alice"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := alice.Add(ctx, relay.Addr, "")
	if !errors.Is(err, node.ErrIsRelay) {
		t.Fatalf("adding a relay's address: %v", err)
	}
	if !strings.Contains(err.Error(), "that is a relay, not a person") {
		t.Fatalf("the error does not explain: %v", err)
	}
	cs, _ := alice.Trust().Contacts()
	if len(cs) != 0 {
		t.Fatalf("contacts after adding a relay: %+v", cs)
	}
	if _, err := alice.Connect(ctx, relay.Addr); !errors.Is(err, node.ErrIsRelay) {
		t.Fatalf("connecting to a relay's address: %v", err)
	}
	// A relay the node is configured with is refused without a dial.
	withRelay := startNodeWith(t, newHome(t, "bob"), func(c *node.Config) { c.Relays = []string{relay.Addr} })
	if _, err := withRelay.Add(ctx, relay.Addr, ""); !errors.Is(err, node.ErrIsRelay) {
		t.Fatalf("adding the configured relay: %v", err)
	}
	// Its invitation names the relay, through which it can be reached.
	text, err := withRelay.Invitation()
	if err != nil {
		t.Fatal(err)
	}
	inv, err := invite.Decode(text)
	if err != nil || len(inv.Relays) != 1 || inv.Relays[0].String() != relay.Addr {
		t.Fatalf("invitation %+v (%v), want the relay %s", inv, err, relay.Addr)
	}
}
