package identity

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// snapshot records every file in a folder, to check that nothing changed.
type snapshot map[string][]byte

func snap(t testing.TB, dir string) snapshot {
	t.Helper()
	s := snapshot{}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if !d.IsDir() {
			s[p] = readFile(t, p)
		}
		return nil
	})
	return s
}

func (s snapshot) check(t testing.TB, dir string) {
	t.Helper()
	now := snap(t, dir)
	for p, b := range s {
		if !bytes.Equal(now[p], b) {
			t.Errorf("%s changed", p)
		}
	}
	for p := range now {
		if _, ok := s[p]; !ok && !strings.HasSuffix(p, ".lock") {
			t.Errorf("%s appeared", p)
		}
	}
}

func initHome(t testing.TB, passphrase []byte) (Home, *Identity) {
	t.Helper()
	h := Home{Dir: filepath.Join(t.TempDir(), "home")}
	id, err := h.Init("Alice", passphrase, fastKDF, testNow)
	if err != nil {
		t.Fatal(err)
	}
	return h, id
}

func TestHomeInitLoad(t *testing.T) {
	h, id := initHome(t, []byte("pw"))
	if !h.HasIdentity() {
		t.Fatal("HasIdentity = false")
	}
	for path, mode := range map[string]os.FileMode{h.Dir: 0o700 | os.ModeDir, h.KeyPath(): 0o600, h.CertPath(): 0o644} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != mode {
			t.Errorf("%s: mode %v, want %v", path, st.Mode(), mode)
		}
	}
	if !IsEncryptedKey(readFile(t, h.KeyPath())) {
		t.Error("key not encrypted")
	}
	got, err := h.Load(pass("pw"))
	if err != nil {
		t.Fatal(err)
	}
	if got.PeerID() != id.PeerID() || got.Name() != "Alice" || !got.Signer().Equal(id.Signer()) {
		t.Errorf("loaded %s %q", got.PeerID(), got.Name())
	}
	chain, err := h.LoadChain()
	if err != nil || len(chain) != 1 || !chain[0].Equal(id.Certificate()) {
		t.Errorf("LoadChain: %v", err)
	}
	if filepath.Base(h.TrustPath()) != "trust.json" || filepath.Dir(h.TrustPath()) != h.Dir {
		t.Error(h.TrustPath())
	}

	t.Run("plain key", func(t *testing.T) {
		h, id := initHome(t, nil)
		if IsEncryptedKey(readFile(t, h.KeyPath())) {
			t.Error("encrypted")
		}
		got, err := h.Load(noPass(t))
		if err != nil || got.PeerID() != id.PeerID() {
			t.Fatal(err)
		}
	})
	t.Run("bad name leaves no files", func(t *testing.T) {
		h := Home{Dir: filepath.Join(t.TempDir(), "h")}
		if _, err := h.Init("bad\x1bname", []byte("pw"), fastKDF, testNow); err == nil {
			t.Fatal("accepted")
		}
		if h.HasIdentity() {
			t.Error("identity created")
		}
	})
	t.Run("empty passphrase is refused, not stored plain", func(t *testing.T) {
		h := Home{Dir: filepath.Join(t.TempDir(), "h")}
		if _, err := h.Init("A", []byte{}, fastKDF, testNow); err == nil {
			t.Fatal("accepted")
		}
		if h.HasIdentity() {
			t.Error("identity created")
		}
	})
}

func TestHomeInitRefusesOverwrite(t *testing.T) {
	h, _ := initHome(t, []byte("pw"))
	before := snap(t, h.Dir)
	for _, pp := range [][]byte{[]byte("pw"), []byte("other"), nil} {
		if _, err := h.Init("Mallory", pp, fastKDF, testNow); !errors.Is(err, ErrIdentityExists) {
			t.Errorf("second Init: %v", err)
		}
	}
	before.check(t, h.Dir)

	// Racing inits: exactly one wins.
	h2 := Home{Dir: filepath.Join(t.TempDir(), "race")}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := h2.Init("R", nil, fastKDF, testNow)
			if err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			} else if !errors.Is(err, ErrIdentityExists) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Errorf("%d inits won", wins)
	}
	if _, err := h2.Load(nil); err != nil {
		t.Errorf("after the race: %v", err)
	}
}

