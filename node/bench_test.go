package node_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Benchmarks. docs/benchmarks-node.md has the commands and the figures.
//
//	go test -run '^$' -bench . -benchtime 1x ./node/          (memory, once)
//	go test -run '^$' -bench 'Daemon(Latency|Throughput)' -benchtime 2000x ./node/

// warmPair starts two daemons that trust each other and have a live
// session (startPair), and returns alice, bob and bob's peer ID.
func warmPair(b *testing.B) (*daemon, *daemon, string) {
	b.Helper()
	p := startPair(b, shortDir(b), pairOpts{})
	// One message first: the ratchet is seeded and everything is warm.
	acc := p.a.do("warm", map[string]any{"cmd": "send", "to": p.bID, "text": "warm up"})
	p.a.waitEvent("warm-up receipt", func(e event) bool { return e.str("event") == "delivered" && e.str("id") == acc.str("id") })
	return p.a, p.b, p.bID
}

// benchText is a typical short chat message (100 bytes).
var benchText = strings.Repeat("certchat ", 11) + "x"

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(p*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func reportLatency(b *testing.B, lat []time.Duration, elapsed time.Duration) {
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(percentile(lat, 0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(0, "ns/op") // per-op time is meaningless here: see msgs/s
}

// BenchmarkDaemonLatency sends one message at a time from one `chat daemon
// --json` to another on loopback and times send command → delivered event
// (the receipt: the receiver stored it durably).
func BenchmarkDaemonLatency(b *testing.B) {
	a, _, bID := warmPair(b)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		ref := "l" + strconv.Itoa(i)
		t0 := time.Now()
		a.send(map[string]any{"cmd": "send", "ref": ref, "to": bID, "text": benchText})
		id := a.answer(ref).str("id")
		a.waitEvent("delivered", func(e event) bool { return e.str("event") == "delivered" && e.str("id") == id })
		lat = append(lat, time.Since(t0))
	}
	elapsed := time.Since(start)
	b.StopTimer()
	reportLatency(b, lat, elapsed)
}

// BenchmarkDaemonConversation: two `chat daemon --json` on loopback take
// turns, each answering the other's message as soon as it has it: the
// time from a send command until the other daemon has the message (its
// "message" event: stored durably), and the fsyncs of both daemons
// (fdatasync and fsync, counted by perf where it can) per message. A
// message costs its sender's store and its receiver's; a reply whose
// seal had to commit its new sending chain cost one commit more.
func BenchmarkDaemonConversation(b *testing.B) {
	a, bob, _ := warmPair(b)
	sides := [2]*daemon{a, bob}
	to := [2]string{"bob", "alice"}
	stops := [2]func() int{countSyncs(a.cmd.Process.Pid), countSyncs(bob.cmd.Process.Pid)}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		from, other := sides[i%2], sides[1-i%2]
		ref := "c" + strconv.Itoa(i)
		t0 := time.Now()
		id := from.do(ref, map[string]any{"cmd": "send", "to": to[i%2], "text": benchText}).str("id")
		other.waitEvent("the turn", func(e event) bool { return e.str("event") == "message" && e.str("id") == id })
		lat = append(lat, time.Since(t0))
	}
	elapsed := time.Since(start)
	b.StopTimer()
	time.Sleep(200 * time.Millisecond) // the last receipt recorded
	if n0, n1 := stops[0](), stops[1](); n0 >= 0 && n1 >= 0 {
		b.ReportMetric(float64(n0+n1)/float64(b.N), "fsyncs/msg")
	}
	reportLatency(b, lat, elapsed)
}

// BenchmarkDaemonThroughput keeps up to 64 messages in flight (sent, not
// yet delivered) between two daemons: messages per second, and the
// latency of each under that load.
func BenchmarkDaemonThroughput(b *testing.B) {
	const window = 64
	a, _, bID := warmPair(b)
	sent := make([]time.Time, b.N)
	lat := make([]time.Duration, 0, b.N)
	ids := map[string]int{}
	slots := make(chan struct{}, window)
	var wmu sync.Mutex
	b.ResetTimer()
	start := time.Now()
	go func() {
		for i := range b.N {
			slots <- struct{}{}
			line := fmt.Sprintf(`{"cmd":"send","ref":"%d","to":%q,"text":%q}`+"\n", i, bID, benchText)
			wmu.Lock()
			sent[i] = time.Now()
			wmu.Unlock()
			a.stdin.Write([]byte(line))
		}
	}()
	early := map[string]time.Time{} // delivered before its accepted line was read
	timeout := time.After(10 * time.Minute)
	for len(lat) < b.N {
		select {
		case e, ok := <-a.events:
			if !ok {
				b.Fatalf("alice exited: %s", a.log())
			}
			switch e.str("event") {
			case "accepted":
				i, _ := strconv.Atoi(e.str("ref"))
				ids[e.str("id")] = i
				if at, ok := early[e.str("id")]; ok {
					wmu.Lock()
					lat = append(lat, at.Sub(sent[i]))
					wmu.Unlock()
					<-slots
				}
			case "delivered":
				if i, ok := ids[e.str("id")]; ok {
					wmu.Lock()
					lat = append(lat, time.Since(sent[i]))
					wmu.Unlock()
					<-slots
				} else {
					early[e.str("id")] = time.Now()
				}
			case "error":
				b.Fatalf("error: %v", e)
			}
		case <-timeout:
			b.Fatalf("%d of %d delivered", len(lat), b.N)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	reportLatency(b, lat, elapsed)
}

// The peer farm: n nodes in one process, each of which connects to a
// target, accepts it and sends it one message, so the target holds n live
// chat sessions. It runs in this process (BenchmarkDaemonPeerRSS) or in a
// child process (BenchmarkPeerMemory: the test binary again, with
// peerFarmEnv set), so that what is measured holds only the target.
const (
	peerFarmEnv   = "CERTCHAT_NODE_PEERFARM"
	peerFarmCount = 100
)

type farm struct {
	nodes []*node.Node
}

// startFarm makes the n nodes, lets accept take each one's peer ID (the
// target making it a contact: a target keeps messages from at most
// maxStrangerConversations strangers, fewer than a farm), then connects
// each to the target and sends it its message. accept runs on the
// caller's goroutine, once per node, in order; nil accepts none.
func startFarm(target string, n int, dir string, accept func(peer.ID) error) (*farm, error) {
	targetID, err := identity.ParsePeerID(target[strings.LastIndex(target, "/")+1:])
	if err != nil {
		return nil, err
	}
	f := &farm{nodes: make([]*node.Node, n)}
	fail := func(err error) (*farm, error) { f.close(); return nil, err }
	err = f.each(func(i int) error {
		nd, err := farmNode(filepath.Join(dir, strconv.Itoa(i)), i)
		f.nodes[i] = nd
		if err != nil {
			return err
		}
		return nd.Contacts().Trust(targetID, false)
	})
	if err != nil {
		return fail(err)
	}
	for _, nd := range f.nodes {
		if accept == nil {
			break
		}
		if err := accept(nd.ID()); err != nil {
			return fail(err)
		}
	}
	err = f.each(func(i int) error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := f.nodes[i].Connect(ctx, target); err != nil {
			return fmt.Errorf("peer %d: connect: %w", i, err)
		}
		_, err := f.nodes[i].Send(targetID, fmt.Sprintf("hello from peer %d", i))
		return err
	})
	if err != nil {
		return fail(err)
	}
	return f, nil
}

// each runs fn for every node's index, 8 at a time (the target runs at
// most 64 handshakes at once), and returns the first error.
func (f *farm) each(fn func(i int) error) error {
	errs := make(chan error, len(f.nodes))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := range f.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := fn(i); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func farmNode(dir string, i int) (*node.Node, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	id, err := identity.Generate(fmt.Sprintf("peer%03d", i), time.Now(), 24*time.Hour)
	if err != nil {
		return nil, err
	}
	ts, err := identity.OpenTrustStore(filepath.Join(dir, "trust.json"))
	if err != nil {
		return nil, err
	}
	nd, err := node.New(node.Config{Home: identity.Home{Dir: dir}, Identity: id, Trust: ts,
		Listen: benchListens(os.Getenv(benchTransportEnv)), RetryMin: 100 * time.Millisecond, RetryMax: time.Second})
	if err != nil {
		return nil, err
	}
	return nd, nd.Start()
}

func (f *farm) close() {
	var wg sync.WaitGroup
	for _, nd := range f.nodes {
		if nd != nil {
			wg.Add(1)
			go func() { defer wg.Done(); nd.Close() }()
		}
	}
	wg.Wait()
}

// runPeerFarm is the child process: it starts the farm, says "ready" and
// runs until its stdin closes.
func runPeerFarm() int {
	n, _ := strconv.Atoi(os.Getenv(peerFarmEnv + "_N"))
	dir, err := os.MkdirTemp("", "ccfarm")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// The parent makes each peer a contact of its node: it names them
	// ("peer ID" lines), then waits for "go".
	in := bufio.NewReader(os.Stdin)
	named := 0
	f, err := startFarm(os.Getenv(peerFarmEnv+"_TARGET"), n, dir, func(p peer.ID) error {
		fmt.Println("peer", p)
		if named++; named < n {
			return nil
		}
		line, err := in.ReadString('\n')
		if err == nil && line != "go\n" {
			err = fmt.Errorf("the parent said %q", line)
		}
		return err
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "peer farm:", err)
		return 1
	}
	fmt.Println("ready")
	in.ReadString('\n')
	f.close()
	return 0
}

// heapLive is the live heap after garbage collection.
func heapLive() (heap uint64, goroutines int) {
	var ms runtime.MemStats
	for range 3 {
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, runtime.NumGoroutine()
}

// BenchmarkPeerMemory: one node (in this process) with 100 peers (in a
// child process) that each have a live chat session with it and sent it a
// message. Reports the node's live heap and goroutines per peer.
func BenchmarkPeerMemory(b *testing.B) {
	for range b.N {
		hub := startNode(b, newHome(b, "hub"), "/ip4/127.0.0.1/tcp/0")
		time.Sleep(200 * time.Millisecond)
		heap0, g0 := heapLive()
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), peerFarmEnv+"=1", peerFarmEnv+"_N="+strconv.Itoa(peerFarmCount), peerFarmEnv+"_TARGET="+hub.tcpAddr())
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		// The farm names its peers; the hub makes each a contact, as its
		// user would (it keeps messages from 64 strangers only), and lets
		// the farm go on.
		ready := make(chan error, 1)
		go func() {
			out := bufio.NewReader(stdout)
			for range peerFarmCount {
				line, err := out.ReadString('\n')
				id, ok := strings.CutPrefix(strings.TrimSpace(line), "peer ")
				if err != nil || !ok {
					ready <- fmt.Errorf("peer farm said %q: %v", line, err)
					return
				}
				p, err := identity.ParsePeerID(id)
				if err == nil {
					err = hub.Contacts().Trust(p, false)
				}
				if err != nil {
					ready <- err
					return
				}
			}
			if _, err := io.WriteString(stdin, "go\n"); err != nil {
				ready <- err
				return
			}
			line, err := out.ReadString('\n')
			if err == nil && line != "ready\n" {
				err = fmt.Errorf("peer farm said %q", line)
			}
			ready <- err
		}()
		select {
		case err := <-ready:
			if err != nil {
				b.Fatal(err)
			}
		case <-time.After(3 * time.Minute):
			b.Fatal("peer farm not ready")
		}
		got := 0
		for got < peerFarmCount {
			hub.waitFor("farm messages", func(e node.Event) bool { return e.Kind == node.EventMessage })
			got++
		}
		online := 0
		for _, p := range hub.Peers() {
			if p.Online {
				online++
			}
		}
		if online != peerFarmCount {
			b.Fatalf("%d peers online, want %d", online, peerFarmCount)
		}
		time.Sleep(500 * time.Millisecond) // receipts out, queues drained
		heap1, g1 := heapLive()
		b.ReportMetric(float64(int64(heap1)-int64(heap0))/peerFarmCount/1024, "heap-KiB/peer")
		b.ReportMetric(float64(g1-g0)/peerFarmCount, "goroutines/peer")
		stdin.Close()
		cmd.Wait()
		hub.Close()
	}
}

// rssKiB reads a process's resident set size from /proc.
func rssKiB(b *testing.B, pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

// BenchmarkDaemonPeerRSS: a `chat daemon --json` with 100 peers (in this
// process) that each have a live chat session with it and sent it a
// message. Reports the daemon's resident memory per peer.
func BenchmarkDaemonPeerRSS(b *testing.B) {
	for range b.N {
		dir := shortDir(b)
		hHome, _ := procHome(b, dir, "hub")
		hub := startDaemon(b, "hub", hHome, 0)
		time.Sleep(500 * time.Millisecond)
		rss0 := rssKiB(b, hub.cmd.Process.Pid)
		// The hub makes each peer a contact (the daemon's "trust"), as its
		// user would: it would keep messages from 64 strangers only.
		f, err := startFarm(hub.addr(), peerFarmCount, filepath.Join(dir, "farm"), func(p peer.ID) error {
			hub.do("trust", map[string]any{"cmd": "trust", "peer": p.String()})
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		for got := 0; got < peerFarmCount; got++ {
			hub.waitEvent("farm messages", func(e event) bool { return e.str("event") == "message" })
		}
		time.Sleep(time.Second)
		rss1 := rssKiB(b, hub.cmd.Process.Pid)
		b.ReportMetric(float64(rss1-rss0)/peerFarmCount, "rss-KiB/peer")
		b.ReportMetric(float64(rss1)/1024, "rss-MiB-total")
		hub.quit()
		f.close()
	}
}

// BenchmarkNodeThroughput is BenchmarkDaemonThroughput without the
// processes: two nodes in this process, 64 messages in flight, so that
// -cpuprofile and -blockprofile see the node's own costs.
func BenchmarkNodeThroughput(b *testing.B) {
	const window = 64
	alice := startNode(b, newHome(b, "alice"), "/ip4/127.0.0.1/tcp/0")
	bob := startNode(b, newHome(b, "bob"), "/ip4/127.0.0.1/tcp/0")
	trustEachOther(b, alice, bob)
	warm := alice.send(bob.ID(), "warm up")
	alice.waitDelivered(warm)
	sent := map[string]time.Time{}
	var mu sync.Mutex
	lat := make([]time.Duration, 0, b.N)
	slots := make(chan struct{}, window)
	b.ResetTimer()
	start := time.Now()
	go func() {
		for range b.N {
			slots <- struct{}{}
			t0 := time.Now()
			m, err := alice.Send(bob.ID(), benchText)
			if err != nil {
				panic(err)
			}
			mu.Lock()
			sent[m.ID.String()] = t0
			mu.Unlock()
		}
	}()
	for len(lat) < b.N {
		e := alice.waitFor("delivered", func(e node.Event) bool {
			return e.Kind == node.EventStatus && e.Message.Status == store.StatusDelivered
		})
		mu.Lock()
		t0, ok := sent[e.Message.ID.String()]
		mu.Unlock()
		if !ok { // delivered before Send returned: rare; wait for the map
			for !ok {
				time.Sleep(time.Millisecond)
				mu.Lock()
				t0, ok = sent[e.Message.ID.String()]
				mu.Unlock()
			}
		}
		lat = append(lat, time.Since(t0))
		<-slots
	}
	elapsed := time.Since(start)
	b.StopTimer()
	reportLatency(b, lat, elapsed)
}

// benchTransportEnv chooses the transports a benchmark's nodes listen on
// (benchListens); GroupSend's sender and members listen on both unless
// it says otherwise (groupTransport).
const benchTransportEnv = "CERTCHAT_BENCH_TRANSPORT"

// benchListens are the loopback listen addresses for transport: "quic",
// "both" (TCP and QUIC, as a node listens by default), or TCP.
func benchListens(transport string) []string {
	const tcp, quic = "/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"
	switch transport {
	case "quic":
		return []string{quic}
	case "both":
		return []string{tcp, quic}
	}
	return []string{tcp}
}
