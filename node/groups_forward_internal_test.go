package node

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/group"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Forwarded copies (groups_forward.go, docs/PROTOCOL.md §14.7), on real
// nodes on loopback: alice sends to a group of four whose members all
// hold live sessions with each other, with forwarding lowered to groups
// of two copies (forwardMin is 16), so that two members forward and each
// carries one other member's copy.

// fwdGroup is alice and members linked each to each (every member can
// forward to every other), in a group alice made; alice forwards from
// two copies on, waits wait for a forwarded copy's receipt, and the
// members hold receipts 20 ms. tweak, if not nil, configures the
// members, by index.
func fwdGroup(t *testing.T, n int, wait time.Duration, tweak func(int, *Config)) (alice *offNode, members []*offNode, id group.ID) {
	t.Helper()
	alice = offNewNode(t, "alice", nil, true)
	for i := range n {
		members = append(members, offNewNodeWith(t, string(rune('b'+i))+"member", func(c *Config) {
			if tweak != nil {
				tweak(i, c)
			}
		}))
	}
	all := append([]*offNode{alice}, members...)
	for i := range all {
		for j := i + 1; j < len(all); j++ {
			offLink(t, all[i], all[j])
		}
	}
	id = offGroup(t, alice, members...)
	for _, m := range members {
		m.sessions.held.holdFor.Store(int64(20 * time.Millisecond))
	}
	fwdFromTwo(alice, wait)
	return alice, members, id
}

// fwdFromTwo has alice forward from two copies on, and wait for a
// forwarded copy's receipt.
func fwdFromTwo(alice *offNode, wait time.Duration) {
	alice.out.fwd.mu.Lock()
	alice.out.fwd.min, alice.out.fwd.wait = 2, wait
	alice.out.fwd.mu.Unlock()
}

// fwdStar is alice, linked to four members who know each other's
// addresses but hold no sessions with each other, and have accepted
// each other if accepted, in a group alice made; alice forwards from two
// copies on and waits a minute for a forwarded copy's receipt (only
// refusals bring copies back in a test's time), and the members hold
// receipts 20 ms.
func fwdStar(t *testing.T, accepted bool) (alice *offNode, members []*offNode, id group.ID) {
	t.Helper()
	alice = offNewNode(t, "alice", nil, true)
	for _, name := range []string{"bob", "carol", "dave", "erin"} {
		m := offNewNode(t, name, nil, true)
		offLink(t, alice, m)
		m.sessions.held.holdFor.Store(int64(20 * time.Millisecond))
		members = append(members, m)
	}
	for _, a := range members {
		for _, b := range members {
			if a == b {
				continue
			}
			a.host.Peerstore().AddAddrs(b.ID(), b.host.Addrs(), time.Hour)
			if !accepted {
				continue
			}
			if err := a.Contacts().Trust(b.ID(), false); err != nil {
				t.Fatal(err)
			}
		}
	}
	id = offGroup(t, alice, members...)
	fwdFromTwo(alice, time.Minute)
	return alice, members, id
}

// fwdSend sends a message to the group and waits until every member has
// it, and alice its receipts.
func fwdSend(t *testing.T, alice *offNode, members []*offNode, id group.ID, text string) e2e.MessageID {
	t.Helper()
	m, err := alice.Groups().Send(id, text)
	if err != nil {
		t.Fatal(err)
	}
	for _, mb := range members {
		offDeliveredTo(t, alice, m.ID, mb.ID())
	}
	return m.ID
}

