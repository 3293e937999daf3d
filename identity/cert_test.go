package identity

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

func TestNewSelfSigned(t *testing.T) {
	key := newKey(t)
	id := peerIDOf(t, pubOf(key))
	for _, tc := range []struct {
		name     string
		validity time.Duration
		notAfter time.Time
	}{
		{"default validity is one year", 0, testNow.Add(365 * 24 * time.Hour)},
		{"negative validity means default", -time.Hour, testNow.Add(DefaultValidity)},
		{"explicit validity", 30 * 24 * time.Hour, testNow.Add(30 * 24 * time.Hour)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewSelfSigned(key, "Alice", testNow, tc.validity)
			if err != nil {
				t.Fatal(err)
			}
			if c.Version != 3 {
				t.Errorf("version = %d, want 3", c.Version)
			}
			if c.Subject.CommonName != "Alice" {
				t.Errorf("CN = %q", c.Subject.CommonName)
			}
			if len(c.URIs) != 1 || c.URIs[0].String() != "libp2p:peer:"+id.String() {
				t.Errorf("URIs = %v, want exactly libp2p:peer:%s", c.URIs, id)
			}
			if len(c.DNSNames)+len(c.EmailAddresses)+len(c.IPAddresses) != 0 {
				t.Errorf("unexpected SANs: %v %v %v", c.DNSNames, c.EmailAddresses, c.IPAddresses)
			}
			if c.KeyUsage != x509.KeyUsageDigitalSignature {
				t.Errorf("key usage = %b, want digitalSignature only", c.KeyUsage)
			}
			eku := map[x509.ExtKeyUsage]bool{}
			for _, u := range c.ExtKeyUsage {
				eku[u] = true
			}
			if len(c.ExtKeyUsage) != 2 || !eku[x509.ExtKeyUsageClientAuth] || !eku[x509.ExtKeyUsageServerAuth] {
				t.Errorf("ext key usage = %v, want client and server auth", c.ExtKeyUsage)
			}
			if !c.BasicConstraintsValid || c.IsCA {
				t.Errorf("basic constraints valid=%v CA=%v, want CA:FALSE", c.BasicConstraintsValid, c.IsCA)
			}
			if want := testNow.Add(-time.Hour); !c.NotBefore.Equal(want) {
				t.Errorf("NotBefore = %v, want backdated to %v", c.NotBefore, want)
			}
			if !c.NotAfter.Equal(tc.notAfter) {
				t.Errorf("NotAfter = %v, want %v", c.NotAfter, tc.notAfter)
			}
			if c.SerialNumber.Sign() <= 0 || len(c.SerialNumber.Bytes()) != 16 {
				t.Errorf("serial %x: want positive and 16 bytes", c.SerialNumber)
			}
			if len(c.SubjectKeyId) != 20 {
				t.Errorf("subject key id %x", c.SubjectKeyId)
			}
			if err := c.CheckSignatureFrom(c); err == nil {
				t.Errorf("a CA:FALSE certificate must not verify as its own issuer")
			}
			if err := c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature); err != nil {
				t.Errorf("self-signature: %v", err)
			}
			if got, err := CertPeerID(c); err != nil || got != id {
				t.Errorf("CertPeerID = %v, %v", got, err)
			}
			if IssuerName(c) != "self-signed" {
				t.Errorf("IssuerName = %q", IssuerName(c))
			}
		})
	}
	for _, bad := range []string{"", "   ", "a\x1bb", strings.Repeat("x", MaxNameLength+1), "\xff"} {
		if _, err := NewSelfSigned(key, bad, testNow, 0); err == nil {
			t.Errorf("NewSelfSigned(%q) accepted a bad name", bad)
		}
	}
}

