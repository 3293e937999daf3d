package identity

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"
)

// csrPEM signs a request template with key (Ed25519 or ECDSA).
func csrPEM(t testing.TB, tmpl *x509.CertificateRequest, key any) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func TestCSRRoundTrip(t *testing.T) {
	key := newKey(t)
	id := peerIDOf(t, pubOf(key))
	p, err := NewCSR(key, "Alice")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(p), "-----BEGIN CERTIFICATE REQUEST-----\n") {
		t.Fatalf("not a PEM CSR:\n%s", p)
	}
	csr, err := ParseCSR(p)
	if err != nil {
		t.Fatal(err)
	}
	if csr.Subject.CommonName != "Alice" || csr.SignatureAlgorithm != x509.PureEd25519 {
		t.Errorf("CN %q, algorithm %v", csr.Subject.CommonName, csr.SignatureAlgorithm)
	}
	if len(csr.URIs) != 1 || csr.URIs[0].String() != PeerURI(id).String() {
		t.Errorf("URIs = %v", csr.URIs)
	}
	if !pubOf(key).Equal(csr.PublicKey) {
		t.Error("public key")
	}
}

func TestParseCSR(t *testing.T) {
	key := newKey(t)
	pub := pubOf(key)
	id := peerIDOf(t, pub)
	otherID := peerIDOf(t, pubOf(newKey(t)))
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	good, _ := NewCSR(key, "Alice")
	block, _ := pem.Decode(good)

	// Flip a bit in the signature (the last bytes of the DER).
	badSig := append([]byte(nil), block.Bytes...)
	badSig[len(badSig)-5] ^= 0x01
	// Flip a bit in the subject: the signature no longer covers it.
	badTBS := []byte(strings.Replace(string(block.Bytes), "Alice", "Alicf", 1))

	for _, tc := range []struct {
		name string
		in   []byte
		want error // nil: accepted; errAny: any error
	}{
		{"good", good, nil},
		{"NEW CERTIFICATE REQUEST type", pem.EncodeToMemory(&pem.Block{Type: "NEW CERTIFICATE REQUEST", Bytes: block.Bytes}), nil},
		{"no SAN (as openssl req makes)", csrPEM(t, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "A"}}, key), nil},
		{"other URIs only", csrPEM(t, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "A"}, URIs: []*url.URL{mustURL(t, "https://a.example")}}, key), nil},
		{"bad signature", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: badSig}), errAny},
		{"tampered subject", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: badTBS}), errAny},
		{"ECDSA", csrPEM(t, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "A"}, URIs: []*url.URL{PeerURI(id)}}, ec), ErrNotEd25519},
		{"SAN names another peer", csrPEM(t, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "A"}, URIs: []*url.URL{PeerURI(otherID)}}, key), ErrPeerIDMismatch},
		{"second SAN names another peer", csrPEM(t, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "A"}, URIs: []*url.URL{PeerURI(id), PeerURI(otherID)}}, key), ErrPeerIDMismatch},
		{"SAN with garbage id", csrPEM(t, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "A"}, URIs: []*url.URL{mustURL(t, "libp2p:peer:x")}}, key), ErrPeerIDMismatch},
		{"certificate, not a request", EncodeCertificatesPEM(selfSigned(t, key, "A")), errAny},
		{"garbage DER", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte{0x30, 0x03, 0x02, 0x01, 0x01}}), errAny},
		{"truncated DER", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: block.Bytes[:len(block.Bytes)/2]}), errAny},
		{"truncated PEM", good[:len(good)/2], errAny},
		{"DER, not PEM", block.Bytes, errAny},
		{"empty", nil, errAny},
		{"too large", append([]byte(strings.Repeat(" ", maxPEMInput)), good...), errAny},
	} {
		t.Run(tc.name, func(t *testing.T) {
			csr, err := ParseCSR(tc.in)
			switch {
			case tc.want == nil:
				if err != nil {
					t.Fatal(err)
				}
				if !pubOf(key).Equal(csr.PublicKey) {
					t.Fatal("wrong key")
				}
			case err == nil:
				t.Fatal("accepted")
			case tc.want != errAny && !errors.Is(err, tc.want):
				t.Fatalf("error %v, want %v", err, tc.want)
			}
		})
	}
}

var errAny = errors.New("any error")

