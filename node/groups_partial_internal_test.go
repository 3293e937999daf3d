package node

import (
	"bytes"
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

// logFrames: every frame starts with the create, within the bounds, and
// the frames' changes after their creates are the log, in its order.
func TestLogFrames(t *testing.T) {
	change := func(i, size int) []byte { return bytes.Repeat([]byte{byte(i), byte(i >> 8)}, size/2) }
	for _, tc := range []struct {
		name   string
		n      int // changes after the create
		size   int // bytes a change
		frames int
	}{
		{"create alone", 0, 200, 1},
		{"a frame's worth", e2e.MaxGroupChanges - 1, 200, 1},
		{"one more", e2e.MaxGroupChanges, 200, 2},
		{"the most a log holds", group.MaxChanges - 1, 200, 17},
		{"long names: bounded by bytes", 300, 500, 3},
		{"a change over the byte bound goes alone", 3, frameChangeBytes + 2, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := [][]byte{change(0xffff, 300)}
			for i := range tc.n {
				log = append(log, change(i, tc.size))
			}
			frames := logFrames(log)
			if len(frames) != tc.frames {
				t.Fatalf("%d frames, want %d", len(frames), tc.frames)
			}
			var got [][]byte
			for i, f := range frames {
				size := 0
				for _, c := range f[1:] {
					size += len(c)
				}
				switch {
				case !bytes.Equal(f[0], log[0]):
					t.Fatalf("frame %d does not start with the create", i)
				case len(f) > e2e.MaxGroupChanges:
					t.Fatalf("frame %d has %d changes", i, len(f))
				case len(f) > 2 && size+len(f[0]) > frameChangeBytes:
					t.Fatalf("frame %d has %d bytes of changes", i, size+len(f[0]))
				}
				got = append(got, f[1:]...)
			}
			nf := newestFrame(log)
			size := 0
			for _, c := range nf {
				size += len(c)
			}
			switch {
			case !bytes.Equal(nf[0], log[0]) || len(nf) > e2e.MaxGroupChanges || (len(nf) > 2 && size > frameChangeBytes):
				t.Fatalf("the newest frame: %d changes, %d bytes", len(nf), size)
			case !bytes.Equal(nf[len(nf)-1], log[len(log)-1]):
				t.Fatal("the newest frame does not end with the newest change")
			case len(frames) == 1 && len(nf) != len(log):
				t.Fatalf("the newest frame of a log that fits one has %d changes, want %d", len(nf), len(log))
			case len(frames) > 1 && len(nf) < len(frames[len(frames)-1]):
				t.Fatalf("the newest frame has %d changes, fewer than the last of the whole log's", len(nf))
			}
			if len(got) != len(log)-1 {
				t.Fatalf("the frames carry %d changes, want %d", len(got), len(log)-1)
			}
			for i := range got {
				if !bytes.Equal(got[i], log[i+1]) {
					t.Fatalf("change %d out of place", i)
				}
			}
		})
	}
}

// partialLogs: at most maxPartialPerSender from one peer and
// maxPartialLogs in all, the oldest making way; none past partialLogTTL;
// take forgets what it returns.
func TestPartialLogsBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	pl := newPartialLogs()
	gid := func(i int) group.ID { return group.ID{byte(i), byte(i >> 8), 1} }
	log := &group.Log{}
	mallory := peer.ID("mallory")
	for i := range 5 {
		pl.put(gid(i), mallory, log, now.Add(time.Duration(i)*time.Second))
	}
	if n := pl.count(mallory); n != maxPartialPerSender {
		t.Fatalf("%d logs held from one peer, want %d", n, maxPartialPerSender)
	}
	if pl.take(gid(4), now.Add(10*time.Second)) == nil || pl.take(gid(0), now.Add(10*time.Second)) != nil {
		t.Fatal("the newest log from the peer is not the one kept")
	}
	if pl.take(gid(4), now.Add(10*time.Second)) != nil {
		t.Fatal("take did not forget the log")
	}
	for i := range 3 * maxPartialLogs {
		pl.put(gid(100+i), peer.ID(fmt.Sprint("sybil", i)), log, now.Add(time.Minute+time.Duration(i)*time.Second))
	}
	if len(pl.logs) != maxPartialLogs {
		t.Fatalf("%d logs held, want %d", len(pl.logs), maxPartialLogs)
	}
	last := gid(100 + 3*maxPartialLogs - 1)
	if pl.take(last, now.Add(time.Minute+partialLogTTL+time.Hour)) != nil {
		t.Fatal("a log past its time was returned")
	}
	if pl.take(gid(100+3*maxPartialLogs-2), now.Add(2*time.Minute)) == nil {
		t.Fatal("a recent log was dropped")
	}
}

