package ratchet

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
	"time"
)

// TestConversation runs scripted conversations: each rune is one message
// by Alice ('a') or Bob ('b'), delivered in order. Every change of speaker
// is a DH ratchet step.
func TestConversation(t *testing.T) {
	tests := []struct{ name, script string }{
		{"ping-pong", "abababababab"},
		{"bursts", "aaaabbbbbaabbbbaaaaa"},
		{"alice-monologue", "aaaaaaaaaaaaaaaaaaaa"},
		{"long", "abbabaabbbaaabababbbbbbbaaaaaaabababbabaabab"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			alice, bob := newConversation(t)
			now := t0
			ratchetKeys := map[[32]byte]bool{}
			for i, who := range tc.script {
				now = now.Add(time.Minute)
				from, to := alice, bob
				if who == 'b' {
					from, to = bob, alice
				}
				if i == 0 && who == 'b' {
					t.Fatal("bob cannot speak first")
				}
				env := from.seal(t, msg(i), now)
				to.open(t, env, msg(i), now)
				ratchetKeys[[32]byte(from.set.sessions[0].dhs.PublicKey().Bytes())] = true
			}
			if _, ok := alice.set.Active(); !ok {
				t.Fatal("no active session")
			}
			turns := 1
			for i := 1; i < len(tc.script); i++ {
				if tc.script[i] != tc.script[i-1] {
					turns++
				}
			}
			// Alice's first key plus one new key per turn after Bob's first.
			if len(ratchetKeys) < turns {
				t.Fatalf("saw %d ratchet keys for %d turns", len(ratchetKeys), turns)
			}
		})
	}
}

func TestInitialPartUntilReply(t *testing.T) {
	alice, bob := newConversation(t)
	e0, e1, e2 := alice.seal(t, "0", t0), alice.seal(t, "1", t0), alice.seal(t, "2", t0)
	for _, e := range [][]byte{e0, e1, e2} {
		if _, initial, err := PeekSessionID(e); err != nil || !initial {
			t.Fatalf("envelope before reply is not initial: %v", err)
		}
	}
	// The first envelope is lost for now: the second one establishes.
	info := bob.open(t, e1, "1", t0)
	if !info.FirstContact || info.Skipped != 1 || info.Missing != 1 {
		t.Fatalf("info %+v", info)
	}
	info = bob.open(t, e0, "0", t0)
	if info.FirstContact || !info.Late || info.Missing != 0 {
		t.Fatalf("late initial envelope: %+v", info)
	}
	bob.open(t, e2, "2", t0)
	alice.open(t, bob.seal(t, "reply", t0), "reply", t0)
	if _, initial, _ := PeekSessionID(alice.seal(t, "3", t0)); initial {
		t.Fatal("envelope after reply still carries the initial part")
	}
}

func TestReorderedAndDelayed(t *testing.T) {
	alice, bob := established(t)
	const n = 12
	envs := make([][]byte, n)
	for i := range envs {
		envs[i] = alice.seal(t, msg(i), t0)
	}
	order := rand.New(rand.NewPCG(1, 2)).Perm(n)
	received := map[int]bool{}
	for _, i := range order {
		info := bob.open(t, envs[i], msg(i), t0)
		highest := -1
		for j := range received {
			highest = max(highest, j)
		}
		received[i] = true
		if late := i < highest; info.Late != late {
			t.Fatalf("message %d: late %v, want %v", i, info.Late, late)
		}
		if i > highest && info.Skipped != i-highest-1 {
			t.Fatalf("message %d: skipped %d, want %d", i, info.Skipped, i-highest-1)
		}
		top := max(highest, i)
		missing := 0
		for j := 0; j < top; j++ {
			if !received[j] {
				missing++
			}
		}
		if info.Missing != missing || info.MessageNumber != uint32(i) {
			t.Fatalf("message %d: %+v, want missing %d", i, info, missing)
		}
	}
}

func TestDelayedAcrossRatchetSteps(t *testing.T) {
	alice, bob := established(t)
	var held [][]byte
	for round := range 4 {
		held = append(held, alice.seal(t, msg(round), t0))
		alice.seal(t, "dropped for now", t0) // never delivered
		bob.open(t, alice.seal(t, "last", t0), "last", t0)
		alice.open(t, bob.seal(t, "ack", t0), "ack", t0)
	}
	for round, env := range held {
		if info := bob.open(t, env, msg(round), t0); !info.Late {
			t.Fatalf("round %d not late", round)
		}
	}
}

func TestDuplicate(t *testing.T) {
	alice, bob := established(t)
	e1 := alice.seal(t, "one", t0)
	e2 := alice.seal(t, "two", t0)
	e3 := alice.seal(t, "three", t0)
	bob.open(t, e1, "one", t0)
	bob.open(t, e3, "three", t0)
	bob.open(t, e2, "two", t0) // late, from the stored key
	tests := []struct {
		name string
		env  []byte
	}{
		{"in order", e1},
		{"highest", e3},
		{"late one", e2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { expectFailure(t, bob, tc.env, t0, ErrDuplicate) })
	}
	// After two more ratchet steps the old chain is retired: still duplicate.
	alice.open(t, bob.seal(t, "x", t0), "x", t0)
	bob.open(t, alice.seal(t, "y", t0), "y", t0)
	alice.open(t, bob.seal(t, "z", t0), "z", t0)
	t.Run("retired chain", func(t *testing.T) { expectFailure(t, bob, e1, t0, ErrDuplicate) })
}