// fwdHistoryIntact checks that each member holds want texts of alice's,
// in order, each once, none missing or late.
func fwdHistoryIntact(t *testing.T, alice *offNode, members []*offNode, id group.ID, want int) {
	t.Helper()
	for _, mb := range members {
		h, err := mb.Groups().History(id, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var last uint64
		got := 0
		for _, gm := range h {
			if gm.From != alice.ID() || gm.Kind != store.KindText {
				continue
			}
			got++
			if gm.Late || gm.Missing != 0 || gm.Number <= last {
				t.Fatalf("%s: alice's message %d: late %v, missing %d, after %d", identity.ShortID(mb.ID()), gm.Number, gm.Late, gm.Missing, last)
			}
			last = gm.Number
		}
		if got != want {
			t.Fatalf("%s holds %d of alice's %d messages", identity.ShortID(mb.ID()), got, want)
		}
	}
}

func fwdOpened(members []*offNode) (n uint64) {
	for _, m := range members {
		n += m.sessions.fwd.opened.Load()
	}
	return n
}

// Members who forward carry the others' copies: every member gets every
// message, in order, and no copy is taken back.
func TestGroupForwardedCopies(t *testing.T) {
	alice, members, id := fwdGroup(t, 4, time.Minute, nil)
	const n = 6
	for i := range n {
		fwdSend(t, alice, members, id, "forwarded "+string(rune('a'+i)))
	}
	fwd, taken := alice.out.fwd.copies.Load(), alice.out.fwd.taken.Load()
	if fwd < n { // the first message's copies went to the workers
		t.Fatalf("%d copies forwarded in %d messages to 4 members, want at least %d", fwd, n, n)
	}
	if taken != 0 {
		t.Fatalf("%d forwarded copies taken back; every forwarder was honest", taken)
	}
	if o := fwdOpened(members); o != fwd {
		t.Fatalf("the members opened %d forwarded copies, alice forwarded %d", o, fwd)
	}
	fwdHistoryIntact(t, alice, members, id, n)
}

// A forwarder that drops what it carries delays those copies by the
// sender's wait, no more: they are taken back and written directly, and
// the forwarder is not asked for those members again.
func TestGroupForwarderThatDrops(t *testing.T) {
	alice, members, id := fwdGroup(t, 4, 300*time.Millisecond, nil)
	drop := func(peer.ID, []byte) []byte { return nil }
	for _, m := range members {
		m.sessions.fwd.alter.Store(&drop)
	}
	const n = 6
	for i := range n {
		fwdSend(t, alice, members, id, "dropped "+string(rune('a'+i)))
	}
	fwd, taken := alice.out.fwd.copies.Load(), alice.out.fwd.taken.Load()
	if fwd == 0 || taken != fwd {
		t.Fatalf("%d copies forwarded, %d taken back; want every forwarded one taken back", fwd, taken)
	}
	if o := fwdOpened(members); o != 0 {
		t.Fatalf("the members opened %d forwarded copies; every forwarder dropped them", o)
	}
	// Each member is tried with each forwarder at most once: then its
	// copies go directly.
	fwdSend(t, alice, members, id, "after")
	if again := alice.out.fwd.copies.Load(); again != fwd {
		t.Fatalf("%d more copies went to forwarders that dropped them", again-fwd)
	}
	fwdHistoryIntact(t, alice, members, id, n+1)
}

// A forwarder that spoils what it carries: the member cannot open the
// copy, drops it without telling the user (it is not the sender's doing)
// and its ratchet state is untouched, so the copy written directly after
// opens.
func TestGroupForwarderThatSpoils(t *testing.T) {
	alice, members, id := fwdGroup(t, 4, 300*time.Millisecond, nil)
	spoil := func(_ peer.ID, env []byte) []byte {
		env = bytes.Clone(env)
		env[len(env)-1] ^= 1
		return env
	}
	for _, m := range members {
		m.sessions.fwd.alter.Store(&spoil)
	}
	const n = 4
	for i := range n {
		fwdSend(t, alice, members, id, "spoiled "+string(rune('a'+i)))
	}
	if alice.out.fwd.copies.Load() == 0 || alice.out.fwd.taken.Load() == 0 {
		t.Fatalf("%d copies forwarded, %d taken back", alice.out.fwd.copies.Load(), alice.out.fwd.taken.Load())
	}
	dropped := 0
	for _, m := range members {
		dropped += m.logs.count("forwarded group copy dropped")
		select {
		case e := <-m.sub.C:
			if e.Kind == EventError {
				t.Fatalf("%s was told: %s", identity.ShortID(m.ID()), e.Err)
			}
		default:
		}
	}
	if dropped == 0 {
		t.Fatal("no member dropped a spoiled copy")
	}
	fwdHistoryIntact(t, alice, members, id, n)
}

// Members whose settings do not say they forward (older versions) are
// neither forwarders nor sent forwarded copies: their copies go directly,
// and nothing is taken back.
func TestGroupForwardsOnlyWithThoseWhoSaySo(t *testing.T) {
	alice, members, id := fwdGroup(t, 5, time.Minute, func(i int, c *Config) { c.NoForward = i == 0 })
	const n = 6
	for i := range n {
		fwdSend(t, alice, members, id, "mixed "+string(rune('a'+i)))
	}
	if alice.out.fwd.copies.Load() == 0 {
		t.Fatal("nothing forwarded between the members who forward")
	}
	if taken := alice.out.fwd.taken.Load(); taken != 0 {
		t.Fatalf("%d copies taken back", taken)
	}
	for _, m := range members[:1] {
		if f, o := m.sessions.fwd.frames.Load(), m.sessions.fwd.opened.Load(); f != 0 || o != 0 {
			t.Fatalf("%s does not forward, yet got %d forward frames and opened %d forwarded copies", identity.ShortID(m.ID()), f, o)
		}
	}
	fwdHistoryIntact(t, alice, members, id, n)
}

// A forwarder without a session with the member refuses its copy at
// once: it goes directly, long before the sender's wait. The members
// have not accepted each other, so no forwarder opens a session with
// another member, though each knows the others' addresses.
func TestGroupForwarderRefuses(t *testing.T) {
	alice, members, id := fwdStar(t, false)
	defer func() {
		for _, a := range members {
			for _, b := range members {
				if a != b && len(a.sessions.ofPeer(b.ID())) > 0 {
					t.Errorf("%s opened a session with %s, whom it has not accepted", identity.ShortID(a.ID()), identity.ShortID(b.ID()))
				}
			}
		}
	}()
	const n = 4
	for i := range n {
		fwdSend(t, alice, members, id, "refused "+string(rune('a'+i)))
	}
	fwd, taken := alice.out.fwd.copies.Load(), alice.out.fwd.taken.Load()
	if fwd == 0 || taken != fwd {
		t.Fatalf("%d copies forwarded, %d taken back by refusals; want all", fwd, taken)
	}
	fwdHistoryIntact(t, alice, members, id, n)
}

// Only a member may forward: a copy alice really sealed for carol, pushed
// to carol by eve, who has a session with carol but is not in the group,
// is dropped unopened; the same copy forwarded by a member is taken (the
// test can fail).
func TestGroupForwardedByANonMember(t *testing.T) {
	alice, members, id := fwdGroup(t, 4, time.Minute, nil)
	fwdSend(t, alice, members, id, "warm up") // the workers write the first
	type copyFor struct {
		p   peer.ID
		env []byte
	}
	var mu sync.Mutex
	var caught []copyFor // what the forwarders were given, kept from the members
	catch := func(p peer.ID, env []byte) []byte {
		mu.Lock()
		caught = append(caught, copyFor{p, bytes.Clone(env)})
		mu.Unlock()
		return nil
	}
	for _, m := range members {
		m.sessions.fwd.alter.Store(&catch)
	}
	m, err := alice.Groups().Send(id, "caught")
	if err != nil {
		t.Fatal(err)
	}
	var env []byte
	var to *offNode // whose copy it is
	for deadline := time.Now().Add(10 * time.Second); env == nil; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		if len(caught) > 0 {
			env = caught[0].env
			for _, mb := range members {
				if mb.ID() == caught[0].p {
					to = mb
				}
			}
		}
		mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatal("no copy was forwarded")
		}
	}
	eve := offNewNode(t, "eve", nil, true)
	offLink(t, eve, to)
	push := func(from *offNode) {
		t.Helper()
		fd, err := e2e.Forwarded{Group: id, Sender: alice.ID(), Envelope: env}.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		cs := from.sessions.newest(to.ID())
		if cs == nil {
			t.Fatalf("%s has no session with %s", identity.ShortID(from.ID()), identity.ShortID(to.ID()))
		}
		if err := cs.s.Send(e2e.FrameForwarded, fd); err != nil {
			t.Fatal(err)
		}
	}
	before, opened := to.logs.count("forwarded group copy dropped"), to.sessions.fwd.opened.Load()
	push(eve)
	for deadline := time.Now().Add(5 * time.Second); to.logs.count("forwarded group copy dropped") == before; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("eve's push was not dropped")
		}
	}
	if o := to.sessions.fwd.opened.Load(); o != opened {
		t.Fatalf("%s opened a copy a non-member forwarded", identity.ShortID(to.ID()))
	}
	var by *offNode // a member other than to: a forwarder may
	for _, mb := range members {
		if mb != to {
			by = mb
			break
		}
	}
	push(by)
	to.offWait("the copy a member forwarded", offIsMessage(m.ID))
}

