package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Fuzz targets for every parser of untrusted input. Seeds live in
// testdata/fuzz/<FuzzName>/; run one with
//
//	go test -run '^$' -fuzz '^FuzzParseCSR$' -fuzztime 30s ./identity/

func FuzzParseCertificatesPEM(f *testing.F) {
	key := seededKey("fuzz cert")
	f.Add(EncodeCertificatesPEM(selfSigned(f, key, "Alice")))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := ParseCertificatesPEM(data)
		if err != nil {
			if certs != nil {
				t.Fatal("certificates with an error")
			}
			return
		}
		if len(certs) == 0 {
			t.Fatal("accepted with no certificate")
		}
		// Accepted input re-encodes to PEM that parses to the same certificates.
		again, err := ParseCertificatesPEM(EncodeCertificatesPEM(certs...))
		if err != nil || len(again) != len(certs) {
			t.Fatalf("re-encoded: %d certificates, %v", len(again), err)
		}
		for i := range certs {
			if !certs[i].Equal(again[i]) {
				t.Fatalf("certificate %d differs after re-encoding", i)
			}
		}
		// What the rest of the code does with a peer's certificate must not
		// panic, and names must be safe to print.
		for _, c := range certs {
			if id, err := CertPeerID(c); err == nil {
				pub, ok := c.PublicKey.(ed25519.PublicKey)
				if !ok {
					t.Fatal("CertPeerID accepted a non-Ed25519 key")
				}
				if want, _ := PeerIDFromKey(pub); want != id {
					t.Fatalf("CertPeerID = %s, key derives %s", id, want)
				}
				_ = FingerprintOf(pub)
			}
			for _, name := range []string{DisplayName(c), IssuerName(c)} {
				if name == "" || !safeToPrint(name) {
					t.Fatalf("unsafe name %q", name)
				}
			}
			_ = CheckCA(c)
			_ = CheckValidity(c, testNow)
		}
	})
}

var (
	fuzzCAOnce sync.Once
	fuzzCA     *CA
)

func FuzzParseCSR(f *testing.F) {
	csr, _ := NewCSR(seededKey("fuzz csr"), "Alice")
	f.Add(csr)
	f.Fuzz(func(t *testing.T, data []byte) {
		csr, err := ParseCSR(data)
		if err != nil {
			return
		}
		// Accepted: signed, Ed25519, and any peer id SAN is the key's.
		if err := csr.CheckSignature(); err != nil {
			t.Fatalf("accepted a bad signature: %v", err)
		}
		pub, ok := csr.PublicKey.(ed25519.PublicKey)
		if !ok {
			t.Fatalf("accepted a %T key", csr.PublicKey)
		}
		id, err := PeerIDFromKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range csr.URIs {
			if u.Scheme == "libp2p" && u.String() != PeerURI(id).String() {
				t.Fatalf("accepted SAN %s for %s", u, id)
			}
		}
		// A CA issues from it, or refuses (bad name); what it issues binds
		// the key's peer id, carries the CA's extensions and verifies.
		fuzzCAOnce.Do(func() { fuzzCA = newCA(t, "Fuzz Root") })
		cert, err := fuzzCA.Issue(csr, testNow, 0)
		if err != nil {
			if CheckName(csr.Subject.CommonName) == nil {
				t.Fatalf("refused a request with a good name: %v", err)
			}
			return
		}
		if got, err := CertPeerID(cert); err != nil || got != id {
			t.Fatalf("issued certificate binds %s (%v), want %s", got, err, id)
		}
		if cert.IsCA || len(cert.URIs) != 1 || len(cert.DNSNames)+len(cert.EmailAddresses)+len(cert.IPAddresses) != 0 {
			t.Fatal("issued certificate carries requested extensions")
		}
		if err := cert.CheckSignatureFrom(fuzzCA.Cert); err != nil {
			t.Fatal(err)
		}
	})
}

// fuzzKDFBudget bounds the Argon2id work one fuzz input may ask for; larger
// (but plausible) parameters are checked without deriving.
const fuzzKDFBudget = 512 // KiB × passes

func FuzzDecodePrivateKey(f *testing.F) {
	key := seededKey("fuzz key")
	enc, _ := EncodePrivateKey(key, []byte("pw"), fastKDF)
	plain, _ := EncodePrivateKey(key, nil, fastKDF)
	f.Add(enc, []byte("pw"))
	f.Add(enc, []byte("wrong"))
	f.Add(plain, []byte(""))
	f.Fuzz(func(t *testing.T, data, passphrase []byte) {
		asked := 0
		pf := func() ([]byte, error) { asked++; return passphrase, nil }
		// The parser bounds the parameters (up to 1 GiB and 64 passes), far
		// beyond what a fuzz exec can afford: only cheap ones are derived.
		params, plausible := encryptedKeyParams(data)
		if plausible && uint64(params.Time)*uint64(params.Memory) > fuzzKDFBudget {
			pf = nil
		}
		got, err := DecodePrivateKey(data, pf)
		if asked > 1 {
			t.Fatalf("passphrase asked %d times", asked)
		}
		if err != nil {
			if got != nil {
				t.Fatal("key with an error")
			}
			for _, known := range []error{ErrCorrupt, ErrWrongPassphrase, ErrNotEd25519, ErrPassphraseRequired} {
				if errors.Is(err, known) {
					return
				}
			}
			t.Fatalf("unexpected error: %v", err)
		}
		if !plausible && asked > 0 {
			t.Fatal("derived a key with implausible parameters")
		}
		// An accepted key is a whole Ed25519 key that round-trips.
		if len(got) != ed25519.PrivateKeySize || !ed25519.NewKeyFromSeed(got.Seed()).Equal(got) {
			t.Fatal("inconsistent private key")
		}
		for _, pp := range [][]byte{nil, []byte("x")} {
			re, err := EncodePrivateKey(got, pp, fastKDF)
			if err != nil {
				t.Fatal(err)
			}
			back, err := DecodePrivateKey(re, func() ([]byte, error) { return []byte("x"), nil })
			if err != nil || !back.Equal(got) {
				t.Fatalf("re-encoded key does not decode: %v", err)
			}
		}
	})
}

