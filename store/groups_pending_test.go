package store

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	bolt "go.etcd.io/bbolt"
)

// A group action that arrives before its target is kept pending, sealed
// with its body, and applied in the transaction that stores the target,
// oldest first and by the rules of a live one: only the author (the
// sender, never a field) edits or deletes; an action of another group, or
// one naming a private message, never applies, whichever arrives first.
func TestGroupPendingActions(t *testing.T) {
	s := testStore(t)
	gid, other := testGroup(t, s), GroupID{9, 9}
	if err := s.Groups().PutGroupChanges(other, [][]byte{[]byte("create")}); err != nil {
		t.Fatal(err)
	}
	bob, carol := testPeer(t), testPeer(t)
	base := time.Now().Truncate(time.Millisecond)
	n := byte(0)
	recv := func(g GroupID, from e2e.MessageID, m GroupMessage) GroupMessage {
		t.Helper()
		n++
		m.ID, m.Group, m.Stream, m.Number = from, g, 1, uint64(n)
		if m.SentAt.IsZero() {
			m.SentAt = base
		}
		if isNew, err := s.Groups().ReceiveGroup(&m, base.Add(time.Minute)); err != nil || !isNew {
			t.Fatalf("receive %+v: %v, %v", m, isNew, err)
		}
		return m
	}
	id := func(b byte) e2e.MessageID { return e2e.MessageID{b} }
	target := id(100)

	// Before the target: bob's edit (with its text), carol's reaction,
	// carol's edit of bob's message, a reaction sent in another group.
	fix := recv(gid, id(1), GroupMessage{From: bob, Kind: KindEdit, Target: target, Body: "secret fix", SentAt: base.Add(time.Second)})
	if !fix.Pending || fix.Refused != "" {
		t.Fatalf("an edit before its target: %+v", fix)
	}
	recv(gid, id(2), GroupMessage{From: carol, Kind: KindReact, Target: target, Emoji: "👍"})
	recv(gid, id(3), GroupMessage{From: carol, Kind: KindEdit, Target: target, Body: "carol's words"})
	recv(other, id(4), GroupMessage{From: carol, Kind: KindReact, Target: target, Emoji: "🎉"})
	if h, _ := s.Groups().GroupHistory(gid, 0, 10); len(h) != 0 {
		t.Fatalf("pending actions in the history: %+v", h)
	}
	// Sealed at rest: the kept edit's text is not in the file.
	raw, err := os.ReadFile(s.db.Path())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("secret fix")) {
		t.Fatal("a pending edit's text is in the clear in the file")
	}

	got := recv(gid, target, GroupMessage{From: bob, Body: "tpyo"})
	if got.Body != "secret fix" || got.Edited.IsZero() || len(got.Reactions) != 1 || got.Reactions[0] != (Reaction{From: carol, Emoji: "👍"}) {
		t.Fatalf("the target as it arrived: %+v", got)
	}
	refused := map[e2e.MessageID]string{}
	for _, a := range got.Waited {
		refused[a.ID] = a.Refused
	}
	if len(got.Waited) != 4 || refused[id(1)] != "" || refused[id(2)] != "" ||
		refused[id(3)] != ErrNotYours.Error() || !strings.Contains(refused[id(4)], ErrNoTarget.Error()) {
		t.Fatalf("the actions that waited: %+v", got.Waited)
	}
	for b, want := range map[byte]string{1: "", 2: "", 3: ErrNotYours.Error(), 4: ErrNoTarget.Error()} {
		a, err := s.Groups().GroupMessageByID(id(b))
		if err != nil || a.Pending || a.Body != "" || !strings.Contains(a.Refused, want) || (want == "") != (a.Refused == "") {
			t.Errorf("action %d after its target arrived: %+v, %v", b, a, err)
		}
	}
	if h, err := s.Groups().GroupMessageByID(target); err != nil || h.Body != "secret fix" || len(h.Reactions) != 1 {
		t.Fatalf("the target as stored: %+v, %v", h, err)
	}
	pendingLeft(t, s, 0)

	// A deletion and an earlier edit, the deletion first: the message
	// arrives deleted.
	doomed := id(101)
	recv(gid, id(5), GroupMessage{From: bob, Kind: KindDelete, Target: doomed, SentAt: base.Add(2 * time.Second)})
	recv(gid, id(6), GroupMessage{From: bob, Kind: KindEdit, Target: doomed, Body: "v2", SentAt: base.Add(time.Second)})
	got = recv(gid, doomed, GroupMessage{From: bob, Body: "sent in haste"})
	if !got.Deleted || got.Body != "" || len(got.Waited) != 2 || got.Waited[0].Refused != "" || got.Waited[1].Refused != "" {
		t.Fatalf("a message whose deletion came first (the edit applies first, by its sent-at): %+v", got)
	}

	// Across conversations: a group action naming a message that arrives
	// in a private chat, a private action naming a group message.
	private := id(102)
	recv(gid, id(7), GroupMessage{From: bob, Kind: KindEdit, Target: private, Body: "edited in the group"})
	inGroup := id(103)
	rec, err := s.Receive(&Message{ID: id(8), Peer: bob, SentAt: base, Kind: KindEdit, Target: inGroup, Body: "edited in private"}, base)
	if err != nil || rec.Refused != nil {
		t.Fatalf("a private edit before its target: %+v, %v", rec, err)
	}
	pendingLeft(t, s, 2)
	if _, err := s.Receive(&Message{ID: private, Peer: bob, SentAt: base, Body: "just for you"}, base); err != nil {
		t.Fatal(err)
	}
	if m, err := s.Message(private); err != nil || m.Body != "just for you" {
		t.Fatalf("the private message: %+v, %v", m, err)
	}
	if a, err := s.Groups().GroupMessageByID(id(7)); err != nil || a.Pending || a.Body != "" || !strings.Contains(a.Refused, ErrNoTarget.Error()) {
		t.Fatalf("the group's edit of a private message: %+v, %v", a, err)
	}
	pendingLeft(t, s, 1)
	if got := recv(gid, inGroup, GroupMessage{From: bob, Body: "in the group"}); got.Body != "in the group" || !got.Edited.IsZero() {
		t.Fatalf("a group message after a private edit of it: %+v", got)
	}
	if a, err := s.Message(id(8)); err != nil || a.Pending || a.Status != StatusRefused || a.Body != "" {
		t.Fatalf("the private edit of a group message: %+v, %v", a, err)
	}
	pendingLeft(t, s, 0)
	// Once the target is stored elsewhere, an action naming it is refused
	// at once, not kept.
	late := recv(gid, id(9), GroupMessage{From: bob, Kind: KindReact, Target: private, Emoji: "x"})
	if late.Pending || !strings.Contains(late.Refused, ErrNoTarget.Error()) {
		t.Fatalf("a group reaction to a stored private message: %+v", late)
	}
	rec, err = s.Receive(&Message{ID: id(10), Peer: bob, SentAt: base, Kind: KindReact, Target: inGroup, Emoji: "x"}, base)
	if err != nil || !errors.Is(rec.Refused, ErrNoTarget) {
		t.Fatalf("a private reaction to a stored group message: %+v, %v", rec, err)
	}
}

