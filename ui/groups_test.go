package ui

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestGroupSummary(t *testing.T) {
	v := node.PeerInfo{Trust: identity.StateVerified}
	ca := node.PeerInfo{Trust: identity.StateCAVerified}
	tofu := node.PeerInfo{Trust: identity.StateTOFU}
	changed := node.PeerInfo{Trust: identity.StateChanged}
	for _, tc := range []struct {
		in   []node.PeerInfo
		want string
		tone tone
	}{
		{[]node.PeerInfo{v, ca, v, v, v, tofu}, "6 members: 5 verified, 1 unverified", toneWarn},
		{[]node.PeerInfo{v}, "1 member: 1 verified", toneGood},
		{[]node.PeerInfo{v, changed}, "2 members: 1 verified, 1 KEY CHANGED (sending blocked until you decide)", toneBad},
	} {
		got, tn := groupSummary(tc.in)
		if got != tc.want || tn != tc.tone {
			t.Errorf("groupSummary: %q %v, want %q %v", got, tn, tc.want, tc.tone)
		}
	}
}

// /group create, /groups, /members and a refused /invite by a non-admin,
// in real windows on real nodes.
func TestGroupCommands(t *testing.T) {
	t.Parallel()
	alice, bob, wa, wb := talkingBoth(t)
	_ = bob
	wa.enter("/group create team bob")
	wa.waitText("Group team made with 2 members")
	wb.waitFor("the group at bob", func(string) bool {
		_, err := bob.n.Groups().Find("team")
		return err == nil
	})
	wa.enter("/members team")
	wa.waitText("Members of team", "1 member: 1 unverified", "you (admin)", "bob — unverified: trusted on first use")
	wa.key(27, 0, 0) // Esc
	wa.waitGone("Members of team")
	wa.enter("/groups")
	wa.waitText("team  2 members")
	wa.key(27, 0, 0)
	wb.enter("/invite team " + alice.peerID().String())
	wb.waitText("/invite: only an admin of the group can do that")
}

// caWithPath makes a CA certificate with crypto/x509 (self-signed when
// parent is nil) allowing pathLen CAs below it.
func caWithPath(t *testing.T, name string, pathLen int, parent *identity.CA) *identity.CA {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(int64(len(name)) + 1000), Subject: pkix.Name{CommonName: name},
		NotBefore: testNow.Add(-time.Hour), NotAfter: testNow.Add(365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true,
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

// /members of a group bound to a root names the root ("group CA") for a
// member whose certificate an intermediate CA (trusted explicitly) issued.
func TestGroupMembersIssuedThroughIntermediate(t *testing.T) {
	t.Parallel()
	root := caWithPath(t, "Acme Root", 1, nil)
	team := caWithPath(t, "Acme Team CA", 0, root)
	alice := newCAPeer(t, "alice", 0, root, 300*24*time.Hour)
	dave := newCAPeer(t, "dave", 0, team, 300*24*time.Hour)
	if err := alice.trust.AddRoot(root.Cert); err != nil {
		t.Fatal(err)
	}
	if err := alice.trust.AddIntermediate(team.Cert); err != nil {
		t.Fatal(err)
	}
	alice.pin(dave.peerID(), "dave", identity.StateTOFU)
	dave.pin(alice.peerID(), "alice", identity.StateTOFU)
	alice.start()
	dave.start()
	w := openWindow(t, alice.n, 160, 24, Options{})
	if _, err := connect(t, dave, alice); err != nil {
		t.Fatal(err)
	}
	w.waitText("dave")
	if _, err := alice.n.Groups().CreateCA("acme", []peer.ID{dave.peerID()}, node.CAHash(root.Cert)); err != nil {
		t.Fatal(err)
	}
	w.enter("/members acme")
	w.waitText("Members of acme", "dave — verified: issued by Acme Team CA — group CA: Acme Root (through Acme")
}
