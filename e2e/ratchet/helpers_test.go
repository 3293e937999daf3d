package ratchet

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// party is one test identity with its keys.
type party struct {
	name string
	priv ed25519.PrivateKey
	pid  []byte
	keys *LocalKeys
}

func newParty(t testing.TB, name string, oneTime int) *party {
	t.Helper()
	seed := sha256.Sum256([]byte("certchat test identity " + name))
	p := &party{name: name, priv: ed25519.NewKeyFromSeed(seed[:]), pid: []byte("\x00\x24peer-" + name)}
	k, err := NewLocalKeys(p.priv, p.pid, t0)
	if err != nil {
		t.Fatal(err)
	}
	if oneTime > 0 {
		if k, err = k.GenerateOneTimePrekeys(oneTime, t0); err != nil {
			t.Fatal(err)
		}
	}
	p.keys = k
	return p
}

func (p *party) pub() ed25519.PublicKey { return p.priv.Public().(ed25519.PublicKey) }

// setFor returns p's empty session set for the peer q.
func (p *party) setFor(t testing.TB, q *party) *SessionSet {
	t.Helper()
	s, err := NewSessionSet(p.keys, q.pid, q.pub())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// bundle returns p's bundle, with its first one-time prekeys when asked.
func (p *party) bundle(withEC, withKEM bool) *Bundle {
	b := p.keys.Bundle()
	ec, kem := p.keys.OneTimePrekeys()
	if withEC && len(ec) > 0 {
		b.OneTimePrekey = &ec[0]
	}
	if withKEM && len(kem) > 0 {
		b.OneTimeKEM = &kem[0]
	}
	return b
}

// peer is one side of a conversation: its party and its set for the other.
type peer struct {
	*party
	set *SessionSet
}

func (p *peer) seal(t testing.TB, msg string, now time.Time) []byte {
	t.Helper()
	env, next, err := p.set.Seal([]byte(msg), now)
	if err != nil {
		t.Fatalf("%s seal %q: %v", p.name, msg, err)
	}
	p.set = next
	return env
}

// open opens env and checks the plaintext is want.
func (p *peer) open(t testing.TB, env []byte, want string, now time.Time) Info {
	t.Helper()
	o, err := p.tryOpen(env, now)
	if err != nil {
		t.Fatalf("%s open %q: %v", p.name, want, err)
	}
	if string(o.Plaintext) != want {
		t.Fatalf("%s opened %q, want %q", p.name, o.Plaintext, want)
	}
	return o.Info
}

// tryOpen opens env and, on success, adopts the new state.
func (p *peer) tryOpen(env []byte, now time.Time) (*Opened, error) {
	o, err := p.set.Open(p.keys, env, now)
	if err != nil {
		return nil, err
	}
	p.set = o.Set
	if o.Keys != nil {
		p.keys = o.Keys
	}
	return o, nil
}

// snapshot is the serialized state of a peer, to prove it did not change.
func (p *peer) snapshot(t testing.TB) string {
	t.Helper()
	return string(mustMarshal(t, p.set)) + string(mustMarshal(t, p.keys))
}

func mustMarshal(t testing.TB, m interface{ MarshalBinary() ([]byte, error) }) []byte {
	t.Helper()
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newConversation returns Alice and Bob where Alice has initiated a PQXDH
// session from Bob's bundle (with one-time prekeys) and nothing was sent.
func newConversation(t testing.TB) (alice, bob *peer) {
	t.Helper()
	a, b := newParty(t, "alice", 2), newParty(t, "bob", 2)
	alice, bob = &peer{party: a, set: a.setFor(t, b)}, &peer{party: b, set: b.setFor(t, a)}
	next, err := alice.set.InitiateFromBundle(a.keys, b.bundle(true, true), t0)
	if err != nil {
		t.Fatal(err)
	}
	alice.set = next
	return alice, bob
}

// established returns Alice and Bob after one message each way.
func established(t testing.TB) (alice, bob *peer) {
	t.Helper()
	alice, bob = newConversation(t)
	bob.open(t, alice.seal(t, "hello bob", t0), "hello bob", t0)
	alice.open(t, bob.seal(t, "hello alice", t0), "hello alice", t0)
	return alice, bob
}

// expectFailure opens env, expects target, and checks nothing changed.
func expectFailure(t testing.TB, p *peer, env []byte, now time.Time, target error) {
	t.Helper()
	before := p.snapshot(t)
	o, err := p.set.Open(p.keys, env, now)
	if !errors.Is(err, target) {
		t.Fatalf("open: got %v (opened %v), want %v", err, o != nil, target)
	}
	if after := p.snapshot(t); after != before {
		t.Fatal("failed open changed the state")
	}
	// A gap beyond MaxSkip is refused before any key is derived: deriving
	// the keys of the gap (an HMAC each) would allocate thousands of times.
	if target == ErrTooManySkipped {
		if allocs := testing.AllocsPerRun(1, func() { p.set.Open(p.keys, env, now) }); allocs > 200 {
			t.Fatalf("the rejected gap allocated %.0f times: it derived keys", allocs)
		}
	}
}

func msg(i int) string { return fmt.Sprintf("message %d", i) }
