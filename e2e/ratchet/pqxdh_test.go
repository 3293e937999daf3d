package ratchet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"
)

func TestFirstContact(t *testing.T) {
	tests := []struct {
		name            string
		withEC, withKEM bool
	}{
		{"all one-time prekeys", true, true},
		{"no one-time prekeys", false, false},
		{"one-time x25519 only", true, false},
		{"one-time ml-kem only", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newParty(t, "alice", 0), newParty(t, "bob", 3)
			alice, bob := &peer{party: a, set: a.setFor(t, b)}, &peer{party: b, set: b.setFor(t, a)}
			next, err := alice.set.InitiateFromBundle(a.keys, b.bundle(tc.withEC, tc.withKEM), t0)
			if err != nil {
				t.Fatal(err)
			}
			alice.set = next
			keysBefore := mustMarshal(t, bob.keys)
			o, err := bob.set.Open(bob.keys, alice.seal(t, "hi", t0), t0)
			if err != nil {
				t.Fatal(err)
			}
			if !o.Info.FirstContact || !o.Info.Active || o.Keys == nil || string(o.Plaintext) != "hi" {
				t.Fatalf("opened %+v keys %v", o.Info, o.Keys != nil)
			}
			if !bytes.Equal(mustMarshal(t, bob.keys), keysBefore) {
				t.Fatal("Open modified the LocalKeys it was given")
			}
			ec, kem := o.Keys.OneTimePrekeys()
			if want := 3 - btoi(tc.withEC); len(ec) != want {
				t.Fatalf("%d one-time x25519 prekeys left, want %d", len(ec), want)
			}
			if want := 3 - btoi(tc.withKEM); len(kem) != want {
				t.Fatalf("%d one-time kem prekeys left, want %d", len(kem), want)
			}
			if n := len(o.Keys.signed[0].seen); n != 1 {
				t.Fatalf("replay record has %d entries", n)
			}
			bob.set, bob.keys = o.Set, o.Keys
			alice.open(t, bob.seal(t, "hi alice", t0), "hi alice", t0)
			bob.open(t, alice.seal(t, "bye", t0), "bye", t0)
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestBadBundle(t *testing.T) {
	a, b, c := newParty(t, "alice", 0), newParty(t, "bob", 1), newParty(t, "carol", 1)
	tests := []struct {
		name   string
		mutate func(*Bundle)
		want   error
	}{
		{"identity-dh signature", func(x *Bundle) { x.IdentityDHSignature[0] ^= 1 }, ErrBadSignature},
		{"identity-dh key", func(x *Bundle) { x.IdentityDH[0] ^= 1 }, ErrBadSignature},
		{"signed prekey signature", func(x *Bundle) { x.SignedPrekey.Signature[5] ^= 1 }, ErrBadSignature},
		{"signed prekey key", func(x *Bundle) { x.SignedPrekey.Public[0] ^= 1 }, ErrBadSignature},
		{"signed prekey id", func(x *Bundle) { x.SignedPrekey.ID++ }, ErrBadSignature},
		{"signed prekey time", func(x *Bundle) { x.SignedPrekey.Created = x.SignedPrekey.Created.Add(time.Second) }, ErrBadSignature},
		{"kem signature", func(x *Bundle) { x.LastResortKEM.Signature[0] ^= 1 }, ErrBadSignature},
		{"kem key", func(x *Bundle) { x.LastResortKEM.Public[9] ^= 1 }, ErrBadSignature},
		{"one-time prekey", func(x *Bundle) { x.OneTimePrekey.Public[0] ^= 1 }, ErrBadSignature},
		{"one-time kem", func(x *Bundle) { x.OneTimeKEM.Signature[63] ^= 1 }, ErrBadSignature},
		{"one-time kem as last resort", func(x *Bundle) { x.LastResortKEM = *x.OneTimeKEM }, ErrBadSignature},
		{"signed prekey as one-time", func(x *Bundle) { p := x.SignedPrekey; x.OneTimePrekey = &p }, ErrBadSignature},
		{"carol's prekey", func(x *Bundle) { x.SignedPrekey = c.keys.Bundle().SignedPrekey }, ErrBadSignature},
		{"carol's bundle", func(x *Bundle) { *x = *c.bundle(true, true) }, ErrIdentityMismatch},
		{"short key", func(x *Bundle) { x.IdentityDH = x.IdentityDH[:31] }, ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			set := a.setFor(t, b)
			bun := b.bundle(true, true)
			enc := mustMarshal(t, bun)
			bun, err := ParseBundle(enc) // a deep copy to mutate
			if err != nil {
				t.Fatal(err)
			}
			tc.mutate(bun)
			if err := VerifyBundle(bun, b.pub(), b.pid); !errors.Is(err, tc.want) {
				t.Fatalf("VerifyBundle: %v, want %v", err, tc.want)
			}
			next, err := set.InitiateFromBundle(a.keys, bun, t0)
			if !errors.Is(err, tc.want) || next != nil {
				t.Fatalf("InitiateFromBundle: %v, want %v", err, tc.want)
			}
			if _, _, err := set.Seal([]byte("x"), t0); !errors.Is(err, ErrNoSession) {
				t.Fatalf("seal after refused bundle: %v", err)
			}
		})
	}
	t.Run("other peer id", func(t *testing.T) {
		if err := VerifyBundle(b.bundle(true, true), b.pub(), c.pid); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestReplayedInitialMessage(t *testing.T) {
	for _, oneTime := range []bool{true, false} {
		t.Run(map[bool]string{true: "with one-time prekeys", false: "without one-time prekeys"}[oneTime], func(t *testing.T) {
			a, b := newParty(t, "alice", 0), newParty(t, "bob", 2)
			alice, bob := &peer{party: a, set: a.setFor(t, b)}, &peer{party: b, set: b.setFor(t, a)}
			next, err := alice.set.InitiateFromBundle(a.keys, b.bundle(oneTime, oneTime), t0)
			if err != nil {
				t.Fatal(err)
			}
			alice.set = next
			first := alice.seal(t, "first", t0)
			fresh := bob.set
			bob.open(t, first, "first", t0)
			// The same set: the session exists, the key is spent.
			expectFailure(t, bob, first, t0, ErrDuplicate)
			// The session is gone (archived out, or a fresh set), but the
			// replay record in the local keys remembers the base key.
			bob.set = fresh
			expectFailure(t, bob, first, t0, ErrReplay)
			// Even after a rotation, within the grace period.
			bob.keys, err = bob.keys.RotateSignedPrekeys(t0.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			expectFailure(t, bob, first, t0, ErrReplay)
		})
	}
}

func TestReusedOneTimePrekey(t *testing.T) {
	a, b, c := newParty(t, "alice", 0), newParty(t, "bob", 2), newParty(t, "carol", 0)
	bun := b.bundle(true, true) // the relay hands the same bundle out twice
	bob := &peer{party: b}
	var envs [][]byte
	for _, from := range []*party{a, c} {
		set, err := from.setFor(t, b).InitiateFromBundle(from.keys, bun, t0)
		if err != nil {
			t.Fatal(err)
		}
		env, _, err := set.Seal([]byte("hi from "+from.name), t0)
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, env)
	}
	bob.set = b.setFor(t, a)
	bob.open(t, envs[0], "hi from alice", t0)
	bob.set = b.setFor(t, c)
	expectFailure(t, bob, envs[1], t0, ErrReplay)

	t.Run("kem only", func(t *testing.T) {
		bun := b.bundle(false, false)
		ec, kem := bob.keys.OneTimePrekeys()
		if len(ec) != 1 || len(kem) != 1 {
			t.Fatalf("%d/%d one-time prekeys left", len(ec), len(kem))
		}
		bun.OneTimeKEM = &kem[0]
		set, _ := a.setFor(t, b).InitiateFromBundle(a.keys, bun, t0)
		env, _, _ := set.Seal([]byte("x"), t0)
		bob.set = b.setFor(t, a)
		bob.open(t, env, "x", t0)
		set, _ = c.setFor(t, b).InitiateFromBundle(c.keys, bun, t0)
		env, _, _ = set.Seal([]byte("y"), t0)
		bob.set = b.setFor(t, c)
		expectFailure(t, bob, env, t0, ErrReplay)
	})
}

func TestInitialMessageChecks(t *testing.T) {
	a, b, m := newParty(t, "alice", 0), newParty(t, "bob", 1), newParty(t, "mallory", 0)
	initialFrom := func(from *party, bun *Bundle) []byte {
		set, err := from.setFor(t, b).InitiateFromBundle(from.keys, bun, t0)
		if err != nil {
			t.Fatal(err)
		}
		env, _, err := set.Seal([]byte("hi"), t0)
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	t.Run("sender claims another identity", func(t *testing.T) {
		// Mallory's first contact delivered as if from Alice: her
		// identity-DH key is not signed by Alice.
		bob := &peer{party: b, set: b.setFor(t, a)}
		expectFailure(t, bob, initialFrom(m, b.bundle(true, true)), t0, ErrBadSignature)
		expectFailure(t, bob, initialFrom(m, b.bundle(true, true)), t0, ErrAuth)
	})
	t.Run("unknown signed prekey", func(t *testing.T) {
		rotated, err := b.keys.RotateSignedPrekeys(t0)
		if err != nil {
			t.Fatal(err)
		}
		future := &party{name: "bob", priv: b.priv, pid: b.pid, keys: rotated}
		bob := &peer{party: b, set: b.setFor(t, a)} // has not rotated yet
		expectFailure(t, bob, initialFrom(a, future.bundle(false, false)), t0, ErrUnknownPrekey)
	})
	t.Run("session id from the future", func(t *testing.T) {
		bob := &peer{party: b, set: b.setFor(t, a)}
		expectFailure(t, bob, initialFrom(a, b.bundle(false, false)), t0.Add(-MaxClockSkew-time.Second), ErrMalformed)
	})
	t.Run("no local keys", func(t *testing.T) {
		set := b.setFor(t, a)
		if _, err := set.Open(nil, initialFrom(a, b.bundle(false, false)), t0); !errors.Is(err, ErrIdentityMismatch) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("superseded prekey after grace", func(t *testing.T) {
		env := initialFrom(a, b.bundle(false, false))
		keys := b.keys
		var err error
		for i := range 2 {
			if keys, err = keys.RotateSignedPrekeys(t0.Add(time.Duration(i) * (PrekeyGracePeriod + time.Hour))); err != nil {
				t.Fatal(err)
			}
		}
		bob := &peer{party: &party{name: "bob", priv: b.priv, pid: b.pid, keys: keys}, set: b.setFor(t, a)}
		expectFailure(t, bob, env, t0, ErrUnknownPrekey)
	})
}

func TestPrekeyRotation(t *testing.T) {
	b := newParty(t, "bob", 0)
	if b.keys.NeedsRotation(t0) {
		t.Fatal("fresh keys need rotation")
	}
	if !b.keys.NeedsRotation(t0.Add(SignedPrekeyLifetime)) {
		t.Fatal("old keys do not need rotation")
	}
	old := b.keys.Bundle()
	k, err := b.keys.RotateSignedPrekeys(t0.Add(SignedPrekeyLifetime))
	if err != nil {
		t.Fatal(err)
	}
	nb := k.Bundle()
	if nb.SignedPrekey.ID == old.SignedPrekey.ID || nb.LastResortKEM.ID == old.LastResortKEM.ID {
		t.Fatal("rotation kept the prekey")
	}
	if err := VerifyBundle(nb, b.pub(), b.pid); err != nil {
		t.Fatal(err)
	}
	if len(k.signed) != 2 || len(b.keys.signed) != 1 {
		t.Fatalf("signed prekeys: new %d, receiver %d", len(k.signed), len(b.keys.signed))
	}
}

// A signed prekey whose replay record is full refuses new first contacts
// rather than forget base keys (which would reopen replays) or grow past
// what a saved LocalKeys may hold.
func TestReplayRecordFull(t *testing.T) {
	a, b := newParty(t, "alice", 0), newParty(t, "bob", 0)
	alice, bob := &peer{party: a, set: a.setFor(t, b)}, &peer{party: b, set: b.setFor(t, a)}
	next, err := alice.set.InitiateFromBundle(a.keys, b.bundle(false, false), t0)
	if err != nil {
		t.Fatal(err)
	}
	alice.set = next
	first := alice.seal(t, "first", t0)
	full := *bob.keys
	full.signed = append([]signedPrekey(nil), bob.keys.signed...)
	last := len(full.signed) - 1
	full.signed[last].seen = make([][32]byte, MaxSeenBaseKeys)
	for i := range full.signed[last].seen {
		binary.BigEndian.PutUint32(full.signed[last].seen[i][:], uint32(i)) // ascending
	}
	bob.keys = &full
	expectFailure(t, bob, first, t0, ErrPrekeyExhausted)
}
