// Sybils against a node's mailbox (docs/SECURITY.md): a flood of empty
// first contacts from one identity, with the real ratchet, and a thousand
// envelopes that never open reported as one event per sender.

package node

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e/ratchet"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/internal/testproc"
	"github.com/certchat/certchat/mailbox"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Empty first contacts from one identity, each a valid PQXDH first
// contact on bob's signed prekey, do not fill its replay record: the
// sender's first maxFirstContacts are accepted, the rest discarded and
// reported as one event, and a real first contact from carol then opens.
// The review's flood was 10,000 (ratchet.MaxSeenBaseKeys, the record's
// size); a thousand show the bound, which each of them meets (the loop
// fails at the first accepted past it), at a tenth of the CPU under
// -race. Past the bound a first contact is refused from its header,
// before any key agreement under the ratchet keys' lock: a tampered one
// is refused as one too many, not as a bad envelope.
func TestFirstContactFloodFromOneIdentity(t *testing.T) {
	bob := offNewNode(t, "bob", nil, false)
	carol := offNewNode(t, "carol", nil, false)
	mallory, mk := ratchetIdentity(t)
	base := bob.rk.local.Bundle() // no one-time prekeys: the last-resort path
	const flood = 1000
	failed := &openFailures{}
	accepted := 0
	start := time.Now()
	for i := 0; i < flood; i++ {
		env := firstContact(t, mk, bob, base)
		before := failed.count(mallory)
		if !bob.mail.receiveInto(mailbox.Item{ID: uint64(i), From: mallory, Envelope: env}, failed) {
			t.Fatalf("first contact %d not acknowledged", i)
		}
		if failed.count(mallory) == before {
			accepted++
		}
		if accepted > maxFirstContacts {
			t.Fatalf("first contact %d from one identity accepted: %d, want at most %d", i, accepted, maxFirstContacts)
		}
	}
	t.Logf("%d empty first contacts from one identity in %v: %d accepted, %d discarded", flood, time.Since(start).Round(time.Millisecond), accepted, failed.count(mallory))
	failed.flush(bob.core)
	if accepted > maxFirstContacts {
		t.Fatalf("%d first contacts from one identity accepted, want at most %d", accepted, maxFirstContacts)
	}
	e := bob.offWait("the flood's error event", func(e Event) bool { return e.Kind == EventError })
	if e.PeerID != mallory || !strings.Contains(e.Err, "992 sealed messages from") {
		t.Fatalf("error event %q for %s", e.Err, identity.ShortID(e.PeerID))
	}
	for _, e := range bob.offEvents(50 * time.Millisecond) {
		if e.Kind == EventError {
			t.Fatalf("a second error event for the flood: %q", e.Err)
		}
	}
	env := firstContact(t, mk, bob, base)
	env[len(env)-1] ^= 1
	if _, err := bob.rk.open(mallory, env); !errors.Is(err, errTooManyFirstContacts) {
		t.Fatalf("a tampered first contact past the bound: %v, want %v", err, errTooManyFirstContacts)
	}

	if err := carol.rk.initiate(bob.ID(), bob.offBundle()); err != nil {
		t.Fatal(err)
	}
	m, env := carol.offText(bob.ID(), "a real first contact")
	if !bob.offMail(carol.ID(), env) || bob.offCount(carol.ID(), m.ID) != 1 {
		t.Fatal("a real first contact after the flood was not stored")
	}
}

// BenchmarkFirstContactPastBound: what one first contact from a peer
// past its bound costs the node, under the ratchet keys' lock (the
// review's flood is 10,000 of them). Before the header was looked at,
// each ran PQXDH and the signature check to be refused after.
func BenchmarkFirstContactPastBound(b *testing.B) {
	bob := offNewNode(b, "bob", nil, false)
	mallory, mk := ratchetIdentity(b)
	base := bob.rk.local.Bundle()
	for range maxFirstContacts {
		if _, err := bob.rk.open(mallory, firstContact(b, mk, bob, base)); err != nil {
			b.Fatal(err)
		}
	}
	envs := make([][]byte, 64)
	for i := range envs {
		envs[i] = firstContact(b, mk, bob, base)
	}
	b.ResetTimer()
	for i := range b.N {
		if _, err := bob.rk.open(mallory, envs[i%len(envs)]); !errors.Is(err, errTooManyFirstContacts) {
			b.Fatal(err)
		}
	}
}

// firstContact is an empty first contact to to from the keys mk, on the
// bundle base.
func firstContact(t testing.TB, mk *ratchet.LocalKeys, to *offNode, base *ratchet.Bundle) []byte {
	t.Helper()
	set, err := ratchet.NewSessionSet(mk, []byte(to.ID()), to.rk.local.Identity())
	if err != nil {
		t.Fatal(err)
	}
	if set, err = set.InitiateFromBundle(mk, base, time.Now()); err != nil {
		t.Fatal(err)
	}
	env, _, err := set.Seal(nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// count is how many of p's envelopes failed (a test helper).
func (f *openFailures) count(p peer.ID) int {
	if e := f.by[p]; e != nil {
		return e.n
	}
	return 0
}

// Through a real relay (`chat relay`): 150 envelopes that never open, from
// one sender, waiting in bob's mailbox while he is away, are one error
// event with their count when he fetches them, not 150.
func TestMailboxFailuresAggregated(t *testing.T) {
	addr := testproc.StartRelay(t, testproc.RelayOptions{Args: []string{"--mailbox-deposit-rate", "1000"}}).Addr
	info, err := ParseRelayAddr(addr)
	if err != nil {
		t.Fatal(err)
	}
	h := identity.Home{Dir: t.TempDir()}
	id, err := h.Init("bob", nil, identity.DefaultKDF, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	bob := offNodeAt(t, h, id, []string{addr}, true)
	bob.offRegistered()
	bobID := bob.ID()
	bob.Close()

	mh, err := libp2p.New(libp2p.NoListenAddrs)
	if err != nil {
		t.Fatal(err)
	}
	defer mh.Close()
	ctx := context.Background()
	if err := mh.Connect(ctx, peer.AddrInfo{ID: info.ID, Addrs: info.Addrs}); err != nil {
		t.Fatal(err)
	}
	const bad = 150
	c := mailbox.Client{Host: mh}
	for i := 0; i < bad; i++ {
		junk := make([]byte, 200)
		rand.Read(junk)
		if _, err := c.Deposit(ctx, info.ID, bobID, junk); err != nil {
			t.Fatalf("deposit %d: %v", i, err)
		}
	}

	bob = offNodeAt(t, h, id, []string{addr}, true)
	bob.offMailboxEmpty(info.ID)
	var errs []Event
	for _, e := range bob.offEvents(500 * time.Millisecond) {
		if e.Kind == EventError {
			errs = append(errs, e)
		}
	}
	if len(errs) != 1 || errs[0].PeerID != mh.ID() || !strings.Contains(errs[0].Err, "150 sealed messages from") {
		for _, e := range errs[:min(len(errs), 3)] {
			t.Logf("event %q", e.Err)
		}
		t.Fatalf("%d error events for %d envelopes from one sender, want 1 with the count", len(errs), bad)
	}
	t.Logf("one event: %q", errs[0].Err)
}

// ratchetIdentity is a new peer ID and its ratchet keys.
func ratchetIdentity(t testing.TB) (peer.ID, *ratchet.LocalKeys) {
	t.Helper()
	priv, p := testKey(t)
	mk, err := ratchet.NewLocalKeys(priv, []byte(p), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return p, mk
}
