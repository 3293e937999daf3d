package identity

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"net/url"
	"strings"
	"testing"
)

// A CA is never a peer, and CA-verified means issued directly by a root
// in the trust store (docs/PROTOCOL.md §2). e2e/subca_test.go performs
// the same attack with openssl certificates over real handshakes.

// caCert crafts a CA certificate signed by parent (nil: self-signed).
// pathLen < 0 leaves the path length out, as openssl's default CA does.
func caCert(t testing.TB, name string, pathLen int, parent *CA) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: name},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		MaxPathLen:            pathLen,
		MaxPathLenZero:        pathLen == 0,
		URIs:                  []*url.URL{PeerURI(peerIDOf(t, pubOf(key)))},
	}
	if parent == nil {
		return &CA{Cert: craft(t, tmpl, nil, pubOf(key), key), Key: key}
	}
	return &CA{Cert: craft(t, tmpl, parent.Cert, pubOf(key), parent.Key), Key: key}
}

func TestCheckEndEntity(t *testing.T) {
	key := newKey(t)
	id := PeerURI(peerIDOf(t, pubOf(key)))
	root := newCA(t, "Root")
	withKU := func(ku x509.KeyUsage, isCA bool) *x509.Certificate {
		tmpl := leafTmpl("Alice", id)
		tmpl.KeyUsage, tmpl.IsCA = ku, isCA
		return craft(t, tmpl, root.Cert, pubOf(key), root.Key)
	}
	for _, tc := range []struct {
		name string
		cert *x509.Certificate
		want string // "" accepted, else the reason named
	}{
		{"self-signed identity", selfSigned(t, key, "Alice"), ""},
		{"CA-issued identity", issue(t, root, key, "Alice"), ""},
		{"no basic constraints, no key usage", craft(t, &x509.Certificate{Subject: pkix.Name{CommonName: "A"}}, root.Cert, pubOf(key), root.Key), ""},
		{"CA:TRUE", withKU(x509.KeyUsageDigitalSignature, true), "CA:TRUE"},
		{"CA:TRUE without key usage", withKU(0, true), "CA:TRUE"},
		{"CA:FALSE with keyCertSign", withKU(x509.KeyUsageDigitalSignature|x509.KeyUsageCertSign, false), "keyCertSign"},
		{"CA:FALSE with cRLSign", withKU(x509.KeyUsageDigitalSignature|x509.KeyUsageCRLSign, false), "cRLSign"},
		{"a root", root.Cert, "CA:TRUE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckEndEntity(tc.cert)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrCACertificate) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CheckEndEntity = %v, want ErrCACertificate naming %s", err, tc.want)
			}
		})
	}
}

// TestEvaluateSubCA: a member certificate a trusted root issued with
// CA:TRUE issues "ceo"; whatever chain the peer sends, ceo is not
// CA-verified, and the member certificate itself is no identity.
func TestEvaluateSubCA(t *testing.T) {
	ceoKey := newKey(t)
	ceoID := peerIDOf(t, pubOf(ceoKey))
	for _, tc := range []struct {
		name        string
		rootPathLen int
		memPathLen  int
	}{
		{"root without pathlen (openssl's default)", -1, -1},
		{"root pathlen 1, member pathlen 0", 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			org := caCert(t, "Org", tc.rootPathLen, nil)
			member := caCert(t, "Mallory", tc.memPathLen, org)
			ceo := issue(t, member, ceoKey, "ceo")
			// RFC 5280 path validation accepts the chain: that is the attack.
			roots, inter := x509.NewCertPool(), x509.NewCertPool()
			roots.AddCert(org.Cert)
			inter.AddCert(member.Cert)
			if _, err := ceo.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: testNow}); err != nil {
				t.Fatalf("premise: the chain does not validate: %v", err)
			}
			ts, _ := newStore(t)
			if err := ts.AddRoot(org.Cert); err != nil {
				t.Fatal(err)
			}
			for name, chain := range map[string][]*x509.Certificate{
				"leaf, member":       {ceo, member.Cert},
				"leaf, member, root": {ceo, member.Cert, org.Cert},
				"leaf alone":         {ceo},
			} {
				v := evaluate(t, ts, chain, ceoID, testNow)
				wantState(t, v, StateUnknown, "issued by Mallory, not a CA you trust")
				if v.Issuer != "Mallory" {
					t.Errorf("%s: issuer %q", name, v.Issuer)
				}
			}
			// A contact called ceo: a changed key, not "issued by Org".
			boss := newPeer(t, "ceo")
			ts.Pin(boss.id, "", StateTOFU, testNow)
			ts.NoteCertName(boss.id, "ceo")
			v := evaluate(t, ts, []*x509.Certificate{ceo, member.Cert}, ceoID, testNow)
			wantState(t, v, StateChanged, "key changed")
			if strings.Contains(v.Reason, "Org") {
				t.Errorf("reason %q vouches with Org", v.Reason)
			}
			// The member certificate, as an identity: an error, not a state.
			if _, err := ts.Evaluate([]*x509.Certificate{member.Cert, org.Cert}, peerIDOf(t, pubOf(member.Key)), testNow); !errors.Is(err, ErrCACertificate) {
				t.Errorf("member certificate as identity: %v, want ErrCACertificate", err)
			}
			// Nor can it be trusted as a root.
			if err := ts.AddRoot(member.Cert); err == nil {
				t.Error("AddRoot accepted the member's certificate")
			}
		})
	}
}

