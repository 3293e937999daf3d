package identity

import (
	"crypto/x509"
	"testing"
)

// NameKey: names that read the same have the same key (the attacks of
// look-alike names), names that read differently do not.
func TestNameKey(t *testing.T) {
	same := []struct{ a, b, why string }{
		{"bob", "bоb", "Cyrillic о for Latin o"},
		{"alice", "aIice", "capital I for l"},
		{"alice", "alice.", "a trailing dot"},
		{"alice", "«alice»", "surrounding punctuation"},
		{"alice", " alice ✓", "a symbol and spaces"},
		{"Bob", "BOB", "case"},
		{"bob", "B0B", "digit zero for O"},
		{"bob", "ＢＯＢ", "fullwidth letters (NFKC)"},
		{"bob", "b\u200bob", "a zero-width space"},
		{"bob", "\u202ebob", "a bidi override"},
		{"Paypal", "PayPaI", "capital I for l, inside"},
		{"Maria", "Mаria", "Cyrillic а for Latin a"},
		{"jim", "jirn", "rn for m"},
		{"anna lee", "anna  lee", "inner spaces"},
	}
	for _, tc := range same {
		if !SameName(tc.a, tc.b) {
			t.Errorf("%q and %q (%s): keys %q and %q, want the same", tc.a, tc.b, tc.why, NameKey(tc.a), NameKey(tc.b))
		}
	}
	different := [][2]string{
		{"bob", "rob"},
		{"Anna", "Anne"},
		{"alice", "alicia"},
		{"alice", "al ice"},
		{"bob", "bob (2)"},
		{"bob (2)", "bob (3)"},
		{"Jan", "Jen"},
		{"ceo", "cfo"},
		{"Mallory", "Bob"},
	}
	for _, d := range different {
		if SameName(d[0], d[1]) {
			t.Errorf("%q and %q read differently, but both have the key %q", d[0], d[1], NameKey(d[0]))
		}
	}
	for _, empty := range []string{"", " ", "\u200b", "...", "\x1b"} {
		if k := NameKey(empty); k != "" {
			t.Errorf("NameKey(%q) = %q, want empty", empty, k)
		}
		if SameName(empty, empty) {
			t.Errorf("the empty name %q matches itself", empty)
		}
	}
}

// A new key whose certificate name only looks like a contact's evaluates
// as a changed key, with that contact as Previous (PROTOCOL §2 step 7).
func TestEvaluateLookAlike(t *testing.T) {
	ca := newCA(t, "Acme Root")
	for _, tc := range []struct{ contact, claim string }{
		{"bob", "bоb"},
		{"alice", "aIice"},
		{"alice", "alice."},
		{"Bob", "B0B"},
	} {
		t.Run(tc.claim, func(t *testing.T) {
			ts, _ := newStore(t)
			known := newPeer(t, tc.contact)
			must0(t, ts.Pin(known.id, tc.contact, StateTOFU, testNow))
			imp := newPeer(t, tc.claim)
			v := evaluate(t, ts, imp.chain(), imp.id, testNow)
			wantState(t, v, StateChanged, "key changed: "+tc.contact+" was known with a different key")
			if v.Previous == nil || v.Previous.PeerID != known.id {
				t.Fatalf("Previous = %+v", v.Previous)
			}
			if v.Name != tc.claim {
				t.Errorf("Name %q: the verdict shows the name the certificate claims", v.Name)
			}
			// Known by its certificate name only, and CA-issued: the same.
			ts2, _ := newStore(t)
			must0(t, ts2.AddRoot(ca.Cert))
			must0(t, ts2.Pin(known.id, "", StateTOFU, testNow))
			must0(t, ts2.NoteCertName(known.id, tc.contact))
			v = evaluate(t, ts2, []*x509.Certificate{issue(t, ca, imp.key, tc.claim)}, imp.id, testNow)
			wantState(t, v, StateChanged, "this one is issued by Acme Root")
			if !v.IssuerTrusted || v.Issuer != "Acme Root" {
				t.Errorf("issuer %q, trusted %v", v.Issuer, v.IssuerTrusted)
			}
		})
	}
	// Names that only resemble each other loosely are no clash.
	ts, _ := newStore(t)
	must0(t, ts.Pin(newPeer(t, "x").id, "bob", StateTOFU, testNow))
	must0(t, ts.Pin(newPeer(t, "y").id, "Anna", StateTOFU, testNow))
	for _, name := range []string{"rob", "Anne", "bob (2)"} {
		p := newPeer(t, name)
		wantState(t, evaluate(t, ts, p.chain(), p.id, testNow), StateUnknown, "new peer")
	}
}

// A contact's label is stable: a new certificate for the same key with
// another name changes the certificate name, never the label, so a
// contact cannot turn itself into a look-alike of another. Accepting a
// changed key hands the label on, not the new certificate's name.
func TestLabelStable(t *testing.T) {
	ts, _ := newStore(t)
	bob, mallory, pinned := newPeer(t, "bob"), newPeer(t, "mallory"), newPeer(t, "x")
	must0(t, ts.Pin(bob.id, "", StateTOFU, testNow))
	must0(t, ts.NoteCertName(bob.id, "bob"))
	must0(t, ts.Pin(mallory.id, "", StateTOFU, testNow))
	must0(t, ts.NoteCertName(mallory.id, "mallory"))
	must0(t, ts.Pin(pinned.id, "", StateTOFU, testNow))

	must0(t, ts.NoteCertName(mallory.id, "bоb")) // mallory renames to a look-alike of bob
	must0(t, ts.NoteCertName(bob.id, "bоb"))     // bob renames to a look-alike of himself
	must0(t, ts.NoteCertName(pinned.id, "Bob.")) // a key pinned unseen claims bob's name
	for _, tc := range []struct {
		p               peerFix
		label, certName string
	}{{bob, "bob", "bоb"}, {mallory, "mallory", "bоb"}, {pinned, "Bob. (2)", "Bob."}} {
		c, _, _ := ts.Contact(tc.p.id)
		if c.Label() != tc.label || c.CertName != tc.certName {
			t.Errorf("label %q, certificate name %q; want %q, %q", c.Label(), c.CertName, tc.label, tc.certName)
		}
		if v := evaluate(t, ts, tc.p.chain(), tc.p.id, testNow); v.Name != tc.label {
			t.Errorf("the verdict names %s %q, want %q", tc.p.id, v.Name, tc.label)
		}
	}
	label, err := ts.PinDistinct(newPeer(t, "z").id, "BОB", StateTOFU, testNow)
	if err != nil || label != "BОB (2)" {
		t.Errorf("PinDistinct of a look-alike: %q, %v", label, err)
	}

	newBob := newPeer(t, "bоb")
	must0(t, ts.AcceptChange(bob.id, newBob.id, "bоb", StateTOFU, testNow))
	if c, _, _ := ts.Contact(newBob.id); c.Label() != "bob" || c.CertName != "bоb" {
		t.Errorf("the accepted key reads %q (certificate %q), want bob", c.Label(), c.CertName)
	}
}