func TestMaxSkip(t *testing.T) {
	t.Run("first message of a new chain", func(t *testing.T) {
		alice, bob := established(t)
		var envs [][]byte
		for i := range MaxSkip + 2 {
			envs = append(envs, alice.seal(t, msg(i), t0))
		}
		expectFailure(t, bob, envs[MaxSkip+1], t0, ErrTooManySkipped)
		info := bob.open(t, envs[MaxSkip], msg(MaxSkip), t0) // a gap of exactly MaxSkip
		if info.Skipped != MaxSkip {
			t.Fatalf("skipped %d", info.Skipped)
		}
	})
	t.Run("current chain", func(t *testing.T) {
		alice, bob := established(t)
		var envs [][]byte
		for i := range MaxSkip + 3 {
			envs = append(envs, alice.seal(t, msg(i), t0))
		}
		bob.open(t, envs[0], msg(0), t0) // bob now receives on this chain
		expectFailure(t, bob, envs[MaxSkip+2], t0, ErrTooManySkipped)
		info := bob.open(t, envs[MaxSkip+1], msg(MaxSkip+1), t0) // a gap of exactly MaxSkip
		if info.Skipped != MaxSkip {
			t.Fatalf("skipped %d", info.Skipped)
		}
	})
	t.Run("new chain", func(t *testing.T) {
		alice, bob := established(t)
		alice.open(t, bob.seal(t, "turn", t0), "turn", t0)
		var last []byte
		for i := range MaxSkip + 2 {
			last = alice.seal(t, msg(i), t0)
		}
		expectFailure(t, bob, last, t0, ErrTooManySkipped)
	})
	t.Run("previous chain", func(t *testing.T) {
		alice, bob := established(t)
		bob.open(t, alice.seal(t, "first", t0), "first", t0) // bob receives on alice's chain
		for i := range MaxSkip + 2 {
			alice.seal(t, msg(i), t0) // sent, never delivered
		}
		alice.open(t, bob.seal(t, "turn", t0), "turn", t0)
		// Alice's next chain says her previous one had MaxSkip+3
		// messages; bob saw one.
		expectFailure(t, bob, alice.seal(t, "next", t0), t0, ErrTooManySkipped)
	})
}

func TestExpiredSkippedKeys(t *testing.T) {
	alice, bob := established(t)
	e := make([][]byte, 4)
	for i := range e {
		e[i] = alice.seal(t, msg(i), t0)
	}
	bob.open(t, e[3], msg(3), t0)
	late := t0.Add(SkippedKeyMaxAge + time.Second)
	expectFailure(t, bob, e[0], late, ErrExpired)
	// Within the window a late key still works.
	bob.open(t, e[1], msg(1), t0.Add(SkippedKeyMaxAge-time.Second))
	// Expire erases the remaining old key; the envelope is then reported
	// expired from the discard mark.
	next, changed := bob.set.Expire(late)
	if !changed || len(next.sessions[0].skipped) != 0 {
		t.Fatalf("expire: changed %v, %d keys left", changed, len(next.sessions[0].skipped))
	}
	bob.set = next
	expectFailure(t, bob, e[2], late, ErrExpired)
	if _, again := bob.set.Expire(late); again {
		t.Fatal("second expire changed something")
	}
}

func TestSkippedKeyCap(t *testing.T) {
	alice, bob := established(t)
	var first []byte
	for round := range 3 {
		for i := range MaxSkip {
			e := alice.seal(t, msg(i), t0)
			if round == 0 && i == 0 {
				first = e
			}
		}
		bob.open(t, alice.seal(t, "top", t0), "top", t0)
		alice.open(t, bob.seal(t, "ack", t0), "ack", t0)
	}
	if n := len(bob.set.sessions[0].skipped); n != MaxSkippedKeys {
		t.Fatalf("%d skipped keys stored, cap %d", n, MaxSkippedKeys)
	}
	expectFailure(t, bob, first, t0, ErrExpired) // evicted: the oldest go first
}

func TestFailedOpenLeavesStateUntouched(t *testing.T) {
	alice, bob := established(t)
	good := alice.seal(t, "payload", t0)
	flip := func(i int) []byte {
		e := bytes.Clone(good)
		e[i] ^= 0x01
		return e
	}
	tests := []struct {
		name string
		env  []byte
		want error
	}{
		{"version", flip(0), ErrVersion},
		{"type", flip(1), ErrMalformed},
		{"session id", flip(5), ErrUnknownSession},
		{"header nonce", flip(envelopePrefix + 1), ErrAuth},
		{"header", flip(envelopePrefix + xNonceSize + 3), ErrAuth},
		{"ciphertext", flip(len(good) - tagSize - 1), ErrAuth},
		{"tag", flip(len(good) - 1), ErrAuth},
		{"truncated", good[:len(good)-1], ErrAuth},
		{"payload nonce", flip(envelopePrefix + encHeaderSize + 2), ErrAuth},
		{"too short", good[:envelopePrefix+encHeaderSize+minPayloadSize-1], ErrMalformed},
		{"extended", append(bytes.Clone(good), 0), ErrAuth},
		{"empty", nil, ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { expectFailure(t, bob, tc.env, t0, tc.want) })
	}
	bob.open(t, good, "payload", t0)
}

func TestSealLimits(t *testing.T) {
	alice, bob := newConversation(t)
	if _, _, err := alice.set.Seal(make([]byte, MaxPlaintextSize+1), t0); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized: %v", err)
	}
	if _, _, err := bob.set.Seal([]byte("x"), t0); !errors.Is(err, ErrNoSession) {
		t.Fatalf("empty set: %v", err)
	}
	big := bytes.Repeat([]byte{7}, MaxPlaintextSize)
	env, _, err := alice.set.Seal(big, t0)
	if err != nil {
		t.Fatal(err)
	}
	if o, err := bob.set.Open(bob.keys, env, t0); err != nil || !bytes.Equal(o.Plaintext, big) {
		t.Fatalf("max size: %v", err)
	}
}