// A forwarder whose session with the sender ends (it went offline, or
// its connection broke) before writing onward what it carried: those
// copies are taken back at once, not after the sender's wait.
func TestGroupForwarderGone(t *testing.T) {
	alice, members, id := fwdGroup(t, 4, time.Minute, nil)
	fwdSend(t, alice, members, id, "warm up")
	frames := make([]uint64, len(members))
	for i, m := range members {
		frames[i] = m.sessions.fwd.frames.Load()
	}
	hold := func(peer.ID, []byte) []byte { return nil } // it never writes them onward
	for _, m := range members {
		m.sessions.fwd.alter.Store(&hold)
	}
	before := alice.out.fwd.copies.Load()
	m, err := alice.Groups().Send(id, "carried")
	if err != nil {
		t.Fatal(err)
	}
	var gone []*offNode // the forwarders
	for deadline := time.Now().Add(10 * time.Second); len(gone) == 0; time.Sleep(10 * time.Millisecond) {
		if alice.out.fwd.copies.Load() > before {
			for i, mb := range members {
				if mb.sessions.fwd.frames.Load() > frames[i] {
					gone = append(gone, mb)
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("nothing was forwarded")
		}
	}
	for _, f := range gone {
		for _, cs := range f.sessions.ofPeer(alice.ID()) {
			cs.s.Close()
		}
	}
	for _, mb := range members { // within offDeliveredTo's 20 s: the wait is a minute
		offDeliveredTo(t, alice, m.ID, mb.ID())
	}
	if taken := alice.out.fwd.taken.Load(); taken == 0 {
		t.Fatal("nothing taken back")
	}
}

// Members who accepted each other but hold no sessions (nobody wrote
// yet): a forwarder given a member's copy refuses it "later" and opens a
// session with that member, and the next copies go through it.
func TestGroupForwarderOpensSessions(t *testing.T) {
	alice, members, id := fwdStar(t, true)
	n := 0
	for ; fwdOpened(members) == 0; n++ {
		if n == 20 {
			t.Fatalf("20 messages, and no forwarded copy came: %d forwarded, %d taken back", alice.out.fwd.copies.Load(), alice.out.fwd.taken.Load())
		}
		fwdSend(t, alice, members, id, "until forwarded "+string(rune('a'+n)))
		time.Sleep(50 * time.Millisecond)
	}
	for _, m := range members {
		if c := m.logs.count("no session with a member to forward to"); c != 0 {
			t.Fatalf("%s could not reach a member %d times", identity.ShortID(m.ID()), c)
		}
	}
	fwdHistoryIntact(t, alice, members, id, n)
}