// pendingLeft fails unless the pending indexes hold want entries in all.
func pendingLeft(t *testing.T, s *Store, want int) {
	t.Helper()
	n := 0
	if err := s.db.View(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bktPending, bktGPending} {
			if err := tx.Bucket(b).ForEach(func(_, _ []byte) error { n++; return nil }); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != want {
		t.Fatalf("%d pending entries, want %d", n, want)
	}
}

// Actions kept for one target are bounded, private and group alike: the
// action past maxPendingPerTarget is refused (stored as refused, without
// its text), so the target's arrival applies a bounded number.
func TestPendingBounded(t *testing.T) {
	s := testStore(t)
	gid := testGroup(t, s)
	bob := testPeer(t)
	base := time.Now()
	fill := func(bkt []byte, target e2e.MessageID) {
		t.Helper()
		if err := s.db.Update(func(tx *bolt.Tx) error {
			for i := range maxPendingPerTarget - 1 {
				a := e2e.MessageID{0xee, byte(i >> 8), byte(i)}
				if err := tx.Bucket(bkt).Put(pendingKey(target, a), []byte("filler")); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	private, inGroup := e2e.MessageID{1}, e2e.MessageID{2}
	fill(bktPending, private)
	if err := s.db.Update(groupBuckets); err != nil {
		t.Fatal(err)
	}
	fill(bktGPending, inGroup)

	n := uint64(0)
	for i, want := range []error{nil, ErrPendingFull} {
		rec, err := s.Receive(&Message{ID: e2e.MessageID{10, byte(i)}, Peer: bob, SentAt: base, Kind: KindEdit, Target: private, Body: "kept?"}, base)
		if err != nil || !errors.Is(rec.Refused, want) {
			t.Fatalf("private action %d: %+v, %v; want refused with %v", i, rec, err, want)
		}
		m, err := s.Message(e2e.MessageID{10, byte(i)})
		if err != nil || m.Pending != (want == nil) || (want != nil) != (m.Status == StatusRefused) || want != nil && m.Body != "" {
			t.Fatalf("private action %d stored as %+v, %v", i, m, err)
		}
		n++
		g := GroupMessage{ID: e2e.MessageID{20, byte(i)}, Group: gid, From: bob, SentAt: base, Kind: KindEdit, Target: inGroup,
			Body: "kept?", Stream: 1, Number: n}
		if _, err := s.Groups().ReceiveGroup(&g, base); err != nil {
			t.Fatal(err)
		}
		if g.Pending != (want == nil) || want != nil && !strings.Contains(g.Refused, ErrPendingFull.Error()) {
			t.Fatalf("group action %d: %+v", i, g)
		}
		if stored := groupMessageByID(t, s, g.ID); stored.Pending != (want == nil) || want != nil && stored.Body != "" {
			t.Fatalf("group action %d stored as %+v", i, stored)
		}
	}
}

func groupMessageByID(t *testing.T, s *Store, id e2e.MessageID) GroupMessage {
	t.Helper()
	m, err := s.Groups().GroupMessageByID(id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
