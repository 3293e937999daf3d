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
// record: a message writes either every member's state (its seals took
// new leases) or none, leases grow 1, 2, 4 … ratchet.SendLease messages
// and then stay that long, and between two renewals each member's stored
// state is unchanged. The members open every copy.
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
	last := make([][]byte, len(f.members))
	var renewals []int // the messages that wrote the states
	for n := range 2*ratchet.SendLease + 64 {
		body := fmt.Sprintf("hello %d", n)
		before := f.written()
		m := f.send(t, body)
		switch written := f.written() - before; written {
		case uint64(len(f.members)):
			renewals = append(renewals, n)
		case 0:
		default:
			t.Fatalf("message %d wrote %d ratchet records, want every member's (%d) or none", n, written, len(f.members))
		}
		renewed := len(renewals) > 0 && renewals[len(renewals)-1] == n
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
			s := stored(i)
			if !renewed && !bytes.Equal(s, last[i]) {
				t.Fatalf("message %d (within the lease) wrote %s's ratchet record", n, identity.ShortID(mb.id))
			}
			last[i] = s
		}
	}
	if len(renewals) == 0 || renewals[0] != 0 {
		t.Fatalf("renewals at messages %v: the first message took no lease", renewals)
	}
	for k := 1; k < len(renewals); k++ {
		d, prev := renewals[k]-renewals[k-1], 1
		if k > 1 {
			prev = renewals[k-1] - renewals[k-2]
		}
		if d != min(2*prev, ratchet.SendLease) && !(k == 1 && d <= 2) {
			t.Fatalf("renewals at messages %v: leases do not grow 1, 2, 4 … %d", renewals, ratchet.SendLease)
		}
	}
	if n := len(renewals); n < 3 || renewals[n-1]-renewals[n-2] != ratchet.SendLease {
		t.Fatalf("renewals at messages %v: leases never reached %d", renewals, ratchet.SendLease)
	}
}

// A 1:1 run of seals commits the state only when a seal took a new lease:
// the record is unchanged within the lease, and a "restart" (the keys
// loaded again from the store) resumes at the lease point, past every
// number sealed, which the peer opens, counting the unused numbers as
// skipped (fewer than ratchet.SendLease).
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
	// Past the growing leases: then one commit in ratchet.SendLease seals.
	envs, err := f.rk.sealAll(mb.id, make([][]byte, 2*ratchet.SendLease))
	if err != nil {
		t.Fatal(err)
	}
	var last ratchet.Info
	for _, e := range envs {
		last = open(e)
	}
	commits := 0
	for i := range 2 * ratchet.SendLease {
		before := f.written()
		leased, err := f.st.Ratchets().SessionSet(mb.id)
		if err != nil {
			t.Fatal(err)
		}
		env, err := f.rk.seal(mb.id, nil)
		if err != nil {
			t.Fatal(err)
		}
		last = open(env)
		if f.written() != before {
			commits++
			continue
		}
		if now, err := f.st.Ratchets().SessionSet(mb.id); err != nil || !bytes.Equal(now, leased) {
			t.Fatalf("seal %d within the lease wrote the ratchet record (%v)", i, err)
		}
	}
	if commits != 2 {
		t.Fatalf("%d seals committed %d times, want 2", 2*ratchet.SendLease, commits)
	}
	f.rk.mu.Lock()
	delete(f.rk.sets, mb.id) // as after a restart: read from the store
	f.rk.mu.Unlock()
	env, err := f.rk.seal(mb.id, nil)
	if err != nil {
		t.Fatal(err)
	}
	info := open(env)
	if info.MessageNumber <= last.MessageNumber || info.Skipped != int(info.MessageNumber-last.MessageNumber-1) || info.Skipped >= ratchet.SendLease {
		t.Fatalf("after the restart: n %d (last before it %d), skipped %d; want past it, fewer than %d skipped",
			info.MessageNumber, last.MessageNumber, info.Skipped, ratchet.SendLease)
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

// In a 1:1 conversation that alternates, a reply writes no ratchet state
// of its own: the Open of the message it answers took the new sending
// chain's lease and committed it with that message (PROTOCOL §12.12.1),
// so each turn costs one commit, not two.
func TestReplyAfterOpenWritesNoRatchet(t *testing.T) {
	f := newSealFixture(t, 1)
	mb := f.members[0]
	for turn := range 12 {
		before := f.written()
		env, err := f.rk.seal(mb.id, nil)
		if err != nil {
			t.Fatal(err)
		}
		if turn > 0 && f.written() != before {
			t.Fatalf("turn %d: the reply wrote the ratchet state", turn)
		}
		o, err := mb.set.Open(mb.local, env, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		reply, next, err := o.Set.Seal([]byte{}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		mb.set = next
		if _, err := f.rk.open(mb.id, reply); err != nil {
			t.Fatalf("turn %d: open the member's message: %v", turn, err)
		}
	}
}
