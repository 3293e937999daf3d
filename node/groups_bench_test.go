package node_test

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/group"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// BenchmarkGroupSend: one sender and N members on loopback (TCP), all
// online with live sessions. The members are nodes in this process; the
// sender is a node alone in a child process (this test binary again, with
// groupSenderEnv set), so that its CPU time (getrusage in the child) and
// its fsyncs (perf, if it can count the child's fdatasync calls) are the
// sender's only. Each iteration sends one group message and waits until
// the last member has stored it. docs/BENCHMARKS.md has the command and
// the figures.
//
//	go test -run '^$' -bench GroupSend -benchtime 50x -timeout 30m ./node/
func BenchmarkGroupSend(b *testing.B) {
	for _, n := range []int{10, 100, 250} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) { benchGroup(b, n) })
	}
}

const groupSenderEnv = "CERTCHAT_NODE_GROUPSENDER"

// groupTransport is what GroupSend's nodes listen on: both TCP and QUIC,
// as a node does by default, so that the benchmark's connections are
// those the dial ranker chooses (dialrank.go; the quic-conns metric
// counts the members on QUIC), unless benchTransportEnv says "tcp" or
// "quic" (BENCHMARKS.md, twenty-third round).
func groupTransport() string {
	if t := os.Getenv(benchTransportEnv); t != "" {
		return t
	}
	return "both"
}

// groupSender drives the child process that runs the sender.
type groupSender struct {
	b     *testing.B
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Reader
	id    peer.ID
	addrs []multiaddr.Multiaddr
}

func startGroupSender(b *testing.B) *groupSender {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), groupSenderEnv+"=1", benchTransportEnv+"="+groupTransport())
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	gs := &groupSender{b: b, cmd: cmd, in: in, out: bufio.NewReader(out)}
	b.Cleanup(func() { in.Close(); cmd.Wait() })
	f := gs.read("id")
	if gs.id, err = peer.Decode(f[0]); err != nil {
		b.Fatal(err)
	}
	for _, a := range f[1:] {
		ma, err := multiaddr.NewMultiaddr(a)
		if err != nil {
			b.Fatal(err)
		}
		gs.addrs = append(gs.addrs, ma)
	}
	return gs
}

// do sends a command line to the child and returns the fields of its
// answer, which starts with word.
func (gs *groupSender) do(word string, cmd ...string) []string {
	gs.b.Helper()
	if _, err := fmt.Fprintln(gs.in, strings.Join(cmd, " ")); err != nil {
		gs.b.Fatal(err)
	}
	return gs.read(word)
}

func (gs *groupSender) read(word string) []string {
	gs.b.Helper()
	line, err := gs.out.ReadString('\n')
	if err != nil {
		gs.b.Fatalf("group sender: %v", err)
	}
	f := strings.Fields(line)
	if len(f) == 0 || f[0] != word {
		gs.b.Fatalf("group sender said %q, want %s", line, word)
	}
	return f[1:]
}

// senderUsage is what the child reports of itself: its CPU time (user +
// system) so far, its live heap after a collection, the bytes it
// allocated so far (runtime.MemStats.TotalAlloc, read before that
// collection) and the runtime's estimate of its garbage collector's CPU
// time so far (runtime/metrics /cpu/classes/gc/total:cpu-seconds); the
// CPU and GC times both before the collections that measure the heap and
// after them (cpuAfter, gcAfter), so that an interval from one report to
// the next counts none of them: from a's after to b's before. maxRSS is
// its peak resident set so far (KiB; -1 where it cannot be read).
type senderUsage struct {
	cpu, gc           time.Duration
	cpuAfter, gcAfter time.Duration
	sys, sysAfter     time.Duration // the system (kernel) part of cpu, cpuAfter
	heap              uint64
	alloc             uint64
	maxRSS            int64
	forwarded         uint64 // copies handed to forwarders so far
	takenBack         uint64 // of those, written directly after all
}

// since is the CPU, GC and system CPU time from u0 to u (the
// collections of neither report counted).
func (u senderUsage) since(u0 senderUsage) (cpu, gc, sys time.Duration) {
	return u.cpu - u0.cpuAfter, u.gc - u0.gcAfter, u.sys - u0.sysAfter
}

