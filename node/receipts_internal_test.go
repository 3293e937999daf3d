package node

import (
	"sync"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestReceiptsGatherGroupCopies checks that a receipt for a group
// message's copy, alone from its peer, waits for more receipts to record
// in the same transaction, while a 1:1 message's receipt is recorded at
// once. The second receipt is queued while the drainer looks at the
// first batch (from the group look-up), so the order is fixed.
func TestReceiptsGatherGroupCopies(t *testing.T) {
	for _, tc := range []struct {
		name  string
		group bool
		want  []int // receipts per recorded batch
	}{
		{"group", true, []int{2}},
		{"direct", false, []int{1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := peer.ID("member")
			first, second := e2e.MessageID{1}, e2e.MessageID{2}
			work := &workers{}
			recorded := make(chan int, 4)
			var q *receiptQueue
			var once sync.Once
			q = &receiptQueue{
				work:   work,
				record: func(acks []store.Copy) { recorded <- len(acks) },
				seen:   func(peer.ID, []e2e.MessageID) {},
				group: func(_ peer.ID, id e2e.MessageID) bool {
					if id == first {
						once.Do(func() { q.add(p, second) })
					}
					return tc.group
				},
			}
			q.add(p, first)
			var got []int
			for n := 0; n < 2; {
				select {
				case k := <-recorded:
					got = append(got, k)
					n += k
				case <-time.After(5 * time.Second):
					t.Fatalf("receipts recorded %v, want %v", got, tc.want)
				}
			}
			work.stop()
			work.wait()
			if len(got) != len(tc.want) {
				t.Fatalf("receipts recorded in batches %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("receipts recorded in batches %v, want %v", got, tc.want)
				}
			}
		})
	}
}
