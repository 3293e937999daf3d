package e2e_test

// The sub-CA finding, performed for real: an openssl group CA ("Org", made
// as the README made it) signs a member's request that asks for
// basicConstraints CA:TRUE with the README's old command (`-copy_extensions
// copy`, which copies it); the member then issues, with its own key, a
// certificate for a name of its choice ("ceo") and presents it with its
// member certificate as the intermediate. A peer that trusts Org must not
// see "ceo" as CA-verified, and must refuse the member's CA certificate as
// a peer identity.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/internal/testproc"
)

// needOpenSSL is openssl's path (testproc.Command).
func needOpenSSL(t testing.TB) string {
	t.Helper()
	return testproc.Command(t, "openssl")
}

// openssl runs openssl in dir, failing the test on error.
func openssl(t testing.TB, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command(needOpenSSL(t), args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("openssl %v: %v\n%s", args, err, out.Bytes())
	}
}

func readCerts(t testing.TB, path string) []*x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := identity.ParseCertificatesPEM(data)
	if err != nil {
		t.Fatal(err)
	}
	return certs
}

func writeKey(t testing.TB, path string, key ed25519.PrivateKey) {
	t.Helper()
	pemKey, err := identity.EncodePrivateKey(key, nil, identity.DefaultKDF)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pemKey, 0o600); err != nil {
		t.Fatal(err)
	}
}

// subCA is what the attack leaves the attacker with.
type subCA struct {
	org    *x509.Certificate // the group's root, which the victim trusts
	member *x509.Certificate // mallory's certificate: CA:TRUE, issued by Org
	ceo    *x509.Certificate // carol's key, "ceo", issued by mallory's key
	// skew is how far after epoch openssl's certificates begin (openssl
	// 3.0 cannot backdate them): parties move their clocks by it.
	skew time.Duration
}

// after moves a party's clock to when the openssl certificates are valid.
func (s subCA) after(p *party) *party {
	p.clock.Add(s.skew)
	return p
}

// makeSubCA runs the attack with openssl: mallory's host key is the
// member, carol's host key gets the "ceo" certificate.
func makeSubCA(t *testing.T, w *testWorld) subCA {
	t.Helper()
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	// The group admin's CA, as the README made it.
	openssl(t, dir, "req", "-x509", "-newkey", "ed25519", "-nodes", "-keyout", "org.key", "-out", "org.pem", "-subj", "/CN=Org", "-days", "30")
	// The member asks for CA:TRUE and keyCertSign (its SAN is right).
	writeKey(t, p("member.key"), w.mallory.key())
	openssl(t, dir, "req", "-new", "-key", "member.key", "-subj", "/CN=Mallory",
		"-addext", "subjectAltName=URI:"+identity.PeerURI(w.mallory.h.ID()).String(),
		"-addext", "basicConstraints=critical,CA:TRUE",
		"-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
		"-out", "member.csr")
	// The admin signs it with the README's old command, which copies CA:TRUE.
	openssl(t, dir, "x509", "-req", "-in", "member.csr", "-CA", "org.pem", "-CAkey", "org.key", "-days", "30", "-copy_extensions", "copy", "-out", "member.crt")
	// The member issues "ceo" for a key of its own, as a chat CSR asks.
	csr, err := identity.NewCSR(w.carol.key(), "ceo")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p("ceo.csr"), csr, 0o600)
	openssl(t, dir, "x509", "-req", "-in", "ceo.csr", "-CA", "member.crt", "-CAkey", "member.key", "-days", "30", "-copy_extensions", "copy", "-out", "ceo.crt")

	s := subCA{org: readCerts(t, p("org.pem"))[0], member: readCerts(t, p("member.crt"))[0], ceo: readCerts(t, p("ceo.crt"))[0]}
	for _, c := range []*x509.Certificate{s.org, s.member, s.ceo} {
		s.skew = max(s.skew, c.NotBefore.Sub(epoch)+time.Minute)
	}
	if !s.member.IsCA || s.member.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Fatalf("the member certificate is not a CA: the attack's premise does not hold")
	}
	// The chain is valid by RFC 5280 path validation: that is the attack.
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(s.org)
	inter.AddCert(s.member)
	if _, err := s.ceo.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: epoch.Add(s.skew), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("the sub-CA chain does not even validate: %v", err)
	}
	return s
}

