package e2e_test

// Every check of verify.go and resume.go, each with a test that makes it
// fail with its own error. The adversarial cases (adversarial_test.go)
// cover the same checks from an attacker's side.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestSession is the good case: both sides verified, a message and its
// receipt, a proper close, and what Info reports.
func TestSession(t *testing.T) {
	w := hosts(t)
	a, b := pairAB(t, w, nil, nil)
	c, s := run{client: a, server: b}.do(t)
	checkSide(t, "client", c, nil, nil)
	checkSide(t, "server", s, nil, []string{"hello"})
	if len(c.frames) != 1 || c.frames[0].Type != e2e.FrameReceipt {
		t.Fatalf("client frames %v, want one receipt", c.frames)
	}
	ci, si := c.sess.Info(), s.sess.Info()
	if ci.Version != tls.VersionTLS13 || ci.Group != tls.X25519MLKEM768 || ci.Protocol != e2e.ALPNChat || ci.Resumed {
		t.Errorf("client info %+v", ci)
	}
	if ci.SessionID == "" || ci.SessionID != si.SessionID {
		t.Errorf("session ids %q and %q differ", ci.SessionID, si.SessionID)
	}
	if ci.VersionName() != "TLS 1.3" || ci.GroupName() != "X25519MLKEM768" || ci.SuiteName() == "" {
		t.Errorf("names %s %s %s", ci.VersionName(), ci.GroupName(), ci.SuiteName())
	}
	if c.sess.PeerID() != w.bob.h.ID() || s.sess.PeerID() != w.alice.h.ID() {
		t.Errorf("peers %s and %s", c.sess.PeerID(), s.sess.PeerID())
	}
	if c.sess.Peer().State != identity.StateTOFU || c.sess.Peer().Fingerprint != w.bob.id.Fingerprint() {
		t.Errorf("client verdict %+v", c.sess.Peer())
	}
	if got := c.sess.PeerCertificates(); len(got) != 1 || !got[0].Equal(w.bob.id.Certificate()) {
		t.Errorf("client sees certificates %v", got)
	}
	k1, err1 := c.sess.ExportKeyingMaterial("EXPORTER-test", nil, 32)
	k2, err2 := s.sess.ExportKeyingMaterial("EXPORTER-test", nil, 32)
	if err1 != nil || err2 != nil || string(k1) != string(k2) {
		t.Errorf("exported keys differ: %x %v / %x %v", k1, err1, k2, err2)
	}
	// After Close, Send fails with ErrClosed.
	if err := c.sess.Send(e2e.FrameText, []byte("x")); !errors.Is(err, e2e.ErrClosed) {
		t.Errorf("Send after Close: %v", err)
	}
	if code, _, ok := s.sess.CloseReason(); !ok || code != e2e.CloseNormal {
		t.Errorf("server saw close %v %v", code, ok)
	}
}

// TestCertificateRequired: a client that sends no certificate.
// (crypto/tls itself refuses a TLS 1.3 server without one: the client
// aborts on an empty Certificate message before our checks.)
func TestCertificateRequired(t *testing.T) {
	w := hosts(t)
	_, b := pair(t, w.mallory, w.bob, nil, nil)
	_, s := run{server: b, clientNode: w.mallory, rawClient: bareClient(t, tls.Certificate{}, nil)}.do(t)
	checkSide(t, "server", s, e2e.ErrNoCertificate, nil)
}

// TestEd25519Only: ECDSA certificates are refused both ways.
func TestEd25519Only(t *testing.T) {
	w := hosts(t)
	ec := ecdsaCert(t)
	t.Run("client", func(t *testing.T) {
		_, b := pair(t, w.mallory, w.bob, nil, nil)
		_, s := run{server: b, clientNode: w.mallory, rawClient: bareClient(t, ec, nil)}.do(t)
		checkSide(t, "server", s, e2e.ErrNotEd25519, nil)
	})
	t.Run("server", func(t *testing.T) {
		a, _ := pair(t, w.alice, w.mallory, nil, nil)
		c, _ := run{client: a, serverNode: w.mallory, rawServer: bareServer(t, ec, nil)}.do(t)
		checkSide(t, "client", c, e2e.ErrNotEd25519, nil)
	})
}

func ecdsaCert(t *testing.T) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ecdsa"},
		NotBefore: epoch.Add(-time.Hour), NotAfter: epoch.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestValidityByClock moves a side's clock (Config.Now) out of the peer
