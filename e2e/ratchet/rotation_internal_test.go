package ratchet

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"
)

// A signed prekey whose replay record is nine tenths full asks to be
// replaced, whatever its age: the node then publishes a new one before
// the record can refuse first contacts (issue 11, sybils).
func TestNeedsRotationWhenReplayRecordFills(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1_800_000_000, 0)
	k, err := NewLocalKeys(priv, []byte("self"), t0)
	if err != nil {
		t.Fatal(err)
	}
	cur := &k.signed[len(k.signed)-1]
	for i := range MaxSeenBaseKeys*9/10 - 1 {
		var b [32]byte
		b[0], b[1], b[2] = byte(i>>16), byte(i>>8), byte(i)
		cur.seen = append(cur.seen, b)
	}
	if k.NeedsRotation(t0) {
		t.Fatalf("rotation asked for with %d of %d base keys seen", len(cur.seen), MaxSeenBaseKeys)
	}
	cur.seen = append(cur.seen, [32]byte{0xff})
	if !k.NeedsRotation(t0) {
		t.Fatalf("no rotation asked for with %d of %d base keys seen", len(cur.seen), MaxSeenBaseKeys)
	}
	next, err := k.RotateSignedPrekeys(t0)
	if err != nil {
		t.Fatal(err)
	}
	if next.NeedsRotation(t0) {
		t.Fatal("the new signed prekey asks to be replaced at once")
	}
	if old := next.signed[len(next.signed)-2]; len(old.seen) != MaxSeenBaseKeys*9/10 {
		t.Fatalf("the superseded prekey kept %d base keys of its record, want all %d", len(old.seen), MaxSeenBaseKeys*9/10)
	}
}
