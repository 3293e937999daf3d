package node

import (
	"crypto/ed25519"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/group"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// strangerCreate has key's peer make a group with members and hands its
// create to n as a frame from that peer (the receive path a session's
// read loop calls); it returns the group's ID.
func strangerCreate(t *testing.T, n *offNode, key ed25519.PrivateKey, from peer.ID, name string, members ...peer.ID) group.ID {
	t.Helper()
	c, err := group.Create(key, name, members, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	id := group.ID(c.Hash())
	n.groups.receive(from, e2e.GroupChanges{ID: e2e.NewMessageID(), Group: store.GroupID(id), Changes: [][]byte{c.Bytes()}})
	return id
}

// holds says whether n keeps group id.
func (on *offNode) holds(id group.ID) bool {
	_, ok := on.Groups().state(id)
	return ok
}

// refusedStranger waits for n's refusal of a stranger's group, and
// checks that it says what to do.
func (on *offNode) refusedStranger(what string, want string) {
	on.t.Helper()
	e := on.offWait(what, func(e Event) bool { return e.Kind == EventError && strings.Contains(e.Err, ErrStrangerGroups.Error()) })
	if !strings.Contains(e.Err, want) || !strings.Contains(e.Err, "accept") || !strings.Contains(e.Err, "leave") {
		on.t.Fatalf("%s: %q, want it to say %q and how to make room", what, e.Err, want)
	}
}

// TestGroupsFromStrangersBounded: a stranger (no contact of bob's) puts
// bob in groups over the wire, then keys made for the purpose do. Bob
// keeps at most perCreator groups of one stranger and total of all,
// refuses the rest with the reason, and makes room when he leaves one or
// accepts its maker. Without the bound every group is kept.
func TestGroupsFromStrangersBounded(t *testing.T) {
	bob := offNewNode(t, "bob", nil, true)
	mallory := offNewNode(t, "mallory", nil, true)
	alice := offNewNode(t, "alice", nil, true)
	offLink(t, alice, bob)
	bob.groups.strangers.perCreator, bob.groups.strangers.total = 2, 3

	// Mallory knows bob's address and trusts him; bob never accepted her.
	mallory.host.Peerstore().AddAddrs(bob.ID(), bob.host.Addrs(), time.Hour)
	if err := mallory.Contacts().Trust(bob.ID(), false); err != nil {
		t.Fatal(err)
	}
	var made []group.ID
	for _, name := range []string{"spam 1", "spam 2", "spam 3"} {
		gi, err := mallory.Groups().Create(name, []peer.ID{bob.ID()})
		if err != nil {
			t.Fatal(err)
		}
		made = append(made, gi.ID)
	}
	bob.refusedStranger("the third group from mallory refused", "has put you in 2 groups already")
	kept := 0
	for _, id := range made {
		if bob.holds(id) {
			kept++
		}
	}
	if kept != 2 {
		t.Fatalf("bob keeps %d of mallory's 3 groups, want 2", kept)
	}

	// A contact's groups are not bounded.
	for _, name := range []string{"work 1", "work 2", "work 3"} {
		gi, err := alice.Groups().Create(name, []peer.ID{bob.ID()})
		if err != nil {
			t.Fatal(err)
		}
		bob.offWait("alice's group", groupEv(gi.ID, func(g GroupInfo) bool { return g.Member }))
	}

	// Sybils: one more stranger group fits in the total (2 of mallory's
	// and this one), the next does not.
	key1, sybil1 := testKey(t)
	if id := strangerCreate(t, bob, key1, sybil1, "sybil 1", bob.ID()); !bob.holds(id) {
		t.Fatal("the first sybil's group was refused with room for it")
	}
	key2, sybil2 := testKey(t)
	refused := strangerCreate(t, bob, key2, sybil2, "sybil 2", bob.ID())
	bob.refusedStranger("the second sybil's group refused", "you are in 3 groups made by peers who are not your contacts")
	if bob.holds(refused) {
		t.Fatal("bob keeps a stranger's group past the total")
	}

	// Leaving one of them makes room.
	var left group.ID
	for _, id := range made {
		if bob.holds(id) {
			left = id
			break
		}
	}
	if _, err := bob.Groups().Leave(left); err != nil {
		t.Fatal(err)
	}
	if id := strangerCreate(t, bob, key2, sybil2, "sybil 2 again", bob.ID()); !bob.holds(id) {
		t.Fatal("a stranger's group refused after bob left one of the three")
	}

	// Accepting mallory lifts her bound and frees her places.
	if err := bob.Contacts().Trust(mallory.ID(), false); err != nil {
		t.Fatal(err)
	}
	gi, err := mallory.Groups().Create("now a contact", []peer.ID{bob.ID()})
	if err != nil {
		t.Fatal(err)
	}
	bob.offWait("mallory's group, once she is a contact", groupEv(gi.ID, func(g GroupInfo) bool { return g.Member }))
	key3, sybil3 := testKey(t)
	if id := strangerCreate(t, bob, key3, sybil3, "sybil 3", bob.ID()); !bob.holds(id) {
		t.Fatal("a stranger's group refused although mallory's no longer count")
	}
}

// TestGroupsFromSybilsBounded, at the bounds a node starts with: one
// key's ninth group is refused, and so is the group past the total, made
// by keys that each made one.
func TestGroupsFromSybilsBounded(t *testing.T) {
	bob := offNewNode(t, "bob", nil, false)
	key, sybil := testKey(t)
	for i := range maxGroupsPerStranger {
		if id := strangerCreate(t, bob, key, sybil, fmt.Sprint("spam ", i), bob.ID()); !bob.holds(id) {
			t.Fatalf("group %d of one stranger refused", i)
		}
	}
	if id := strangerCreate(t, bob, key, sybil, "one too many", bob.ID()); bob.holds(id) {
		t.Fatalf("bob keeps %d groups of one stranger", maxGroupsPerStranger+1)
	}
	bob.refusedStranger("the ninth group refused", fmt.Sprintf("has put you in %d groups already", maxGroupsPerStranger))
	for i := maxGroupsPerStranger; i < maxStrangerGroups; i++ {
		key, sybil := testKey(t)
		if id := strangerCreate(t, bob, key, sybil, fmt.Sprint("sybil ", i), bob.ID()); !bob.holds(id) {
			t.Fatalf("stranger group %d refused", i)
		}
	}
	key, sybil = testKey(t)
	if id := strangerCreate(t, bob, key, sybil, "past the total", bob.ID()); bob.holds(id) {
		t.Fatalf("bob keeps %d groups of strangers", maxStrangerGroups+1)
	}
	bob.refusedStranger("the group past the total refused", fmt.Sprintf("you are in %d groups", maxStrangerGroups))
	if gs := bob.Groups().List(); len(gs) != maxStrangerGroups {
		t.Fatalf("bob lists %d groups, want %d", len(gs), maxStrangerGroups)
	}
}