// encryptedKeyParams reads the KDF parameters of an encrypted key file, if
// data is one, and whether the decoder's bounds allow them.
func encryptedKeyParams(data []byte) (KDFParams, bool) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != pemEncryptedKey || len(block.Bytes) < keyHeaderLen {
		return KDFParams{}, false
	}
	b := block.Bytes
	p := KDFParams{Time: binary.BigEndian.Uint32(b[2:]), Memory: binary.BigEndian.Uint32(b[6:]), Threads: b[10]}
	ok := p.Time >= 1 && p.Time <= 64 && p.Threads >= 1 && p.Memory >= 8*uint32(p.Threads) && p.Memory <= 1<<20
	return p, ok
}

var (
	fuzzLeafOnce sync.Once
	fuzzLeaf     *x509.Certificate
)

func FuzzParseTrustFile(f *testing.F) {
	f.Add([]byte(`{"version":1,"contacts":[],"roots":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tf, err := parseTrustFile(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error without ErrCorrupt: %v", err)
			}
			return
		}
		for _, c := range tf.Contacts {
			pub, err := KeyFromPeerID(c.PeerID)
			if err != nil {
				t.Fatalf("accepted contact id %s: %v", c.PeerID, err)
			}
			// Evaluate looks contacts up by the id the key derives.
			if id, _ := PeerIDFromKey(pub); id != c.PeerID {
				t.Fatalf("accepted non-canonical peer id %s for %s", c.PeerID, id)
			}
			if c.State != StateVerified && c.State != StateTOFU && c.State != StateUntrusted {
				t.Fatalf("accepted state %q", c.State)
			}
			if l := c.Label(); l == "" || !safeToPrint(l) {
				t.Fatalf("unsafe label %q", l)
			}
		}
		for _, r := range tf.Roots {
			certs, err := ParseCertificatesPEM([]byte(r))
			if err != nil || len(certs) != 1 || CheckCA(certs[0]) != nil {
				t.Fatalf("accepted root: %v", err)
			}
		}
		// Accepted input re-encodes (as the store writes it) to a file that
		// parses, and encoding is then stable.
		m1, err := json.MarshalIndent(tf, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		tf2, err := parseTrustFile(m1)
		if err != nil {
			t.Fatalf("re-encoded file rejected: %v\n%s", err, m1)
		}
		m2, _ := json.MarshalIndent(tf2, "", "  ")
		if !bytes.Equal(m1, m2) {
			t.Fatalf("unstable encoding:\n%s\n%s", m1, m2)
		}
		// A store can load it and answer. (Its path names no file, so
		// refresh keeps what was loaded.)
		ts := &TrustStore{path: filepath.Join(os.TempDir(), "certchat-fuzz-no-such-folder", "trust.json")}
		ts.load(tf)
		if len(ts.contacts) != len(tf.Contacts) || len(ts.roots) != len(tf.Roots) {
			t.Fatal("load lost entries")
		}
		fuzzLeafOnce.Do(func() { fuzzLeaf = selfSigned(t, seededKey("fuzz trust"), "Bob") })
		leaf := fuzzLeaf
		id, _ := CertPeerID(leaf)
		v, err := ts.Evaluate([]*x509.Certificate{leaf}, id, testNow)
		if err != nil || v.State == "" {
			t.Fatalf("Evaluate: %+v, %v", v, err)
		}
	})
}

func FuzzParseFingerprint(f *testing.F) {
	f.Add(FingerprintOf(pubOf(seededKey("fuzz fp"))).String())
	f.Fuzz(func(t *testing.T, s string) {
		fp, err := ParseFingerprint(s)
		if err != nil {
			if !errors.Is(err, ErrBadFingerprint) {
				t.Fatalf("error without ErrBadFingerprint: %v", err)
			}
			return
		}
		// Accepted input is the canonical form up to case, spaces, dashes
		// and the documented 0/1/8 readings, and nothing else.
		canon := fp.String()
		if !fingerprintRE.MatchString(canon) {
			t.Fatalf("String() = %q", canon)
		}
		norm := strings.NewReplacer("-", "", " ", "", "0", "O", "1", "I", "8", "B").Replace(asciiUpper(s))
		if norm != strings.ReplaceAll(canon, "-", "") {
			t.Fatalf("accepted %q as %s", s, canon)
		}
		back, err := ParseFingerprint(canon)
		if err != nil || back != fp {
			t.Fatalf("canonical form does not round-trip: %v", err)
		}
	})
}

func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}
