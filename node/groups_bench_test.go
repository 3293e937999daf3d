package node_test

import (
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/node"
	"github.com/libp2p/go-libp2p/core/peer"
)

// BenchmarkGroupSend: one sender and N members, every one a node in this
// process on loopback (TCP), all online with live sessions. Each
// iteration sends one group message and waits until the last member has
// stored it. docs/BENCHMARKS.md has the command and the figures.
//
//	go test -run '^$' -bench GroupSend -benchtime 50x -timeout 30m ./node/
func BenchmarkGroupSend(b *testing.B) {
	for _, n := range []int{10, 100, 250} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) { benchGroup(b, n) })
	}
}

func benchGroup(b *testing.B, members int) {
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	tcp := "/ip4/127.0.0.1/tcp/0"
	sender := startNode(b, newHome(b, "sender"), tcp)
	nodes := make([]*testNode, members)
	ids := make([]peer.ID, members)
	for i := range nodes {
		nodes[i] = startNode(b, newHome(b, fmt.Sprintf("m%d", i)), tcp)
		ids[i] = nodes[i].ID()
		if err := sender.Contacts().Trust(ids[i], false); err != nil {
			b.Fatal(err)
		}
		if err := nodes[i].Contacts().Trust(sender.ID(), false); err != nil {
			b.Fatal(err)
		}
		sender.Host().Peerstore().AddAddrs(ids[i], nodes[i].Host().Addrs(), time.Hour)
	}
	type arrival struct {
		id e2e.MessageID
		at time.Time
	}
	arrivals := make(chan arrival, members*4)
	groups := make(chan node.GroupInfo, members)
	for _, tn := range nodes {
		go func() {
			for e := range tn.sub.C {
				switch {
				case e.Kind == node.EventMessage && e.Message.Group != [32]byte{}:
					arrivals <- arrival{e.Message.ID, time.Now()}
				case e.Kind == node.EventGroup:
					groups <- *e.Group
				}
			}
		}()
	}
	gi, err := sender.Groups().Create("bench", ids)
	if err != nil {
		b.Fatal(err)
	}
	for range members {
		select {
		case <-groups:
		case <-time.After(5 * time.Minute):
			b.Fatal("the group did not reach every member")
		}
	}
	waitAll := func(id e2e.MessageID) time.Time {
		var last time.Time
		for got := 0; got < members; {
			select {
			case a := <-arrivals:
				if a.id == id {
					got++
					last = a.at
				}
			case <-time.After(2 * time.Minute):
				b.Fatalf("message reached %d of %d members", got, members)
			}
		}
		return last
	}
	warm := sender.groupSend(gi.ID, "warm up")
	waitAll(warm.ID)
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)

	lat := make([]time.Duration, 0, b.N)
	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	b.ResetTimer()
	start := time.Now()
	var call time.Duration
	for range b.N {
		t0 := time.Now()
		m := sender.groupSend(gi.ID, benchText)
		call += time.Since(t0)
		lat = append(lat, waitAll(m.ID).Sub(t0))
	}
	elapsed := time.Since(start)
	b.StopTimer()
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) / time.Duration(b.N)
	b.ReportMetric(float64(percentile(lat, 0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(cpu.Microseconds())/1000, "cpu-ms/msg(all-nodes)")
	b.ReportMetric(float64((call/time.Duration(b.N)).Microseconds())/1000, "send-call-ms")
	b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/float64(members+1)/1024, "heap-KiB/node")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
}