func (gs *groupSender) usage() senderUsage {
	f := gs.do("usage", "usage")
	if len(f) != 11 {
		gs.b.Fatalf("group sender usage: %q", f)
	}
	var u senderUsage
	d := func(s string) time.Duration { n, _ := strconv.ParseInt(s, 10, 64); return time.Duration(n) }
	u.cpu, u.gc, u.cpuAfter, u.gcAfter = d(f[0]), d(f[3]), d(f[4]), d(f[5])
	u.heap, _ = strconv.ParseUint(f[1], 10, 64)
	u.alloc, _ = strconv.ParseUint(f[2], 10, 64)
	u.maxRSS, _ = strconv.ParseInt(f[6], 10, 64)
	u.sys, u.sysAfter = d(f[7]), d(f[8])
	u.forwarded, _ = strconv.ParseUint(f[9], 10, 64)
	u.takenBack, _ = strconv.ParseUint(f[10], 10, 64)
	return u
}

// countSyncs starts perf counting the child's fdatasync and fsync calls;
// the function it returns stops it and returns the count, or -1 if perf
// is not there or cannot count them.
func countSyncs(pid int) func() int {
	cmd := exec.Command("perf", "stat", "-x", ",", "-e", "syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync", "-p", strconv.Itoa(pid))
	var out strings.Builder
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		return func() int { return -1 }
	}
	time.Sleep(300 * time.Millisecond) // perf attaches
	return func() int {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		n, found := 0, 0
		for _, line := range strings.Split(out.String(), "\n") {
			f := strings.Split(line, ",")
			if len(f) > 2 && strings.HasPrefix(f[2], "syscalls:sys_enter_f") {
				if v, err := strconv.Atoi(f[0]); err == nil {
					n += v
					found++
				}
			}
		}
		if found != 2 {
			return -1
		}
		return n
	}
}

