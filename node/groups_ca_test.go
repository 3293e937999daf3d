package node_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
)

// caCert makes a real CA certificate with crypto/x509: self-signed when
// parent is nil; pathLen < 0 leaves the path length out.
func caCert(t *testing.T, name string, pathLen int, ku x509.KeyUsage, parent *identity.CA) *identity.CA {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: ku, BasicConstraintsValid: true, IsCA: true,
		MaxPathLen: pathLen, MaxPathLenZero: pathLen == 0,
	}
	issuer, signer := tmpl, key
	if parent != nil {
		issuer, signer = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &identity.CA{Cert: cert, Key: key}
}

func trustAnchor(t *testing.T, h identity.Home, ca *identity.CA, intermediate bool) {
	t.Helper()
	ts, err := h.TrustStore()
	if err != nil {
		t.Fatal(err)
	}
	if intermediate {
		err = ts.AddIntermediate(ca.Cert)
	} else {
		err = ts.AddRoot(ca.Cert)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// A group bound to a root takes a member whose certificate an
// intermediate CA under that root issued, once the admin trusts that
// intermediate explicitly (the trust model of PROTOCOL §2): not before,
// and not when the path is longer than the root's path length allows.
// The member list names the root, through the intermediate.
func TestGroupBoundToCAThroughIntermediate(t *testing.T) {
	const ku = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	root := caCert(t, "Acme Root", 1, ku, nil)
	team := caCert(t, "Acme Team CA", -1, ku, root)
	sub := caCert(t, "Acme Sub CA", 0, ku, team) // one CA too deep for the root's path length 1

	aliceHome, bobHome, daveHome := newHome(t, "alice"), newHome(t, "bob"), newHome(t, "dave")
	trustAnchor(t, aliceHome, root, false)
	issueFrom(t, aliceHome, root, "alice")
	trustAnchor(t, bobHome, team, true)
	issueFrom(t, bobHome, team, "bob")
	trustAnchor(t, daveHome, sub, true)
	issueFrom(t, daveHome, sub, "dave")

	alice, bob, dave := startNode(t, aliceHome), startNode(t, bobHome), startNode(t, daveHome)
	trustEachOther(t, alice, bob, dave)
	for _, p := range []*testNode{bob, dave} {
		if _, err := connect(t, alice, p); err != nil {
			t.Fatal(err)
		}
	}
	g, err := alice.Groups().CreateCA("acme", nil, node.CAHash(root.Cert))
	if err != nil {
		t.Fatal(err)
	}
	// The intermediate is not trusted: bob is refused, and told how.
	if _, err := alice.Groups().Add(g.ID, bob.ID()); !errors.Is(err, node.ErrNotFromGroupCA) || !strings.Contains(err.Error(), "--intermediate") {
		t.Fatalf("bob, issued by an untrusted intermediate: %v", err)
	}
	if err := alice.Trust().AddIntermediate(team.Cert); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Groups().Add(g.ID, bob.ID()); err != nil {
		t.Fatalf("bob, issued by a trusted intermediate under the group's root: %v", err)
	}
	is := alice.Groups().Issuers(g.ID)
	if is[bob.ID()] != "Acme Root (through Acme Team CA)" || is[alice.ID()] != "Acme Root" {
		t.Fatalf("issuers: %q", is)
	}
	// Dave's chain is one CA longer than the root allows.
	if err := alice.Trust().AddIntermediate(sub.Cert); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Groups().Add(g.ID, dave.ID()); !errors.Is(err, node.ErrNotFromGroupCA) || !strings.Contains(err.Error(), "path length") {
		t.Fatalf("dave, below the root's path length: %v", err)
	}
	if f := alice.Groups().Flags(g.ID); len(f) != 0 {
		t.Fatalf("flags: %v", f)
	}
}