// certificate's dates.
func TestValidityByClock(t *testing.T) {
	w := hosts(t)
	for _, tc := range []struct {
		name string
		move time.Duration
		want error
	}{
		{"past NotAfter", 366 * 24 * time.Hour, e2e.ErrExpired},
		{"before NotBefore", -2 * time.Hour, e2e.ErrNotYetValid},
	} {
		t.Run("client/"+tc.name, func(t *testing.T) {
			a, b := pairAB(t, w, nil, nil)
			a.clock.Add(tc.move)
			c, s := run{client: a, server: b}.do(t)
			checkSide(t, "client", c, tc.want, nil)
			checkSide(t, "server", s, e2e.ErrRejected, nil)
			if v := verdictOf(c.err); v == nil || v.State != identity.StateExpired {
				t.Errorf("verdict %+v, want state expired", v)
			}
		})
		t.Run("server/"+tc.name, func(t *testing.T) {
			a, b := pairAB(t, w, nil, nil)
			b.clock.Add(tc.move)
			c, s := run{client: a, server: b}.do(t)
			checkSide(t, "client", c, e2e.ErrRejected, nil)
			checkSide(t, "server", s, tc.want, nil)
		})
	}
}

// TestTrust: the trust store's verdict against the policy.
func TestTrust(t *testing.T) {
	w := hosts(t)
	group := newCA(t, "Group Root")
	for _, tc := range []struct {
		name string
		// setup adjusts alice (the client, who decides) and bob.
		setup     func(t *testing.T, a *party) (bobID *identity.Identity, opts []partyOpt)
		want      error
		wantState identity.State
		check     func(t *testing.T, c outcome)
	}{
		{name: "pinned key (tofu)", setup: func(t *testing.T, a *party) (*identity.Identity, []partyOpt) {
			a.pin(t, w.bob.h.ID(), "", identity.StateTOFU)
			return nil, nil
		}, wantState: identity.StateTOFU},
		{name: "pinned key (verified)", setup: func(t *testing.T, a *party) (*identity.Identity, []partyOpt) {
			a.pin(t, w.bob.h.ID(), "Bobby", identity.StateVerified)
			return nil, nil
		}, wantState: identity.StateVerified, check: func(t *testing.T, c outcome) {
			if c.sess.Peer().Name != "Bobby" {
				t.Errorf("name %q, want the contact's label", c.sess.Peer().Name)
			}
		}},
		{name: "chain to a trusted root", setup: func(t *testing.T, a *party) (*identity.Identity, []partyOpt) {
			if err := a.trust.AddRoot(group.Cert); err != nil {
				t.Fatal(err)
			}
			return issued(t, group, w.bob.key(), "bob"), nil
		}, wantState: identity.StateCAVerified, check: func(t *testing.T, c outcome) {
			if c.sess.Peer().Issuer != "Group Root" {
				t.Errorf("issuer %q", c.sess.Peer().Issuer)
			}
		}},
		{name: "untrusted CA but pinned key", setup: func(t *testing.T, a *party) (*identity.Identity, []partyOpt) {
			a.pin(t, w.bob.h.ID(), "", identity.StateTOFU)
			return issued(t, newCA(t, "Other Root"), w.bob.key(), "bob"), nil
		}, wantState: identity.StateTOFU},
		{name: "untrusted CA, unknown refused", setup: func(t *testing.T, a *party) (*identity.Identity, []partyOpt) {
			return issued(t, newCA(t, "Other Root"), w.bob.key(), "bob"), nil
		}, want: e2e.ErrUnknownPeer},
		{name: "untrusted CA, unknown allowed", setup: func(t *testing.T, a *party) (*identity.Identity, []partyOpt) {
			return issued(t, newCA(t, "Other Root"), w.bob.key(), "bob"), []partyOpt{withPolicy(e2e.Policy{AllowUnknown: true})}
		}, wantState: identity.StateUnknown},
		{name: "self-signed, unknown refused", setup: func(t *testing.T, a *party) (*identity.Identity, []partyOpt) {
			return nil, nil
		}, want: e2e.ErrUnknownPeer},
		{name: "self-signed, unknown allowed", setup: func(t *testing.T, a *party) (*identity.Identity, []partyOpt) {
			return nil, []partyOpt{withPolicy(e2e.Policy{AllowUnknown: true})}
		}, wantState: identity.StateUnknown},
		{name: "blocked contact", setup: func(t *testing.T, a *party) (*identity.Identity, []partyOpt) {
			a.pin(t, w.bob.h.ID(), "bob", identity.StateUntrusted)
			return nil, []partyOpt{withPolicy(e2e.Policy{AllowUnknown: true})}
		}, want: e2e.ErrUntrusted},
		{name: "blocked contact under a trusted CA", setup: func(t *testing.T, a *party) (*identity.Identity, []partyOpt) {
			a.trust.AddRoot(group.Cert)
			a.pin(t, w.bob.h.ID(), "bob", identity.StateUntrusted)
			return issued(t, group, w.bob.key(), "bob"), nil
		}, want: e2e.ErrUntrusted},
		{name: "changed key", setup: func(t *testing.T, a *party) (*identity.Identity, []partyOpt) {
			a.pin(t, w.carol.h.ID(), "bob", identity.StateVerified) // bob's old key
			return nil, []partyOpt{withPolicy(e2e.Policy{AllowUnknown: true})}
		}, want: e2e.ErrKeyChanged, check: func(t *testing.T, c outcome) {
			v := verdictOf(c.err)
			if v == nil || v.State != identity.StateChanged || v.Previous == nil || v.Previous.PeerID != w.carol.h.ID() {
				t.Errorf("verdict %+v, want changed with the previous contact", v)
			}
			if v != nil && v.PeerID != w.bob.h.ID() {
				t.Errorf("verdict for %s, want the new key's peer", v.PeerID)
			}
		}},
		{name: "changed key under a trusted CA", setup: func(t *testing.T, a *party) (*identity.Identity, []partyOpt) {
			a.trust.AddRoot(group.Cert)
			a.pin(t, w.carol.h.ID(), "bob", identity.StateTOFU)
			return issued(t, group, w.bob.key(), "bob"), nil
		}, want: e2e.ErrKeyChanged},
		{name: "changed key accepted", setup: func(t *testing.T, a *party) (*identity.Identity, []partyOpt) {
			a.pin(t, w.carol.h.ID(), "bob", identity.StateVerified)
			accept := func(id peer.ID) bool { return id == w.bob.h.ID() }
			return nil, []partyOpt{withPolicy(e2e.Policy{AcceptChanged: accept})}
		}, wantState: identity.StateChanged, check: func(t *testing.T, c outcome) {
			if p := c.sess.Peer().Previous; p == nil || p.PeerID != w.carol.h.ID() {
				t.Errorf("previous %+v", p)
			}
		}},
		{name: "changed key, another accepted", setup: func(t *testing.T, a *party) (*identity.Identity, []partyOpt) {
			a.pin(t, w.carol.h.ID(), "bob", identity.StateVerified)
			accept := func(id peer.ID) bool { return id == w.carol.h.ID() }
			return nil, []partyOpt{withPolicy(e2e.Policy{AcceptChanged: accept})}
		}, want: e2e.ErrKeyChanged},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Alice's policy comes from the case; bob knows alice.
			probe := newParty(t, w.alice)
			bobID, opts := tc.setup(t, probe)
			a := probe
			if len(opts) > 0 {
				a = newParty(t, w.alice, opts...)
				a.trust = probe.trust
				a.cfg.Trust = probe.trust
				var err error
				if a.ep, err = e2e.NewEndpoint(a.cfg); err != nil {
					t.Fatal(err)
				}
			}
			var bOpts []partyOpt
			if bobID != nil {
				bOpts = append(bOpts, withIdentity(bobID))
			}
			b := newParty(t, w.bob, bOpts...)
			b.pin(t, w.alice.h.ID(), "", identity.StateTOFU)
			c, s := run{client: a, server: b}.do(t)
			if tc.want != nil {
				checkSide(t, "client", c, tc.want, nil)
				checkSide(t, "server", s, e2e.ErrRejected, nil)
				if v := verdictOf(c.err); v == nil {
					t.Errorf("the error carries no verdict")
				}
			} else {
				checkSide(t, "client", c, nil, nil)
				checkSide(t, "server", s, nil, []string{"hello"})
				if c.sess.Peer().State != tc.wantState {
					t.Errorf("state %s (%s), want %s", c.sess.Peer().State, c.sess.Peer().Reason, tc.wantState)
				}
			}
			if tc.check != nil {
				tc.check(t, c)
			}
		})
	}
}

