package ratchet

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// durable is one side of a conversation as a node keeps it: the set in
// memory and the bytes last committed. It commits when SealLeased or Open
// asks (Open always), and a crash takes the committed bytes back.
type durable struct {
	*peer
	committed []byte
	commits   int
}

func newDurable(t testing.TB, p *peer) *durable {
	t.Helper()
	return &durable{peer: p, committed: mustMarshal(t, p.set)}
}

// seal seals msg and reports whether it committed.
func (d *durable) seal(t testing.TB, msg string, now time.Time) ([]byte, bool) {
	t.Helper()
	before := mustMarshal(t, d.set)
	env, next, commit, err := d.set.SealLeased([]byte(msg), now)
	if err != nil {
		t.Fatalf("%s seal %q: %v", d.name, msg, err)
	}
	after := mustMarshal(t, next)
	if commit {
		d.committed, d.commits = after, d.commits+1
	} else if !bytes.Equal(before, after) {
		t.Fatalf("%s seal %q: no commit asked, but the encoding changed", d.name, msg)
	}
	d.set = next
	return env, commit
}

// open opens env and commits the new state, as every Open must.
func (d *durable) open(t testing.TB, env []byte, want string, now time.Time) Info {
	t.Helper()
	info := d.peer.open(t, env, want, now)
	d.committed, d.commits = mustMarshal(t, d.set), d.commits+1
	return info
}

// crash restarts from the committed state.
func (d *durable) crash(t testing.TB) {
	t.Helper()
	s, err := UnmarshalSessionSet(d.committed)
	if err != nil {
		t.Fatalf("%s restore: %v", d.name, err)
	}
	d.set = s
}

// takesLease reports whether seal i (counted from 0) of a session whose
// last lease had length from (0: none since it was made or restored)
// takes a new lease, and leasePoint where its lease stands after sealed
// seals: leases grow 1, 2, 4 … SendLease (nextLeaseLen).
func takesLease(from uint32, i int) bool { return leasePoint(from, i) == i }

func leasePoint(from uint32, sealed int) int {
	m := leaseModel{leaseLen: from}
	for range sealed {
		m.seal()
	}
	return m.point()
}

// leaseModel is SealLeased's leases, counted apart from the code: a
// session's sending position and lease, as seals change them.
type leaseModel struct {
	leased               bool
	ns, leaseN, leaseLen uint32
}

// seal models one seal and reports whether it takes a lease.
func (m *leaseModel) seal() bool {
	took := !m.leased || m.ns >= m.leaseN
	if took {
		m.leaseLen = nextLeaseLen(m.leaseLen)
		m.leased, m.leaseN = true, m.ns+m.leaseLen
	}
	m.ns++
	return took
}

// point is where a restart resumes: the lease point, or the chain.
func (m *leaseModel) point() int {
	if m.leased {
		return int(m.leaseN)
	}
	return int(m.ns)
}

// leaseLen is the length of the active session's last lease (where its
// leases' growth stands).
func (d *durable) leaseLen() uint32 { return d.set.sessions[len(d.set.sessions)-1].leaseLen }

// model is the active session's leases as they stand.
func (d *durable) model() leaseModel {
	s := d.set.sessions[len(d.set.sessions)-1]
	return leaseModel{leased: s.leased, ns: s.ns, leaseN: s.leaseN, leaseLen: s.leaseLen}
}

// leaseAfter is where the active session's lease stands after sealed
// more seals.
func (d *durable) leaseAfter(sealed int) int {
	m := d.model()
	for range sealed {
		m.seal()
	}
	return m.point()
}

// warm seals until leases are SendLease long and the next seal takes one.
func (d *durable) warm(t testing.TB, now time.Time) {
	t.Helper()
	for i := 0; ; i++ {
		s := d.set.sessions[len(d.set.sessions)-1]
		if s.leaseLen == SendLease && s.ns == s.leaseN {
			return
		}
		d.seal(t, fmt.Sprintf("warm %d", i), now)
	}
}

// sending returns the active session's current sending position.
func (d *durable) sending() (id SessionID, dhPub string, ns uint32) {
	a := d.set.sessions[len(d.set.sessions)-1]
	return a.id, string(a.dhs.PublicKey().Bytes()), a.ns
}

