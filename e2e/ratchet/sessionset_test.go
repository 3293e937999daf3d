package ratchet

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"testing"
	"time"
)

func TestSimultaneousInitiation(t *testing.T) {
	tests := []struct {
		name  string
		order string // 'a': Bob receives Alice's initial; 'b': Alice receives Bob's
	}{
		{"alice's first", "ab"},
		{"bob's first", "ba"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newParty(t, "alice", 1), newParty(t, "bob", 1)
			alice, bob := &peer{party: a, set: a.setFor(t, b)}, &peer{party: b, set: b.setFor(t, a)}
			var err error
			if alice.set, err = alice.set.InitiateFromBundle(a.keys, b.bundle(true, true), t0); err != nil {
				t.Fatal(err)
			}
			if bob.set, err = bob.set.InitiateFromBundle(b.keys, a.bundle(true, true), t0); err != nil {
				t.Fatal(err)
			}
			fromAlice, fromBob := alice.seal(t, "a0", t0), bob.seal(t, "b0", t0)
			for _, c := range tc.order {
				if c == 'a' {
					bob.open(t, fromAlice, "a0", t0)
				} else {
					alice.open(t, fromBob, "b0", t0)
				}
			}
			ida, _ := alice.set.Active()
			idb, _ := bob.set.Active()
			if ida != idb || len(alice.set.sessions) != 2 || len(bob.set.sessions) != 2 {
				t.Fatalf("no convergence: alice %s bob %s", ida, idb)
			}
			// Both keep talking on the winner; stragglers on the loser open.
			straggler := alice.seal(t, "a1", t0)
			alice.open(t, bob.seal(t, "b1", t0), "b1", t0)
			bob.open(t, straggler, "a1", t0)
			for i := range 6 {
				bob.open(t, alice.seal(t, msg(i), t0), msg(i), t0)
				alice.open(t, bob.seal(t, msg(i), t0), msg(i), t0)
			}
			if x, _ := alice.set.Active(); x != ida {
				t.Fatal("active session moved")
			}
		})
	}
}

func TestNewSessionFromResetPeer(t *testing.T) {
	alice, bob := established(t)
	// Bob loses his sessions and starts again from Alice's bundle later.
	bob.set = bob.party.setFor(t, alice.party)
	later := t0.Add(time.Hour)
	next, err := bob.set.InitiateFromBundle(bob.keys, alice.party.bundle(true, true), later)
	if err != nil {
		t.Fatal(err)
	}
	bob.set = next
	info := alice.open(t, bob.seal(t, "i am back", later), "i am back", later)
	if !info.FirstContact || !info.Active {
		t.Fatalf("the peer's new session did not become active: %+v", info)
	}
	bob.open(t, alice.seal(t, "welcome back", later), "welcome back", later)
}

func TestSessionSetBounds(t *testing.T) {
	a, b := newParty(t, "alice", 0), newParty(t, "bob", 0)
	alice := &peer{party: a, set: a.setFor(t, b)}
	bob := &peer{party: b, set: b.setFor(t, a)}
	var first []byte
	for i := range MaxSessionsPerPeer + 2 {
		now := t0.Add(time.Duration(i) * time.Minute)
		next, err := alice.set.InitiateFromBundle(a.keys, b.bundle(false, false), now)
		if err != nil {
			t.Fatal(err)
		}
		alice.set = next
		env := alice.seal(t, msg(i), now)
		if i == 0 {
			first = env
		}
		bob.open(t, env, msg(i), now)
	}
	if len(alice.set.sessions) != MaxSessionsPerPeer || len(bob.set.sessions) != MaxSessionsPerPeer {
		t.Fatalf("sets hold %d and %d sessions", len(alice.set.sessions), len(bob.set.sessions))
	}
	ida, _ := alice.set.Active()
	idb, _ := bob.set.Active()
	if ida != idb {
		t.Fatal("active sessions differ")
	}
	// The oldest session is gone; its initial message is now a replay.
	expectFailure(t, bob, first, t0, ErrReplay)

	// An archived session idle for ArchivedSessionMaxAge is dropped.
	idle := t0.Add(ArchivedSessionMaxAge + time.Hour)
	next, changed := bob.set.Expire(idle)
	if !changed || len(next.sessions) != 1 || next.sessions[0].id != idb {
		t.Fatalf("expire kept %d sessions", len(next.sessions))
	}
}