// TestAllowUnknownResponder: the responder's policy decides about an
// unknown initiator the same way.
func TestAllowUnknownResponder(t *testing.T) {
	w := hosts(t)
	for _, allow := range []bool{false, true} {
		a := newParty(t, w.alice)
		a.pin(t, w.bob.h.ID(), "", identity.StateTOFU)
		b := newParty(t, w.bob, withPolicy(e2e.Policy{AllowUnknown: allow}))
		c, s := run{client: a, server: b}.do(t)
		if !allow {
			checkSide(t, "client", c, e2e.ErrRejected, nil)
			checkSide(t, "server", s, e2e.ErrUnknownPeer, nil)
			continue
		}
		checkSide(t, "server", s, nil, []string{"hello"})
		if s.sess.Peer().State != identity.StateUnknown {
			t.Errorf("state %s, want unknown", s.sess.Peer().State)
		}
	}
}

// TestBinding: the certificate's key must be the stream's peer, the peer
// the client dialed, and not ours; a certificate must bind its own key.
func TestBinding(t *testing.T) {
	w := hosts(t)
	t.Run("wrong peer", func(t *testing.T) {
		a, s := pair(t, w.alice, w.split, nil, nil)
		c, srv := run{client: a, server: s}.do(t)
		checkSide(t, "client", c, e2e.ErrWrongPeer, nil)
		checkSide(t, "server", srv, e2e.ErrRejected, nil)
	})
	t.Run("not the dialed peer", func(t *testing.T) {
		a, b := pairAB(t, w, nil, nil)
		c, s := run{client: a, server: b, expected: w.carol.h.ID()}.do(t)
		checkSide(t, "client", c, e2e.ErrNotDialedPeer, nil)
		checkSide(t, "server", s, e2e.ErrRejected, nil)
	})
	t.Run("peer id binding/server", func(t *testing.T) {
		// Bob's key, but a SAN naming carol's peer ID.
		a, _ := pairAB(t, w, nil, nil)
		c, _ := run{client: a, serverNode: w.bob, rawServer: bareServer(t, lyingCert(t, w.bob, w.carol.h.ID()), nil)}.do(t)
		checkSide(t, "client", c, e2e.ErrPeerIDBinding, nil)
	})
	t.Run("peer id binding/client", func(t *testing.T) {
		_, b := pairAB(t, w, nil, nil)
		_, s := run{server: b, clientNode: w.alice, rawClient: bareClient(t, lyingCert(t, w.alice, w.carol.h.ID()), nil)}.do(t)
		checkSide(t, "server", s, e2e.ErrPeerIDBinding, nil)
	})
	t.Run("self-connection", func(t *testing.T) {
		// Alice's client and her own responder on one loopback TCP
		// connection, the transport claiming alice at both ends.
		a := newParty(t, w.alice)
		x, y := tcpPair(t)
		var c, s outcome
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.sess, s.err = a.ep.Server(context.Background(), y, w.alice.h.ID())
			if s.err == nil {
				answer(s.sess, &s)
			}
			y.Close()
		}()
		c.sess, c.err = a.ep.Client(context.Background(), x, w.alice.h.ID(), w.alice.h.ID())
		if c.err == nil {
			chat(c.sess, &c)
		}
		x.Close()
		wg.Wait()
		checkSide(t, "client", c, e2e.ErrSelfConnection, nil)
		checkSide(t, "server", s, e2e.ErrRejected, nil)
	})
}