func benchGroup(b *testing.B, members int) {
	sender := startGroupSender(b)
	heapBefore, _ := heapLive()
	nodes := make([]*testNode, members)
	for i := range nodes {
		nodes[i] = startNode(b, newHome(b, fmt.Sprintf("m%d", i)), benchListens(groupTransport())...)
		if err := nodes[i].Contacts().Trust(sender.id, false); err != nil {
			b.Fatal(err)
		}
		nodes[i].Host().Peerstore().AddAddrs(sender.id, sender.addrs, time.Hour)
		sender.do("ok", append([]string{"member", nodes[i].ID().String()}, nodes[i].Addrs()...)...)
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
	senderHeap0 := sender.usage().heap
	sender.do("group", "create")
	var order []peer.ID // the group's members, in its order
	for range members {
		select {
		case gi := <-groups:
			order = gi.Members
		case <-time.After(5 * time.Minute):
			b.Fatal("the group did not reach every member")
		}
	}
	forwarders := forwardLinks(b, nodes, order, sender.id)
	waitAll := func(id string) time.Time {
		var last time.Time
		for got := 0; got < members; {
			select {
			case a := <-arrivals:
				if a.id.String() == id {
					got++
					last = a.at
				}
			case <-time.After(2 * time.Minute):
				b.Fatalf("message reached %d of %d members", got, members)
			}
		}
		return last
	}
	for range 3 { // warm up: sessions, ratchet steps, pages
		waitAll(sender.do("sent", "send")[0])
	}
	// The forwarders open their sessions with the members they are
	// given, refusing their copies meanwhile: warm up until three
	// messages in a row go through them with nothing taken back.
	for i, clean := 0, 0; forwarders > 0 && clean < 3; i++ {
		if i == 100 {
			b.Fatal("after 100 messages, the forwarders still refuse copies")
		}
		u0 := sender.usage()
		waitAll(sender.do("sent", "send")[0])
		time.Sleep(100 * time.Millisecond) // a refusal's count comes after the copy it took back
		if u1 := sender.usage(); u1.forwarded > u0.forwarded && u1.takenBack == u0.takenBack {
			clean++
		} else {
			clean = 0
		}
	}
	sender.do("quiet", "quiet")
	quicConns := 0 // members whose connection with the sender is QUIC
	for _, tn := range nodes {
		for _, c := range tn.Host().Network().ConnsToPeer(sender.id) {
			if c.ConnState().Transport == "quic-v1" {
				quicConns++
			}
		}
	}
	heapAfter, _ := heapLive()
	u0 := sender.usage()
	stopSyncs := countSyncs(sender.cmd.Process.Pid)
	profile := os.Getenv(groupSenderEnv+"_CPUPROFILE") != ""
	if profile {
		sender.do("ok", "profile")
	}

	receiptWrites := func() (n int64) {
		for _, tn := range nodes {
			n += tn.ReceiptWritesForTest()
		}
		return n
	}
	writes0 := receiptWrites()

	lat := make([]time.Duration, 0, b.N)
	var ru0, ru1 syscall.Rusage
	alloc0, gc0 := membersAllocGC() // before ru0: its stop counts in no CPU figure
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	b.ResetTimer()
	start := time.Now()
	var call time.Duration
	for range b.N {
		t0 := time.Now()
		f := sender.do("sent", "send")
		ns, _ := strconv.ParseInt(f[1], 10, 64)
		call += time.Duration(ns)
		lat = append(lat, waitAll(f[0]).Sub(t0))
	}
	elapsed := time.Since(start)
	sender.do("quiet", "quiet") // every receipt recorded: its cost counts
	b.StopTimer()
	writes1 := receiptWrites()
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	alloc1, gc1 := membersAllocGC()
	if profile {
		sender.do("ok", "profile")
	}
	syncs := stopSyncs()
	u1 := sender.usage()
	reportGroupRun(b, lat, u0, u1, ru0, ru1)
	b.ReportMetric(float64(quicConns), "quic-conns")
	b.ReportMetric(float64(forwarders), "forwarders")
	b.ReportMetric(float64(u1.forwarded-u0.forwarded)/float64(b.N), "forwarded/msg")
	b.ReportMetric(float64(u1.takenBack-u0.takenBack)/float64(b.N), "taken-back/msg")
	perMsg := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
	b.ReportMetric(perMsg(call), "send-call-ms")
	b.ReportMetric(float64(writes1-writes0)/float64(b.N), "member-receipt-writes/msg")
	b.ReportMetric(float64(alloc1-alloc0)/1024/float64(b.N), "members-alloc-KiB/msg")
	b.ReportMetric(perMsg(time.Duration(gc1-gc0)), "members-gc-ms/msg")
	if syncs >= 0 {
		b.ReportMetric(float64(syncs)/float64(b.N), "sender-fsyncs/msg")
	}
	b.ReportMetric(float64(int64(u0.heap)-int64(senderHeap0))/float64(members)/1024, "sender-heap-KiB/member")
	if u1.maxRSS >= 0 {
		b.ReportMetric(float64(u1.maxRSS)/1024, "sender-maxrss-MiB")
	}
	b.ReportMetric(float64(int64(heapAfter)-int64(heapBefore))/float64(members)/1024, "heap-KiB/member-node")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
}

// membersAllocGC reads what this process (the members) allocated so far
// and its collector's CPU time estimate, in ns (as cpuAndGC).
func membersAllocGC() (alloc uint64, gcNS int64) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	_, _, gcNS, _ = cpuAndGC()
	return ms.TotalAlloc, gcNS
}

