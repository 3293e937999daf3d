package node_test

import (
	"crypto/x509"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
)

// A new key whose name only looks like a contact's ("bоb" with a Cyrillic
// о, "aIice" with a capital I) is a changed key, not a first contact:
// nothing goes to it and a first contact's Accept refuses it.
func TestLookAlikeImpostor(t *testing.T) {
	alice := startNode(t, newHome(t, "alice"), "/ip4/127.0.0.1/tcp/0")
	bob := startNode(t, newHome(t, "bob"), "/ip4/127.0.0.1/tcp/0")
	trustEachOther(t, alice, bob)
	hi := bob.send(alice.ID(), "hi, I'm bob")
	alice.waitMessage(hi)
	if c, _, _ := alice.Trust().Contact(bob.ID()); c.CertName != "bob" {
		t.Fatalf("bob's certificate name: %q", c.CertName)
	}
	for _, name := range []string{"bоb", "BOB.", "b0b"} {
		t.Run(name, func(t *testing.T) {
			imp := startNode(t, newHome(t, name), "/ip4/127.0.0.1/tcp/0")
			if err := imp.Contacts().Trust(alice.ID(), false); err != nil {
				t.Fatal(err)
			}
			refused(t, imp, alice)
			pi := alice.waitPeer(imp.ID(), "a changed key", func(p node.PeerInfo) bool { return p.Trust == identity.StateChanged })
			if pi.Changed == nil || pi.Changed.Previous == nil || pi.Changed.Previous.PeerID != bob.ID() || pi.Name != name {
				t.Fatalf("the impostor's info: %+v, changed %+v", pi, pi.Changed)
			}
			if _, err := alice.Send(imp.ID(), "hello?"); !errors.Is(err, node.ErrKeyChanged) {
				t.Fatalf("send to the impostor: %v, want ErrKeyChanged", err)
			}
			if err := alice.Contacts().TrustNew(imp.ID()); !errors.Is(err, node.ErrKeyChanged) {
				t.Fatalf("a first contact's Accept of the impostor: %v, want ErrKeyChanged", err)
			}
			if pi := alice.PeerInfo(bob.ID()); pi.Trust != identity.StateTOFU || pi.Changed != nil || pi.Name != "bob" {
				t.Fatalf("bob is now %+v", pi)
			}
		})
	}
}

// A contact that presents a new certificate for the same key with
// another name keeps the label the user knows: the new name is only its
// certificate name, told apart (PeerInfo.CertName). So a contact cannot
// turn itself into a look-alike of another contact.
func TestContactRenameKeepsLabel(t *testing.T) {
	alice := startNode(t, newHome(t, "alice"), "/ip4/127.0.0.1/tcp/0")
	bob := startNode(t, newHome(t, "bob"), "/ip4/127.0.0.1/tcp/0")
	malloryHome := newHome(t, "mallory")
	mallory := startNode(t, malloryHome, "/ip4/127.0.0.1/tcp/0")
	trustEachOther(t, alice, bob, mallory)
	for _, p := range []*testNode{bob, mallory} {
		m := p.send(alice.ID(), "hi")
		alice.waitMessage(m)
	}
	mallory.Close()

	// mallory comes back with a certificate for her key that says "bоb".
	id, err := malloryHome.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := identity.NewSelfSigned(id.Signer(), "bоb", time.Now().Add(-time.Minute), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	renamed, err := identity.FromParts(id.Signer(), []*x509.Certificate{cert})
	if err != nil {
		t.Fatal(err)
	}
	mallory = startNodeWith(t, malloryHome, func(c *node.Config) { c.Identity = renamed }, "/ip4/127.0.0.1/tcp/0")
	if _, err := connect(t, mallory, alice); err != nil {
		t.Fatal(err)
	}
	pi := alice.waitPeer(mallory.ID(), "mallory's new certificate", func(p node.PeerInfo) bool { return p.CertName == "bоb" })
	if pi.Name != "mallory" || pi.Trust != identity.StateTOFU || pi.Changed != nil {
		t.Fatalf("mallory after renaming herself: %+v", pi)
	}
	if pi := alice.PeerInfo(bob.ID()); pi.Name != "bob" || pi.CertName != "" {
		t.Fatalf("bob: %+v", pi)
	}
	names := map[string]int{}
	for _, p := range alice.Peers() {
		names[identity.NameKey(p.Name)]++
	}
	if names["bob"] != 1 {
		t.Fatalf("%d peers read as bob: %v", names["bob"], names)
	}
	if m := alice.send(mallory.ID(), "still mallory"); m.Body == "" {
		t.Fatal("no message")
	}
}

// Whether a key is a changed key depends on the key and what is stored,
// not on timing: after a restart, with the impostor offline, it is still
// KEY CHANGED (not an anonymous first contact), listed, and refused.
func TestChangedKeyAfterRestart(t *testing.T) {
	aliceHome := newHome(t, "alice")
	alice := startNode(t, aliceHome, "/ip4/127.0.0.1/tcp/0")
	bob := mustID(t, newHome(t, "bob")) // never online
	if err := alice.Trust().Pin(bob, "bob", identity.StateTOFU, time.Now()); err != nil {
		t.Fatal(err)
	}
	imp := startNode(t, newHome(t, "bоb"), "/ip4/127.0.0.1/tcp/0")
	if err := imp.Contacts().Trust(alice.ID(), false); err != nil {
		t.Fatal(err)
	}
	refused(t, imp, alice)
	alice.waitPeer(imp.ID(), "a changed key", func(p node.PeerInfo) bool { return p.Trust == identity.StateChanged })
	imp.Close()
	alice.Close()

	alice = startNode(t, aliceHome, "/ip4/127.0.0.1/tcp/0")
	pi := alice.PeerInfo(imp.ID())
	if pi.Trust != identity.StateChanged || pi.Changed == nil || pi.Changed.Previous == nil || pi.Changed.Previous.PeerID != bob || pi.Online {
		t.Fatalf("the impostor after a restart: %+v, changed %+v", pi, pi.Changed)
	}
	if pi.Name != "bоb" {
		t.Fatalf("the impostor's name after a restart: %q", pi.Name)
	}
	if _, err := alice.Send(imp.ID(), "hello?"); !errors.Is(err, node.ErrKeyChanged) {
		t.Fatalf("send to the impostor after a restart: %v, want ErrKeyChanged", err)
	}
	if err := alice.Contacts().TrustNew(imp.ID()); !errors.Is(err, node.ErrKeyChanged) {
		t.Fatalf("Accept of the impostor after a restart: %v, want ErrKeyChanged", err)
	}
	if !slices.ContainsFunc(alice.Peers(), func(p node.PeerInfo) bool { return p.ID == imp.ID() && p.Changed != nil }) {
		t.Fatal("the changed key is not listed after a restart")
	}
	// Deciding "someone else" ends it: a contact of its own, not bob.
	label, err := alice.Contacts().TrustAsOther(imp.ID(), "bob")
	if err != nil || label != "bob (2)" {
		t.Fatalf("TrustAsOther: %q, %v", label, err)
	}
	if pi := alice.PeerInfo(imp.ID()); pi.Trust != identity.StateTOFU || pi.Changed != nil || pi.Name != "bob (2)" {
		t.Fatalf("after the decision: %+v", pi)
	}
}