// lyingCert is a certificate for n's key whose peer ID SAN names id
// (identity.FromParts refuses to make an Identity of it).
func lyingCert(t *testing.T, n *node, id peer.ID) tls.Certificate {
	tmpl := *n.id.Certificate()
	tmpl.URIs = []*url.URL{identity.PeerURI(id)}
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, &tmpl, n.key().Public(), n.key())
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: n.key()}
}

// TestResumption: tickets resume, and a resumed handshake re-checks the
// certificate and trust now.
func TestResumption(t *testing.T) {
	w := hosts(t)
	// first runs a full session that leaves alice a ticket for bob.
	first := func(t *testing.T, aOpts, bOpts []partyOpt) (*party, *party) {
		a, b := pairAB(t, w, aOpts, bOpts)
		c, s := run{client: a, server: b}.do(t)
		if c.failure() != nil || s.failure() != nil || c.sess.Info().Resumed {
			t.Fatalf("first session: %v / %v", c, s)
		}
		return a, b
	}
	// again runs a second session and reports whether alice offered a
	// ticket and bob accepted it.
	again := func(t *testing.T, a, b *party) (c, s outcome, offered, accepted bool) {
		var cw *wire
		c, s = run{client: a, server: b, wrapClient: wrapWith(nil, &cw)}.do(t)
		ch := parseHello(cw.Writes()[0])
		sh := parseHello(cw.Reads())
		if ch == nil || sh == nil {
			t.Fatal("no hellos recorded")
		}
		return c, s, ch.psk, sh.pskSelected == 0
	}
	// refusedOnResumption runs a second session that resumes and wants
	// it to fail our checks with these errors.
	refusedOnResumption := func(t *testing.T, a, b *party, client, server error) {
		t.Helper()
		c, s, offered, accepted := again(t, a, b)
		if !offered || !accepted {
			t.Fatalf("not a resumption: offered %v accepted %v", offered, accepted)
		}
		checkSide(t, "client", c, client, nil)
		checkSide(t, "server", s, server, nil)
	}

	t.Run("resumes", func(t *testing.T) {
		a, b := first(t, nil, nil)
		c, s, offered, accepted := again(t, a, b)
		checkSide(t, "client", c, nil, nil)
		checkSide(t, "server", s, nil, []string{"hello"})
		if !offered || !accepted || !c.sess.Info().Resumed || !s.sess.Info().Resumed {
			t.Fatalf("not resumed: offered %v accepted %v", offered, accepted)
		}
		if c.sess.Peer().State != identity.StateTOFU || c.sess.PeerID() != w.bob.h.ID() || s.sess.PeerID() != w.alice.h.ID() {
			t.Errorf("verdicts %+v / %+v", c.sess.Peer(), s.sess.Peer())
		}
		if len(c.sess.PeerCertificates()) != 1 || len(s.sess.PeerCertificates()) != 1 {
			t.Errorf("resumed sessions lost the certificates")
		}
		if c.sess.Info().Group != tls.X25519MLKEM768 {
			t.Errorf("resumption used group %v; want a fresh hybrid exchange (psk_dhe_ke)", c.sess.Info().Group)
		}
	})
	t.Run("client blocks the peer", func(t *testing.T) {
		a, b := first(t, nil, nil)
		a.pin(t, w.bob.h.ID(), "", identity.StateUntrusted)
		refusedOnResumption(t, a, b, e2e.ErrUntrusted, e2e.ErrRejected)
	})
	t.Run("server blocks the peer", func(t *testing.T) {
		a, b := first(t, nil, nil)
		b.pin(t, w.alice.h.ID(), "", identity.StateUntrusted)
		refusedOnResumption(t, a, b, e2e.ErrRejected, e2e.ErrUntrusted)
	})
	t.Run("client clock before NotBefore", func(t *testing.T) {
		a, b := first(t, nil, nil)
		a.clock.Add(-2 * time.Hour)
		refusedOnResumption(t, a, b, e2e.ErrNotYetValid, e2e.ErrRejected)
	})
	t.Run("server clock past the client's NotAfter", func(t *testing.T) {
		// Alice's certificate is valid for two hours; bob's clock moves
		// three. Alice offers her ticket; crypto/tls on bob's side will
		// not resume with an expired certificate, and the full handshake
		// fails our check.
		short := certFor(t, w.alice.key(), "alice", epoch, 2*time.Hour)
		a, b := first(t, []partyOpt{withIdentity(short)}, nil)
		b.clock.Add(3 * time.Hour)
		c, s, offered, accepted := again(t, a, b)
		if !offered || accepted {
			t.Fatalf("offered %v accepted %v, want offered and declined", offered, accepted)
		}
		checkSide(t, "client", c, e2e.ErrRejected, nil)
		checkSide(t, "server", s, e2e.ErrExpired, nil)
	})
	t.Run("client clock past the server's NotAfter", func(t *testing.T) {
		// crypto/tls does not even offer a ticket whose certificate
		// expired; the full handshake fails our check.
		short := certFor(t, w.bob.key(), "bob", epoch, 2*time.Hour)
		a, b := first(t, nil, []partyOpt{withIdentity(short)})
		a.clock.Add(3 * time.Hour)
		c, s, offered, _ := again(t, a, b)
		if offered {
			t.Errorf("a ticket for an expired certificate was offered")
		}
		checkSide(t, "client", c, e2e.ErrExpired, nil)
		checkSide(t, "server", s, e2e.ErrRejected, nil)
	})
	t.Run("client ticket too old", func(t *testing.T) {
		a, b := first(t, []partyOpt{withTicketAge(time.Hour)}, []partyOpt{withTicketAge(48 * time.Hour)})
		a.clock.Add(61 * time.Minute)
		c, s, offered, _ := again(t, a, b)
		checkSide(t, "client", c, nil, nil)
		checkSide(t, "server", s, nil, []string{"hello"})
		if offered || c.sess.Info().Resumed || s.sess.Info().Resumed {
			t.Errorf("an old ticket was offered or used")
		}
	})
	t.Run("server refuses an old ticket", func(t *testing.T) {
		a, b := first(t, []partyOpt{withTicketAge(48 * time.Hour)}, []partyOpt{withTicketAge(time.Hour)})
		b.clock.Add(61 * time.Minute)
		c, s, offered, accepted := again(t, a, b)
		checkSide(t, "client", c, nil, nil)
		checkSide(t, "server", s, nil, []string{"hello"})
		if !offered || accepted || c.sess.Info().Resumed || s.sess.Info().Resumed {
			t.Errorf("offered %v accepted %v resumed %v/%v; want a full handshake after an offer",
				offered, accepted, c.sess.Info().Resumed, s.sess.Info().Resumed)
		}
	})
	t.Run("within the age both ways", func(t *testing.T) {
		a, b := first(t, []partyOpt{withTicketAge(time.Hour)}, []partyOpt{withTicketAge(time.Hour)})
		a.clock.Add(59 * time.Minute)
		b.clock.Add(59 * time.Minute)
		c, _, _, _ := again(t, a, b)
		if c.failure() != nil || !c.sess.Info().Resumed {
			t.Errorf("not resumed: %v", c)
		}
	})
	t.Run("disabled", func(t *testing.T) {
		a, b := first(t, []partyOpt{withTicketAge(-1)}, nil)
		c, _, offered, _ := again(t, a, b)
		if offered || c.failure() != nil || c.sess.Info().Resumed {
			t.Errorf("offered %v, %v", offered, c)
		}
	})
	t.Run("tickets are per peer", func(t *testing.T) {
		// A ticket from bob is not offered to carol.
		a, _ := first(t, nil, nil)
		cp := newParty(t, w.carol)
		cp.pin(t, w.alice.h.ID(), "", identity.StateTOFU)
		a.pin(t, w.carol.h.ID(), "", identity.StateTOFU)
		var cw *wire
		c, _ := run{client: a, server: cp, wrapClient: wrapWith(nil, &cw)}.do(t)
		if h := parseHello(cw.Writes()[0]); h == nil || h.psk || c.failure() != nil {
			t.Errorf("bob's ticket offered to carol, or %v", c)
		}
	})
}

