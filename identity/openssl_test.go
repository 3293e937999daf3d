package identity

import (
	"os"
	"path/filepath"
	"testing"
)

// Keys, requests and roots openssl makes are read by the identity parsers
// (the CLI scripts in cmd/chat cover the certificate flows both ways).
func TestOpenSSLArtifacts(t *testing.T) {
	needOpenSSL(t)
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	openssl(t, nil, "genpkey", "-algorithm", "ed25519", "-out", p("k.pem"))
	openssl(t, nil, "req", "-new", "-key", p("k.pem"), "-subj", "/CN=From OpenSSL", "-out", p("req.csr"))
	openssl(t, nil, "req", "-x509", "-newkey", "ed25519", "-nodes", "-keyout", p("ca.key"), "-out", p("ca.pem"), "-subj", "/CN=Org", "-days", "30")

	key, err := DecodePrivateKey(readFile(t, p("k.pem")), noPass(t))
	if err != nil {
		t.Fatalf("openssl genpkey ed25519: %v", err)
	}
	// Our plain encoding of the same key is what openssl reads back.
	plain, _ := EncodePrivateKey(key, nil, fastKDF)
	os.WriteFile(p("ours.pem"), plain, 0o600)
	if a, b := openssl(t, nil, "pkey", "-in", p("k.pem"), "-pubout"), openssl(t, nil, "pkey", "-in", p("ours.pem"), "-pubout"); string(a) != string(b) {
		t.Errorf("openssl sees another public key:\n%s\n%s", a, b)
	}

	csr, err := ParseCSR(readFile(t, p("req.csr")))
	if err != nil {
		t.Fatalf("openssl req: %v", err)
	}
	if csr.Subject.CommonName != "From OpenSSL" || !pubOf(key).Equal(csr.PublicKey) {
		t.Errorf("CSR %q", csr.Subject.CommonName)
	}

	roots, err := ParseCertificatesPEM(readFile(t, p("ca.pem")))
	if err != nil || len(roots) != 1 {
		t.Fatalf("openssl CA: %v", err)
	}
	if err := CheckCA(roots[0]); err != nil {
		t.Errorf("CheckCA(openssl root): %v", err)
	}
	caKey, err := DecodePrivateKey(readFile(t, p("ca.key")), noPass(t))
	if err != nil {
		t.Fatal(err)
	}
	// A chat CA built from openssl's files issues what openssl verifies.
	ca := &CA{Cert: roots[0], Key: caKey}
	leaf, err := ca.Issue(csr, roots[0].NotBefore.Add(1), 0)
	if err != nil {
		t.Fatal(err)
	}
	if !leaf.NotAfter.Equal(roots[0].NotAfter) {
		t.Errorf("leaf outlives the CA: %v > %v", leaf.NotAfter, roots[0].NotAfter)
	}
	os.WriteFile(p("leaf.pem"), EncodeCertificatesPEM(leaf), 0o600)
	if out := openssl(t, nil, "verify", "-CAfile", p("ca.pem"), p("leaf.pem")); string(out) != p("leaf.pem")+": OK\n" {
		t.Errorf("openssl verify: %s", out)
	}
}
