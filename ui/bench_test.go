package ui

import (
	"fmt"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
)

// Big histories stay fast: the window reads the conversation list and one
// page of the newest conversation, never the whole store.
const (
	benchConversations = 50
	benchMessages      = 100_000
)

// bigStore prepares alice's home with benchMessages messages across
// benchConversations contacts, imported a transaction per 10,000
// messages, and starts her node.
func bigStore(tb testing.TB) *testPeer {
	start := time.Now()
	alice := newPeer(tb, "alice", 1)
	peers := make([]*testPeer, benchConversations)
	for i := range peers {
		peers[i] = newPeer(tb, fmt.Sprintf("peer %02d", i), byte(10+i))
		alice.pin(peers[i].peerID(), peers[i].id.Name(), identity.StateTOFU)
	}
	const batch = 10_000
	for k := 0; k < benchMessages; k += batch {
		ms := make([]*store.Message, 0, batch)
		for i := k; i < k+batch; i++ {
			p := peers[i%benchConversations].peerID()
			at := testNow.Add(-time.Duration(benchMessages-i) * time.Minute)
			dir, st := store.Incoming, store.Status("")
			if i%3 == 0 {
				dir, st = store.Outgoing, store.StatusDelivered
			}
			ms = append(ms, &store.Message{ID: e2e.NewMessageID(), Peer: p, Direction: dir, Status: st,
				StoredAt: at, SentAt: at, Body: fmt.Sprintf("message %d: the quick brown fox jumps over the lazy dog", i)})
		}
		alice.fill(ms...)
	}
	tb.Logf("filled %d messages in %d conversations in %v", benchMessages, benchConversations, time.Since(start))
	alice.start()
	return alice
}

// firstScreen opens a window on n and returns how long it took until the
// first complete draw: the chat list and the newest page of the most
// recent conversation on screen.
func firstScreen(tb testing.TB, b Backend) time.Duration {
	start := time.Now()
	w := openWindow(tb, b, 120, 40, Options{})
	took := time.Since(start)
	w.close()
	return took
}

// BenchmarkFirstScreen measures from UI construction to the first
// complete draw on a SimulationScreen, with 100,000 stored messages
// (ns/op also counts closing the window; ms/first-screen does not):
//
//	go test -run '^$' -bench FirstScreen -benchtime 20x ./ui/
func BenchmarkFirstScreen(b *testing.B) {
	alice := bigStore(b)
	b.ResetTimer()
	var total, worst time.Duration
	for i := 0; i < b.N; i++ {
		took := firstScreen(b, alice.n)
		total += took
		worst = max(worst, took)
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/first-screen")
	b.ReportMetric(float64(worst.Microseconds())/1000, "ms-worst")
}

// The first screen with 100,000 stored messages comes in under half a
// second.
func TestFirstScreenWithBigStore(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("fills a store of 100,000 messages: a minute of CPU under the race detector")
	}
	t.Parallel()
	alice := bigStore(t)
	const limit = 500 * time.Millisecond
	for i := 0; i < 3; i++ {
		if took := firstScreen(t, alice.n); took > limit {
			t.Fatalf("the first screen took %v (limit %v)", took, limit)
		} else {
			t.Logf("first screen in %v", took)
		}
	}
}
