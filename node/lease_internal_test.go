package node

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/e2e/ratchet"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
)

// A group message within the members' sending leases writes no ratchet
// record: each member's stored state is the one the first message wrote
// until ratchet.SendLease messages later, when every member's is renewed
// in that message's transaction. The members open every copy.
func TestGroupSealWithinLeaseWritesNoRatchet(t *testing.T) {
	f := newSealFixture(t, 3)
	stored := func(i int) []byte {
		t.Helper()
		b, err := f.st.Ratchets().SessionSet(f.ids[i])
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var first [][]byte
	for n := range ratchet.SendLease + 1 {
		body := fmt.Sprintf("hello %d", n)
		before := f.written()
		m := f.send(t, body)
		switch written := f.written() - before; {
		case (n == 0 || n == ratchet.SendLease) && written != uint64(len(f.members)):
			t.Fatalf("message %d wrote %d ratchet records, want every member's (%d)", n, written, len(f.members))
		case n != 0 && n != ratchet.SendLease && written != 0:
			t.Fatalf("message %d (within the lease) wrote %d ratchet records, want none", n, written)
		}
		for i, mb := range f.members {
			f.rk.mu.Lock()
			env := f.rk.unsent[mb.id][m.ID]
			f.rk.mu.Unlock()
			f.rk.takeSealed(mb.id, m.ID)
			o, err := mb.set.Open(mb.local, env, time.Now())
			if err != nil {
				t.Fatalf("message %d: %s cannot open its copy: %v", n, identity.ShortID(mb.id), err)
			}
			mb.set = o.Set
			if !bytes.Contains(o.Plaintext, []byte(body)) {
				t.Fatalf("message %d: %s's copy does not hold %q", n, identity.ShortID(mb.id), body)
			}
			switch s := stored(i); {
			case n == 0:
				first = append(first, s)
			case n < ratchet.SendLease && !bytes.Equal(s, first[i]):
				t.Fatalf("message %d (within the lease) wrote %s's ratchet record", n, identity.ShortID(mb.id))
			case n == ratchet.SendLease && bytes.Equal(s, first[i]):
				t.Fatalf("message %d (past the lease) did not renew %s's ratchet record", n, identity.ShortID(mb.id))
			}
		}
	}
}

// A 1:1 run of seals commits the state only when a seal took a new lease:
// the record is unchanged within the lease, and a "restart" (the keys
// loaded again from the store) resumes at the lease point, which the
// peer opens, counting the unused numbers as skipped.
func TestSealAllCommitsOnLeaseOnly(t *testing.T) {
	f := newSealFixture(t, 1)
	mb := f.members[0]
	open := func(env []byte) ratchet.Info {
		t.Helper()
		o, err := mb.set.Open(mb.local, env, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		mb.set = o.Set
		return o.Info
	}
	envs, err := f.rk.sealAll(mb.id, [][]byte{nil, nil, nil})
	if err != nil {
		t.Fatal(err)
	}
	leased, err := f.st.Ratchets().SessionSet(mb.id)
	if err != nil {
		t.Fatal(err)
	}
	before := f.written()
	env, err := f.rk.seal(mb.id, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.written() != before {
		t.Fatal("a seal within the lease committed the ratchet state")
	}
	if now, err := f.st.Ratchets().SessionSet(mb.id); err != nil || !bytes.Equal(now, leased) {
		t.Fatalf("a seal within the lease wrote the ratchet record (%v)", err)
	}
	for _, e := range append(envs, env) {
		open(e)
	}
	f.rk.mu.Lock()
	delete(f.rk.sets, mb.id) // as after a restart: read from the store
	f.rk.mu.Unlock()
	env, err = f.rk.seal(mb.id, nil)
	if err != nil {
		t.Fatal(err)
	}
	if info := open(env); info.MessageNumber != ratchet.SendLease || info.Skipped != ratchet.SendLease-4 {
		t.Fatalf("after the restart: n %d, skipped %d; want %d, %d", info.MessageNumber, info.Skipped, ratchet.SendLease, ratchet.SendLease-4)
	}
}

// A sender restarted in the middle of its leases (closed, its home opened
// again) goes on at the lease points: every member opens the messages
// sent after the restart as well as before, in order.
func TestGroupLeaseRestartMidLease(t *testing.T) {
	aliceHome := identity.Home{Dir: t.TempDir()}
	aliceID, err := aliceHome.Init("alice", nil, identity.DefaultKDF, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	alice := offNodeAt(t, aliceHome, aliceID, nil, true)
	bob := offNewNode(t, "bob", nil, true)
	carol := offNewNode(t, "carol", nil, true)
	offLink(t, alice, bob)
	offLink(t, alice, carol)
	id := offGroup(t, alice, bob, carol)
	var sent []e2e.MessageID
	send := func(from *offNode, body string) {
		t.Helper()
		m, err := from.Groups().Send(id, body)
		if err != nil {
			t.Fatal(err)
		}
		for _, to := range []*offNode{bob, carol} {
			to.offWait(body, offIsMessage(m.ID))
			offDeliveredTo(t, from, m.ID, to.ID())
		}
		sent = append(sent, m.ID)
	}
	for i := range 3 {
		send(alice, fmt.Sprintf("before %d", i))
	}
	alice.Close()
	alice = offNodeAt(t, aliceHome, aliceID, nil, true)
	for _, to := range []*offNode{bob, carol} {
		alice.host.Peerstore().AddAddrs(to.ID(), to.host.Addrs(), time.Hour)
		to.host.Peerstore().AddAddrs(alice.ID(), alice.host.Addrs(), time.Hour)
	}
	for i := range 3 {
		send(alice, fmt.Sprintf("after %d", i))
	}
	for _, to := range []*offNode{bob, carol} {
		h, err := to.store.Groups().GroupHistory(store.GroupID(id), 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var got []e2e.MessageID
		for _, m := range h {
			if m.From == alice.ID() && m.Kind == store.KindText {
				got = append(got, m.ID)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(sent) {
			t.Fatalf("%s has alice's messages %v, want %v", to.id.Name(), got, sent)
		}
	}
}

// written is how many session sets the sender's ratchet wrote so far.
func (f *sealFixture) written() uint64 {
	f.rk.mu.Lock()
	defer f.rk.mu.Unlock()
	return f.rk.setsWritten
}