func TestHomeLoadErrors(t *testing.T) {
	t.Run("no identity", func(t *testing.T) {
		h := Home{Dir: t.TempDir()}
		if _, err := h.Load(pass("pw")); !errors.Is(err, ErrNoIdentity) {
			t.Errorf("Load: %v", err)
		}
		if _, err := h.LoadChain(); !errors.Is(err, ErrNoIdentity) {
			t.Errorf("LoadChain: %v", err)
		}
	})
	otherCert := EncodeCertificatesPEM(selfSigned(t, newKey(t), "Mallory"))
	for _, tc := range []struct {
		name    string
		file    func(h Home) string
		mangle  func(b []byte) []byte
		want    error  // for errors.Is, or nil
		mention string // in the message
	}{
		{"wrong passphrase", nil, nil, ErrWrongPassphrase, "identity.key"},
		{"garbage key", Home.KeyPath, func([]byte) []byte { return []byte("garbage") }, ErrCorrupt, "identity.key"},
		{"truncated key", Home.KeyPath, func(b []byte) []byte { return b[:len(b)/2] }, ErrCorrupt, "identity.key"},
		{"empty key", Home.KeyPath, func([]byte) []byte { return nil }, ErrCorrupt, "identity.key"},
		{"flipped key byte", Home.KeyPath, func(b []byte) []byte { b[100] ^= 0x04; return b }, nil, "identity.key"},
		{"garbage certificate", Home.CertPath, func([]byte) []byte { return []byte("garbage") }, nil, "identity.crt"},
		{"truncated certificate", Home.CertPath, func(b []byte) []byte { return b[:len(b)-40] }, nil, "identity.crt"},
		{"empty certificate", Home.CertPath, func([]byte) []byte { return nil }, nil, "identity.crt"},
		{"certificate for another key", Home.CertPath, func([]byte) []byte { return otherCert }, ErrNotMyKey, "identity.crt"},
		{"huge certificate", Home.CertPath, func(b []byte) []byte { return append(b, bytes.Repeat([]byte{' '}, maxPEMInput)...) }, nil, "identity.crt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := initHome(t, []byte("pw"))
			if tc.file != nil {
				p := tc.file(h)
				if err := os.WriteFile(p, tc.mangle(readFile(t, p)), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			before := snap(t, h.Dir)
			pp := "pw"
			if tc.file == nil {
				pp = "wrong"
			}
			_, err := h.Load(pass(pp))
			if err == nil {
				t.Fatal("loaded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q does not name %s", err, tc.mention)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
			before.check(t, h.Dir)
		})
	}
	t.Run("missing certificate", func(t *testing.T) {
		h, _ := initHome(t, nil)
		os.Remove(h.CertPath())
		if _, err := h.Load(nil); err == nil || !strings.Contains(err.Error(), "identity.crt") {
			t.Errorf("Load: %v", err)
		}
	})
}

func TestImportCertificate(t *testing.T) {
	ca := newCA(t, "Acme Root")
	setup := func(t *testing.T) (Home, *Identity, *TrustStore) {
		h, id := initHome(t, nil)
		ts, err := h.TrustStore()
		if err != nil {
			t.Fatal(err)
		}
		return h, id, ts
	}
	t.Run("CA-issued, after AddRoot", func(t *testing.T) {
		h, id, ts := setup(t)
		leaf := issue(t, ca, id.Signer(), "Alice")
		before := snap(t, h.Dir)
		if _, err := h.ImportCertificate([]*x509.Certificate{leaf}, ts, testNow); err == nil || !strings.Contains(err.Error(), "not a CA you trust") {
			t.Fatalf("untrusted issuer: %v", err)
		}
		before.check(t, h.Dir)
		if err := ts.AddRoot(ca.Cert); err != nil {
			t.Fatal(err)
		}
		stored, err := h.ImportCertificate([]*x509.Certificate{leaf, ca.Cert}, ts, testNow)
		if err != nil {
			t.Fatal(err)
		}
		if len(stored) != 1 || !stored[0].Equal(leaf) {
			t.Errorf("stored %d certificates: the root must be stripped", len(stored))
		}
		chain, err := h.LoadChain()
		if err != nil || len(chain) != 1 || !chain[0].Equal(leaf) {
			t.Fatalf("LoadChain: %d, %v", len(chain), err)
		}
		got, err := h.Load(nil)
		if err != nil || IssuerName(got.Certificate()) != "Acme Root" {
			t.Fatalf("Load: %v", err)
		}
	})
	t.Run("a leaf under an intermediate is refused", func(t *testing.T) {
		// CA-verified means issued directly by a trusted root: peers would
		// not verify this leaf, so it is not installed, with or without
		// the intermediate.
		h, id, ts := setup(t)
		rootKey, interKey := newKey(t), newKey(t)
		root := craft(t, &x509.Certificate{Subject: pkix.Name{CommonName: "Deep Root"}, IsCA: true, BasicConstraintsValid: true, MaxPathLen: 1, KeyUsage: x509.KeyUsageCertSign}, nil, pubOf(rootKey), rootKey)
		inter := craft(t, &x509.Certificate{Subject: pkix.Name{CommonName: "Inter"}, IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true, KeyUsage: x509.KeyUsageCertSign}, root, pubOf(interKey), rootKey)
		leaf := craft(t, leafTmpl("Alice", PeerURI(id.PeerID())), inter, id.PublicKey(), interKey)
		if err := ts.AddRoot(root); err != nil {
			t.Fatal(err)
		}
		before := snap(t, h.Dir)
		for _, chain := range [][]*x509.Certificate{{leaf}, {leaf, inter}, {leaf, inter, root}} {
			if _, err := h.ImportCertificate(chain, ts, testNow); err == nil || !strings.Contains(err.Error(), `issuer "Inter" is not a CA you trust`) {
				t.Errorf("%d certificates: %v", len(chain), err)
			}
		}
		before.check(t, h.Dir)
	})
	t.Run("only the leaf is stored", func(t *testing.T) {
		h, id, ts := setup(t)
		ts.AddRoot(ca.Cert)
		leaf := issue(t, ca, id.Signer(), "Alice")
		stored, err := h.ImportCertificate([]*x509.Certificate{leaf, newCA(t, "Extra").Cert, ca.Cert}, ts, testNow)
		if err != nil {
			t.Fatal(err)
		}
		if chain, err := h.LoadChain(); err != nil || len(stored) != 1 || len(chain) != 1 || !chain[0].Equal(leaf) {
			t.Errorf("stored %d, loaded %d (%v): want the leaf alone", len(stored), len(chain), err)
		}
	})
	t.Run("a CA certificate for one's own key is refused", func(t *testing.T) {
		h, id, ts := setup(t)
		ts.AddRoot(ca.Cert)
		asCA := leafTmpl("Alice", PeerURI(id.PeerID()))
		asCA.IsCA, asCA.KeyUsage = true, x509.KeyUsageDigitalSignature|x509.KeyUsageCertSign
		signOnly := leafTmpl("Alice", PeerURI(id.PeerID()))
		signOnly.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign
		before := snap(t, h.Dir)
		for name, c := range map[string]*x509.Certificate{
			"CA:TRUE, issued by the trusted root": craft(t, asCA, ca.Cert, id.PublicKey(), ca.Key),
			"keyCertSign, issued by the root":     craft(t, signOnly, ca.Cert, id.PublicKey(), ca.Key),
			"CA:TRUE, self-signed":                craft(t, asCA, nil, id.PublicKey(), id.Signer()),
		} {
			_, err := h.ImportCertificate([]*x509.Certificate{c}, ts, testNow)
			if !errors.Is(err, ErrCACertificate) || !strings.Contains(err.Error(), "CA:FALSE") {
				t.Errorf("%s: %v, want ErrCACertificate saying to sign with CA:FALSE", name, err)
			}
		}
		before.check(t, h.Dir)
	})
	t.Run("refusals leave the certificate alone", func(t *testing.T) {
		h, id, ts := setup(t)
		if err := ts.AddRoot(ca.Cert); err != nil {
			t.Fatal(err)
		}
		other := newKey(t)
		shortCA, _ := NewCA("Short", testNow, 2*time.Hour)
		ts.AddRoot(shortCA.Cert)
		for _, tc := range []struct {
			name  string
			chain []*x509.Certificate
			want  error
		}{
			{"another key, CA-issued", []*x509.Certificate{issue(t, ca, other, "Alice")}, ErrNotMyKey},
			{"another key, self-signed", []*x509.Certificate{selfSigned(t, other, "Alice")}, ErrNotMyKey},
			{"empty", nil, nil},
			{"wrong SAN", []*x509.Certificate{craft(t, leafTmpl("Alice", PeerURI(peerIDOf(t, pubOf(other)))), ca.Cert, id.PublicKey(), ca.Key)}, ErrPeerIDMismatch},
			{"untrusted CA", []*x509.Certificate{issue(t, newCA(t, "Evil"), id.Signer(), "Alice")}, nil},
			{"expired", []*x509.Certificate{craft(t, &x509.Certificate{Subject: pkix.Name{CommonName: "A"}, NotBefore: testNow.Add(-48 * time.Hour), NotAfter: testNow.Add(-time.Hour)}, ca.Cert, id.PublicKey(), ca.Key)}, ErrExpired},
			{"not yet valid", []*x509.Certificate{craft(t, &x509.Certificate{Subject: pkix.Name{CommonName: "A"}, NotBefore: testNow.Add(time.Hour), NotAfter: testNow.Add(48 * time.Hour)}, ca.Cert, id.PublicKey(), ca.Key)}, ErrNotYetValid},
			{"the CA certificate itself", []*x509.Certificate{ca.Cert}, ErrNotMyKey},
		} {
			before := snap(t, h.Dir)
			_, err := h.ImportCertificate(tc.chain, ts, testNow)
			if err == nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
			}
			before.check(t, h.Dir)
		}
		// Issued by the short-lived CA, checked later: the CA has expired.
		leaf := issue(t, shortCA, id.Signer(), "Alice")
		if _, err := h.ImportCertificate([]*x509.Certificate{leaf}, ts, testNow.Add(3*time.Hour)); err == nil {
			t.Error("imported after expiry")
		}
	})
	t.Run("a new self-signed certificate for the same key", func(t *testing.T) {
		h, id, ts := setup(t)
		renewed, err := NewSelfSigned(id.Signer(), "Alice Renamed", testNow, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.ImportCertificate([]*x509.Certificate{renewed}, ts, testNow); err != nil {
			t.Fatal(err)
		}
		got, _ := h.Load(nil)
		if got.Name() != "Alice Renamed" {
			t.Errorf("name %q", got.Name())
		}
	})
	t.Run("no identity", func(t *testing.T) {
		h := Home{Dir: t.TempDir()}
		ts, _ := h.TrustStore()
		if _, err := h.ImportCertificate([]*x509.Certificate{ca.Cert}, ts, testNow); !errors.Is(err, ErrNoIdentity) {
			t.Errorf("%v", err)
		}
	})
}

func TestDefaultHomeDir(t *testing.T) {
	t.Setenv("CERTCHAT_HOME", "/some/where")
	if d, err := DefaultHomeDir(); err != nil || d != "/some/where" {
		t.Errorf("with $CERTCHAT_HOME: %q %v", d, err)
	}
	t.Setenv("CERTCHAT_HOME", "")
	t.Setenv("XDG_CONFIG_HOME", "/xdg")
	if d, err := DefaultHomeDir(); err != nil || d != "/xdg/certchat" {
		t.Errorf("with $XDG_CONFIG_HOME: %q %v", d, err)
	}
	t.Setenv("XDG_CONFIG_HOME", "")
	t.Setenv("HOME", "")
	if _, err := DefaultHomeDir(); err == nil || !strings.Contains(err.Error(), "CERTCHAT_HOME") {
		t.Errorf("without any home: %v", err)
	}
}