// longLog is a group made by key's peer with no other member, renamed
// renames times, then bob added: a log longer than a frame.
func longLog(t *testing.T, key ed25519.PrivateKey, bob peer.ID, renames int) *group.Log {
	t.Helper()
	c, err := group.Create(key, "long", nil, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	l, err := group.New(c)
	if err != nil {
		t.Fatal(err)
	}
	for i := range renames + 1 {
		op, name, p := group.OpRename, fmt.Sprint("long ", i), peer.ID("")
		if i == renames {
			op, name, p = group.OpAdd, "", bob
		}
		c, err := l.Propose(key, op, p, name, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// handFrames hands n the frames of l, in the order given, as from's
// (the receive path a session's read loop calls).
func handFrames(n *offNode, from peer.ID, l *group.Log, order ...int) {
	frames := logFrames(l.Changes())
	for _, i := range order {
		n.groups.receive(from, e2e.GroupChanges{ID: e2e.NewMessageID(), Group: store.GroupID(l.ID()), Changes: frames[i]})
	}
}

// A log longer than a frame, in its frames: from a contact, in order or
// a frame ahead of its place, bob puts it together and is a member at
// the version its maker holds; from a stranger, whose frames are not
// held between them, he is told why the group did not come and what to
// do. Without the frames held between them, a contact's long log never
// adds bob.
func TestGroupLongLogFrames(t *testing.T) {
	bob := offNewNode(t, "bob", nil, true)
	alice := offNewNode(t, "alice", nil, true)
	mallory := offNewNode(t, "mallory", nil, true)
	offLink(t, alice, bob)

	for _, order := range [][]int{{0, 1}, {1, 0}} {
		l := longLog(t, alice.groups.id.Signer(), bob.ID(), 300)
		if n := len(logFrames(l.Changes())); n != 2 {
			t.Fatalf("the log is %d frames, want 2", n)
		}
		handFrames(bob, alice.ID(), l, order...)
		s, ok := bob.Groups().state(l.ID())
		if want := l.State(); !ok || !s.IsMember(bob.ID()) || s.Version != want.Version || s.Name != want.Name {
			t.Fatalf("frames in order %v: bob holds %v, %+v; want v%d %q with him a member", order, ok, s, want.Version, want.Name)
		}
	}

	l := longLog(t, mallory.groups.id.Signer(), bob.ID(), 300)
	handFrames(bob, mallory.ID(), l, 0, 1)
	e := bob.offWait("the stranger's long log refused", func(e Event) bool {
		return e.Kind == EventError && strings.Contains(e.Err, ErrLongLogFromStranger.Error())
	})
	if !strings.Contains(e.Err, "accept") || bob.holds(l.ID()) {
		t.Fatalf("%q; bob holds the group: %v", e.Err, bob.holds(l.ID()))
	}
	if n := bob.groups.partial.count(mallory.ID()); n != 0 {
		t.Fatalf("%d of a stranger's logs held", n)
	}
}

// A member added to a long group while offline gets its frames through
// the relay's mailbox (each within an envelope's bound) and is a member
// when it comes back, its adder away by then.
func TestGroupLongLogThroughMailbox(t *testing.T) {
	relayAddr, _ := offRelay(t)
	alice := offNewNode(t, "alice", []string{relayAddr}, true)
	bobHome, bobID := offHome(t, "bob")
	bob := offNodeAt(t, bobHome, bobID, []string{relayAddr}, true)
	for _, n := range []*offNode{alice, bob} {
		n.offRegistered()
	}
	offLink(t, alice, bob)
	gi, err := alice.Groups().Create("long", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		if _, err := alice.Groups().Rename(gi.ID, fmt.Sprint("long ", i)); err != nil {
			t.Fatal(err)
		}
	}
	bob.Close()
	if _, err := alice.Groups().Add(gi.ID, bob.ID()); err != nil {
		t.Fatal(err)
	}
	want, _ := alice.Groups().Get(gi.ID)
	for range logFrames(logOf(t, alice, gi.ID)) {
		alice.offWait("a frame queued at bob's mailbox", func(e Event) bool {
			return e.Kind == EventStatus && e.Message.Peer == bob.ID() && e.Message.Group == store.GroupID(gi.ID) && e.Message.Status == store.StatusQueued
		})
	}
	alice.Close()
	bob = offNodeAt(t, bobHome, bobID, []string{relayAddr}, true)
	bob.offWait("the long group from the mailbox", groupEv(gi.ID, func(g GroupInfo) bool {
		return g.Member && g.Version == want.Version && g.Name == "long 299"
	}))
}

// logOf is the log of group id as on holds it.
func logOf(t *testing.T, on *offNode, id group.ID) [][]byte {
	t.Helper()
	on.groups.mu.Lock()
	defer on.groups.mu.Unlock()
	return on.groups.logs[id].Changes()
}

// A stranger's long group, as the refusal says: once bob accepts the
// stranger as a contact, the group's next change brings it (its frame
// is held, and what it lacks asked for: groups_want.go).
func TestGroupLongLogFromStrangerAccepted(t *testing.T) {
	bob := offNewNode(t, "bob", nil, true)
	mallory := offNewNode(t, "mallory", nil, true)
	strangerLink(t, mallory, bob)
	gi, err := mallory.Groups().Create("long", nil)
	if err != nil {
		t.Fatal(err)
	}
	changeUnsent(t, mallory, gi.ID, 300)
	if _, err := mallory.Groups().Add(gi.ID, bob.ID()); err != nil {
		t.Fatal(err)
	}
	e := bob.offWait("the stranger's long log refused", func(e Event) bool {
		return e.Kind == EventError && strings.Contains(e.Err, ErrLongLogFromStranger.Error())
	})
	if !strings.Contains(e.Err, "next change") || bob.holds(gi.ID) {
		t.Fatalf("%q; bob holds the group: %v", e.Err, bob.holds(gi.ID))
	}
	if err := bob.Contacts().Trust(mallory.ID(), false); err != nil {
		t.Fatal(err)
	}
	want, err := mallory.Groups().Rename(gi.ID, "the next change")
	if err != nil {
		t.Fatal(err)
	}
	bob.offWait("the group with its next change", groupEv(gi.ID, func(g GroupInfo) bool {
		return g.Member && g.Version == want.Version && g.Name == "the next change"
	}))
}