// TestIssueIgnoresRequestedCA: a request asking to be a CA gets a member
// certificate like any other, and RequestedCA names what it asked for.
func TestIssueIgnoresRequestedCA(t *testing.T) {
	ca := newCA(t, "Acme Root")
	key := newKey(t)
	bc, _ := asn1.Marshal(struct {
		IsCA       bool
		MaxPathLen int
	}{true, 5})
	ku, _ := asn1.Marshal(asn1.BitString{Bytes: []byte{0x86}, BitLength: 7}) // digitalSignature, keyCertSign, cRLSign
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "Mallory"},
		ExtraExtensions: []pkix.Extension{
			{Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Critical: true, Value: bc},
			{Id: asn1.ObjectIdentifier{2, 5, 29, 15}, Critical: true, Value: ku},
		},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := ParseCSR(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := RequestedCA(csr), "basicConstraints CA:TRUE, keyUsage keyCertSign, keyUsage cRLSign"; got != want {
		t.Errorf("RequestedCA = %q, want %q", got, want)
	}
	c, err := ca.Issue(csr, testNow, 0)
	if err != nil {
		t.Fatal(err)
	}
	if c.IsCA || !c.BasicConstraintsValid || c.KeyUsage != x509.KeyUsageDigitalSignature || CheckEndEntity(c) != nil {
		t.Errorf("issued CA:%v (constraints %v), key usage %b", c.IsCA, c.BasicConstraintsValid, c.KeyUsage)
	}
	if id, err := CertPeerID(c); err != nil || id != peerIDOf(t, pubOf(key)) || len(c.URIs) != 1 {
		t.Errorf("peer id binding: %v %v", c.URIs, err)
	}
	plain, _ := NewCSR(key, "Alice")
	if csr, _ := ParseCSR(plain); RequestedCA(csr) != "" {
		t.Errorf("chat's own request asks for %q", RequestedCA(csr))
	}
}

// TestTrustedIntermediate: a user may trust an intermediate CA itself
// (chat trust add-ca --intermediate). Then what it issues directly is
// CA-verified, issued by it, also after the trust file is read again;
// trusting only the root above it verifies none of it; and removing it
// ends that.
func TestTrustedIntermediate(t *testing.T) {
	ceoKey := newKey(t)
	ceoID := peerIDOf(t, pubOf(ceoKey))
	org := caCert(t, "Org", -1, nil)
	unit := caCert(t, "Org Unit", 0, org)
	ceo := issue(t, unit, ceoKey, "ceo")

	ts, path := newStore(t)
	if err := ts.AddRoot(unit.Cert); err == nil {
		t.Fatal("AddRoot took an intermediate: only AddIntermediate may, as the user asks")
	}
	if err := ts.AddRoot(org.Cert); err != nil {
		t.Fatal(err)
	}
	wantState(t, evaluate(t, ts, []*x509.Certificate{ceo, unit.Cert}, ceoID, testNow), StateUnknown, "not a CA you trust")

	if err := ts.AddIntermediate(unit.Cert); err != nil {
		t.Fatal(err)
	}
	for _, store := range []*TrustStore{ts, openStore(t, path)} {
		v := evaluate(t, store, []*x509.Certificate{ceo}, ceoID, testNow)
		wantState(t, v, StateCAVerified, "issued by Org Unit")
		if !v.IssuerTrusted || v.Issuer != "Org Unit" {
			t.Fatalf("issuer %q, trusted %v", v.Issuer, v.IssuerTrusted)
		}
	}
	if err := ts.RemoveRoot(unit.Cert); err != nil {
		t.Fatal(err)
	}
	wantState(t, evaluate(t, ts, []*x509.Certificate{ceo, unit.Cert}, ceoID, testNow), StateUnknown, "not a CA you trust")

	// A leaf is no CA, intermediate or not.
	if err := ts.AddIntermediate(ceo); err == nil {
		t.Fatal("AddIntermediate took a leaf")
	}
}