func TestWrongSenderOrRecipient(t *testing.T) {
	alice, bob := established(t)
	env := alice.seal(t, "for bob only", t0)
	tests := []struct {
		name   string
		mutate func(*parties)
	}{
		{"claims another sender", func(s *parties) { s.remotePID = []byte("peer-mallory") }},
		{"re-addressed recipient", func(s *parties) { s.localPID = []byte("peer-carol") }},
		{"other sender identity", func(s *parties) { s.remote = newParty(t, "mallory", 0).pub() }},
		{"other recipient identity", func(s *parties) { s.local = newParty(t, "carol", 0).pub() }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// The same keys and sessions, bound to other names: the AEAD
			// associated data differs, so the envelope fails.
			forged := bob.set.clone()
			names := *forged.parties // bob's own are shared: change a copy
			tc.mutate(&names)
			forged.parties = newParties(names.localPID, names.remotePID, names.local, names.remote)
			p := &peer{party: bob.party, set: forged}
			expectFailure(t, p, env, t0, ErrAuth)
		})
	}
	bob.open(t, env, "for bob only", t0)
	t.Run("reflected to its sender", func(t *testing.T) {
		expectFailure(t, alice, alice.seal(t, "echo", t0), t0, ErrAuth)
	})
}

func TestMarshalMidConversation(t *testing.T) {
	alice, bob := newConversation(t)
	roundTrip := func(p *peer) {
		t.Helper()
		enc := mustMarshal(t, p.set)
		s, err := UnmarshalSessionSet(enc)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(mustMarshal(t, s), enc) {
			t.Fatal("set does not re-encode identically")
		}
		if n := p.set.encodedSize(); n != len(enc) {
			t.Fatalf("set encoded in %d bytes, its size computed as %d", len(enc), n)
		}
		if app, err := p.set.AppendBinary([]byte("head")); err != nil || !bytes.Equal(app, append([]byte("head"), enc...)) {
			t.Fatalf("AppendBinary does not append the encoding (%v)", err)
		}
		kenc := mustMarshal(t, p.keys)
		k, err := UnmarshalLocalKeys(kenc, p.priv)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(mustMarshal(t, k), kenc) {
			t.Fatal("keys do not re-encode identically")
		}
		p.set, p.keys = s, k
	}
	var held [][]byte
	script := "aaabbabaaabbbbab"
	for i, who := range script {
		from, to := alice, bob
		if who == 'b' {
			from, to = bob, alice
		}
		env := from.seal(t, msg(i), t0)
		if i%3 == 1 && who == 'a' {
			held = append(held, env) // delivered after restarts
			roundTrip(alice)
			roundTrip(bob)
			continue
		}
		roundTrip(from)
		to.open(t, env, msg(i), t0)
		roundTrip(to)
	}
	for _, env := range held {
		if _, err := bob.tryOpen(env, t0); err != nil {
			t.Fatalf("held envelope after restarts: %v", err)
		}
	}
	t.Run("wrong identity key", func(t *testing.T) {
		if _, err := UnmarshalLocalKeys(mustMarshal(t, alice.keys), bob.priv); !errors.Is(err, ErrIdentityMismatch) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestSeedFromExporter(t *testing.T) {
	a, b := newParty(t, "alice", 0), newParty(t, "bob", 0) // Alice is the TLS client
	if !bytes.Equal(ExporterContext(a.pid, b.pid), ExporterContext(b.pid, a.pid)) {
		t.Fatal("exporter context depends on the order")
	}
	secret := sha256.Sum256([]byte("exported keying material"))
	bob := &peer{party: b, set: b.setFor(t, a)}
	offer, next, err := bob.set.SeedResponder(secret[:], t0)
	if err != nil {
		t.Fatal(err)
	}
	bob.set = next
	if _, _, err := bob.set.Seal([]byte("too early"), t0); !errors.Is(err, ErrNoSession) {
		t.Fatalf("responder sealed before the first message: %v", err)
	}
	t.Run("wrong secret", func(t *testing.T) {
		other := sha256.Sum256([]byte("another channel"))
		env, _, err := a.setFor(t, b).SeedInitiator(other[:], offer, t0)
		if err != nil {
			t.Fatal(err)
		}
		expectFailure(t, bob, env, t0, ErrAuth)
	})
	alice := &peer{party: a, set: a.setFor(t, b)}
	confirm, next, err := alice.set.SeedInitiator(secret[:], offer, t0)
	if err != nil {
		t.Fatal(err)
	}
	alice.set = next
	if info := bob.open(t, confirm, "", t0); info.FirstContact {
		t.Fatal("seeded session reported as first contact")
	}
	for i := range 5 {
		alice.open(t, bob.seal(t, msg(i), t0), msg(i), t0)
		bob.open(t, alice.seal(t, msg(i), t0), msg(i), t0)
	}
	t.Run("bad offers", func(t *testing.T) {
		for _, bad := range [][]byte{nil, offer[:len(offer)-1], append(bytes.Clone(offer), 0), append([]byte{9}, offer[1:]...)} {
			if _, _, err := a.setFor(t, b).SeedInitiator(secret[:], bad, t0); err == nil {
				t.Fatalf("accepted offer %x", bad)
			}
		}
		if _, _, err := a.setFor(t, b).SeedInitiator(secret[:8], offer, t0); !errors.Is(err, ErrMalformed) {
			t.Fatalf("short secret: %v", err)
		}
	})
}

func TestParsersRejectGarbage(t *testing.T) {
	alice, bob := newConversation(t)
	initial := alice.seal(t, "hi", t0)
	bob.open(t, initial, "hi", t0)
	normal := bob.seal(t, "hello", t0)
	bundle := mustMarshal(t, bob.party.bundle(true, true))
	set := mustMarshal(t, bob.set)
	keys := mustMarshal(t, bob.keys)
	parsers := []struct {
		name   string
		good   []byte
		minLen int // shortest prefix that parses (envelopes: empty plaintext)
		parse  func([]byte) error
	}{
		{"initial envelope", initial, len(initial) - len("hi"), func(b []byte) error { _, err := parseEnvelope(b); return err }},
		{"normal envelope", normal, len(normal) - len("hello"), func(b []byte) error { _, err := parseEnvelope(b); return err }},
		{"bundle", bundle, len(bundle), func(b []byte) error { _, err := ParseBundle(b); return err }},
		{"session set", set, len(set), func(b []byte) error { _, err := UnmarshalSessionSet(b); return err }},
		{"local keys", keys, len(keys), func(b []byte) error { _, err := UnmarshalLocalKeys(b, bob.priv); return err }},
	}
	for _, p := range parsers {
		t.Run(p.name, func(t *testing.T) {
			for n := range len(p.good) + 1 {
				err := p.parse(p.good[:n])
				if n >= p.minLen {
					if err != nil {
						t.Fatalf("length %d: %v", n, err)
					}
					continue
				}
				if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrVersion) {
					t.Fatalf("truncated to %d: %v", n, err)
				}
			}
			if p.minLen == len(p.good) {
				if err := p.parse(append(bytes.Clone(p.good), 0)); !errors.Is(err, ErrMalformed) {
					t.Fatalf("trailing byte: %v", err)
				}
			}
			bad := bytes.Clone(p.good)
			bad[0] ^= 0x80
			if err := p.parse(bad); err == nil {
				t.Fatal("accepted a bad first byte")
			}
		})
	}
}

// Two live channels that cross (each side the TLS server on one) each
// carry a seed offer. Alice's own offer, not yet taken, is her active
// session (the newer id) when Bob's older offer reaches her: she must
// still confirm Bob's, on Bob's session. Once both offers are taken both
// send on the newer session and open each other's messages.
func TestSeedsCrossing(t *testing.T) {
	a, b := newParty(t, "alice", 0), newParty(t, "bob", 0)
	alice, bob := &peer{party: a, set: a.setFor(t, b)}, &peer{party: b, set: b.setFor(t, a)}
	bobServes, aliceServes := sha256.Sum256([]byte("bob serves")), sha256.Sum256([]byte("alice serves"))
	t1 := t0.Add(time.Millisecond)
	bobOffer, next, err := bob.set.SeedResponder(bobServes[:], t0)
	if err != nil {
		t.Fatal(err)
	}
	bob.set = next
	aliceOffer, next, err := alice.set.SeedResponder(aliceServes[:], t1)
	if err != nil {
		t.Fatal(err)
	}
	alice.set = next
	confirm, next, err := alice.set.SeedInitiator(bobServes[:], bobOffer, t1)
	if err != nil {
		t.Fatalf("alice confirms bob's seed: %v", err)
	}
	alice.set = next
	bob.open(t, confirm, "", t1)
	if confirm, next, err = bob.set.SeedInitiator(aliceServes[:], aliceOffer, t1); err != nil {
		t.Fatalf("bob confirms alice's seed: %v", err)
	}
	bob.set = next
	alice.open(t, confirm, "", t1)
	for i := range 3 {
		alice.open(t, bob.seal(t, msg(i), t1), msg(i), t1)
		bob.open(t, alice.seal(t, msg(i), t1), msg(i), t1)
	}
	as, _ := alice.set.Active()
	bs, _ := bob.set.Active()
	if as != bs {
		t.Fatalf("alice sends on %x, bob on %x", as, bs)
	}
}
