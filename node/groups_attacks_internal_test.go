package node

import (
	"crypto/ed25519"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/group"
	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p/core/peer"
)

// adminTrio is offTrio with bob and carol linked and bob made an admin
// by alice, the creator; bob and carol have seen it.
func adminTrio(t *testing.T) (alice, bob, carol *offNode, id group.ID) {
	t.Helper()
	alice, bob, carol, id = offTrio(t)
	offLink(t, bob, carol)
	if _, err := alice.Groups().Admin(id, bob.ID()); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*offNode{bob, carol} {
		n.offWait("bob an admin", groupEv(id, func(g GroupInfo) bool { return len(g.Admins) == 2 }))
	}
	return alice, bob, carol, id
}

// logChanges is n's log of group id, encoded.
// removalOn is a removal of target signed by who on old, a copy of the
// log from before who's own removal: as a removed admin's modified
// client signs one late (Propose would refuse a removal of a senior).
func removalOn(t *testing.T, old [][]byte, who *offNode, target peer.ID) *group.Change {
	t.Helper()
	before, err := group.Restore(old)
	if err != nil {
		t.Fatal(err)
	}
	c, err := group.Sign(who.id.Signer(), before.ID(), before.Heads(), group.OpRemove, target, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func logChanges(n *offNode, id group.ID) [][]byte {
	n.groups.mu.Lock()
	defer n.groups.mu.Unlock()
	return n.groups.logs[id].Changes()
}

// TestGroupRemovedAdminCounterRemoval, on real nodes: alice (the
// creator) removes bob, an admin she made. Bob's modified client then
// signs a removal of alice built on his log from before his removal, as
// if it had crossed hers in flight, and sends it to the members. Alice
// and carol, who hold his removal, do not take a change he signs now
// (TestGroupFormerMemberFloodRefused); a member who took it before the
// removal came would still keep bob out and alice in: a counter-removal
// after the fact does not undo a removal by a senior admin
// (group.TestRemovedAdminCannotUndoRemovalByCounterRemoval).
func TestGroupRemovedAdminCounterRemoval(t *testing.T) {
	alice, bob, carol, id := adminTrio(t)
	old := logChanges(bob, id)
	if _, err := alice.Groups().Remove(id, bob.ID()); err != nil {
		t.Fatal(err)
	}
	bob.offWait("his removal", groupEv(id, func(g GroupInfo) bool { return !g.Member }))
	carol.offWait("bob's removal", groupEv(id, func(g GroupInfo) bool { return len(g.Members) == 2 }))

	counter := removalOn(t, old, bob, alice.ID())
	changes := append(logChanges(bob, id), counter.Bytes())
	if err := bob.groups.distribute(id, changes, []peer.ID{alice.ID(), carol.ID()}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*offNode{alice, carol} {
		n.offWait("the refusal", func(e Event) bool {
			return e.Kind == EventError && e.PeerID == bob.ID() && strings.Contains(e.Err, "not a member")
		})
		n.groups.mu.Lock()
		has := n.groups.logs[id].Has(counter.Hash())
		n.groups.mu.Unlock()
		if has {
			t.Errorf("%s took bob's counter-removal, signed after his removal", n.ID())
		}
		g, _ := n.Groups().Get(id)
		if want := []peer.ID{alice.ID(), carol.ID()}; !slices.Equal(g.Members, want) || !slices.Equal(g.Admins, []peer.ID{alice.ID()}) {
			t.Errorf("%s: members %v admins %v: bob's counter-removal undid his removal", n.ID(), g.Members, g.Admins)
		}
	}
}

// TestGroupChangeOnARefusedOneNotAskedFor, on real nodes: bob, an
// admin, signs an add of carol, a member already (refused where it was
// built, in every log), and a rename on it, and sends both to carol. She
// refuses both, for the add's reason, and asks nobody for anything.
// Before, the rename was held for the add, and carol asked for the add
// (a group-want, answered with the whole log) every wantEvery, for ever
// (group.TestChangeOnARefusedOneIsDropped).
func TestGroupChangeOnARefusedOneNotAskedFor(t *testing.T) {
	_, bob, carol, id := adminTrio(t)
	changes := logChanges(bob, id)
	before, err := group.Restore(changes)
	if err != nil {
		t.Fatal(err)
	}
	bad, err := group.Sign(bob.id.Signer(), id, before.Heads(), group.OpAdd, carol.ID(), "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	rename, err := group.Sign(bob.id.Signer(), id, []group.Hash{bad.Hash()}, group.OpRename, "", "bob's", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.groups.distribute(id, append(changes, bad.Bytes(), rename.Bytes()), []peer.ID{carol.ID()}); err != nil {
		t.Fatal(err)
	}
	carol.offWait("the add refused", func(e Event) bool {
		return e.Kind == EventError && e.PeerID == bob.ID() && strings.Contains(e.Err, "already a member")
	})
	carol.groups.mu.Lock()
	l := carol.groups.logs[id]
	missing, has := len(l.Missing()), l.Has(bad.Hash()) || l.Has(rename.Hash())
	carol.groups.mu.Unlock()
	carol.groups.wants.mu.Lock()
	_, asked := carol.groups.wants.asked[wantKey{g: id}]
	carol.groups.wants.mu.Unlock()
	if missing > 0 || has || asked {
		t.Errorf("carol's log lacks %d changes, holds bob's %v, asked for them %v; want none, false, false", missing, has, asked)
	}
}

// TestGroupRemovedAdminStooge, on real nodes: alice (the creator)
// removes bob, an admin she made, then renames the group. Bob's modified
// client, on his log from before his removal, adds xen (a key of his),
// makes her an admin and has her remove alice; carol, in league, sends
// the three to alice. By seniority alone xen's removal of alice stood
// (nobody removed xen) and voided alice's removal of bob and her rename.
// Only a removal that takes effect stands, an admin removes only its
// juniors (group.TestRemovedAdminStoogeCannotUndoRemoval), and changes
// beside their author's removal by the creator are kept out
// (group.TestRemovedAdminCannotFillTheLog): alice's log takes none of
// the three, and says why; bob and xen stay out, alice stays the admin,
// the rename holds.
func TestGroupRemovedAdminStooge(t *testing.T) {
	alice, bob, carol, id := adminTrio(t)
	old := logChanges(bob, id)
	if _, err := alice.Groups().Remove(id, bob.ID()); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Groups().Rename(id, "alice's"); err != nil {
		t.Fatal(err)
	}
	carol.offWait("bob's removal and the rename", groupEv(id, func(g GroupInfo) bool { return len(g.Members) == 2 && g.Name == "alice's" }))

	before, err := group.Restore(old)
	if err != nil {
		t.Fatal(err)
	}
	xenKey, xen := testKey(t)
	changes := logChanges(carol, id)
	var signed []*group.Change // xen's add, her admin change, her removal of alice
	for _, st := range []struct {
		key ed25519.PrivateKey
		op  group.Op
		p   peer.ID
	}{{bob.id.Signer(), group.OpAdd, xen}, {bob.id.Signer(), group.OpAdmin, xen}, {xenKey, group.OpRemove, alice.ID()}} {
		c, err := group.Sign(st.key, id, before.Heads(), st.op, st.p, "", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		changes, signed = append(changes, c.Bytes()), append(signed, c)
		if st.op != group.OpRemove {
			if err := before.Add(c); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := carol.groups.distribute(id, changes, []peer.ID{alice.ID()}); err != nil {
		t.Fatal(err)
	}
	alice.offWait("bob's changes refused", func(e Event) bool {
		return e.Kind == EventError && e.PeerID == carol.ID() && strings.Contains(e.Err, "beside its removal by the creator")
	})
	alice.groups.mu.Lock()
	for i, c := range signed {
		if alice.groups.logs[id].Has(c.Hash()) {
			t.Errorf("alice's log took change %d of bob's and xen's", i)
		}
	}
	alice.groups.mu.Unlock()
	g, _ := alice.Groups().Get(id)
	if want := []peer.ID{alice.ID(), carol.ID()}; !slices.Equal(g.Members, want) || !slices.Equal(g.Admins, []peer.ID{alice.ID()}) || g.Name != "alice's" {
		t.Errorf("members %v admins %v name %q: the stooge's removal undid alice's", g.Members, g.Admins, g.Name)
	}
}

// TestGroupUndoneChangeTold, on real nodes: bob, an admin alice (the
// creator) made, removes carol; alice, on her log from before that,
// removes bob, the two crossing in flight. Removal wins: bob's removal
// of carol was signed beside his removal by the creator and does not
// take effect (his log drops it), and bob's node tells him so, with the
// reason, instead of leaving him to find carol back in the member list.
func TestGroupUndoneChangeTold(t *testing.T) {
	alice, bob, carol, id := adminTrio(t)
	old := logChanges(alice, id)
	if _, err := bob.Groups().Remove(id, carol.ID()); err != nil {
		t.Fatal(err)
	}
	kick := removalOn(t, old, alice, bob.ID())
	if err := alice.groups.distribute(id, append(old, kick.Bytes()), []peer.ID{bob.ID()}); err != nil {
		t.Fatal(err)
	}
	bob.offWait("his removal of carol undone, told", func(e Event) bool {
		// Beside his removal by the creator, bob's removal of carol
		// is dropped from his log (group.Log.besideRemoval).
		return e.Kind == EventError && strings.Contains(e.Err, "was undone") && strings.Contains(e.Err, identity.ShortID(carol.ID())) && strings.Contains(e.Err, "removal by the creator")
	})
	g, _ := bob.Groups().Get(id)
	if want := []peer.ID{alice.ID(), carol.ID()}; !slices.Equal(g.Members, want) || g.Member {
		t.Errorf("members %v (bob a member: %v), want alice and carol", g.Members, g.Member)
	}
}

// TestGroupFormerMemberFloodRefused, on real nodes: carol leaves, then
// her modified client signs leaves beside her first one, built on her
// log from before it, each with its own time, and sends them to the
// members. Each is admissible where it was built and changes nothing;
// a log that took them would fill up (group.MaxChanges) and freeze the
// group (group.TestFormerMemberCannotFillTheLog). A change signed by
// the peer that sends it, who is not a member, is not taken: alice's
// log takes none of them, says why once, and her next change is the
// log's one head.
func TestGroupFormerMemberFloodRefused(t *testing.T) {
	alice, bob, carol, id := offTrio(t)
	offLink(t, bob, carol)
	old := logChanges(carol, id)
	if _, err := carol.Groups().Leave(id); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*offNode{alice, bob} {
		n.offWait("carol gone", groupEv(id, func(g GroupInfo) bool { return len(g.Members) == 2 }))
	}
	before, err := group.Restore(old)
	if err != nil {
		t.Fatal(err)
	}
	changes := slices.Clone(old)
	var junk []group.Hash
	for i := range 40 {
		c, err := before.Propose(carol.id.Signer(), group.OpLeave, "", "", time.Now().Add(time.Duration(i+1)*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		changes, junk = append(changes, c.Bytes()), append(junk, c.Hash())
	}
	if err := carol.groups.distribute(id, changes, []peer.ID{alice.ID(), bob.ID()}); err != nil {
		t.Fatal(err)
	}
	alice.offWait("the refusal", func(e Event) bool {
		return e.Kind == EventError && e.PeerID == carol.ID() && strings.Contains(e.Err, "not a member")
	})
	alice.groups.mu.Lock()
	l := alice.groups.logs[id]
	for i, h := range junk {
		if l.Has(h) {
			t.Errorf("alice's log took carol's change %d, signed after she left", i)
		}
	}
	alice.groups.mu.Unlock()
	if _, err := alice.Groups().Rename(id, "crew"); err != nil {
		t.Fatal(err)
	}
	alice.groups.mu.Lock()
	heads := len(alice.groups.logs[id].Heads())
	alice.groups.mu.Unlock()
	if heads != 1 {
		t.Fatalf("%d heads after alice's change, want 1", heads)
	}
}

// TestGroupUndoneRemovalTold, on real nodes (SECURITY.md, open finding
// 7): bob, an admin, removes carol, then leaves. Bob's key, afterwards,
// signs a second leave on his log from before the removal, and carol,
// no longer a member, sends it to alice. The removal is concurrent with
// one of bob's leaves, so it takes no effect, and carol is a member
// again: no rule on the graph alone tells this from a departed admin's
// key removing someone with a removal and a leave on an old version
// (the same shape, the other way round). Alice, who had the removal,
// is told that carol is back and why, instead of her node sealing her
// next messages for carol without a word.
func TestGroupUndoneRemovalTold(t *testing.T) {
	alice, bob, carol, id := adminTrio(t)
	undoRemoval(t, alice, bob, carol, id, func() {})
	alice.offWait("carol back, told", func(e Event) bool {
		var undone *RemovalUndoneError
		return e.Kind == EventError && errors.As(e.Cause, &undone) && undone.Group == id &&
			undone.Target == carol.ID() && undone.Author == bob.ID() && strings.Contains(e.Err, "signed beside its author's leave")
	})
	if g, _ := alice.Groups().Get(id); !slices.Equal(g.Members, []peer.ID{alice.ID(), carol.ID()}) {
		t.Errorf("members %v, want alice and carol (the limit this test pins: SECURITY.md finding 7)", g.Members)
	}
}

// undoRemoval: bob, an admin, removes carol (alice has it: then
// removed runs), then leaves; his key then signs a second leave on his
// log from before the removal, which carol, no longer a member, sends
// to alice (SECURITY.md, open finding 7).
func undoRemoval(t *testing.T, alice, bob, carol *offNode, id group.ID, removed func()) {
	t.Helper()
	offLink(t, alice, carol)
	old := logChanges(bob, id)
	if _, err := bob.Groups().Remove(id, carol.ID()); err != nil {
		t.Fatal(err)
	}
	alice.offWait("carol's removal", groupEv(id, func(g GroupInfo) bool { return len(g.Members) == 2 }))
	removed()
	if _, err := bob.Groups().Leave(id); err != nil {
		t.Fatal(err)
	}
	alice.offWait("bob's leave", groupEv(id, func(g GroupInfo) bool { return len(g.Members) == 1 }))
	before, err := group.Restore(old)
	if err != nil {
		t.Fatal(err)
	}
	backdated, err := before.Propose(bob.id.Signer(), group.OpLeave, "", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := carol.groups.distribute(id, append(old, backdated.Bytes()), []peer.ID{alice.ID()}); err != nil {
		t.Fatal(err)
	}
}

// TestGroupUndoneRemovalWaitsForDecision: after finding 7's attack
// (undoRemoval), alice does not write to carol unawares. Her group
// event names bob's undone removal of carol, and sending to the group is
// refused (ErrRemovalUndone) until she decides: she keeps carol (Keep;
// Keep of a member no undone removal is about finds nothing), or, an
// admin, removes her again.
func TestGroupUndoneRemovalWaitsForDecision(t *testing.T) {
	for _, decide := range []string{"keep", "remove again"} {
		t.Run(decide, func(t *testing.T) {
			alice, bob, carol, id := adminTrio(t)
			undoRemoval(t, alice, bob, carol, id, func() {})
			alice.offWait("carol back, in doubt", groupEv(id, func(g GroupInfo) bool {
				return len(g.Undone) == 1 && g.Undone[0].Target == carol.ID() && g.Undone[0].Author == bob.ID()
			}))
			if _, err := alice.Groups().Send(id, "for alice and carol?"); !errors.Is(err, ErrRemovalUndone) {
				t.Fatalf("send with carol's removal undone: %v, want ErrRemovalUndone", err)
			}
			var (
				gi  GroupInfo
				err error
			)
			switch decide {
			case "keep":
				if _, err := alice.Groups().Keep(id, bob.ID()); !errors.Is(err, ErrNothingUndone) {
					t.Errorf("keep bob: %v, want ErrNothingUndone", err)
				}
				gi, err = alice.Groups().Keep(id, carol.ID())
			case "remove again":
				gi, err = alice.Groups().Remove(id, carol.ID())
			}
			if err != nil || len(gi.Undone) != 0 {
				t.Fatalf("%s: %v, undone %v", decide, err, gi.Undone)
			}
			if _, err := alice.Groups().Send(id, "decided"); err != nil {
				t.Fatalf("send once decided: %v", err)
			}
			if g, _ := alice.Groups().Get(id); len(g.Undone) != 0 {
				t.Errorf("undone %v after %s", g.Undone, decide)
			}
		})
	}
}

// TestGroupUndoneRemovalTravelsWithTheLog: the removal an undone doubt
// rests on is kept out of the log, and travels with it anyway
// (group.Log.Changes): erin, added after finding 7's attack, never saw
// bob's removal of carol, and her node holds it in doubt as alice's
// does. Before, the log alice sent lacked the removal: erin would write
// to carol unawares.
func TestGroupUndoneRemovalTravelsWithTheLog(t *testing.T) {
	alice, bob, carol, id := adminTrio(t)
	undoRemoval(t, alice, bob, carol, id, func() {})
	alice.offWait("carol back, in doubt", groupEv(id, func(g GroupInfo) bool { return len(g.Undone) == 1 }))
	erin := offNewNode(t, "erin", nil, true)
	offLink(t, alice, erin)
	if _, err := alice.Groups().Add(id, erin.ID()); err != nil {
		t.Fatal(err)
	}
	inDoubt := groupEv(id, func(g GroupInfo) bool {
		return g.Member && len(g.Undone) == 1 && g.Undone[0].Target == carol.ID() && g.Undone[0].Author == bob.ID()
	})
	var refused []string // the frame's refusals come before its group event
	erin.offWait("the group, carol in doubt", func(e Event) bool {
		if e.Kind == EventError && strings.Contains(e.Err, "was refused") {
			refused = append(refused, e.Err)
		}
		return inDoubt(e)
	})
	if len(refused) > 0 {
		t.Errorf("erin was told of the changes kept out as refused: %q", refused)
	}
	if _, err := erin.Groups().Send(id, "hello all"); !errors.Is(err, ErrRemovalUndone) {
		t.Fatalf("erin's send: %v, want ErrRemovalUndone", err)
	}
}
