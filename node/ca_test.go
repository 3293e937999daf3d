package node_test

import (
	"context"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/store"
)

// caHomes are two homes that trust one CA, bob's certificate issued by it.
func caHomes(t *testing.T) (alice, bob identity.Home, ca *identity.CA) {
	t.Helper()
	ca, err := identity.NewCA("Acme Root", time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	alice, bob = newHome(t, "alice"), newHome(t, "bob")
	for _, h := range []identity.Home{alice, bob} {
		ts, err := h.TrustStore()
		if err != nil {
			t.Fatal(err)
		}
		if err := ts.AddRoot(ca.Cert); err != nil {
			t.Fatal(err)
		}
	}
	id, err := bob.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := identity.NewCSR(id.Signer(), "bob")
	if err != nil {
		t.Fatal(err)
	}
	csr, err := identity.ParseCSR(pem)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue(csr, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ts, _ := bob.TrustStore()
	if _, err := bob.ImportCertificate([]*x509.Certificate{cert}, ts, time.Now()); err != nil {
		t.Fatal(err)
	}
	return alice, bob, ca
}

// A peer that is not a contact may be messaged only while its certificate
// chains to a CA the user trusts now: after `chat trust remove-ca` and a
// restart, nothing more goes to it, and it shows as unknown (the attack of
// the security review: it still received messages, from a flag stored
// when the CA was trusted).
func TestRemovedCAStopsSending(t *testing.T) {
	aliceHome, bobHome, ca := caHomes(t)
	bob := startNode(t, bobHome)
	alice := startNode(t, aliceHome)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	info, err := alice.Connect(ctx, bob.Addrs()[0])
	if err != nil || info.Trust != identity.StateCAVerified {
		t.Fatalf("connect to a CA-issued peer: %v, trust %s", err, info.Trust)
	}
	m, err := alice.Send(bob.ID(), "while the CA is trusted")
	if err != nil {
		t.Fatal(err)
	}
	alice.waitFor("delivered", func(e node.Event) bool {
		return e.Kind == node.EventStatus && e.Message.ID == m.ID && e.Message.Status == store.StatusDelivered
	})
	alice.Close()

	ts, err := aliceHome.TrustStore()
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.RemoveRoot(ca.Cert); err != nil {
		t.Fatal(err)
	}
	alice = startNode(t, aliceHome)
	if _, err := alice.Send(bob.ID(), "after the CA was removed"); !errors.Is(err, node.ErrNotTrusted) {
		t.Fatalf("send to a peer verified only by a removed CA: %v, want ErrNotTrusted", err)
	}
	if got := alice.PeerInfo(bob.ID()).Trust; got == identity.StateCAVerified {
		t.Fatalf("shown as %s after its CA was removed", got)
	}
	// Met again, it is still refused: the handshake's verdict is unknown.
	if _, err := alice.Connect(ctx, bob.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(bob.ID(), "after meeting again"); !errors.Is(err, node.ErrNotTrusted) {
		t.Fatalf("send after a new handshake: %v, want ErrNotTrusted", err)
	}
}