// TestBusy: a responder runs at most MaxHalfOpen handshakes at once.
func TestBusy(t *testing.T) {
	w := hosts(t)
	b := newParty(t, w.bob, withMaxHalfOpen(2), withTimeout(5*time.Second))
	a := newParty(t, w.alice)
	a.pin(t, w.bob.h.ID(), "", identity.StateTOFU)
	b.pin(t, w.alice.h.ID(), "", identity.StateTOFU)

	proto := newProto()
	reading := make(chan struct{}, 8)
	results := make(chan error, 8)
	w.bob.h.SetStreamHandler(proto, func(s network.Stream) {
		c := &signalConn{Stream: s, first: reading}
		sess, err := b.ep.Server(context.Background(), c, s.Conn().RemotePeer())
		if err == nil {
			var o outcome
			answer(sess, &o)
		}
		results <- err
		s.Close()
	})
	defer w.bob.h.RemoveStreamHandler(proto)
	open := func(n *node) network.Stream {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		s, err := n.h.NewStream(ctx, w.bob.h.ID(), proto)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// Two handshakes that stall after one byte hold both places.
	var stalled []network.Stream
	for range 2 {
		s := open(w.mallory)
		s.Write([]byte{recHandshake})
		stalled = append(stalled, s)
		select {
		case <-reading:
		case <-time.After(testTimeout):
			t.Fatal("the responder did not start")
		}
	}
	// A third is refused at once.
	s := open(w.alice)
	start := time.Now()
	_, cerr := a.ep.Client(context.Background(), s, w.bob.h.ID(), w.bob.h.ID())
	serr := <-results
	wantErr(t, "server", serr, e2e.ErrBusy)
	if time.Since(start) > 2*time.Second {
		t.Errorf("refusing took %v", time.Since(start))
	}
	t.Logf("refused client: %v", cerr)
	wantErr(t, "client", cerr, e2e.ErrTruncated)
	s.Close()
	// When the stalled ones go, the places come back.
	for _, s := range stalled {
		s.Reset()
	}
	for range 2 {
		if err := <-results; err == nil {
			t.Error("a stalled handshake succeeded")
		}
	}
	c, srv := run{client: a, server: b}.do(t)
	checkSide(t, "client", c, nil, nil)
	checkSide(t, "server", srv, nil, []string{"hello"})
}

// signalConn reports its first Read.
type signalConn struct {
	network.Stream
	first chan<- struct{}
	once  sync.Once
}

func (c *signalConn) Read(p []byte) (int, error) {
	c.once.Do(func() { c.first <- struct{}{} })
	return c.Stream.Read(p)
}

// TestNewEndpoint: the configuration an endpoint needs.
func TestNewEndpoint(t *testing.T) {
	w := hosts(t)
	if _, err := e2e.NewEndpoint(e2e.Config{Identity: w.alice.id}); err == nil {
		t.Error("an endpoint without a trust store")
	}
	ts, _ := identity.OpenTrustStore(t.TempDir() + "/t.json")
	if _, err := e2e.NewEndpoint(e2e.Config{Trust: ts}); err == nil {
		t.Error("an endpoint without an identity")
	}
	ep, err := e2e.NewEndpoint(e2e.Config{Identity: w.alice.id, Trust: ts})
	if err != nil || ep.Identity() != w.alice.id {
		t.Errorf("%v %v", ep, err)
	}
}

// TestHandshakeErrorFormat: the error names the peer and unwraps to the
// sentinel.
func TestHandshakeErrorFormat(t *testing.T) {
	he := &e2e.HandshakeError{Peer: hosts(t).bob.h.ID(), Err: e2e.ErrKeyChanged}
	if !errors.Is(he, e2e.ErrKeyChanged) || he.Error() == "" {
		t.Errorf("%v", he)
	}
	if (&e2e.HandshakeError{Err: e2e.ErrBusy}).Error() != "handshake: "+e2e.ErrBusy.Error() {
		t.Error("format without a peer")
	}
}

// tcpPair is both ends of a loopback TCP connection.
func tcpPair(t testing.TB) (net.Conn, net.Conn) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		acc <- c
	}()
	x, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	y := <-acc
	if y == nil {
		t.Fatal("accept failed")
	}
	return x, y
}

