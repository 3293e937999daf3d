package store

import (
	"sync"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A group copy written to a live session is recorded as sent; the
// members' workers recording at once share transactions; delivered and
// queued are not undone.
func TestGroupSentStored(t *testing.T) {
	s := testStore(t)
	id := testGroup(t, s)
	members := make([]peer.ID, 50)
	for i := range members {
		members[i] = testPeer(t)
	}
	m := &GroupMessage{Group: id, ID: e2e.MessageID{7}, SentAt: time.Now(), StoredAt: time.Now(), Body: "hello"}
	if err := s.Groups().AddGroupOutgoing(m, members); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, _, err := s.Groups().SetGroupStatus(m.ID, members[0], StatusDelivered, now); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Groups().SetGroupStatus(m.ID, members[1], StatusQueued, now); err != nil {
		t.Fatal(err)
	}
	before := txID(t, s)
	var wg sync.WaitGroup
	changed := make([]int, len(members))
	for i, p := range members {
		wg.Go(func() {
			ms, err := s.Groups().SetGroupSent(p, []e2e.MessageID{m.ID}, now)
			if err != nil {
				t.Error(err)
			}
			changed[i] = len(ms)
			if len(ms) == 1 && (ms[0].Status != StatusSent || ms[0].Peer != p || ms[0].Group != id) {
				t.Errorf("changed: %+v", ms[0])
			}
		})
	}
	wg.Wait()
	if n := txID(t, s) - before; n >= len(members) {
		t.Errorf("%d members' sent cost %d write transactions", len(members), n)
	} else {
		t.Logf("%d members' sent: %d write transactions", len(members), n)
	}
	got, err := s.Groups().GroupMessageByID(m.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range got.Members {
		want := StatusSent
		switch d.Peer {
		case members[0]:
			want = StatusDelivered
		case members[1]:
			want = StatusQueued
		}
		if d.Status != want {
			t.Errorf("member %s: %s, want %s", d.Peer, d.Status, want)
		}
	}
	if changed[0] != 0 || changed[1] != 0 || changed[2] != 1 {
		t.Errorf("changed: %v", changed[:3])
	}
	// An ID that is not (or no longer) a group copy is passed over.
	if ms, err := s.Groups().SetGroupSent(members[2], []e2e.MessageID{{9}}, now); err != nil || len(ms) != 0 {
		t.Fatalf("unknown ID: %v, %v", ms, err)
	}
}
