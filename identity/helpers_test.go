package identity

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/url"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/certchat/certchat/internal/testproc"
	"github.com/libp2p/go-libp2p/core/peer"
)

// fastKDF keeps Argon2id cheap in unit tests; the parameters are an
// argument of EncodePrivateKey, and the decoder reads them from the file.
var fastKDF = KDFParams{Time: 1, Memory: 64, Threads: 1}

// testNow is the fixed clock of the unit tests.
var testNow = time.Date(2031, 3, 14, 15, 9, 26, 0, time.UTC)

// newKey makes a random Ed25519 key.
func newKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// seededKey is a deterministic key, for golden vectors.
func seededKey(label string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("certchat test key: " + label))
	return ed25519.NewKeyFromSeed(seed[:])
}

func pubOf(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

func peerIDOf(t testing.TB, pub ed25519.PublicKey) peer.ID {
	t.Helper()
	id, err := PeerIDFromKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// selfSigned makes an identity certificate valid around testNow.
func selfSigned(t testing.TB, key ed25519.PrivateKey, name string) *x509.Certificate {
	t.Helper()
	c, err := NewSelfSigned(key, name, testNow, 0)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newCA makes a CA valid around testNow.
func newCA(t testing.TB, name string) *CA {
	t.Helper()
	ca, err := NewCA(name, testNow, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// issue has ca issue a certificate for key via a real CSR.
func issue(t testing.TB, ca *CA, key ed25519.PrivateKey, name string) *x509.Certificate {
	t.Helper()
	csrPEM, err := NewCSR(key, name)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := ParseCSR(csrPEM)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.Issue(csr, testNow, 0)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// craft signs an arbitrary template, for certificates certchat would never
// make. parent nil means self-signed.
func craft(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) *x509.Certificate {
	t.Helper()
	if tmpl.SerialNumber == nil {
		tmpl.SerialNumber = big.NewInt(42)
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = testNow.Add(-time.Hour)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = testNow.Add(24 * time.Hour)
	}
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// leafTmpl is a plain leaf template with the given URIs.
func leafTmpl(name string, uris ...*url.URL) *x509.Certificate {
	return &x509.Certificate{
		Subject:               pkix.Name{CommonName: name},
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		URIs:                  uris,
	}
}

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// needOpenSSL is openssl's path (testproc.Command).
func needOpenSSL(t testing.TB) string {
	t.Helper()
	return testproc.Command(t, "openssl")
}

// openssl runs openssl with stdin and returns stdout, failing the test on error.
func openssl(t testing.TB, stdin []byte, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(needOpenSSL(t), args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl %v: %v\n%s", args, err, stderr.Bytes())
	}
	return out
}

// readFile reads a file or fails.
func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