// TestPostQuantum: a stock crypto/tls peer offering X25519 only gets a
// classical session, reported as not post-quantum, unless the policy
// requires the hybrid group; then the handshake fails with
// ErrNotPostQuantum, in either role.
func TestPostQuantum(t *testing.T) {
	w := hosts(t)
	classical := func(c *tls.Config) { c.CurvePreferences = []tls.CurveID{tls.X25519} }
	server := func(t *testing.T, pol e2e.Policy) outcome {
		b := newParty(t, w.bob, withPolicy(pol))
		b.pin(t, w.alice.h.ID(), "", identity.StateTOFU)
		// The server reads the client's text, then closes.
		readOne := func(s *e2e.Session, o *outcome) {
			receiveAll(s, o, func(e2e.Frame) bool { return true })
			s.Close()
		}
		_, s := run{server: b, clientNode: w.alice, serverScript: readOne,
			rawClient: bareClient(t, w.alice.id.TLSCertificate(), classical)}.do(t)
		return s
	}
	t.Run("accepted by default, not post-quantum", func(t *testing.T) {
		s := server(t, e2e.Policy{})
		checkSide(t, "server", s, nil, []string{"hello"})
		if s.sess == nil {
			t.Fatal("no session")
		}
		if info := s.sess.Info(); info.PostQuantum() || info.Group != tls.X25519 {
			t.Errorf("group %v reported post-quantum %v; want X25519, false", info.Group, info.PostQuantum())
		}
	})
	t.Run("refused when required", func(t *testing.T) {
		s := server(t, e2e.Policy{RequirePostQuantum: true})
		checkSide(t, "server", s, e2e.ErrNotPostQuantum, nil)
		if s.sess != nil {
			t.Error("a session was made")
		}
	})
	t.Run("client refuses a classical responder when required", func(t *testing.T) {
		a := newParty(t, w.alice, withPolicy(e2e.Policy{RequirePostQuantum: true}))
		a.pin(t, w.mallory.h.ID(), "", identity.StateTOFU)
		c, _ := run{client: a, serverNode: w.mallory, rawServer: bareServer(t, w.mallory.id.TLSCertificate(), classical)}.do(t)
		checkSide(t, "client", c, e2e.ErrNotPostQuantum, nil)
	})
	t.Run("two endpoints are post-quantum", func(t *testing.T) {
		req := []partyOpt{withPolicy(e2e.Policy{RequirePostQuantum: true})}
		a, b := pairAB(t, w, req, req)
		c, s := run{client: a, server: b}.do(t)
		checkSide(t, "client", c, nil, nil)
		checkSide(t, "server", s, nil, []string{"hello"})
		if c.sess == nil || !c.sess.Info().PostQuantum() || !s.sess.Info().PostQuantum() {
			t.Errorf("not post-quantum: %v / %v", c, s)
		}
	})
}