// A steady sending chain commits on the first seal past the lease it has
// (none on a new session; the Open that made the chain took one on a
// reply's), then after leases of 1, 2, 4 … SendLease seals, then once
// every SendLease seals, and only then: the seals between change nothing
// that is encoded.
func TestLeaseRenewsEverySendLease(t *testing.T) {
	want := []int{0, 1, 3, 7, 15, 31, 63, 63 + SendLease, 63 + 2*SendLease, 63 + 3*SendLease}
	for i := range 64 + 3*SendLease {
		if got := takesLease(0, i); got != slices.Contains(want, i) {
			t.Fatalf("schedule: seal %d takes a lease: %v", i, got)
		}
	}
	for _, n := range []int{1, 2, 5, SendLease - 1, SendLease, SendLease + 1, 3*SendLease + 5} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			alice, bob := established(t)
			a := newDurable(t, alice)
			m, want := a.model(), 0
			for i := range n {
				env, commit := a.seal(t, msg(i), t0)
				took := m.seal()
				if commit != took {
					t.Fatalf("seal %d: commit %v, want %v", i, commit, took)
				}
				if took {
					want++
				}
				bob.open(t, env, msg(i), t0)
			}
			if a.commits != want {
				t.Fatalf("%d seals committed %d times, want %d", n, a.commits, want)
			}
		})
	}
}

// The encoding of a leased session is its sending chain at the lease
// point: byte for byte what the live chain encodes to once it gets there.
func TestLeaseEncodingIsLeasePoint(t *testing.T) {
	alice, _ := established(t)
	a := newDurable(t, alice)
	a.warm(t, t0)
	first := int(a.set.sessions[len(a.set.sessions)-1].ns)
	if _, commit := a.seal(t, msg(first), t0); !commit {
		t.Fatalf("seal %d took no lease", first)
	}
	leased := a.committed
	for i := first + 1; i < first+SendLease; i++ {
		if _, commit := a.seal(t, msg(i), t0); commit {
			t.Fatalf("seal %d committed within the lease", i)
		}
	}
	live := a.set.clone()
	s := live.sessions[len(live.sessions)-1].clone()
	if s.ns != s.leaseN {
		t.Fatalf("after %d seals ns = %d, lease point %d", SendLease, s.ns, s.leaseN)
	}
	s.dropLease()
	live.sessions[len(live.sessions)-1] = s
	if !bytes.Equal(mustMarshal(t, live), leased) {
		t.Fatal("the leased encoding is not the live chain at the lease point")
	}
	// A restored set resumes at the lease point and takes a new lease.
	r, err := UnmarshalSessionSet(leased)
	if err != nil {
		t.Fatal(err)
	}
	if rs := r.sessions[len(r.sessions)-1]; rs.leased || rs.leaseLen != 0 || rs.ns != uint32(first+SendLease) {
		t.Fatalf("restored: leased %v (length %d) at %d, want no lease at %d", rs.leased, rs.leaseLen, rs.ns, first+SendLease)
	}
}

// After a crash at any point of a lease the sender resumes at the lease
// point: the peer opens every envelope, those sent before the crash and
// after it, skips the unused keys of the lease as missing, and still
// opens an envelope from before the crash that arrives late.
func TestLeaseRestoreAfterCrash(t *testing.T) {
	for _, tc := range []struct {
		sealed, delivered int // before the crash; delivered <= sealed
	}{
		{1, 1}, {2, 2}, {5, 3}, {SendLease - 1, SendLease - 1}, {SendLease, SendLease},
		{SendLease + 1, SendLease + 1}, {SendLease + 7, 1}, {2*SendLease - 1, 2*SendLease - 1},
	} {
		t.Run(fmt.Sprintf("sealed=%d,delivered=%d", tc.sealed, tc.delivered), func(t *testing.T) {
			alice, bob := established(t)
			a := newDurable(t, alice)
			lease := a.leaseAfter(tc.sealed)
			var envs [][]byte
			for i := range tc.sealed {
				env, _ := a.seal(t, msg(i), t0)
				envs = append(envs, env)
			}
			for i := range tc.delivered {
				bob.open(t, envs[i], msg(i), t0)
			}
			a.crash(t)
			env, commit := a.seal(t, "after the crash", t0)
			if !commit {
				t.Fatal("the first seal after a restore took no lease")
			}
			info := bob.open(t, env, "after the crash", t0)
			if info.MessageNumber != uint32(lease) {
				t.Fatalf("resumed at %d, want the lease point %d", info.MessageNumber, lease)
			}
			if want := lease - tc.delivered; info.Skipped != want || info.Missing != want {
				t.Fatalf("skipped %d, missing %d: want %d each", info.Skipped, info.Missing, want)
			}
			for i := tc.delivered; i < tc.sealed; i++ { // late, from before the crash
				if late := bob.open(t, envs[i], msg(i), t0); !late.Late {
					t.Fatalf("envelope %d from before the crash not opened as late", i)
				}
			}
			if want := lease - tc.sealed; countMissing(bob.set.sessions[len(bob.set.sessions)-1]) != want {
				t.Fatalf("missing at the end: %d, want %d (the unused keys of the lease)",
					countMissing(bob.set.sessions[len(bob.set.sessions)-1]), want)
			}
			// Two restarts in a row: the second resumes at the new lease,
			// which after a restore is one seal long.
			a.crash(t)
			env, _ = a.seal(t, "after the second crash", t0)
			if info := bob.open(t, env, "after the second crash", t0); info.MessageNumber != uint32(lease+1) {
				t.Fatalf("second restore resumed at %d, want %d", info.MessageNumber, lease+1)
			}
		})
	}
}

