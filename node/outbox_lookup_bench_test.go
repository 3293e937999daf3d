package node

import (
	"fmt"
	"slices"
	"testing"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/store"
)

// BenchmarkOutboxLookup: finding a copy in a member's outbox, as each
// receipt of a group message does (takeGroupCopies, unacked,
// ackedCopies), with indexOf and, as the baseline, slices.IndexFunc with
// a func of a store.Message (which copies each message it looks at).
func BenchmarkOutboxLookup(b *testing.B) {
	for _, n := range []int{8, 64} {
		pending := make([]store.Message, n)
		for i := range pending {
			pending[i].ID = e2e.NewMessageID()
		}
		id := pending[n-1].ID
		b.Run(fmt.Sprintf("pending=%d/indexOf", n), func(b *testing.B) {
			for b.Loop() {
				if indexOf(pending, id) != n-1 {
					b.Fatal("not found")
				}
			}
		})
		b.Run(fmt.Sprintf("pending=%d/IndexFunc", n), func(b *testing.B) {
			for b.Loop() {
				if slices.IndexFunc(pending, func(m store.Message) bool { return m.ID == id }) != n-1 {
					b.Fatal("not found")
				}
			}
		})
	}
}
