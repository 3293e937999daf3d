package store_test

import (
	"bytes"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// BenchmarkGroupMessageStore measures what storing one group message
// costs the store in a group of 100 members whose log holds one 4 KB
// change (about what a create naming 100 members is): "send", the
// sender's two transactions (the message with the 100 members' queue
// entries, then the 100 receipts in one), and "receive", a member's
// (the message and the sender's numbering, from one sender or from each
// of the 100 in turn).
// cpu-µs/op is the process's CPU time (getrusage: user and system, the
// commits' fdatasyncs included) per message; ns/op is mostly the
// fdatasyncs.
func BenchmarkGroupMessageStore(b *testing.B) {
	s := openStore(b, filepath.Join(b.TempDir(), store.FileName), make([]byte, 32))
	gid := store.GroupID{7}
	if err := s.Groups().PutGroupChanges(gid, [][]byte{bytes.Repeat([]byte{1}, 4096)}); err != nil {
		b.Fatal(err)
	}
	members := make([]peer.ID, 100)
	for i := range members {
		members[i] = randomPeer(b)
	}
	cpu := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	run := func(b *testing.B, one func(i int)) {
		b.ReportAllocs()
		c0, i := cpu(), 0
		for b.Loop() {
			one(i)
			i++
		}
		b.ReportMetric(float64((cpu()-c0).Microseconds())/float64(b.N), "cpu-µs/op")
	}
	b.Run("send", func(b *testing.B) {
		run(b, func(int) {
			now := time.Now()
			m := &store.GroupMessage{Group: gid, ID: e2e.NewMessageID(), SentAt: now, StoredAt: now, Body: "hello, group"}
			if err := s.Groups().AddGroupOutgoing(m, members); err != nil {
				b.Fatal(err)
			}
			copies := make([]store.Copy, len(members))
			for i, p := range members {
				copies[i] = store.Copy{Peer: p, ID: m.ID}
			}
			if _, err := s.SetStatuses(copies, store.StatusDelivered, now); err != nil {
				b.Fatal(err)
			}
		})
	})
	// A member receiving: from one sender (as BenchmarkGroupSend's
	// members do), and from each of the 100 in turn.
	for _, senders := range []int{1, 100} {
		b.Run(fmt.Sprintf("receive/senders=%d", senders), func(b *testing.B) {
			run(b, func(i int) {
				now := time.Now()
				m := &store.GroupMessage{Group: gid, ID: e2e.NewMessageID(), From: members[i%senders], SentAt: now,
					Body: "hello, group", Stream: 1, Number: uint64(i/senders + 1)}
				if _, err := s.Groups().ReceiveGroup(m, now); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}
