package ratchet

import (
	"bytes"
	"testing"
)

// fuzzFixture is an established conversation plus sample encodings, built
// once per fuzz target to seed the corpus.
type fuzzFixture struct {
	alice, bob *peer
	envelopes  [][]byte // from Alice to Bob, not yet opened by bob
	bundle     []byte
	offer      []byte
}

func newFuzzFixture(f *testing.F) *fuzzFixture {
	alice, bob := newConversation(f)
	x := &fuzzFixture{alice: alice, bob: bob}
	initial := alice.seal(f, "first contact", t0)
	bob.open(f, initial, "first contact", t0)
	alice.open(f, bob.seal(f, "reply", t0), "reply", t0)
	for i := range 3 {
		x.envelopes = append(x.envelopes, alice.seal(f, msg(i), t0))
	}
	bob.open(f, x.envelopes[2], msg(2), t0) // leaves skipped keys
	x.envelopes = append(x.envelopes, initial)
	x.bundle = mustMarshal(f, bob.party.bundle(true, true))
	x.offer, _, _ = bob.set.SeedResponder(make([]byte, 32), t0)
	return x
}

func FuzzParseEnvelope(f *testing.F) {
	x := newFuzzFixture(f)
	for _, e := range x.envelopes {
		f.Add(e)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := parseEnvelope(data)
		if err != nil {
			return
		}
		joined := append(append(bytes.Clone(e.prefix), e.encHeader...), e.ciphertext...)
		if !bytes.Equal(joined, data) || len(e.encHeader) != encHeaderSize || len(e.ciphertext) < minPayloadSize {
			t.Fatal("parsed fields do not tile the envelope")
		}
		if (e.typ == envelopeInitial) != (e.initial != nil) {
			t.Fatal("initial part and type disagree")
		}
		if id, initial, err := PeekSessionID(data); err != nil || id != e.id || initial != (e.initial != nil) {
			t.Fatal("PeekSessionID disagrees with the parser")
		}
	})
}

func FuzzOpen(f *testing.F) {
	x := newFuzzFixture(f)
	for _, e := range x.envelopes {
		f.Add(e)
	}
	before := x.bob.snapshot(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := x.bob.set.Open(x.bob.keys, data, t0)
		if err == nil && o.Set == nil {
			t.Fatal("successful open without a new state")
		}
		if x.bob.snapshot(t) != before {
			t.Fatal("Open modified its receiver")
		}
	})
}

func FuzzParseBundle(f *testing.F) {
	x := newFuzzFixture(f)
	f.Add(x.bundle)
	f.Add(mustMarshal(f, x.alice.party.keys.Bundle()))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseBundle(data)
		if err != nil {
			return
		}
		enc, err := b.MarshalBinary()
		if err != nil || !bytes.Equal(enc, data) {
			t.Fatalf("bundle does not re-encode to its input: %v", err)
		}
		_ = VerifyBundle(b, x.bob.pub(), x.bob.pid) // must not panic on any parsed bundle
	})
}

func FuzzParseSeedOffer(f *testing.F) {
	x := newFuzzFixture(f)
	f.Add(x.offer)
	f.Fuzz(func(t *testing.T, data []byte) {
		id, pub, err := ParseSeedOffer(data)
		if err != nil {
			return
		}
		if len(data) != seedOfferSize || !bytes.Equal(data[1:17], id[:]) || !bytes.Equal(data[17:], pub) {
			t.Fatal("seed offer fields do not match the input")
		}
	})
}

func FuzzUnmarshalSessionSet(f *testing.F) {
	x := newFuzzFixture(f)
	f.Add(mustMarshal(f, x.bob.set))
	f.Add(mustMarshal(f, x.alice.set))
	f.Add(mustMarshal(f, x.bob.party.setFor(f, x.alice.party)))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := UnmarshalSessionSet(data)
		if err != nil {
			return
		}
		enc, err := s.MarshalBinary()
		if err != nil || !bytes.Equal(enc, data) {
			t.Fatalf("set does not re-encode to its input: %v", err)
		}
		// Any state that decodes must be usable without panics.
		s.Expire(t0)
		// A decoded set holds no lease: its first seal takes one, to be
		// committed before the envelope leaves.
		if _, _, commit, err := s.SealLeased([]byte("x"), t0); err == nil && !commit {
			t.Fatal("the first seal of a decoded set asked for no commit")
		}
		for _, e := range x.envelopes {
			_, _ = s.Open(nil, e, t0)
		}
	})
}

func FuzzUnmarshalLocalKeys(f *testing.F) {
	x := newFuzzFixture(f)
	f.Add(mustMarshal(f, x.bob.keys))
	k, err := x.bob.keys.RotateSignedPrekeys(t0)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(mustMarshal(f, k))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := UnmarshalLocalKeys(data, x.bob.priv)
		if err != nil {
			return
		}
		enc, err := k.MarshalBinary()
		if err != nil || !bytes.Equal(enc, data) {
			t.Fatalf("keys do not re-encode to their input: %v", err)
		}
		k.Bundle()
		k.OneTimePrekeys()
		k.NeedsRotation(t0)
	})
}