// TestTicketKeyRotation: the responder seals tickets under a new key every
// TicketKeyRotation, on its clock; a ticket resumes across a rotation, up
// to MaxTicketAge; a key is dropped once every ticket it sealed is too
// old, and its tickets then open no more.
func TestTicketKeyRotation(t *testing.T) {
	w := hosts(t)
	// Alice would offer tickets up to two days old: bob decides.
	newPair := func(t *testing.T) (*party, *party) {
		return pairAB(t, w, []partyOpt{withTicketAge(48 * time.Hour)}, nil)
	}
	both := func(a, b *party, d time.Duration) { a.clock.Add(d); b.clock.Add(d) }
	// session runs one session and returns the ticket alice offered in it
	// (nil if none) and whether bob resumed it.
	session := func(t *testing.T, a, b *party) (ticket []byte, resumed bool) {
		t.Helper()
		var cw *wire
		c, s := run{client: a, server: b, wrapClient: wrapWith(nil, &cw)}.do(t)
		checkSide(t, "client", c, nil, nil)
		checkSide(t, "server", s, nil, []string{"hello"})
		if t.Failed() {
			t.FailNow()
		}
		h := parseHello(cw.Writes()[0])
		if h == nil {
			t.Fatal("no ClientHello recorded")
		}
		return h.pskIdentity, s.sess.Info().Resumed
	}

	t.Run("resumes across a rotation", func(t *testing.T) {
		a, b := newPair(t)
		// The ticket is sealed just before the key's period ends and
		// offered when it is MaxTicketAge old: two rotations later.
		both(a, b, e2e.TicketKeyRotation-time.Minute)
		session(t, a, b)
		both(a, b, e2e.DefaultMaxTicketAge)
		ticket, resumed := session(t, a, b)
		if ticket == nil || !resumed {
			t.Fatalf("offered %v, resumed %v; want a resumption across the rotation", ticket != nil, resumed)
		}
		if n := b.ep.TicketKeys(); n != 2 {
			t.Errorf("bob keeps %d ticket keys, want 2 (the new one and the one that sealed the ticket)", n)
		}
	})
	t.Run("no key seals for longer than the period", func(t *testing.T) {
		a, b := newPair(t)
		session(t, a, b)
		issued := b.clock.Now()
		for h := 1; h <= 30; h++ {
			both(a, b, time.Hour)
			ticket, resumed := session(t, a, b)
			created, ok := b.ep.TicketKeyCreated(ticket)
			if !ok || !resumed {
				t.Fatalf("hour %d: the ticket of an hour ago opens %v, resumed %v", h, ok, resumed)
			}
			if age := issued.Sub(created); age < 0 || age >= e2e.TicketKeyRotation {
				t.Fatalf("hour %d: a ticket was sealed under a key %v old", h, age)
			}
			issued = b.clock.Now()
		}
		if n := b.ep.TicketKeys(); n > 3 {
			t.Errorf("bob keeps %d ticket keys after 30 h, want at most 3", n)
		}
	})
	t.Run("a ticket under a dropped key does not resume", func(t *testing.T) {
		a, b := newPair(t)
		session(t, a, b)
		both(a, b, 5*time.Hour) // still the first key
		ticket, _ := session(t, a, b)
		first, ok := b.ep.TicketKeyCreated(ticket)
		if !ok {
			t.Fatal("a fresh ticket does not open")
		}
		// Past the first key's period and MaxTicketAge: the ticket alice
		// holds (sealed 1 h before the key's period ended) is too old, and
		// its key gone.
		both(a, b, e2e.TicketKeyRotation+e2e.DefaultMaxTicketAge-5*time.Hour+time.Second)
		if _, ok := b.ep.TicketKeyCreated(ticket); ok {
			t.Errorf("the key made at %v still opens its tickets at %v", first, b.clock.Now())
		}
		offered, resumed := session(t, a, b)
		if offered == nil || resumed {
			t.Errorf("offered %v resumed %v; want the old ticket offered and a full handshake", offered != nil, resumed)
		}
	})
}

