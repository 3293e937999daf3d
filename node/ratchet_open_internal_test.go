package node

import (
	"bytes"
	"testing"
	"time"
)

// Opening an envelope commits the new session set through rk.stateBuf
// and erases it after: the buffer, kept for the next envelope, held
// every secret of the set. What the store holds is the set in memory.
func TestOpenStateStoredAndErased(t *testing.T) {
	f := newSealFixture(t, 1)
	mb := f.members[0]
	m := f.send(t, "hello")
	f.rk.mu.Lock()
	env := f.rk.unsent[mb.id][m.ID]
	f.rk.mu.Unlock()
	o, err := mb.set.Open(mb.local, env, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	mb.set = o.Set
	for i := range 3 {
		reply, next, err := mb.set.Seal(nil, time.Now()) // an empty plaintext: the state only
		if err != nil {
			t.Fatal(err)
		}
		mb.set = next
		if _, err := f.rk.open(mb.id, reply); err != nil {
			t.Fatalf("envelope %d: %v", i, err)
		}
		f.rk.mu.Lock()
		buf := f.rk.stateBuf[:cap(f.rk.stateBuf)]
		inMemory, err := f.rk.sets[mb.id].MarshalBinary()
		f.rk.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		if len(buf) == 0 {
			t.Fatalf("envelope %d: no state was encoded in the buffer", i)
		}
		if !bytes.Equal(buf, make([]byte, len(buf))) {
			t.Fatalf("envelope %d: the state buffer is not erased after the commit (%d of %d bytes not zero)", i, len(buf)-bytes.Count(buf, []byte{0}), len(buf))
		}
		stored, err := f.st.Ratchets().SessionSet(mb.id)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(stored, inMemory) {
			t.Fatalf("envelope %d: the stored state is not the one in memory", i)
		}
	}
}