func TestNewCA(t *testing.T) {
	ca := newCA(t, "Acme Root")
	c := ca.Cert
	if c.Version != 3 || c.Subject.CommonName != "Acme Root" {
		t.Errorf("version %d CN %q", c.Version, c.Subject.CommonName)
	}
	if !c.IsCA || !c.BasicConstraintsValid || c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Errorf("basic constraints: CA=%v valid=%v pathlen=%d zero=%v", c.IsCA, c.BasicConstraintsValid, c.MaxPathLen, c.MaxPathLenZero)
	}
	if c.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("key usage %b lacks certSign", c.KeyUsage)
	}
	if !c.NotBefore.Equal(testNow.Add(-time.Hour)) || !c.NotAfter.Equal(testNow.Add(DefaultCAValidity)) {
		t.Errorf("validity %v .. %v", c.NotBefore, c.NotAfter)
	}
	if len(c.URIs) != 0 {
		t.Errorf("a CA has no peer id SAN: %v", c.URIs)
	}
	if !pubOf(ca.Key).Equal(c.PublicKey) {
		t.Error("key does not match")
	}
	if err := CheckCA(c); err != nil {
		t.Errorf("CheckCA: %v", err)
	}
	short, err := NewCA("Short", testNow, 48*time.Hour)
	if err != nil || !short.Cert.NotAfter.Equal(testNow.Add(48*time.Hour)) {
		t.Errorf("validity argument: %v %v", err, short.Cert.NotAfter)
	}
	for _, bad := range []string{"", "a\x1bb", strings.Repeat("x", 100)} {
		if _, err := NewCA(bad, testNow, 0); err == nil {
			t.Errorf("NewCA(%q) accepted", bad)
		}
	}
}