// TestNothingAcceptedOnACertificateAlone pins what matters in the order
// crypto/tls runs the checks (docs/PROTOCOL.md §5): our checks run on the
// peer's certificate before crypto/tls has checked its CertificateVerify,
// so they may refuse early but never accept alone. A peer that presents a
// contact's certificate, on a stream whose transport claims that contact,
// passes every check of ours and still gets no session: its signature
// fails (ErrTampered), in either role, and the failure carries no verdict
// on the certificate it could not prove.
func TestNothingAcceptedOnACertificateAlone(t *testing.T) {
	w := hosts(t)
	stolen := func(of *node) tls.Certificate {
		return tls.Certificate{Certificate: [][]byte{of.id.Certificate().Raw}, PrivateKey: w.mallory.key()}
	}
	t.Run("responder", func(t *testing.T) {
		_, b := pairAB(t, w, nil, nil)
		_, s := run{server: b, clientNode: w.mallory, claimServerRemote: w.alice.h.ID(),
			rawClient: bareClient(t, stolen(w.alice), nil)}.do(t)
		checkSide(t, "server", s, e2e.ErrTampered, nil)
		if s.sess != nil {
			t.Error("a session was made")
		}
		if v := verdictOf(s.err); v != nil {
			t.Errorf("the failure carries a verdict on alice's certificate: %+v", v)
		}
	})
	t.Run("initiator", func(t *testing.T) {
		a, _ := pairAB(t, w, nil, nil)
		c, _ := run{client: a, serverNode: w.mallory, expected: w.bob.h.ID(), claimClientRemote: w.bob.h.ID(),
			rawServer: bareServer(t, stolen(w.bob), nil)}.do(t)
		checkSide(t, "client", c, e2e.ErrTampered, nil)
		if c.sess != nil {
			t.Error("a session was made")
		}
		if v := verdictOf(c.err); v != nil {
			t.Errorf("the failure carries a verdict on bob's certificate: %+v", v)
		}
	})
}
