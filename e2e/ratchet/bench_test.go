package ratchet

import (
	"testing"
)

var benchPayload = make([]byte, 256) // a typical chat message

// BenchmarkSeal seals in a steady conversation (one sending chain).
func BenchmarkSeal(b *testing.B) {
	alice, _ := established(b)
	set := alice.set
	b.ReportAllocs()
	b.SetBytes(int64(len(benchPayload)))
	for b.Loop() {
		_, next, err := set.Seal(benchPayload, t0)
		if err != nil {
			b.Fatal(err)
		}
		set = next
	}
}

// BenchmarkOpen opens envelopes in order in a steady conversation.
func BenchmarkOpen(b *testing.B) {
	alice, bob := established(b)
	envs := make([][]byte, b.N)
	for i := range envs {
		var err error
		if envs[i], alice.set, err = alice.set.Seal(benchPayload, t0); err != nil {
			b.Fatal(err)
		}
	}
	set := bob.set
	b.ReportAllocs()
	b.SetBytes(int64(len(benchPayload)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		o, err := set.Open(nil, envs[i], t0)
		if err != nil {
			b.Fatal(err)
		}
		set = o.Set
	}
}

// BenchmarkRoundTrip alternates senders: every message is a DH ratchet step.
func BenchmarkRoundTrip(b *testing.B) {
	alice, bob := established(b)
	b.ReportAllocs()
	for b.Loop() {
		bob.open(b, alice.seal(b, "ping", t0), "ping", t0)
		alice.open(b, bob.seal(b, "pong", t0), "pong", t0)
	}
}

// BenchmarkPQXDHInitiate verifies a bundle and runs the initiator side.
func BenchmarkPQXDHInitiate(b *testing.B) {
	a, bp := newParty(b, "alice", 0), newParty(b, "bob", 1)
	set, bundle := a.setFor(b, bp), bp.bundle(true, true)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := set.InitiateFromBundle(a.keys, bundle, t0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPQXDHRespond opens a first-contact envelope: signature check,
// PQXDH responder side, ML-KEM decapsulation, first ratchet step. The
// receiver is immutable, so every iteration does the full work.
func BenchmarkPQXDHRespond(b *testing.B) {
	alice, bob := newConversation(b)
	env := alice.seal(b, "hi", t0)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := bob.set.Open(bob.keys, env, t0); err != nil {
			b.Fatal(err)
		}
	}
}

// benchSet is a session set mid-conversation with skipped keys stored.
func benchSet(b *testing.B) *SessionSet {
	alice, bob := established(b)
	for round := range 4 {
		var last []byte
		for i := range 50 {
			last = alice.seal(b, msg(i), t0)
		}
		bob.open(b, last, msg(49), t0)
		alice.open(b, bob.seal(b, msg(round), t0), msg(round), t0)
	}
	return bob.set
}

func BenchmarkMarshalSessionSet(b *testing.B) {
	set := benchSet(b)
	enc, _ := set.MarshalBinary()
	b.ReportAllocs()
	b.SetBytes(int64(len(enc)))
	for b.Loop() {
		if _, err := set.MarshalBinary(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshalSessionSet(b *testing.B) {
	enc, _ := benchSet(b).MarshalBinary()
	b.ReportAllocs()
	b.SetBytes(int64(len(enc)))
	for b.Loop() {
		if _, err := UnmarshalSessionSet(enc); err != nil {
			b.Fatal(err)
		}
	}
}