func TestGenerateAndFromParts(t *testing.T) {
	id, err := Generate("Bob", testNow, 0)
	if err != nil {
		t.Fatal(err)
	}
	if id.Name() != "Bob" || len(id.Chain()) != 1 || id.Certificate() != id.Chain()[0] {
		t.Fatalf("identity %q chain %d", id.Name(), len(id.Chain()))
	}
	if want := peerIDOf(t, id.PublicKey()); id.PeerID() != want {
		t.Errorf("peer id %s, want %s", id.PeerID(), want)
	}
	if id.Fingerprint() != FingerprintOf(id.PublicKey()) {
		t.Error("fingerprint")
	}
	tc := id.TLSCertificate()
	if len(tc.Certificate) != 1 || !bytes.Equal(tc.Certificate[0], id.Certificate().Raw) || tc.Leaf != id.Certificate() {
		t.Error("TLS certificate")
	}
	lk, err := id.Libp2pKey()
	if err != nil {
		t.Fatal(err)
	}
	if pid, _ := PeerIDFromKey(id.PublicKey()); !pid.MatchesPrivateKey(lk) {
		t.Error("libp2p key does not derive the peer id")
	}
	a, _ := id.DeriveKey("storage")
	b, _ := id.DeriveKey("storage")
	c, _ := id.DeriveKey("other")
	if len(a) != 32 || !bytes.Equal(a, b) || bytes.Equal(a, c) {
		t.Error("DeriveKey must be deterministic, 32 bytes and purpose-bound")
	}

	if _, err := FromParts(id.Signer(), nil); err == nil {
		t.Error("FromParts accepted an empty chain")
	}
	other := selfSigned(t, newKey(t), "Mallory")
	if _, err := FromParts(id.Signer(), []*x509.Certificate{other}); !errors.Is(err, ErrNotMyKey) {
		t.Errorf("FromParts with another key's certificate: %v, want ErrNotMyKey", err)
	}
	if _, err := FromParts(id.Signer(), []*x509.Certificate{other}); !errors.Is(err, ErrNotMyKey) {
		t.Errorf("FromParts with another key's certificate: %v, want ErrNotMyKey", err)
	}
}

func TestCertPeerID(t *testing.T) {
	key := newKey(t)
	pub := pubOf(key)
	id := peerIDOf(t, pub)
	otherID := peerIDOf(t, pubOf(newKey(t)))
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cert func() *x509.Certificate
		want error // nil: accepted
	}{
		{"self-signed", func() *x509.Certificate { return selfSigned(t, key, "A") }, nil},
		{"no SAN is accepted: the key derives the peer id", func() *x509.Certificate {
			return craft(t, leafTmpl("A"), nil, pub, key)
		}, nil},
		{"other URI SANs are ignored", func() *x509.Certificate {
			return craft(t, leafTmpl("A", mustURL(t, "https://example.org/a"), PeerURI(id)), nil, pub, key)
		}, nil},
		{"ECDSA key", func() *x509.Certificate {
			return craft(t, leafTmpl("A", PeerURI(id)), nil, &ecKey.PublicKey, ecKey)
		}, ErrNotEd25519},
		{"ECDSA key without SAN", func() *x509.Certificate {
			return craft(t, leafTmpl("A"), nil, &ecKey.PublicKey, ecKey)
		}, ErrNotEd25519},
		{"SAN names another peer", func() *x509.Certificate {
			return craft(t, leafTmpl("A", PeerURI(otherID)), nil, pub, key)
		}, ErrPeerIDMismatch},
		{"two SANs, both right", func() *x509.Certificate {
			return craft(t, leafTmpl("A", PeerURI(id), PeerURI(id)), nil, pub, key)
		}, ErrPeerIDMismatch},
		{"two SANs, one wrong", func() *x509.Certificate {
			return craft(t, leafTmpl("A", PeerURI(id), PeerURI(otherID)), nil, pub, key)
		}, ErrPeerIDMismatch},
		{"SAN with garbage peer id", func() *x509.Certificate {
			return craft(t, leafTmpl("A", mustURL(t, "libp2p:peer:notapeerid")), nil, pub, key)
		}, ErrPeerIDMismatch},
		{"SAN with empty peer id", func() *x509.Certificate {
			return craft(t, leafTmpl("A", mustURL(t, "libp2p:peer:")), nil, pub, key)
		}, ErrPeerIDMismatch},
		{"Ed25519 key signed by an ECDSA issuer is judged by its key", func() *x509.Certificate {
			issuer := craft(t, &x509.Certificate{Subject: pkix.Name{CommonName: "EC CA"}, IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}, nil, &ecKey.PublicKey, ecKey)
			return craft(t, leafTmpl("A", PeerURI(id)), issuer, pub, ecKey)
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CertPeerID(tc.cert())
			if tc.want == nil {
				if err != nil || got != id {
					t.Fatalf("CertPeerID = %s, %v; want %s", got, err, id)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("CertPeerID error = %v, want %v", err, tc.want)
			}
			if got != "" {
				t.Errorf("returned peer id %s with an error", got)
			}
		})
	}
}

