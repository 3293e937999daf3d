package node

import (
	"crypto/x509"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p/core/peer"
)

// testClock is a node's clock that a test moves.
type testClock struct{ at atomic.Int64 }

func (c *testClock) set(t time.Time) { c.at.Store(t.UnixNano()) }
func (c *testClock) now() time.Time  { return time.Unix(0, c.at.Load()) }

// caIssued gives a new identity a certificate from ca, valid for validity
// from now, and returns the identity's peer ID and the chain.
func caIssued(t *testing.T, ca *identity.CA, name string, now time.Time, validity time.Duration) (peer.ID, []*x509.Certificate) {
	t.Helper()
	h := identity.Home{Dir: t.TempDir()}
	id, err := h.Init(name, nil, identity.DefaultKDF, now)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := identity.NewCSR(id.Signer(), name)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := identity.ParseCSR(pem)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue(csr, now, validity)
	if err != nil {
		t.Fatal(err)
	}
	return id.PeerID(), []*x509.Certificate{cert}
}

// mayIs checks mayMessageSince's answer for p against want (nil: a yes).
func mayIs(t *testing.T, b *peerBook, p peer.ID, want error, what string) {
	t.Helper()
	err := b.mayMessageSince(p, time.Now())
	if (want == nil) != (err == nil) || (want != nil && !errors.Is(err, want)) {
		t.Fatalf("%s: mayMessage %v, want %v", what, err, want)
	}
}

// mayMessage keeps a yes (a group message asks it once per member, and
// once per outbox round), and every change it was drawn from makes the
// next question decide again: a contact blocked or removed, in this
// process or another, a CA removed, a certificate that expires (or is
// not valid yet), a new chain from a handshake. Each step fails if the
// kept yes were given again.
func TestMayMessageKeptYesFollowsChanges(t *testing.T) {
	alice := offNewNode(t, "alice", nil, false)
	b := alice.book
	carol := offNewNode(t, "carol", nil, false).ID()
	mayIs(t, b, carol, ErrNotTrusted, "a stranger")
	if err := alice.Contacts().Trust(carol, false); err != nil {
		t.Fatal(err)
	}
	mayIs(t, b, carol, nil, "a contact")
	if _, kept := b.may[carol]; !kept {
		t.Fatal("a contact's yes was not kept")
	}
	mayIs(t, b, carol, nil, "a contact, asked again")

	if err := alice.Contacts().Block(carol); err != nil {
		t.Fatal(err)
	}
	mayIs(t, b, carol, ErrBlocked, "blocked")
	if err := alice.Contacts().Trust(carol, false); err != nil {
		t.Fatal(err)
	}
	mayIs(t, b, carol, nil, "trusted again")
	if err := alice.Contacts().Remove(carol); err != nil {
		t.Fatal(err)
	}
	mayIs(t, b, carol, ErrNotTrusted, "removed from the contacts")

	// Another process (chat contacts block) changes trust.json.
	if err := alice.Contacts().Trust(carol, false); err != nil {
		t.Fatal(err)
	}
	mayIs(t, b, carol, nil, "trusted again")
	other, err := alice.cfg.Home.TrustStore()
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Pin(carol, "", identity.StateUntrusted, time.Now()); err != nil {
		t.Fatal(err)
	}
	mayIs(t, b, carol, ErrBlocked, "blocked by another process")

	// A peer trusted for its CA's certificate, not a contact.
	clock := &testClock{}
	start := time.Now()
	clock.set(start)
	alice.cfg.Now = clock.now
	ca, err := identity.NewCA("Acme Root", start.Add(-time.Hour), 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.trust.AddRoot(ca.Cert); err != nil {
		t.Fatal(err)
	}
	dave, chain := caIssued(t, ca, "dave", start, time.Hour)
	b.update(dave, func(f *peerFacts) { f.chain = chain }) // as a handshake does
	mayIs(t, b, dave, nil, "CA-verified")
	if y, kept := b.may[dave]; !kept || y.until.IsZero() {
		t.Fatalf("a CA-verified yes kept as %+v, %v: want one with a time limit", y, kept)
	}
	clock.set(chain[0].NotAfter.Add(time.Second))
	mayIs(t, b, dave, ErrNotTrusted, "its certificate expired")
	clock.set(start)
	mayIs(t, b, dave, nil, "back within its validity")
	clock.set(chain[0].NotBefore.Add(-time.Second))
	mayIs(t, b, dave, ErrNotTrusted, "not valid yet")
	clock.set(start)
	mayIs(t, b, dave, nil, "back within its validity")
	if err := alice.trust.RemoveRoot(ca.Cert); err != nil {
		t.Fatal(err)
	}
	mayIs(t, b, dave, ErrNotTrusted, "its CA removed")
	if err := alice.trust.AddRoot(ca.Cert); err != nil {
		t.Fatal(err)
	}
	mayIs(t, b, dave, nil, "its CA trusted again")

	// A handshake brings another chain: a certificate from a CA that is
	// not trusted.
	other2, err := identity.NewCA("Other Root", start.Add(-time.Hour), 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, chain2 := caIssued(t, other2, "dave", start, time.Hour)
	mayIs(t, b, dave, nil, "CA-verified")
	b.update(dave, func(f *peerFacts) { f.chain = chain2 })
	mayIs(t, b, dave, ErrNotTrusted, "a new chain, not for this peer ID")
}

// A member removed from the contacts between two group messages, on a
// live session (removing a contact closes none): the first message goes
// to them, the second does not, as their outbox worker, which said yes to
// the first, decides again. A kept yes given again would write it.
func TestGroupMemberRemovedBetweenSends(t *testing.T) {
	alice, bob, carol, id := offTrio(t)
	first, err := alice.Groups().Send(id, "to both")
	if err != nil {
		t.Fatal(err)
	}
	bob.offWait("the first message", offIsMessage(first.ID))
	carol.offWait("the first message", offIsMessage(first.ID))

	if err := alice.Contacts().Remove(carol.ID()); err != nil {
		t.Fatal(err)
	}
	second, err := alice.Groups().Send(id, "to bob only")
	if err != nil {
		t.Fatal(err)
	}
	bob.offWait("the second message", offIsMessage(second.ID))
	for _, e := range carol.offEvents(2 * time.Second) {
		if offIsMessage(second.ID)(e) {
			t.Fatal("the second message went to a member no longer trusted")
		}
	}
}