func TestCheckCA(t *testing.T) {
	key := newKey(t)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	root := newCA(t, "Root")
	caTmpl := func(name string) *x509.Certificate {
		return &x509.Certificate{Subject: pkix.Name{CommonName: name}, IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	}
	other := newKey(t)
	for _, tc := range []struct {
		name string
		cert *x509.Certificate
		ok   bool
	}{
		{"NewCA", root.Cert, true},
		{"hand-made Ed25519 root", craft(t, caTmpl("Hand"), nil, pubOf(key), key), true},
		{"root without key usage", craft(t, &x509.Certificate{Subject: pkix.Name{CommonName: "NoKU"}, IsCA: true, BasicConstraintsValid: true}, nil, pubOf(key), key), true},
		{"identity certificate", selfSigned(t, key, "Alice"), false},
		{"CA:FALSE", craft(t, &x509.Certificate{Subject: pkix.Name{CommonName: "X"}, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}, nil, pubOf(key), key), false},
		{"no basic constraints", craft(t, &x509.Certificate{Subject: pkix.Name{CommonName: "X"}, KeyUsage: x509.KeyUsageCertSign}, nil, pubOf(key), key), false},
		{"ECDSA root", craft(t, caTmpl("EC"), nil, &ec.PublicKey, ec), false},
		{"intermediate, not self-signed", craft(t, caTmpl("Inter"), root.Cert, pubOf(key), root.Key), false},
		{"same names, another signer", craft(t, caTmpl("Root"), root.Cert, pubOf(key), root.Key), false},
		{"key usage without certSign", craft(t, &x509.Certificate{Subject: pkix.Name{CommonName: "X"}, IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature}, nil, pubOf(key), key), false},
		{"signed by another key", craft(t, caTmpl("Self"), craft(t, caTmpl("Self"), nil, pubOf(other), other), pubOf(key), other), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckCA(tc.cert)
			if (err == nil) != tc.ok {
				t.Fatalf("CheckCA = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestIssue(t *testing.T) {
	ca := newCA(t, "Acme Root")
	key := newKey(t)
	id := peerIDOf(t, pubOf(key))
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)

	check := func(t *testing.T, c *x509.Certificate, name string) {
		t.Helper()
		if c.Subject.CommonName != name || c.Version != 3 {
			t.Errorf("CN %q version %d", c.Subject.CommonName, c.Version)
		}
		if c.Issuer.CommonName != "Acme Root" || IssuerName(c) != "Acme Root" {
			t.Errorf("issuer %q", c.Issuer.CommonName)
		}
		if len(c.URIs) != 1 || c.URIs[0].String() != PeerURI(id).String() {
			t.Errorf("SAN %v, want the peer id derived from the key", c.URIs)
		}
		if got, err := CertPeerID(c); err != nil || got != id {
			t.Errorf("CertPeerID %s %v", got, err)
		}
		if c.IsCA || !c.BasicConstraintsValid || c.KeyUsage != x509.KeyUsageDigitalSignature {
			t.Errorf("CA=%v key usage %b", c.IsCA, c.KeyUsage)
		}
		if len(c.DNSNames)+len(c.EmailAddresses)+len(c.IPAddresses) != 0 || len(c.ExtraExtensions) != 0 {
			t.Errorf("unexpected names %v %v %v", c.DNSNames, c.EmailAddresses, c.IPAddresses)
		}
		if string(c.AuthorityKeyId) != string(ca.Cert.SubjectKeyId) {
			t.Errorf("authority key id %x, want %x", c.AuthorityKeyId, ca.Cert.SubjectKeyId)
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: testNow, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("does not verify: %v", err)
		}
	}

	t.Run("from NewCSR", func(t *testing.T) {
		c := issue(t, ca, key, "Alice")
		check(t, c, "Alice")
		if !c.NotBefore.Equal(testNow.Add(-time.Hour)) || !c.NotAfter.Equal(testNow.Add(DefaultValidity)) {
			t.Errorf("validity %v .. %v", c.NotBefore, c.NotAfter)
		}
	})

	t.Run("SAN derived from the key when the request has none", func(t *testing.T) {
		csr, err := ParseCSR(csrPEM(t, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "Plain"}}, key))
		if err != nil {
			t.Fatal(err)
		}
		c, err := ca.Issue(csr, testNow, 0)
		if err != nil {
			t.Fatal(err)
		}
		check(t, c, "Plain")
	})

	t.Run("ignores requested extensions", func(t *testing.T) {
		bc, _ := asn1.Marshal(struct {
			IsCA bool `asn1:"optional"`
		}{true})
		ku, _ := asn1.Marshal(asn1.BitString{Bytes: []byte{0x06}, BitLength: 7}) // keyCertSign, cRLSign
		csr, err := ParseCSR(csrPEM(t, &x509.CertificateRequest{
			Subject:        pkix.Name{CommonName: "Greedy", Organization: []string{"Evil"}},
			DNSNames:       []string{"bank.example"},
			EmailAddresses: []string{"ceo@bank.example"},
			IPAddresses:    []net.IP{net.IPv4(10, 0, 0, 1)},
			URIs:           []*url.URL{PeerURI(id), mustURL(t, "https://bank.example")},
			ExtraExtensions: []pkix.Extension{
				{Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Critical: true, Value: bc},
				{Id: asn1.ObjectIdentifier{2, 5, 29, 15}, Critical: true, Value: ku},
			},
		}, key))
		if err != nil {
			t.Fatal(err)
		}
		c, err := ca.Issue(csr, testNow, 0)
		if err != nil {
			t.Fatal(err)
		}
		check(t, c, "Greedy")
		if len(c.Subject.Organization) != 0 {
			t.Errorf("subject took more than the CN: %v", c.Subject)
		}
	})

	t.Run("never outlives the CA", func(t *testing.T) {
		short, err := NewCA("Short", testNow, 10*24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		csr, _ := ParseCSR(must(NewCSR(key, "A")))
		c, err := short.Issue(csr, testNow.Add(24*time.Hour), 365*24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if !c.NotAfter.Equal(short.Cert.NotAfter) {
			t.Errorf("NotAfter %v, want the CA's %v", c.NotAfter, short.Cert.NotAfter)
		}
		c, err = short.Issue(csr, testNow, 24*time.Hour)
		if err != nil || !c.NotAfter.Equal(testNow.Add(24*time.Hour)) {
			t.Errorf("a shorter validity is kept: %v %v", c.NotAfter, err)
		}
	})

	t.Run("refuses to issue from an expired or not yet valid CA", func(t *testing.T) {
		csr, _ := ParseCSR(must(NewCSR(key, "A")))
		if c, err := ca.Issue(csr, ca.Cert.NotAfter.Add(time.Hour), 0); err == nil {
			t.Errorf("issued %v .. %v from an expired CA", c.NotBefore, c.NotAfter)
		}
		if _, err := ca.Issue(csr, ca.Cert.NotBefore.Add(-time.Hour), 0); err == nil {
			t.Error("issued from a CA that is not valid yet")
		}
	})

	t.Run("bad subject", func(t *testing.T) {
		for _, name := range []string{"", "\x1b[31mred", strings.Repeat("n", MaxNameLength+1)} {
			csr, err := ParseCSR(csrPEM(t, &x509.CertificateRequest{Subject: pkix.Name{CommonName: name}}, key))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ca.Issue(csr, testNow, 0); err == nil {
				t.Errorf("issued for CN %q", name)
			}
		}
	})

	t.Run("non-Ed25519 request", func(t *testing.T) {
		ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		block, _ := pem.Decode(csrPEM(t, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "EC"}}, ec))
		csr, err := x509.ParseCertificateRequest(block.Bytes) // bypassing ParseCSR
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ca.Issue(csr, testNow, 0); !errors.Is(err, ErrNotEd25519) {
			t.Errorf("Issue(ECDSA) = %v", err)
		}
	})
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// constrainedCA is a root like NewCA's with name constraints set by
// constrain.
func constrainedCA(t *testing.T, constrain func(*x509.Certificate)) *CA {
	t.Helper()
	key := newKey(t)
	pub := pubOf(key)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(7),
		Subject:               pkix.Name{CommonName: "Acme Root"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	constrain(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &CA{Cert: cert, Key: key}
}

// TestNameConstrainedCA: a root with name constraints is refused as a
// trusted root (CheckCA, AddRoot) with ErrNameConstraints. The reason is
// pinned too: under any name constraint, of any type, crypto/x509
// verifies none of our certificates (their SAN libp2p:peer:… is a URI
// without a host, which it refuses to match against constraints), so
// such a root would silently verify nobody.
func TestNameConstrainedCA(t *testing.T) {
	for _, tc := range []struct {
		name      string
		constrain func(*x509.Certificate)
	}{
		{"permitted URI domain", func(c *x509.Certificate) { c.PermittedURIDomains = []string{"example.com"} }},
		{"excluded URI domain", func(c *x509.Certificate) { c.ExcludedURIDomains = []string{"evil.example"} }},
		{"permitted DNS domain", func(c *x509.Certificate) { c.PermittedDNSDomains = []string{"example.com"} }},
		{"permitted e-mail", func(c *x509.Certificate) { c.PermittedEmailAddresses = []string{"example.com"} }},
		{"critical, excluded IP range", func(c *x509.Certificate) {
			c.PermittedDNSDomainsCritical = true
			c.ExcludedIPRanges = []*net.IPNet{{IP: net.IPv4(10, 0, 0, 0), Mask: net.CIDRMask(8, 32)}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ca := constrainedCA(t, tc.constrain)
			csr, err := ParseCSR(mustCSR(t, newKey(t), "bob"))
			if err != nil {
				t.Fatal(err)
			}
			leaf, err := ca.Issue(csr, time.Now(), time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := verifyAgainst(leaf, []*x509.Certificate{ca.Cert}, time.Now()); ok {
				t.Errorf("crypto/x509 verifies a member under the constrained root: refusing it may no longer be needed")
			}
			if err := CheckCA(ca.Cert); !errors.Is(err, ErrNameConstraints) {
				t.Errorf("CheckCA: %v, want ErrNameConstraints", err)
			}
			ts, err := OpenTrustStore(t.TempDir() + "/trust.json")
			if err != nil {
				t.Fatal(err)
			}
			if err := ts.AddRoot(ca.Cert); !errors.Is(err, ErrNameConstraints) {
				t.Errorf("AddRoot: %v, want ErrNameConstraints", err)
			}
			if roots, _ := ts.Roots(); len(roots) != 0 {
				t.Errorf("the constrained root was added")
			}
		})
	}
	// The same root without constraints is a root.
	if err := CheckCA(constrainedCA(t, func(*x509.Certificate) {}).Cert); err != nil {
		t.Errorf("an unconstrained root: %v", err)
	}
}

func mustCSR(t *testing.T, key ed25519.PrivateKey, name string) []byte {
	t.Helper()
	p, err := NewCSR(key, name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
