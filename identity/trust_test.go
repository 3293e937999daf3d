package identity

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	p2pcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func openStore(t testing.TB, path string) *TrustStore {
	t.Helper()
	ts, err := OpenTrustStore(path)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func newStore(t testing.TB) (*TrustStore, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "trust.json")
	return openStore(t, path), path
}

// peerFix is a peer with a key, a self-signed certificate and its id.
type peerFix struct {
	key  ed25519.PrivateKey
	id   peer.ID
	cert *x509.Certificate
}

func newPeer(t testing.TB, name string) peerFix {
	t.Helper()
	k := newKey(t)
	return peerFix{key: k, id: peerIDOf(t, pubOf(k)), cert: selfSigned(t, k, name)}
}

func (p peerFix) chain() []*x509.Certificate { return []*x509.Certificate{p.cert} }

func evaluate(t testing.TB, ts *TrustStore, chain []*x509.Certificate, id peer.ID, now time.Time) Verdict {
	t.Helper()
	v, err := ts.Evaluate(chain, id, now)
	if err != nil {
		t.Fatalf("Evaluate: %v", err)
	}
	return v
}

func wantState(t testing.TB, v Verdict, state State, reason string) {
	t.Helper()
	if v.State != state {
		t.Errorf("state %s (%s), want %s", v.State, v.Reason, state)
	}
	if !strings.Contains(v.Reason, reason) {
		t.Errorf("reason %q, want it to contain %q", v.Reason, reason)
	}
}

func TestEvaluateStates(t *testing.T) {
	ca := newCA(t, "Acme Root")
	bob := newPeer(t, "Bob")
	bobCA := issue(t, ca, bob.key, "Bob")

	t.Run("unknown", func(t *testing.T) {
		ts, _ := newStore(t)
		v := evaluate(t, ts, bob.chain(), bob.id, testNow)
		wantState(t, v, StateUnknown, "new peer, not in your contacts")
		if v.PeerID != bob.id || v.Name != "Bob" || v.Issuer != "self-signed" || v.Previous != nil ||
			v.Fingerprint != FingerprintOf(pubOf(bob.key)) || !v.NotAfter.Equal(bob.cert.NotAfter) {
			t.Errorf("verdict %+v", v)
		}
		if v.State.Trusted() {
			t.Error("unknown is trusted")
		}
	})
	t.Run("ca-verified", func(t *testing.T) {
		ts, _ := newStore(t)
		if err := ts.AddRoot(ca.Cert); err != nil {
			t.Fatal(err)
		}
		for name, chain := range map[string][]*x509.Certificate{
			"leaf only":     {bobCA},
			"root included": {bobCA, ca.Cert},
		} {
			v := evaluate(t, ts, chain, bob.id, testNow)
			wantState(t, v, StateCAVerified, "issued by Acme Root")
			if v.Issuer != "Acme Root" || v.Name != "Bob" || !v.State.Trusted() {
				t.Errorf("%s: verdict %+v", name, v)
			}
		}
		// The self-signed certificate of the same key is not CA-verified.
		wantState(t, evaluate(t, ts, bob.chain(), bob.id, testNow), StateUnknown, "new peer")
		// Nor is one from another CA that calls itself the same.
		fake := newCA(t, "Acme Root")
		wantState(t, evaluate(t, ts, []*x509.Certificate{issue(t, fake, bob.key, "Bob"), fake.Cert}, bob.id, testNow), StateUnknown, "new peer")
	})
	t.Run("tofu", func(t *testing.T) {
		ts, _ := newStore(t)
		if err := ts.Pin(bob.id, "bobby", StateTOFU, testNow); err != nil {
			t.Fatal(err)
		}
		v := evaluate(t, ts, bob.chain(), bob.id, testNow)
		wantState(t, v, StateTOFU, "trusted on first use, fingerprint not compared")
		if v.Name != "bobby" || !v.State.Trusted() {
			t.Errorf("verdict %+v", v)
		}
	})
	t.Run("verified", func(t *testing.T) {
		ts, _ := newStore(t)
		ts.Pin(bob.id, "", StateVerified, testNow)
		v := evaluate(t, ts, bob.chain(), bob.id, testNow)
		wantState(t, v, StateVerified, "fingerprint compared")
		if v.Name != "Bob" || !v.State.Trusted() {
			t.Errorf("verdict name %q: a contact without a label shows its certificate's name", v.Name)
		}
		// A CA does not lower a verified contact, nor raise tofu above CA.
		ts.AddRoot(ca.Cert)
		wantState(t, evaluate(t, ts, []*x509.Certificate{bobCA}, bob.id, testNow), StateVerified, "fingerprint compared")
		ts.Pin(bob.id, "", StateTOFU, testNow)
		wantState(t, evaluate(t, ts, []*x509.Certificate{bobCA}, bob.id, testNow), StateCAVerified, "issued by Acme Root")
	})
	t.Run("blocked", func(t *testing.T) {
		ts, _ := newStore(t)
		ts.AddRoot(ca.Cert)
		ts.Pin(bob.id, "Bob", StateUntrusted, testNow)
		for _, chain := range [][]*x509.Certificate{bob.chain(), {bobCA}} {
			v := evaluate(t, ts, chain, bob.id, testNow)
			wantState(t, v, StateUntrusted, "you rejected this key")
			if v.State.Trusted() {
				t.Error("untrusted is trusted")
			}
		}
	})
	t.Run("expired and not yet valid", func(t *testing.T) {
		ts, _ := newStore(t)
		ts.Pin(bob.id, "Bob", StateVerified, testNow)
		ts.AddRoot(ca.Cert)
		for _, chain := range [][]*x509.Certificate{bob.chain(), {bobCA}} {
			wantState(t, evaluate(t, ts, chain, bob.id, chain[0].NotAfter.Add(time.Second)), StateExpired, "certificate has expired")
			wantState(t, evaluate(t, ts, chain, bob.id, chain[0].NotBefore.Add(-time.Second)), StateExpired, "certificate is not valid yet")
		}
		// Unknown peers too.
		carol := newPeer(t, "Carol")
		v := evaluate(t, ts, carol.chain(), carol.id, testNow.Add(2*DefaultValidity))
		wantState(t, v, StateExpired, "expired")
		if v.State.Trusted() {
			t.Error("expired is trusted")
		}
	})
	t.Run("CA root removed falls back", func(t *testing.T) {
		ts, _ := newStore(t)
		ts.AddRoot(ca.Cert)
		wantState(t, evaluate(t, ts, []*x509.Certificate{bobCA}, bob.id, testNow), StateCAVerified, "issued by")
		if err := ts.RemoveRoot(ca.Cert); err != nil {
			t.Fatal(err)
		}
		v := evaluate(t, ts, []*x509.Certificate{bobCA}, bob.id, testNow)
		wantState(t, v, StateUnknown, "new peer")
		if v.Issuer != "Acme Root" {
			t.Errorf("issuer %q: still names who issued it", v.Issuer)
		}
		ts.Pin(bob.id, "", StateTOFU, testNow)
		wantState(t, evaluate(t, ts, []*x509.Certificate{bobCA}, bob.id, testNow), StateTOFU, "trusted on first use")
		ts.Pin(bob.id, "", StateVerified, testNow)
		wantState(t, evaluate(t, ts, []*x509.Certificate{bobCA}, bob.id, testNow), StateVerified, "fingerprint compared")
	})
	t.Run("CA root expired", func(t *testing.T) {
		ts, _ := newStore(t)
		short, _ := NewCA("Short", testNow, 2*time.Hour)
		ts.AddRoot(short.Cert)
		leaf := issue(t, short, bob.key, "Bob")
		v := evaluate(t, ts, []*x509.Certificate{leaf}, bob.id, testNow)
		wantState(t, v, StateCAVerified, "issued by Short")
		// The verdict's validity: the leaf's within the CA's.
		from, until := leaf.NotBefore, leaf.NotAfter
		if short.Cert.NotBefore.After(from) {
			from = short.Cert.NotBefore
		}
		if short.Cert.NotAfter.Before(until) {
			until = short.Cert.NotAfter
		}
		if !v.ValidFrom.Equal(from) || !v.ValidUntil.Equal(until) {
			t.Errorf("verdict valid %v – %v, want %v – %v", v.ValidFrom, v.ValidUntil, from, until)
		}
		wantState(t, evaluate(t, ts, []*x509.Certificate{leaf}, bob.id, v.ValidUntil), StateCAVerified, "issued by Short")
		// The leaf never outlives the CA, so it expires with it.
		wantState(t, evaluate(t, ts, []*x509.Certificate{leaf}, bob.id, testNow.Add(3*time.Hour)), StateExpired, "expired")
	})
}