// A restart with no seal since the last one resumes where the committed
// state is: restarting twice costs no more keys than once.
func TestLeaseRestartWithoutSeal(t *testing.T) {
	alice, bob := established(t)
	a := newDurable(t, alice)
	lease := uint32(a.leaseAfter(10))
	for i := range 10 {
		a.seal(t, msg(i), t0)
	}
	a.crash(t)
	a.crash(t)
	env, _ := a.seal(t, msg(10), t0)
	if info := bob.open(t, env, msg(10), t0); info.MessageNumber != lease || info.Skipped != int(lease) {
		t.Fatalf("resumed at %d, skipping %d; want %d, %d", info.MessageNumber, info.Skipped, lease, lease)
	}
}

// A new sending chain (the DH ratchet step of an Open) is leased in that
// Open (the lease length carries on, in memory): the Open's set, which is
// committed with the message opened, encodes the chain at its lease
// point, so the reply commits nothing, and pn in its header is the
// number of envelopes really sent on the previous chain, not the lease
// point. An Open that takes no DH step changes no lease, and a crash
// resumes at the lease point the Open committed.
func TestLeaseNewChain(t *testing.T) {
	alice, bobPeer := established(t)
	a, bob := newDurable(t, alice), newDurable(t, bobPeer)
	for i := range 3 {
		env, _ := a.seal(t, msg(i), t0)
		bob.open(t, env, msg(i), t0)
	}
	s1, _ := bob.seal(t, "bob 1", t0) // bob's new chain
	s2, _ := bob.seal(t, "bob 2", t0) // the same chain
	grow := nextLeaseLen(a.leaseLen())
	a.open(t, s1, "bob 1", t0) // a DH step: alice's chain is new, and leased
	if s := a.set.sessions[len(a.set.sessions)-1]; !s.leased || s.ns != 0 || s.leaseN != grow || s.leaseLen != grow {
		t.Fatalf("after a DH step: leased %v, ns %d, lease point %d (length %d); want leased at 0 to %d", s.leased, s.ns, s.leaseN, s.leaseLen, grow)
	}
	lease := a.leaseAfter(2)
	env, commit := a.seal(t, "new chain", t0)
	if commit {
		t.Fatal("the reply on a chain the Open leased committed")
	}
	within, commit := a.seal(t, "within", t0)
	if commit != (grow == 1) {
		t.Fatalf("the second seal on the new chain: commit %v with a lease of %d", commit, grow)
	}
	before := *a.set.sessions[len(a.set.sessions)-1]
	a.open(t, s2, "bob 2", t0) // no DH step: alice keeps her chain and lease
	if s := a.set.sessions[len(a.set.sessions)-1]; s.leased != before.leased || s.ns != before.ns || s.leaseN != before.leaseN || s.leaseLen != before.leaseLen || s.cks != before.cks {
		t.Fatal("an Open without a DH step changed the sending chain or its lease")
	}
	a.crash(t)
	after, _ := a.seal(t, "after the crash", t0)
	if info := bob.open(t, env, "new chain", t0); info.PreviousChain != 3 || info.MessageNumber != 0 {
		t.Fatalf("pn %d, n %d; want 3, 0", info.PreviousChain, info.MessageNumber)
	}
	bob.open(t, within, "within", t0)
	if info := bob.open(t, after, "after the crash", t0); info.MessageNumber != uint32(lease) {
		t.Fatalf("an Open's commit resumed sending at %d, want the lease point %d", info.MessageNumber, lease)
	}
}