// reportGroupRun reports what GroupSend and GroupFloor measure alike:
// the latency to the last member (lat, one per message), the sender's CPU,
// GC and allocations per message (from its usage reports u0 and u1), and
// the members' CPU per message (this process's, from ru0 to ru1).
func reportGroupRun(b *testing.B, lat []time.Duration, u0, u1 senderUsage, ru0, ru1 syscall.Rusage) {
	perMsg := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
	b.ReportMetric(float64(percentile(lat, 0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
	cpu, gc, sys := u1.since(u0)
	b.ReportMetric(perMsg(cpu), "sender-cpu-ms/msg")
	b.ReportMetric(perMsg(sys), "sender-sys-ms/msg")
	b.ReportMetric(perMsg(gc), "sender-gc-ms/msg")
	b.ReportMetric(float64(u1.alloc-u0.alloc)/1024/float64(b.N), "sender-alloc-KiB/msg")
	b.ReportMetric(perMsg(time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano())), "members-cpu-ms/msg")
}

// benchForwardEnv set to 0 leaves out forwardLinks: no member has
// accepted another, so every forwarder refuses what it is given (it
// opens no session with a peer it has not accepted) and, after two
// refusals, a member's copies go directly.
const benchForwardEnv = "CERTCHAT_BENCH_FORWARD"

// forwardLinks has the members who forward for the sender (the first
// ⌈√n⌉ of the group's order, as the sender picks them, forwardPlan.plan)
// and every other member accept each other and know each other's
// addresses, as in a team whose members are each other's contacts (or
// vouched for by the group's CA); it returns how many forward. No session
// is opened here: a forwarder opens one with a member the first time it
// is given that member's copy (PROTOCOL §14.7), during the warm-up.
// Groups of fewer than 16 (forwardMin) are left alone: the sender
// forwards nothing there.
func forwardLinks(b *testing.B, nodes []*testNode, order []peer.ID, sender peer.ID) int {
	if os.Getenv(benchForwardEnv) == "0" || len(nodes) < 16 {
		return 0
	}
	byID := map[peer.ID]*testNode{}
	for _, tn := range nodes {
		byID[tn.ID()] = tn
	}
	var fwd []*testNode
	for _, p := range order {
		if tn, ok := byID[p]; ok && p != sender && len(fwd)*len(fwd) < len(nodes) {
			fwd = append(fwd, tn)
		}
	}
	for _, f := range fwd {
		for _, tn := range nodes {
			if tn == f {
				continue
			}
			for _, x := range [][2]*testNode{{f, tn}, {tn, f}} {
				x[0].Host().Peerstore().AddAddrs(x[1].ID(), x[1].Host().Addrs(), time.Hour)
				if err := x[0].Contacts().Trust(x[1].ID(), false); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	return len(fwd)
}

// runGroupSender is the child process of BenchmarkGroupSend: one node,
// driven by lines on stdin, one answer line each on stdout:
//
//	member ID ADDR  trust a member and learn its address    → ok
//	create          create the group of the members         → group ID
//	send            send one message to it                  → sent MSGID CALL-NS
//	quiet           wait until every member acknowledged     → quiet
//	                every message sent so far
//	usage           CPU time (ns), live heap (bytes), bytes  → usage CPU HEAP
//	                allocated so far and the GC's CPU time      ALLOC GC
//	                so far (ns, the runtime's estimate);        CPU2 GC2
//	                CPU and GC again after the collections      MAXRSS
//	                that measure the heap; the peak resident    SYS SYS2
//	                set so far (KiB, VmHWM; -1 without /proc);
//	                the system part of CPU and of CPU2 (ns);   FWD TAKEN
//	                the copies handed to forwarders so far,
//	                and those taken back from them
//	floor, ffwd,    the floor (groups_floor_bench_test.go)
//	fsend, fquiet
//	profile         start, then stop, a CPU profile written  → ok
//	                to $CERTCHAT_NODE_GROUPSENDER_CPUPROFILE
//	                (and, with ..._MEMPROFILE set, the
//	                allocations so far at each: FILE.base
//	                and FILE, for pprof -diff_base; every
//	                4 KiB allocated is sampled then, not 512)
//
// The sender runs as the daemon does: with the collector's target of
// node.SetGCPercent (unless GOGC is set). So does GroupFloor's sender,
// the same child.
func runGroupSender() int {
	node.SetGCPercent()
	if os.Getenv(groupSenderEnv+"_MEMPROFILE") != "" {
		runtime.MemProfileRate = 4096
	}
	if err := groupSenderLoop(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "group sender:", err)
		return 1
	}
	return 0
}

func groupSenderLoop(stdin io.Reader, stdout io.Writer) error {
	dir, err := os.MkdirTemp("", "ccgsend")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	nd, err := farmNode(filepath.Join(dir, "sender"), 0)
	if err != nil {
		return err
	}
	defer nd.Close()
	var addrs []string
	for _, a := range nd.Host().Addrs() {
		addrs = append(addrs, a.String())
	}
	fmt.Fprintln(stdout, "id", nd.ID(), strings.Join(addrs, " "))
	var (
		members []peer.ID
		gid     group.ID
		sent    []e2e.MessageID
		prof    *os.File
		floor   *floorSender
	)
	in := bufio.NewScanner(stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "member":
			if len(f) < 3 {
				return fmt.Errorf("member: %q", in.Text())
			}
			p, err := identity.ParsePeerID(f[1])
			if err != nil {
				return err
			}
			for _, a := range f[2:] { // each of the member's addresses
				ma, err := multiaddr.NewMultiaddr(a)
				if err != nil {
					return err
				}
				if ai, err := peer.AddrInfoFromP2pAddr(ma); err == nil {
					ma = ai.Addrs[0]
				}
				nd.Host().Peerstore().AddAddrs(p, []multiaddr.Multiaddr{ma}, time.Hour)
			}
			if err := nd.Contacts().Trust(p, false); err != nil {
				return err
			}
			members = append(members, p)
			fmt.Fprintln(stdout, "ok")
		case "create":
			gi, err := nd.Groups().Create("bench", members)
			if err != nil {
				return err
			}
			gid = gi.ID
			fmt.Fprintln(stdout, "group", hex.EncodeToString(gid[:]))
		case "send":
			t0 := time.Now()
			m, err := nd.Groups().Send(gid, benchText)
			if err != nil {
				return err
			}
			call := time.Since(t0)
			sent = append(sent, m.ID)
			fmt.Fprintln(stdout, "sent", m.ID, call.Nanoseconds())
		case "quiet":
			deadline := time.Now().Add(2 * time.Minute)
			for _, id := range sent {
				for {
					m, err := nd.Groups().Delivery(id)
					if err != nil {
						return err
					}
					if m.Delivered() == len(m.Members) {
						break
					}
					if time.Now().After(deadline) {
						return fmt.Errorf("message %s delivered to %d of %d", id, m.Delivered(), len(m.Members))
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
			sent = sent[:0]
			fmt.Fprintln(stdout, "quiet")
		case "profile":
			if err := writeAllocs(prof == nil); err != nil {
				return err
			}
			if prof == nil {
				if prof, err = os.Create(os.Getenv(groupSenderEnv + "_CPUPROFILE")); err != nil {
					return err
				}
				if err := pprof.StartCPUProfile(prof); err != nil {
					return err
				}
			} else {
				pprof.StopCPUProfile()
				if err := prof.Close(); err != nil {
					return err
				}
			}
			fmt.Fprintln(stdout, "ok")
		case "usage":
			cpu, sys, gcNS, err := cpuAndGC() // before the collections heapLive makes
			if err != nil {
				return err
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			heap, _ := heapLive()
			cpuAfter, sysAfter, gcAfter, err := cpuAndGC()
			if err != nil {
				return err
			}
			fwd, taken := nd.ForwardedForTest()
			fmt.Fprintln(stdout, "usage", cpu, heap, ms.TotalAlloc, gcNS, cpuAfter, gcAfter, peakRSS(), sys, sysAfter, fwd, taken)
		default:
			answer, err := floorCommand(nd, &floor, f)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, answer)
		}
	}
	return in.Err()
}

// cpuAndGC returns the process's CPU time so far (user + system,
// getrusage), its system part (the kernel's, for the writes, reads and
// fsyncs) and the runtime's estimate of its collector's share, in ns.
func cpuAndGC() (cpu, sys, gc int64, err error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0, 0, err
	}
	s := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(s)
	if s[0].Value.Kind() == metrics.KindFloat64 {
		gc = int64(s[0].Value.Float64() * 1e9)
	}
	return ru.Utime.Nano() + ru.Stime.Nano(), ru.Stime.Nano(), gc, nil
}

// peakRSS is the process's peak resident set so far in KiB, VmHWM of
// /proc/self/status, or -1 if it cannot be read. Not getrusage's
// ru_maxrss: os/exec starts a child with vfork and exec, and exec counts
// the peak of the memory the child shared until then, the parent's, into
// the child's ru_maxrss (at 100 members, the 100 nodes of the
// benchmark's first run: 118 MiB against the child's own 64).
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return -1
			}
			return kb
		}
	}
	return -1
}

// writeAllocs writes the allocation profile so far to
// $CERTCHAT_NODE_GROUPSENDER_MEMPROFILE (with ".base" at the start of the
// timed loop), if it is set.
func writeAllocs(start bool) error {
	name := os.Getenv(groupSenderEnv + "_MEMPROFILE")
	if name == "" {
		return nil
	}
	if start {
		name += ".base"
	}
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