func TestEvaluateChanged(t *testing.T) {
	ca := newCA(t, "Acme Root")
	bob := newPeer(t, "Bob")
	mallory := newPeer(t, "Bob") // a new key presenting Bob's name

	t.Run("same name as a pinned contact's label", func(t *testing.T) {
		ts, _ := newStore(t)
		ts.Pin(bob.id, "Bob", StateTOFU, testNow)
		v := evaluate(t, ts, mallory.chain(), mallory.id, testNow)
		wantState(t, v, StateChanged, "key changed: Bob was known with a different key")
		if v.Previous == nil || v.Previous.PeerID != bob.id || v.Previous.State != StateTOFU {
			t.Fatalf("Previous = %+v", v.Previous)
		}
		if v.State.Trusted() {
			t.Error("changed is trusted")
		}
		// Bob himself is still fine.
		wantState(t, evaluate(t, ts, bob.chain(), bob.id, testNow), StateTOFU, "")
	})
	t.Run("same name as a verified contact's certificate name, any case", func(t *testing.T) {
		ts, _ := newStore(t)
		ts.Pin(bob.id, "my friend", StateVerified, testNow)
		ts.NoteCertName(bob.id, "bob")
		v := evaluate(t, ts, mallory.chain(), mallory.id, testNow)
		wantState(t, v, StateChanged, "my friend was known with a different key")
		if v.Previous == nil || v.Previous.PeerID != bob.id {
			t.Fatalf("Previous = %+v", v.Previous)
		}
	})
	t.Run("CA-issued new key under a known name", func(t *testing.T) {
		ts, _ := newStore(t)
		ts.AddRoot(ca.Cert)
		ts.Pin(bob.id, "Bob", StateTOFU, testNow)
		v := evaluate(t, ts, []*x509.Certificate{issue(t, ca, mallory.key, "Bob")}, mallory.id, testNow)
		wantState(t, v, StateChanged, "this one is issued by Acme Root")
		if v.Previous == nil || v.Previous.PeerID != bob.id {
			t.Fatalf("Previous = %+v", v.Previous)
		}
	})
	t.Run("names that only look the same", func(t *testing.T) {
		ts, _ := newStore(t)
		ts.Pin(bob.id, "Bob", StateTOFU, testNow)
		key := newKey(t)
		id := peerIDOf(t, pubOf(key))
		// Invisible and surrounding characters are dropped when the name is
		// shown, so they must not hide a changed key either.
		for _, name := range []string{"Bob\u200b", "B\u200bob", "\u202eBob", " Bob", "Bob ", "BOB", "Bob\x1b"} {
			c := craft(t, leafTmpl(name, PeerURI(id)), nil, pubOf(key), key)
			v := evaluate(t, ts, []*x509.Certificate{c}, id, testNow)
			if v.State != StateChanged {
				t.Errorf("certificate name %q, shown as %q: state %s, want changed", name, v.Name, v.State)
			}
		}
	})
	t.Run("no conflict with rejected or replaced contacts, or other names", func(t *testing.T) {
		ts, _ := newStore(t)
		ts.Pin(bob.id, "Bob", StateUntrusted, testNow)
		wantState(t, evaluate(t, ts, mallory.chain(), mallory.id, testNow), StateUnknown, "new peer")
		carol := newPeer(t, "Carol")
		wantState(t, evaluate(t, ts, carol.chain(), carol.id, testNow), StateUnknown, "new peer")
		empty := newPeer(t, "x")
		ts.Pin(empty.id, "", StateTOFU, testNow)
		for _, cn := range []string{"", " ", "\u200b", "(no name)"} {
			noName := craft(t, leafTmpl(cn), nil, pubOf(carol.key), carol.key)
			wantState(t, evaluate(t, ts, []*x509.Certificate{noName}, carol.id, testNow), StateUnknown, "new peer")
		}
	})
	t.Run("accepting the change", func(t *testing.T) {
		ts, _ := newStore(t)
		ts.Pin(bob.id, "Bob", StateVerified, testNow)
		if err := ts.AcceptChange(bob.id, mallory.id, "Bob", StateTOFU, testNow.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		v := evaluate(t, ts, bob.chain(), bob.id, testNow)
		wantState(t, v, StateUntrusted, "this key was replaced by a newer one ("+ShortID(mallory.id)+")")
		v = evaluate(t, ts, mallory.chain(), mallory.id, testNow)
		wantState(t, v, StateTOFU, "trusted on first use")
		if v.Name != "Bob" {
			t.Errorf("the new key should take over the label: %q", v.Name)
		}
		old, _, _ := ts.Contact(bob.id)
		if old.State != StateUntrusted || old.ReplacedBy != mallory.id {
			t.Errorf("old contact %+v", old)
		}
		// The name now means the new key.
		c, err := ts.Resolve("bob")
		if err != nil || c.PeerID != mallory.id {
			t.Errorf("Resolve(bob) = %s, %v; want the new key", c.PeerID, err)
		}
		// Re-pinning the old key clears the replacement.
		ts.Pin(bob.id, "", StateTOFU, testNow)
		if c, _, _ := ts.Contact(bob.id); c.ReplacedBy != "" {
			t.Error("ReplacedBy kept")
		}
		if err := ts.AcceptChange(bob.id, mallory.id, "Bob", StateUntrusted, testNow); err == nil {
			t.Error("accepted a change as untrusted")
		}
		if err := ts.AcceptChange(newPeer(t, "x").id, mallory.id, "Bob", StateTOFU, testNow); !errors.Is(err, ErrUnknownContact) {
			t.Errorf("change of an unknown contact: %v", err)
		}
	})
}

func TestEvaluateErrors(t *testing.T) {
	ts, _ := newStore(t)
	bob := newPeer(t, "Bob")
	carol := newPeer(t, "Carol")
	ts.Pin(bob.id, "Bob", StateVerified, testNow)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecCert := craft(t, leafTmpl("Bob"), nil, &ec.PublicKey, ec)
	wrongSAN := craft(t, leafTmpl("Bob", PeerURI(carol.id)), nil, pubOf(bob.key), bob.key)
	for _, tc := range []struct {
		name  string
		chain []*x509.Certificate
		id    peer.ID
		want  error
	}{
		{"no certificate", nil, bob.id, nil},
		{"certificate for another peer", carol.chain(), bob.id, ErrPeerIDMismatch},
		{"SAN names another peer", []*x509.Certificate{wrongSAN}, bob.id, ErrPeerIDMismatch},
		{"ECDSA", []*x509.Certificate{ecCert}, bob.id, ErrNotEd25519},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := ts.Evaluate(tc.chain, tc.id, testNow)
			if err == nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if v.State != "" {
				t.Errorf("a verdict with an error: %+v", v)
			}
		})
	}
}