// Only the active session's new chain is leased by an Open: a message on
// an archived session (its peer has not moved to the newer one yet) takes
// its DH step without a lease, since nothing is sealed on it.
func TestLeaseOpenArchivedNoLease(t *testing.T) {
	alice, bobPeer := established(t)
	a, bob := newDurable(t, alice), newDurable(t, bobPeer)
	old := a.set.sessions[len(a.set.sessions)-1].id
	env, _ := a.seal(t, "a 1", t0)
	bob.open(t, env, "a 1", t0)
	reply, _ := bob.seal(t, "on the old session", t0) // a new chain: a DH step for alice
	next, err := a.set.InitiateFromBundle(a.keys, bob.party.bundle(false, false), t0.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	a.set = next
	a.open(t, reply, "on the old session", t0)
	if s := a.set.find(old); s == nil || s.leased {
		t.Fatalf("the archived session after a DH step: %+v; want no lease", s)
	}
}

// A lease lasts SendLeaseMaxAge at most, so the committed last-use time
// of a session that keeps sending is never older than that: an archived
// session is not dropped early for a crash.
func TestLeaseMaxAge(t *testing.T) {
	alice, bob := established(t)
	a := newDurable(t, alice)
	a.warm(t, t0)
	for _, tc := range []struct {
		after  time.Duration
		commit bool
	}{
		{0, true}, {time.Minute, false}, {SendLeaseMaxAge - time.Second, false},
		{SendLeaseMaxAge, true}, {SendLeaseMaxAge + time.Minute, false}, {-time.Hour, false},
	} {
		now := t0.Add(tc.after)
		env, commit := a.seal(t, "m", now)
		if commit != tc.commit {
			t.Fatalf("seal at +%v: commit %v, want %v", tc.after, commit, tc.commit)
		}
		bob.open(t, env, "m", now)
	}
	r, err := UnmarshalSessionSet(a.committed)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.sessions[len(r.sessions)-1].lastUsed; got != unixSec(t0.Add(SendLeaseMaxAge)) {
		t.Fatalf("committed last use %d, want the last lease's %d", got, unixSec(t0.Add(SendLeaseMaxAge)))
	}
}

// Erasing expired skipped keys in a seal asks for a commit, within a
// lease too: the erased keys must leave the disk as well.
func TestLeaseCommitsExpiredKeys(t *testing.T) {
	alice, bob := established(t)
	a := newDurable(t, alice)
	a.warm(t, t0) // leases of SendLease from here on
	bob.seal(t, "lost", t0)
	a.open(t, bob.seal(t, "b2", t0), "b2", t0) // the lost one's key is kept, skipped
	soon := t0.Add(SkippedKeyMaxAge)
	if _, commit := a.seal(t, msg(1), soon.Add(-10*time.Minute)); !commit {
		t.Fatal("the first seal of a new chain took no lease")
	}
	if _, commit := a.seal(t, msg(2), soon.Add(-5*time.Minute)); commit {
		t.Fatal("a seal within the lease committed")
	}
	if _, commit := a.seal(t, msg(3), soon); !commit {
		t.Fatal("a seal that erased an expired key did not ask for a commit")
	}
	if n := countMissing(a.set.sessions[len(a.set.sessions)-1]); n != 0 {
		t.Fatalf("%d skipped keys left after expiry", n)
	}
}

// An archived session keeps its lease point: a newer session takes the
// seals, and the old one's encoding stays what was committed.
func TestLeaseArchivedSession(t *testing.T) {
	alice, bob := established(t)
	a := newDurable(t, alice)
	lease := a.leaseAfter(3)
	for i := range 3 {
		env, _ := a.seal(t, msg(i), t0)
		bob.open(t, env, msg(i), t0)
	}
	old := a.set.sessions[len(a.set.sessions)-1]
	next, err := a.set.InitiateFromBundle(a.keys, bob.party.bundle(false, false), t0.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	a.set = next
	a.committed = mustMarshal(t, a.set)
	r, err := UnmarshalSessionSet(a.committed)
	if err != nil {
		t.Fatal(err)
	}
	if rs := r.find(old.id); rs == nil || rs.ns != uint32(lease) || rs.lastUsed != old.lastUsed {
		t.Fatal("the archived session is not stored at its lease point")
	}
	if _, commit := a.seal(t, "on the new session", t0.Add(time.Second)); !commit {
		t.Fatal("the first seal on a new session took no lease")
	}
	if a.set.find(old.id) != old {
		t.Fatal("a seal on the new session changed the archived one")
	}
}

// No (session, chain, message number) is ever sealed twice, whatever
// the crash points: both sides send, reply (DH steps), lose envelopes
// and crash at random, and every envelope that arrives opens once.
func TestLeaseNoKeyReuseAcrossCrashes(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 13))
			alice, bob := established(t)
			sides := [2]*durable{newDurable(t, alice), newDurable(t, bob)}
			used := [2]map[string]bool{{}, {}}
			var queue [2][][2]string // in flight to side i: envelope, plaintext
			now := t0
			for step := range 1500 {
				now = now.Add(time.Duration(rng.IntN(120)) * time.Second)
				from := rng.IntN(2)
				d := sides[from]
				switch r := rng.IntN(100); {
				case r < 55:
					id, dhPub, n := d.sending()
					k := fmt.Sprintf("%x/%x/%d", id, dhPub, n)
					if used[from][k] {
						t.Fatalf("step %d: %s sealed message %d of a chain twice", step, d.name, n)
					}
					used[from][k] = true
					text := fmt.Sprintf("%s %d", d.name, step)
					env, _ := d.seal(t, text, now)
					if rng.IntN(10) > 0 { // else lost
						queue[1-from] = append(queue[1-from], [2]string{string(env), text})
					}
				case r < 95:
					to := sides[from]
					q := queue[from]
					if len(q) == 0 {
						continue
					}
					i := rng.IntN(min(len(q), 4)) // reordered a little
					to.open(t, []byte(q[i][0]), q[i][1], now)
					queue[from] = append(q[:i], q[i+1:]...)
				default:
					d.crash(t)
				}
			}
			if sides[0].commits+sides[1].commits == 0 {
				t.Fatal("nothing committed")
			}
		})
	}
}