func identityOf(t testing.TB, key ed25519.PrivateKey, chain ...*x509.Certificate) *identity.Identity {
	t.Helper()
	id, err := identity.FromParts(key, chain)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestSubCAIsNotCAVerified: "ceo", issued by a member whose certificate
// Org signed with CA:TRUE, is not CA-verified by a peer trusting Org, in
// either role and however the chain is sent. It is a peer like any other
// with a certificate of an issuer one does not trust: unknown (refused
// unless the policy allows first contact, and then asked about).
func TestSubCAIsNotCAVerified(t *testing.T) {
	w := hosts(t)
	s := makeSubCA(t, w)
	for _, tc := range []struct {
		name  string
		chain []*x509.Certificate
	}{
		{"member as intermediate", []*x509.Certificate{s.ceo, s.member}},
		{"member and root", []*x509.Certificate{s.ceo, s.member, s.org}},
		{"leaf alone", []*x509.Certificate{s.ceo}},
	} {
		ceo := identityOf(t, w.carol.key(), tc.chain...)
		t.Run(tc.name+"/alice dials ceo", func(t *testing.T) {
			a := s.after(newParty(t, w.alice))
			if err := a.trust.AddRoot(s.org); err != nil {
				t.Fatal(err)
			}
			c := s.after(newParty(t, w.carol, withIdentity(ceo)))
			c.pin(t, w.alice.h.ID(), "", identity.StateTOFU)
			co, so := run{client: a, server: c}.do(t)
			checkSide(t, "alice", co, e2e.ErrUnknownPeer, nil)
			checkSide(t, "ceo", so, e2e.ErrRejected, nil)
			if v := verdictOf(co.err); v == nil || v.State != identity.StateUnknown || v.Issuer == "Org" {
				t.Errorf("alice's verdict %+v, want unknown, not issued by Org", v)
			}
		})
		t.Run(tc.name+"/first contact allowed", func(t *testing.T) {
			a := s.after(newParty(t, w.alice, withPolicy(e2e.Policy{AllowUnknown: true})))
			if err := a.trust.AddRoot(s.org); err != nil {
				t.Fatal(err)
			}
			c := s.after(newParty(t, w.carol, withIdentity(ceo)))
			c.pin(t, w.alice.h.ID(), "", identity.StateTOFU)
			co, _ := run{client: a, server: c}.do(t)
			if co.err != nil {
				t.Fatalf("handshake: %v", co.err)
			}
			if v := co.sess.Peer(); v.State != identity.StateUnknown || v.State.Trusted() {
				t.Errorf("alice sees ceo as %s (%s), want unknown", v.State, v.Reason)
			}
		})
		t.Run(tc.name+"/ceo dials alice", func(t *testing.T) {
			a := s.after(newParty(t, w.alice))
			if err := a.trust.AddRoot(s.org); err != nil {
				t.Fatal(err)
			}
			c := s.after(newParty(t, w.carol, withIdentity(ceo)))
			c.pin(t, w.alice.h.ID(), "", identity.StateTOFU)
			co, so := run{client: c, server: a}.do(t)
			checkSide(t, "ceo", co, e2e.ErrRejected, nil)
			checkSide(t, "alice", so, e2e.ErrUnknownPeer, nil)
		})
	}
}

// TestCACertificateIsNoPeer: the member's own CA:TRUE certificate,
// presented as its identity, is refused with ErrCACertificate whatever
// the policy and the contacts say, in either role.
func TestCACertificateIsNoPeer(t *testing.T) {
	w := hosts(t)
	s := makeSubCA(t, w)
	member := identityOf(t, w.mallory.key(), s.member)
	lenient := []partyOpt{withPolicy(e2e.Policy{AllowUnknown: true})}
	setup := func(t *testing.T, pinned bool) (*party, *party) {
		a := s.after(newParty(t, w.alice, lenient...))
		if err := a.trust.AddRoot(s.org); err != nil {
			t.Fatal(err)
		}
		if pinned {
			a.pin(t, w.mallory.h.ID(), "Mallory", identity.StateVerified)
		}
		m := s.after(newParty(t, w.mallory, withIdentity(member)))
		m.pin(t, w.alice.h.ID(), "", identity.StateTOFU)
		return a, m
	}
	for _, pinned := range []bool{false, true} {
		name := map[bool]string{false: "unknown", true: "verified contact"}[pinned]
		t.Run(name+"/alice dials", func(t *testing.T) {
			a, m := setup(t, pinned)
			co, so := run{client: a, server: m}.do(t)
			checkSide(t, "alice", co, e2e.ErrCACertificate, nil)
			checkSide(t, "mallory", so, e2e.ErrRejected, nil)
		})
		t.Run(name+"/mallory dials", func(t *testing.T) {
			a, m := setup(t, pinned)
			co, so := run{client: m, server: a}.do(t)
			checkSide(t, "mallory", co, e2e.ErrRejected, nil)
			checkSide(t, "alice", so, e2e.ErrCACertificate, nil)
		})
	}
	// The trust store's own answer is an error too, not a state.
	ts, err := identity.OpenTrustStore(filepath.Join(t.TempDir(), "trust.json"))
	if err != nil {
		t.Fatal(err)
	}
	ts.AddRoot(s.org)
	if _, err := ts.Evaluate([]*x509.Certificate{s.member}, w.mallory.h.ID(), epoch.Add(s.skew)); !errors.Is(err, identity.ErrCACertificate) {
		t.Errorf("Evaluate(member certificate) = %v, want ErrCACertificate", err)
	}
}