func TestTrustStoreContacts(t *testing.T) {
	ts, path := newStore(t)
	if cs, err := ts.Contacts(); err != nil || len(cs) != 0 {
		t.Fatalf("empty store: %v %v", cs, err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Error("reading created the file")
	}
	a, b, c := newPeer(t, "A"), newPeer(t, "B"), newPeer(t, "C")
	must0(t, ts.Pin(a.id, "zed", StateTOFU, testNow))
	must0(t, ts.Pin(b.id, "Amy", StateVerified, testNow))
	must0(t, ts.Pin(c.id, "", StateTOFU, testNow))
	must0(t, ts.NoteCertName(c.id, "Mike"))
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("trust.json mode %v", st.Mode().Perm())
	}

	cs, _ := ts.Contacts()
	var labels []string
	for _, c := range cs {
		labels = append(labels, c.Label())
	}
	if strings.Join(labels, ",") != "Amy,Mike,zed" {
		t.Errorf("sorted by label: %v", labels)
	}

	// Empty name keeps the label; a state change updates the time.
	must0(t, ts.Pin(a.id, "", StateVerified, testNow.Add(time.Hour)))
	got, ok, _ := ts.Contact(a.id)
	if !ok || got.Name != "zed" || got.State != StateVerified || !got.Updated.Equal(testNow.Add(time.Hour)) || !got.Added.Equal(testNow) {
		t.Errorf("after re-pin: %+v", got)
	}

	for s, want := range map[string]peer.ID{"ZED": a.id, "amy": b.id, "mike": c.id, a.id.String(): a.id} {
		got, err := ts.Resolve(s)
		if err != nil || got.PeerID != want {
			t.Errorf("Resolve(%q) = %s, %v", s, got.PeerID, err)
		}
	}
	d := newPeer(t, "D")
	if got, err := ts.Resolve(d.id.String()); err != nil || got.PeerID != d.id || got.State != "" {
		t.Errorf("Resolve(new id) = %+v, %v", got, err)
	}
	if _, err := ts.Resolve("nobody"); !errors.Is(err, ErrUnknownContact) {
		t.Errorf("Resolve(nobody): %v", err)
	}
	must0(t, ts.Pin(d.id, "Amy", StateTOFU, testNow))
	if _, err := ts.Resolve("amy"); err == nil || !strings.Contains(err.Error(), "2 contacts") {
		t.Errorf("ambiguous name: %v", err)
	}
	// Names are matched by NameKey: a trailing dot or a look-alike letter
	// reaches the same contact, and a contact whose name only looks like
	// another's makes the name ambiguous rather than reachable by mistake.
	if got, err := ts.Resolve("Zed."); err != nil || got.PeerID != a.id {
		t.Errorf("Resolve(Zed.) = %s, %v", got.PeerID, err)
	}
	e := newPeer(t, "E")
	must0(t, ts.Pin(e.id, "mіke", StateTOFU, testNow)) // Cyrillic і, as an old trust.json may hold
	if _, err := ts.Resolve("mike"); err == nil || !strings.Contains(err.Error(), "2 contacts") {
		t.Errorf("a look-alike of mike: %v, want the name to be ambiguous", err)
	}

	// Refusals.
	for _, st := range []State{StateCAVerified, StateChanged, StateExpired, StateUnknown, "bogus"} {
		if err := ts.Pin(a.id, "", st, testNow); err == nil {
			t.Errorf("pinned as %q", st)
		}
	}
	if err := ts.Pin(a.id, "evil\x1b[2J", StateTOFU, testNow); err == nil {
		t.Error("pinned with a control character in the name")
	}
	if err := ts.Pin("", "x", StateTOFU, testNow); err == nil {
		t.Error("pinned an empty id")
	}
	if err := ts.Remove(newPeer(t, "E").id); !errors.Is(err, ErrUnknownContact) {
		t.Errorf("Remove(unknown): %v", err)
	}
	must0(t, ts.Remove(a.id))
	if _, ok, _ := ts.Contact(a.id); ok {
		t.Error("removed contact still there")
	}
	// NoteCertName of an unknown peer does nothing.
	must0(t, ts.NoteCertName(newPeer(t, "F").id, "F"))

	// What was written reads back the same in a fresh instance.
	fresh := openStore(t, path)
	c1, _ := ts.Contacts()
	c2, _ := fresh.Contacts()
	if fmt.Sprint(c1) != fmt.Sprint(c2) {
		t.Errorf("reload differs:\n%v\n%v", c1, c2)
	}
}