// The fuzz fixture's sets still decode and re-encode the same way: the
// encoding format did not change.
func TestLeaseEncodingRoundTrip(t *testing.T) {
	alice, _ := established(t)
	a := newDurable(t, alice)
	for i := range 5 {
		a.seal(t, msg(i), t0)
	}
	r, err := UnmarshalSessionSet(a.committed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mustMarshal(t, r), a.committed) {
		t.Fatal("a decoded leased set re-encodes differently")
	}
	if _, err := UnmarshalSessionSet(a.committed[:len(a.committed)-1]); !errors.Is(err, ErrMalformed) {
		t.Fatalf("truncated: %v", err)
	}
}

// Restarts in a loop, each after a few seals that never reach the peer
// (a sender offline, restarted again and again), leave the peer a gap of
// at most about twice the envelopes sealed, not SendLease per restart:
// leases grow again from 1 after each restore. With leases of SendLease
// from the first seal, 40 restarts would make a gap past MaxSkip and the
// peer would refuse the chain.
func TestLeaseRestartLoopStaysWithinMaxSkip(t *testing.T) {
	const runs = 40
	for _, perRun := range []int{1, 3, 10} {
		t.Run(fmt.Sprint(perRun), func(t *testing.T) {
			alice, bob := established(t)
			a := newDurable(t, alice)
			a.warm(t, t0) // a long-lived session: leases of SendLease
			env, _ := a.seal(t, "delivered", t0)
			bob.open(t, env, "delivered", t0)
			a.crash(t)
			sealed := 0
			for r := range runs {
				for i := range perRun {
					a.seal(t, fmt.Sprintf("lost %d/%d", r, i), t0)
					sealed++
				}
				a.crash(t)
			}
			env, _ = a.seal(t, "after the restarts", t0)
			info := bob.open(t, env, "after the restarts", t0)
			if limit := 2*sealed + SendLease; info.Skipped > limit {
				t.Fatalf("%d restarts after %d seals each left a gap of %d, want at most %d", runs, perRun, info.Skipped, limit)
			}
		})
	}
}