func TestCheckValidity(t *testing.T) {
	c := selfSigned(t, newKey(t), "A")
	for _, tc := range []struct {
		name string
		now  time.Time
		want error
	}{
		{"now", testNow, nil},
		{"at NotBefore", c.NotBefore, nil},
		{"at NotAfter", c.NotAfter, nil},
		{"skewed clock within the backdating", testNow.Add(-59 * time.Minute), nil},
		{"before NotBefore", c.NotBefore.Add(-time.Second), ErrNotYetValid},
		{"after NotAfter", c.NotAfter.Add(time.Second), ErrExpired},
		{"long expired", c.NotAfter.Add(10 * 365 * 24 * time.Hour), ErrExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckValidity(c, tc.now)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("CheckValidity = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestCheckName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"Alice", true},
		{"Zoë Ångström", true},
		{"李小龙", true},
		{"a b", true},
		{"e\u0301", true}, // combining accent is printable
		{strings.Repeat("é", MaxNameLength), true},
		{strings.Repeat("é", MaxNameLength+1), false},
		{strings.Repeat("x", 1000), false},
		{"", false},
		{" \t ", false},
		{"a\nb", false},
		{"a\tb", false},
		{"a\rb", false},
		{"a\x00b", false},
		{"a\x7fb", false},
		{"\x1b[31mred\x1b[0m", false},
		{"\x1b]0;title\x07", false},
		{"\u009b31m", false},     // 8-bit CSI
		{"evil\u202egnp", false}, // right-to-left override
		{"a\u200bb", false},      // zero-width space
		{"a\ufeffb", false},      // BOM
		{"a\u2028b", false},      // line separator
		{"\xff\xfe", false},      // invalid UTF-8
		{"ok\xc3", false},        // truncated UTF-8
	} {
		err := CheckName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("CheckName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestSanitizeName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Alice", "Alice"},
		{"\x1b[31mred\x1b[0m", "[31mred[0m"},
		{"\x1b]0;pwned\x07bob", "]0;pwnedbob"},
		{"bob\u202eevil", "bobevil"},
		{"b\u200bo\u200bb", "bob"},
		{"line\nbreak\r", "linebreak"},
		{"\x00\x01\x02", "(no name)"},
		{"", "(no name)"},
		{"\xffA", "?A"},
		{strings.Repeat("ab", 100), strings.Repeat("ab", MaxNameLength/2)},
		{strings.Repeat("\x1b", 1000) + "x", "x"},
		{strings.Repeat("é", 70), strings.Repeat("é", MaxNameLength)},
	} {
		got := SanitizeName(tc.in)
		if got != tc.want {
			t.Errorf("SanitizeName(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if !safeToPrint(got) {
			t.Errorf("SanitizeName(%q) = %q is not safe to print", tc.in, got)
		}
	}
	// DisplayName applies it to certificate names, which peers choose freely.
	key := newKey(t)
	c := craft(t, leafTmpl("\x1b[2J\x1b[Hroot\u202e"), nil, pubOf(key), key)
	if got := DisplayName(c); got != "[2J[Hroot" {
		t.Errorf("DisplayName = %q", got)
	}
}

// safeToPrint: valid UTF-8, at most MaxNameLength printable characters.
func safeToPrint(s string) bool {
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > MaxNameLength {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

func TestParseCertificatesPEM(t *testing.T) {
	ca := newCA(t, "Org")
	key := newKey(t)
	leaf := issue(t, ca, key, "A")
	one := EncodeCertificatesPEM(leaf)
	two := EncodeCertificatesPEM(leaf, ca.Cert)
	keyPEM, err := EncodePrivateKey(key, nil, fastKDF)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		in    []byte
		count int // 0: error
	}{
		{"one", one, 1},
		{"chain", two, 2},
		{"openssl text before the block", append([]byte("Certificate:\n    Data:\n        Version: 3 (0x2)\n"), one...), 1},
		{"CRLF and trailing blank lines", append(bytes.ReplaceAll(one, []byte("\n"), []byte("\r\n")), "\r\n\r\n"...), 1},
		{"data after the last certificate", append(bytes.Clone(one), "junk\n"...), 0},
		{"private key block", keyPEM, 0},
		{"key after a certificate", append(bytes.Clone(one), keyPEM...), 0},
		{"empty", nil, 0},
		{"whitespace", []byte(" \n\t"), 0},
		{"not PEM", []byte("hello"), 0},
		{"DER, not PEM", leaf.Raw, 0},
		{"garbage in the block", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("garbage")}), 0},
		{"truncated DER", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw[:len(leaf.Raw)-10]}), 0},
		{"truncated PEM", one[:len(one)-30], 0},
		{"too large", append(bytes.Repeat([]byte(" "), maxPEMInput), one...), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			certs, err := ParseCertificatesPEM(tc.in)
			if tc.count == 0 {
				if err == nil {
					t.Fatalf("accepted, %d certificates", len(certs))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(certs) != tc.count || !certs[0].Equal(leaf) {
				t.Fatalf("got %d certificates", len(certs))
			}
		})
	}
}

func TestIssuerName(t *testing.T) {
	key := newKey(t)
	ca := newCA(t, "Acme Root")
	if got := IssuerName(issue(t, ca, key, "A")); got != "Acme Root" {
		t.Errorf("CA-issued: %q", got)
	}
	// An issuer without a CN is described by its whole name.
	caKey := newKey(t)
	noCN := craft(t, &x509.Certificate{Subject: pkix.Name{Organization: []string{"Acme"}, Country: []string{"NZ"}}, IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}, nil, pubOf(caKey), caKey)
	if got := IssuerName(craft(t, leafTmpl("A"), noCN, pubOf(key), caKey)); got != "O=Acme,C=NZ" {
		t.Errorf("issuer without CN: %q", got)
	}
	// Same subject and issuer, but signed by another key: not self-signed.
	impostor := craft(t, &x509.Certificate{Subject: pkix.Name{CommonName: "A"}, IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}, nil, pubOf(caKey), caKey)
	if got := IssuerName(craft(t, leafTmpl("A"), impostor, pubOf(key), caKey)); got != "A" {
		t.Errorf("self-issued but not self-signed: %q", got)
	}
	// Issuer names are sanitised.
	evil := craft(t, &x509.Certificate{Subject: pkix.Name{CommonName: "\x1b[31mEvil CA"}, IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}, nil, pubOf(caKey), caKey)
	if got := IssuerName(craft(t, leafTmpl("A"), evil, pubOf(key), caKey)); got != "[31mEvil CA" {
		t.Errorf("sanitised issuer: %q", got)
	}
}

func TestPeerURI(t *testing.T) {
	id := peerIDOf(t, pubOf(seededKey("uri")))
	u := PeerURI(id)
	if u.String() != "libp2p:peer:"+id.String() {
		t.Fatalf("PeerURI = %s", u)
	}
	back, err := url.Parse(u.String())
	if err != nil || back.Scheme != "libp2p" || back.Opaque != "peer:"+id.String() {
		t.Fatalf("reparse: %v %#v", err, back)
	}
}