func must0(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestTrustStoreRoots(t *testing.T) {
	ts, path := newStore(t)
	ca1, ca2 := newCA(t, "One"), newCA(t, "Two")
	must0(t, ts.AddRoot(ca1.Cert))
	must0(t, ts.AddRoot(ca1.Cert)) // idempotent
	must0(t, ts.AddRoot(ca2.Cert))
	roots, _ := ts.Roots()
	if len(roots) != 2 {
		t.Fatalf("%d roots", len(roots))
	}
	if err := ts.AddRoot(selfSigned(t, newKey(t), "NotCA")); err == nil {
		t.Error("a leaf added as a root")
	}
	if err := ts.RemoveRoot(newCA(t, "Three").Cert); err == nil {
		t.Error("removed a root that was not there")
	}
	must0(t, ts.RemoveRoot(ca1.Cert))
	roots, _ = openStore(t, path).Roots()
	if len(roots) != 1 || !roots[0].Equal(ca2.Cert) {
		t.Errorf("after remove: %d roots", len(roots))
	}
	// Roots() returns a copy.
	roots[0] = nil
	if r, _ := ts.Roots(); r[0] == nil {
		t.Error("Roots exposes the store's slice")
	}
}

// FindCA names a trusted CA as people do: by the name `chat trust list`
// shows (any case) or by its fingerprint (whole, a first group or more,
// with or without dashes); two of one name are told apart by
// fingerprint, and a CA not trusted (or removed) is not found.
func TestTrustStoreFindCA(t *testing.T) {
	ts, _ := newStore(t)
	acme, other, twin := newCA(t, "Acme Root"), newCA(t, "Other CA"), newCA(t, "Twin")
	twin2 := newCA(t, "twin")
	for _, c := range []*x509.Certificate{acme.Cert, other.Cert, twin.Cert, twin2.Cert} {
		must0(t, ts.AddRoot(c))
	}
	fp := func(c *x509.Certificate) string { return FingerprintOf(c.PublicKey.(ed25519.PublicKey)).String() }
	for _, tc := range []struct {
		in      string
		want    *x509.Certificate
		wantErr string
	}{
		{"Acme Root", acme.Cert, ""},
		{"acme root", acme.Cert, ""},
		{fp(acme.Cert), acme.Cert, ""},
		{fp(acme.Cert)[:7], acme.Cert, ""},
		{strings.ToLower(strings.ReplaceAll(fp(other.Cert)[:15], "-", "")), other.Cert, ""},
		{fp(twin2.Cert)[:7], twin2.Cert, ""},
		{"Twin", nil, "2 CAs you trust are called \"Twin\": name one by its fingerprint"},
		{"Acme", nil, "no CA you trust is called \"Acme\""},
		{fp(acme.Cert)[:6], nil, "no CA you trust"}, // too short to name one
		{"", nil, "no CA you trust"},
	} {
		got, err := ts.FindCA(tc.in)
		switch {
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("FindCA(%q): %v, want an error with %q", tc.in, err, tc.wantErr)
		case tc.wantErr != "" && strings.Contains(tc.wantErr, "no CA") && !errors.Is(err, ErrUnknownCA):
			t.Errorf("FindCA(%q): %v is not ErrUnknownCA", tc.in, err)
		case tc.wantErr == "" && (err != nil || !got.Equal(tc.want)):
			t.Errorf("FindCA(%q): %v, %v; want %s", tc.in, got.Subject, err, tc.want.Subject)
		}
	}
	must0(t, ts.RemoveRoot(acme.Cert))
	if _, err := ts.FindCA("Acme Root"); !errors.Is(err, ErrUnknownCA) {
		t.Errorf("a removed CA: %v", err)
	}
}

// TestTrustStoreSharedFile: two instances on one file see each other's writes.
func TestTrustStoreSharedFile(t *testing.T) {
	a, path := newStore(t)
	b := openStore(t, path)
	ca := newCA(t, "Org")
	bob, carol := newPeer(t, "Bob"), newPeer(t, "Carol")
	bobCA := issue(t, ca, bob.key, "Bob")

	must0(t, a.Pin(bob.id, "Bob", StateTOFU, testNow))
	if c, ok, err := b.Contact(bob.id); err != nil || !ok || c.Name != "Bob" {
		t.Fatalf("b does not see a's pin: %v %v", ok, err)
	}
	must0(t, b.Pin(carol.id, "Carol", StateVerified, testNow))
	must0(t, b.Pin(bob.id, "", StateVerified, testNow))
	wantState(t, evaluate(t, a, bob.chain(), bob.id, testNow), StateVerified, "")
	if cs, _ := a.Contacts(); len(cs) != 2 {
		t.Errorf("a sees %d contacts", len(cs))
	}
	must0(t, a.Remove(bob.id))
	wantState(t, evaluate(t, b, bob.chain(), bob.id, testNow), StateUnknown, "")
	must0(t, b.AddRoot(ca.Cert))
	wantState(t, evaluate(t, a, []*x509.Certificate{bobCA}, bob.id, testNow), StateCAVerified, "issued by Org")
	must0(t, a.RemoveRoot(ca.Cert))
	wantState(t, evaluate(t, b, []*x509.Certificate{bobCA}, bob.id, testNow), StateUnknown, "")

	// A deleted file is an empty store, for readers and writers.
	os.Remove(path)
	if cs, err := a.Contacts(); err != nil || len(cs) != 0 {
		t.Errorf("after delete: %d contacts, %v", len(cs), err)
	}
	must0(t, b.Pin(bob.id, "", StateTOFU, testNow))
	if cs, _ := a.Contacts(); len(cs) != 1 {
		t.Errorf("after delete and pin: %d contacts, want only the new one", len(cs))
	}
}

// TestTrustStoreContactSince: look-ups that accept the file as last
// compared with the disk do not read it again (a group message's copies
// cost one stat); one whose since is after another process's change sees
// it, and changes made through the same store are seen at once.
func TestTrustStoreContactSince(t *testing.T) {
	a, path := newStore(t)
	b := openStore(t, path)
	bob, carol := newPeer(t, "Bob"), newPeer(t, "Carol")
	must0(t, a.Pin(bob.id, "Bob", StateTOFU, testNow))
	if c, ok, err := b.ContactSince(bob.id, time.Now()); err != nil || !ok || c.State != StateTOFU {
		t.Fatalf("b does not see a's pin: %+v %v %v", c, ok, err)
	}
	checked := time.Now()
	must0(t, a.Pin(bob.id, "Bob", StateUntrusted, testNow)) // another process's change
	if c, _, err := b.ContactSince(bob.id, checked.Add(-time.Hour)); err != nil || c.State != StateTOFU {
		t.Errorf("a look-up content with the last look read the file again: %+v %v", c, err)
	}
	if c, _, err := b.ContactSince(bob.id, time.Now()); err != nil || c.State != StateUntrusted {
		t.Errorf("a look-up since the change does not see it: %+v %v", c, err)
	}
	must0(t, b.Pin(carol.id, "Carol", StateVerified, testNow)) // through b itself
	if c, ok, err := b.ContactSince(carol.id, time.Time{}); err != nil || !ok || c.State != StateVerified {
		t.Errorf("b's own change is not seen at once: %+v %v %v", c, ok, err)
	}
}

// TestTrustStoreGenerationSince: the count moves with every change to the
// contacts or roots, through this store at once and another process's
// as soon as a look since it is asked for, and stays while nothing changes.
func TestTrustStoreGenerationSince(t *testing.T) {
	a, path := newStore(t)
	b := openStore(t, path)
	bob := newPeer(t, "Bob")
	gen := func(s *TrustStore, since time.Time) uint64 {
		t.Helper()
		g, err := s.GenerationSince(since)
		must0(t, err)
		return g
	}
	g0 := gen(b, time.Now())
	if g := gen(b, time.Now()); g != g0 {
		t.Fatalf("nothing changed, the generation moved %d → %d", g0, g)
	}
	must0(t, b.Pin(bob.id, "Bob", StateTOFU, testNow))
	g1 := gen(b, time.Time{})
	if g1 == g0 {
		t.Fatal("b's own change did not move its generation")
	}
	checked := time.Now()
	must0(t, a.Pin(bob.id, "Bob", StateUntrusted, testNow)) // another process's change
	if g := gen(b, checked.Add(-time.Hour)); g != g1 {
		t.Errorf("a look content with the last one read the file again: %d → %d", g1, g)
	}
	g2 := gen(b, time.Now())
	if g2 == g1 {
		t.Fatal("a look since another process's change does not see it")
	}
	ca, err := NewCA("Acme Root", testNow, time.Hour)
	must0(t, err)
	must0(t, b.AddRoot(ca.Cert))
	g3 := gen(b, time.Time{})
	if g3 == g2 {
		t.Fatal("a root added did not move the generation")
	}
	must0(t, b.RemoveRoot(ca.Cert))
	if g := gen(b, time.Time{}); g == g3 {
		t.Fatal("a root removed did not move the generation")
	}
}

// TestTrustStoreStaleCache: a replaced file can look unchanged (same inode,
// size and modification time); a write must not start from a stale copy.
func TestTrustStoreStaleCache(t *testing.T) {
	a, path := newStore(t)
	bob, carol := newPeer(t, "Bob"), newPeer(t, "Carol")
	must0(t, a.Pin(bob.id, "aaaa", StateTOFU, testNow))
	st, _ := os.Stat(path)

	// Another writer renames the contact to a name of the same length; the
	// file ends up with the same inode, size and time.
	other := filepath.Join(t.TempDir(), "trust.json")
	os.WriteFile(other, readFile(t, path), 0o600)
	must0(t, openStore(t, other).Pin(bob.id, "bbbb", StateTOFU, testNow))
	newData := readFile(t, other)
	if len(newData) != int(st.Size()) {
		t.Fatal("test bug: sizes differ")
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	must0(t, err)
	f.WriteAt(newData, 0)
	f.Close()
	must0(t, os.Chtimes(path, st.ModTime(), st.ModTime()))

	must0(t, a.Pin(carol.id, "Carol", StateTOFU, testNow))
	c, _, _ := openStore(t, path).Contact(bob.id)
	if c.Name != "bbbb" {
		t.Errorf("the other writer's change was lost: name %q", c.Name)
	}
}

// TestTrustStoreConcurrentPins: many goroutines on two instances (as a
// daemon and a command would be) lose no update.
func TestTrustStoreConcurrentPins(t *testing.T) {
	a, path := newStore(t)
	b := openStore(t, path)
	const perStore = 24
	ids := make([]peer.ID, 2*perStore)
	for i := range ids {
		ids[i] = peerIDOf(t, pubOf(newKey(t)))
	}
	var wg sync.WaitGroup
	for i, id := range ids {
		ts := a
		if i%2 == 1 {
			ts = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := ts.Pin(id, fmt.Sprintf("peer%02d", i), StateTOFU, testNow); err != nil {
				t.Error(err)
			}
			// Interleave reads, which refresh the cache.
			if _, err := ts.Contacts(); err != nil {
				t.Error(err)
			}
			if i%3 == 0 {
				if err := ts.Pin(id, "", StateVerified, testNow); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	for name, ts := range map[string]*TrustStore{"a": a, "b": b, "fresh": openStore(t, path)} {
		cs, err := ts.Contacts()
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) != len(ids) {
			t.Errorf("%s: %d contacts, want %d", name, len(cs), len(ids))
		}
		for i, id := range ids {
			c, ok, _ := ts.Contact(id)
			want := StateTOFU
			if i%3 == 0 {
				want = StateVerified
			}
			if !ok || c.State != want || c.Name != fmt.Sprintf("peer%02d", i) {
				t.Errorf("%s: contact %d = %+v", name, i, c)
			}
		}
	}
	if names := dirNames(t, filepath.Dir(path)); len(names) != 2 { // trust.json and its lock
		t.Errorf("left over: %v", names)
	}
}

func TestTrustStoreCorruptFile(t *testing.T) {
	bob := newPeer(t, "Bob")
	ca1, ca2 := newCA(t, "One"), newCA(t, "Two")
	_, secp, err := p2pcrypto.GenerateSecp256k1Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	secpID, _ := peer.IDFromPublicKey(secp)
	for name, content := range map[string]string{
		"replaced by a non-Ed25519 peer": `{"version":1,"contacts":[{"peer_id":"` + bob.id.String() + `","state":"untrusted","replaced_by":"` + secpID.String() + `"}],"roots":[]}`,
		"two certificates in one root":   `{"version":1,"contacts":[],"roots":[` + jsonString(string(EncodeCertificatesPEM(ca1.Cert, ca2.Cert))) + `]}`,
		"not JSON":                       "garbage",
		"truncated":                      `{"version":1,"contacts":[{"peer_id":"`,
		"empty":                          "",
		"unknown version":                `{"version":2,"contacts":[],"roots":[]}`,
		"bad peer id":                    `{"version":1,"contacts":[{"peer_id":"QmNope","state":"tofu"}],"roots":[]}`,
		"bad state":                      `{"version":1,"contacts":[{"peer_id":"` + bob.id.String() + `","state":"ca-verified"}],"roots":[]}`,
		"duplicate":                      `{"version":1,"contacts":[{"peer_id":"` + bob.id.String() + `","state":"tofu"},{"peer_id":"` + bob.id.String() + `","state":"tofu"}],"roots":[]}`,
		"unknown field":                  `{"version":1,"contacts":[],"roots":[],"extra":true}`,
		"leaf as root":                   `{"version":1,"contacts":[],"roots":[` + jsonString(string(EncodeCertificatesPEM(bob.cert))) + `]}`,
		"trailing brace":                 `{"version":1,"contacts":[],"roots":[]}}`,
		"trailing junk":                  `{"version":1,"contacts":[],"roots":[]} x`,
		"two objects":                    `{"version":1,"contacts":[],"roots":[]}{"version":1}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "trust.json")
			os.WriteFile(path, []byte(content), 0o600)
			if _, err := OpenTrustStore(path); err == nil || !strings.Contains(err.Error(), path) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("OpenTrustStore: %v; want ErrCorrupt naming the file", err)
			}
			if _, err := parseTrustFile([]byte(content)); !errors.Is(err, ErrCorrupt) {
				t.Errorf("ParseTrustFile: %v", err)
			}
		})
	}
	t.Run("corrupted under an open store", func(t *testing.T) {
		ts, path := newStore(t)
		must0(t, ts.Pin(bob.id, "Bob", StateTOFU, testNow))
		time.Sleep(10 * time.Millisecond) // a different modification time
		bad := []byte(`{"version":1,"contacts":[{"peer_id":"` + bob.id.String() + `"`)
		os.WriteFile(path, bad, 0o600)
		ca := newCA(t, "X")
		for name, op := range map[string]func() error{
			"Pin":         func() error { return ts.Pin(newPeer(t, "C").id, "C", StateTOFU, testNow) },
			"Remove":      func() error { return ts.Remove(bob.id) },
			"AddRoot":     func() error { return ts.AddRoot(ca.Cert) },
			"Contacts":    func() error { _, err := ts.Contacts(); return err },
			"Evaluate":    func() error { _, err := ts.Evaluate(bob.chain(), bob.id, testNow); return err },
			"NoteName":    func() error { return ts.NoteCertName(bob.id, "B") },
			"AcceptChang": func() error { return ts.AcceptChange(bob.id, newPeer(t, "D").id, "", StateTOFU, testNow) },
		} {
			if err := op(); !errors.Is(err, ErrCorrupt) {
				t.Errorf("%s: %v, want ErrCorrupt", name, err)
			}
			if !bytes.Equal(readFile(t, path), bad) {
				t.Fatalf("%s overwrote the corrupted file", name)
			}
		}
	})
}

func jsonString(s string) string {
	return `"` + strings.ReplaceAll(strings.ReplaceAll(s, "\\", "\\\\"), "\n", "\\n") + `"`
}

func TestContactLabel(t *testing.T) {
	id := newPeer(t, "X").id
	for _, tc := range []struct {
		c    Contact
		want string
	}{
		{Contact{PeerID: id, Name: "bob", CertName: "Robert"}, "bob"},
		{Contact{PeerID: id, CertName: "Robert"}, "Robert"},
		{Contact{PeerID: id, CertName: "\x1b[31mRob"}, "[31mRob"},
		{Contact{PeerID: id}, ShortID(id)},
	} {
		if got := tc.c.Label(); got != tc.want {
			t.Errorf("Label(%+v) = %q, want %q", tc.c, got, tc.want)
		}
	}
	s := ShortID(id)
	if !strings.HasPrefix(s, id.String()[:6]) || !strings.HasSuffix(s, id.String()[len(id.String())-6:]) || !strings.Contains(s, "…") {
		t.Errorf("ShortID %q", s)
	}
	if ShortID(peer.ID("ab")) == "" {
		t.Error("ShortID of a short id")
	}
}

// A key pinned before its certificate was seen (its first message came
// through a relay) whose certificate then claims a contact's name gets a
// label of its own: two contacts never read the same. A contact the user
// named keeps its name, and a certificate name nobody else uses is the
// label as before.
func TestNoteCertNameNeverDuplicatesALabel(t *testing.T) {
	ts, _ := newStore(t)
	bob, imp, imp2, named, other := newPeer(t, "bob"), newPeer(t, "bob"), newPeer(t, "BOB"), newPeer(t, "x"), newPeer(t, "carol")
	must0(t, ts.Pin(bob.id, "", StateTOFU, testNow))
	must0(t, ts.NoteCertName(bob.id, "bob"))
	for _, p := range []peerFix{imp, imp2, named, other} {
		must0(t, ts.Pin(p.id, "", StateTOFU, testNow))
	}
	must0(t, ts.Pin(named.id, "robert", StateTOFU, testNow))
	must0(t, ts.NoteCertName(imp.id, "bob"))
	must0(t, ts.NoteCertName(imp2.id, "BOB"))
	must0(t, ts.NoteCertName(named.id, "bob"))
	must0(t, ts.NoteCertName(other.id, "carol"))
	must0(t, ts.NoteCertName(bob.id, "bob")) // bob himself again: unchanged
	for _, tc := range []struct {
		p    peerFix
		want string
	}{{bob, "bob"}, {imp, "bob (2)"}, {imp2, "BOB (3)"}, {named, "robert"}, {other, "carol"}} {
		c, _, _ := ts.Contact(tc.p.id)
		if c.Label() != tc.want {
			t.Errorf("%s: label %q, want %q", tc.p.id, c.Label(), tc.want)
		}
	}
}

// PinDistinct labels a new contact with the first label no other contact
// reads, chosen under the store's lock; pinning the same key again keeps
// its own label.
func TestPinDistinct(t *testing.T) {
	ts, _ := newStore(t)
	a, b, c := newPeer(t, "a"), newPeer(t, "b"), newPeer(t, "c")
	for _, tc := range []struct {
		p    peerFix
		want string
	}{{a, "bob"}, {b, "bob (2)"}, {c, "bob (3)"}, {b, "bob (2)"}} {
		label, err := ts.PinDistinct(tc.p.id, "bob", StateTOFU, testNow)
		if err != nil || label != tc.want {
			t.Fatalf("PinDistinct: %q, %v; want %q", label, err, tc.want)
		}
		if got, _, _ := ts.Contact(tc.p.id); got.Label() != tc.want || got.State != StateTOFU {
			t.Fatalf("stored %q %s", got.Label(), got.State)
		}
	}
	if _, err := ts.PinDistinct(a.id, "bad\x00name", StateTOFU, testNow); err == nil {
		t.Fatal("a bad name was accepted")
	}
}

func TestRename(t *testing.T) {
	ts, _ := newStore(t)
	a, b, c := newPeer(t, "a"), newPeer(t, "b"), newPeer(t, "c")
	for _, p := range []struct {
		f    peerFix
		name string
	}{{a, "alice"}, {b, "bob"}} {
		if err := ts.Pin(p.f.id, p.name, StateTOFU, testNow); err != nil {
			t.Fatal(err)
		}
	}
	if err := ts.Rename(b.id, "Robert", testNow); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := ts.Contact(b.id); got.Label() != "Robert" || got.State != StateTOFU {
		t.Fatalf("after rename: %q %s", got.Label(), got.State)
	}
	// Its own name again, other case: fine.
	if err := ts.Rename(b.id, "robert", testNow); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"alice", "ALICE", "аlice" /* Cyrillic а */, "alice.", " alice ", "aIice"} {
		if err := ts.Rename(b.id, name, testNow); !errors.Is(err, ErrNameTaken) {
			t.Errorf("rename to %q: %v, want ErrNameTaken", name, err)
		}
	}
	for _, name := range []string{"", "   ", "...", "bad\x00name", strings.Repeat("x", MaxNameLength+1)} {
		if err := ts.Rename(b.id, name, testNow); err == nil {
			t.Errorf("rename to %q accepted", name)
		}
	}
	if err := ts.Rename(c.id, "carol", testNow); !errors.Is(err, ErrUnknownContact) {
		t.Errorf("rename of a stranger: %v", err)
	}
	if got, _, _ := ts.Contact(b.id); got.Label() != "robert" {
		t.Fatalf("a refused rename changed the label: %q", got.Label())
	}
}

func TestPinUnique(t *testing.T) {
	ts, _ := newStore(t)
	a, b := newPeer(t, "a"), newPeer(t, "b")
	if err := ts.PinUnique(a.id, "alice", StateTOFU, testNow); err != nil {
		t.Fatal(err)
	}
	if err := ts.PinUnique(b.id, "Alice", StateVerified, testNow); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("a second alice: %v, want ErrNameTaken", err)
	}
	if _, ok, _ := ts.Contact(b.id); ok {
		t.Fatal("the refused contact was added")
	}
	// Its own name, and no name, are fine.
	for _, name := range []string{"alice", ""} {
		if err := ts.PinUnique(a.id, name, StateVerified, testNow); err != nil {
			t.Fatalf("%q: %v", name, err)
		}
	}
}

// Two contacts that read the same (written by Pin, or by an older
// version) are told apart by peer ID: the name resolves to neither.
func TestResolveAmbiguousName(t *testing.T) {
	ts, _ := newStore(t)
	a, b := newPeer(t, "a"), newPeer(t, "b")
	for _, p := range []peerFix{a, b} {
		if err := ts.Pin(p.id, "bob", StateTOFU, testNow); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ts.Resolve("bob"); err == nil || !strings.Contains(err.Error(), `2 contacts are called "bob": use the peer id`) {
		t.Fatalf("Resolve: %v", err)
	}
	if c, err := ts.Resolve(a.id.String()); err != nil || c.PeerID != a.id {
		t.Fatalf("Resolve by peer id: %v %v", c, err)
	}
}

// A name may decode as a peer ID that embeds no key: the end of a real
// one, "16FbzZ", is an identity multihash of two bytes, and so is any
// "1fx…" of four characters. Such text names no peer: Resolve takes it
// as a name, and says it is neither when no contact is called so. A real
// (Ed25519) peer ID is still taken as one, before any name.
func TestResolveNameThatDecodesAsKeylessID(t *testing.T) {
	for _, s := range []string{"16FbzZ", "1fxs", "1fxt"} {
		id, err := peer.Decode(s)
		if err != nil {
			t.Fatalf("%q no longer decodes as a peer ID (%v): pick another", s, err)
		}
		if _, err := KeyFromPeerID(id); err == nil {
			t.Fatalf("%q embeds a key: pick another", s)
		}
	}
	ts, _ := newStore(t)
	a, b, c, d := newPeer(t, "A"), newPeer(t, "B"), newPeer(t, "C"), newPeer(t, "D")
	must0(t, ts.Pin(a.id, "16FbzZ", StateTOFU, testNow))
	must0(t, ts.Pin(b.id, "1fxs", StateVerified, testNow))
	// A name that is another peer's ID does not hide that peer.
	must0(t, ts.Pin(c.id, d.id.String(), StateTOFU, testNow))
	for _, tc := range []struct {
		in      string
		want    peer.ID
		errWant []string // the error says each, and is ErrUnknownContact
	}{
		{in: "16FbzZ", want: a.id},
		{in: "16fbzz", want: a.id}, // names are compared without case
		{in: "1fxs", want: b.id},
		{in: "1FXS", want: b.id},
		{in: a.id.String(), want: a.id},
		{in: c.id.String(), want: c.id},
		{in: d.id.String(), want: d.id},
		{in: "1fxt", errWant: []string{`no such contact "1fxt"`, "not a valid peer id", "does not embed a key"}},
		{in: "nobody", errWant: []string{`no such contact "nobody"`}},
	} {
		got, err := ts.Resolve(tc.in)
		if tc.errWant == nil {
			if err != nil || got.PeerID != tc.want {
				t.Errorf("Resolve(%q) = %s, %v; want %s", tc.in, got.PeerID, err, tc.want)
			}
			continue
		}
		if !errors.Is(err, ErrUnknownContact) {
			t.Errorf("Resolve(%q) = %s, %v; want ErrUnknownContact", tc.in, got.PeerID, err)
			continue
		}
		for _, w := range tc.errWant {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Resolve(%q): %q does not say %q", tc.in, err, w)
			}
		}
	}
}
