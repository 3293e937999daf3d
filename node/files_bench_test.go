package node_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/transfer"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// File transfer benchmarks (docs/BENCHMARKS.md, "File transfer"). The
// size is CERTCHAT_BENCH_FILE_MIB (default 1024: 1 GiB).

func benchFileSize(b *testing.B) int64 {
	mib := int64(1024)
	if s := os.Getenv("CERTCHAT_BENCH_FILE_MIB"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		mib = v
	}
	return mib << 20
}

// benchFile writes size random bytes (1 MiB of randomness repeated: the
// chunks are sealed, so repetition changes nothing on the wire).
func benchFile(b *testing.B, dir string, size int64) string {
	b.Helper()
	path := filepath.Join(dir, "bench.bin")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	block := make([]byte, 1<<20)
	rand.Read(block)
	for left := size; left > 0; left -= int64(len(block)) {
		if _, err := f.Write(block[:min(left, int64(len(block)))]); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return path
}

// cpuSelf is the process's user+system CPU time.
func cpuSelf() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procStatus reads a field of /proc/PID/status in KiB.
func procStatus(b *testing.B, pid, field string) int64 {
	data, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field+":" {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	b.Fatalf("no %s", field)
	return 0
}

// resetPeak makes VmHWM start again from the current resident set.
func resetPeak(pid string) { os.WriteFile("/proc/"+pid+"/clear_refs", []byte("5"), 0) }

// cpuOf is a process's user+system CPU time from /proc/PID/stat.
func cpuOf(b *testing.B, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

const rawBenchProto = "/certchat-bench/raw/1.0.0"

// rawBenchWrite is the raw stream's write size: as near as can be to
// the file stream's (the sender writes four chunk frames at a time, each
// a 64 KiB chunk and 29 bytes), so that yamux cuts both into as many
// frames. rawBenchBuf is what the raw receivers read at a time, as the
// file's receiver reads a chunk frame.
const (
	rawBenchWrite = 4 * transfer.ChunkSize
	rawBenchBuf   = transfer.ChunkSize
)

// The receiver of BenchmarkFileVsRawStream runs in a child process (the
// test binary again, with fileBenchPeerEnv set to its folder), so that
// each side's CPU and memory are measured apart, as between two
// machines. It says on stdout "ready ID ADDR", then "raw N" after each
// raw stream and "done ID PATH" or "failed ID REASON" for each file, and
// runs until its stdin closes. fileBenchPeerEnv+"_PROFILE" names a file
// for its CPU profile.
const fileBenchPeerEnv = "CERTCHAT_BENCH_FILE_PEER"

// runFileBenchPeer is that child process.
func runFileBenchPeer(dir string) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "file bench peer:", err)
		return 1
	}
	if path := os.Getenv(fileBenchPeerEnv + "_PROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return fail(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return fail(err)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	h := identity.Home{Dir: filepath.Join(dir, "home")}
	if _, err := h.Init("bob", nil, identity.DefaultKDF, time.Now()); err != nil {
		return fail(err)
	}
	id, err := h.Load(nil)
	if err != nil {
		return fail(err)
	}
	ts, err := h.TrustStore()
	if err != nil {
		return fail(err)
	}
	downloads := filepath.Join(dir, "downloads")
	n, err := node.New(node.Config{Home: h, Identity: id, Trust: ts, Listen: []string{"/ip4/127.0.0.1/tcp/0"},
		Downloads: downloads, AutoAcceptFiles: 1 << 40,
		RetryMin: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond})
	if err != nil {
		return fail(err)
	}
	sub := n.Subscribe()
	if err := n.Start(); err != nil {
		return fail(err)
	}
	defer n.Close()
	alice, err := identity.ParsePeerID(os.Getenv(fileBenchPeerEnv + "_TRUST"))
	if err != nil {
		return fail(err)
	}
	for _, verified := range []bool{false, true} { // verified: no question
		if err := n.Contacts().Trust(alice, verified); err != nil {
			return fail(err)
		}
	}
	var outMu sync.Mutex
	say := func(format string, args ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Printf(format+"\n", args...)
	}
	rawBenchHandlers(n.Host(), downloads, func(n int64, err error) {
		if err != nil {
			fmt.Fprintln(os.Stderr, "raw stream:", err)
		}
		say("raw %d", n)
	})
	addr := ""
	for _, a := range n.Addrs() {
		if strings.HasPrefix(a, "/ip4/127.0.0.1/tcp/") {
			addr = a
		}
	}
	say("ready %s %s", n.ID(), addr)
	go func() {
		for e := range sub.C {
			switch {
			case e.File == nil:
			case e.Kind == node.EventFileDone:
				say("done %s %s", e.File.ID, e.File.Path)
			case e.Kind == node.EventFileFailed:
				say("failed %s %s", e.File.ID, strings.ReplaceAll(e.File.Error, "\n", " "))
			}
		}
	}()
	bufio.NewReader(os.Stdin).ReadString('\n')
	return 0
}

// rawBenchHandlers serves the raw streams: one that discards what it
// reads, one that writes it to a file in downloads made durable every
// 16 MiB and at the end (as the file's receiver does: transfer.SyncEvery
// chunks), then removed. Both read in rawBenchBuf pieces; done is called
// with the bytes that arrived.
func rawBenchHandlers(h host.Host, downloads string, done func(int64, error)) {
	h.SetStreamHandler(rawBenchProto, func(s network.Stream) {
		defer s.Close()
		buf := make([]byte, rawBenchBuf)
		var n int64
		for {
			k, err := s.Read(buf)
			n += int64(k)
			if err != nil {
				if err == io.EOF {
					err = nil
				}
				done(n, err)
				return
			}
		}
	})
	h.SetStreamHandler(rawBenchProto+"/disk", func(s network.Stream) {
		defer s.Close()
		done(rawToDisk(s, filepath.Join(downloads, "raw.bin")))
	})
}

// rawToDisk writes what s carries into path, made durable every
// transfer.SyncEvery chunks and at the end, then removes it.
func rawToDisk(s io.Reader, path string) (int64, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return 0, err
	}
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer os.Remove(path)
	defer f.Close()
	const every = transfer.SyncEvery * transfer.ChunkSize
	buf := make([]byte, rawBenchBuf)
	var n, synced int64
	for {
		k, rerr := s.Read(buf)
		if k > 0 {
			if _, err := f.Write(buf[:k]); err != nil {
				return n, err
			}
			n += int64(k)
		}
		if n-synced >= every || rerr != nil && n > synced {
			if err := f.Sync(); err != nil {
				return n, err
			}
			synced = n
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// filePeer is the receiver's process, seen from the benchmark.
type filePeer struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	id    peer.ID
	addr  string
	raws  chan int64
	files chan [3]string // done or failed, ID, path or reason
}

func startFilePeer(b *testing.B, trust peer.ID) *filePeer {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fileBenchPeerEnv+"="+b.TempDir(), fileBenchPeerEnv+"_TRUST="+trust.String())
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	fp := &filePeer{cmd: cmd, stdin: stdin, raws: make(chan int64, 1), files: make(chan [3]string, 1)}
	b.Cleanup(func() { stdin.Close(); cmd.Wait() })
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			f := strings.SplitN(sc.Text(), " ", 3)
			switch {
			case len(f) == 3 && f[0] == "ready":
				id, err := identity.ParsePeerID(f[1])
				fp.id, fp.addr = id, f[2]
				ready <- err
			case len(f) == 2 && f[0] == "raw":
				n, _ := strconv.ParseInt(f[1], 10, 64)
				fp.raws <- n
			case len(f) == 3 && (f[0] == "done" || f[0] == "failed"):
				fp.files <- [3]string{f[0], f[1], f[2]}
			}
		}
		ready <- errors.New("the receiver's process ended")
	}()
	select {
	case err := <-ready:
		if err != nil {
			b.Fatal(err)
		}
	case <-time.After(time.Minute):
		b.Fatal("the receiver's process is not ready")
	}
	return fp
}

// BenchmarkFileVsRawStream sends the file between two nodes on loopback
// TCP (the receiver in a child process), and the same file's bytes on a
// raw libp2p stream on the same connection, interleaved: the raw stream
// read from the same file in 64 KiB writes, its receiver discarding them
// (raw) or writing them to a file in the same downloads folder, made
// durable every 16 MiB and at the end as the file's receiver does
// (raw-disk: the like-for-like baseline of a file). Throughput of each,
// the file's ratios to both, the CPU per MiB of each side of each, and
// the resident set's growth of each side during the file.
func BenchmarkFileVsRawStream(b *testing.B) {
	size := benchFileSize(b)
	alice := startNode(b, newHome(b, "alice"), "/ip4/127.0.0.1/tcp/0")
	bob := startFilePeer(b, alice.ID())
	for _, verified := range []bool{false, true} { // verified: no question
		if err := alice.Contacts().Trust(bob.id, verified); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	if _, err := alice.Connect(ctx, bob.addr); err != nil {
		b.Fatal(err)
	}
	path := benchFile(b, b.TempDir(), size)
	bobPid := bob.cmd.Process.Pid
	bobPidS := strconv.Itoa(bobPid)
	// run is the wall time of one way of sending and each side's CPU.
	type run struct{ d, send, recv time.Duration }
	// sides runs f and adds its wall time and each side's CPU to r.
	sides := func(r *run, f func()) {
		s0, r0 := cpuSelf(), cpuOf(b, bobPid)
		began := time.Now()
		f()
		r.d += time.Since(began)
		r.send += cpuSelf() - s0
		r.recv += cpuOf(b, bobPid) - r0
	}
	raw := func(proto string) {
		s, err := alice.Host().NewStream(ctx, bob.id, protocol.ID(proto))
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		src, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		defer src.Close()
		buf := make([]byte, rawBenchWrite)
		for {
			k, err := io.ReadFull(src, buf)
			if k > 0 {
				if _, err := s.Write(buf[:k]); err != nil {
					b.Fatal(err)
				}
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		s.CloseWrite()
		if n := <-bob.raws; n != size {
			b.Fatalf("raw: %d bytes arrived", n)
		}
	}
	var aGrowth, bGrowth int64
	file := func() {
		arss, brss := procStatus(b, "self", "VmRSS"), procStatus(b, bobPidS, "VmRSS")
		resetPeak("self")
		resetPeak(bobPidS)
		fi, err := alice.Files().Send(bob.id, path)
		if err != nil {
			b.Fatal(err)
		}
		select {
		case r := <-bob.files:
			if r[0] != "done" || r[1] != fi.ID.String() {
				b.Fatalf("the file: %v", r)
			}
			if err := os.Remove(r[2]); err != nil {
				b.Fatal(err)
			}
		case <-time.After(30 * time.Minute):
			b.Fatal("the file did not arrive")
		}
		aGrowth = max(aGrowth, procStatus(b, "self", "VmHWM")-arss)
		bGrowth = max(bGrowth, procStatus(b, bobPidS, "VmHWM")-brss)
	}
	// CERTCHAT_BENCH_FILE_ONLY=1 runs the file alone: for a profile.
	fileOnly := os.Getenv("CERTCHAT_BENCH_FILE_ONLY") != ""
	var rawR, diskR, fileR run
	for range b.N {
		if !fileOnly {
			sides(&rawR, func() { raw(rawBenchProto) })
			sides(&diskR, func() { raw(rawBenchProto + "/disk") })
		}
		sides(&fileR, file)
	}
	mib := float64(size) / (1 << 20) * float64(b.N)
	for _, r := range []struct {
		name string
		r    run
	}{{"raw", rawR}, {"raw-disk", diskR}, {"file", fileR}} {
		if r.r.d == 0 {
			continue
		}
		b.ReportMetric(mib*(1<<20)/1e6/r.r.d.Seconds(), r.name+"-MB/s")
		b.ReportMetric(float64(r.r.send.Microseconds())/mib, r.name+"-send-cpu-µs/MiB")
		b.ReportMetric(float64(r.r.recv.Microseconds())/mib, r.name+"-recv-cpu-µs/MiB")
	}
	if !fileOnly {
		b.ReportMetric(rawR.d.Seconds()/fileR.d.Seconds(), "file/raw")
		b.ReportMetric(diskR.d.Seconds()/fileR.d.Seconds(), "file/raw-disk")
	}
	b.ReportMetric(float64(aGrowth)/1024, "send-rss-growth-MiB")
	b.ReportMetric(float64(bGrowth)/1024, "recv-rss-growth-MiB")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkFileDaemons sends the file between two `chat daemon`
// processes: throughput, the CPU per MiB and the peak resident growth of
// each side; then again with the receiver killed (SIGKILL) half-way and
// restarted: how much it kept, and the time from its restart to the end
// against the time the rest takes at full speed.
func BenchmarkFileDaemons(b *testing.B) {
	size := benchFileSize(b)
	for range b.N {
		dir := shortDir(b)
		path := benchFile(b, dir, size)
		flags := []string{"--downloads", filepath.Join(dir, "dl")}
		p := startPair(b, dir, pairOpts{bFlags: flags, bFixedPort: true, verified: true})
		a, bd := p.a, p.b

		apid, bpid := strconv.Itoa(a.cmd.Process.Pid), strconv.Itoa(bd.cmd.Process.Pid)
		arss, brss := procStatus(b, apid, "VmRSS"), procStatus(b, bpid, "VmRSS")
		resetPeak(apid)
		resetPeak(bpid)
		acpu, bcpu := cpuOf(b, a.cmd.Process.Pid), cpuOf(b, bd.cmd.Process.Pid)
		began := time.Now()
		id := a.do("f1", map[string]any{"cmd": "send_file", "to": "bob", "path": path}).str("id")
		bd.waitEvent("offer", func(e event) bool { return e.str("event") == "file_offer" && e.str("id") == id })
		bd.do("a1", map[string]any{"cmd": "file_accept", "id": id})
		waitLong(b, bd, "file_done", id)
		d := time.Since(began)
		mib := float64(size) / (1 << 20)
		b.ReportMetric(float64(size)/1e6/d.Seconds(), "MB/s")
		b.ReportMetric(float64((cpuOf(b, a.cmd.Process.Pid)-acpu).Microseconds())/mib, "sender-cpu-µs/MiB")
		b.ReportMetric(float64((cpuOf(b, bd.cmd.Process.Pid)-bcpu).Microseconds())/mib, "receiver-cpu-µs/MiB")
		b.ReportMetric(float64(procStatus(b, apid, "VmHWM")-arss)/1024, "sender-rss-growth-MiB")
		b.ReportMetric(float64(procStatus(b, bpid, "VmHWM")-brss)/1024, "receiver-rss-growth-MiB")

		// Again, killed half-way.
		os.RemoveAll(filepath.Join(dir, "dl"))
		id = a.do("f2", map[string]any{"cmd": "send_file", "to": "bob", "path": path}).str("id")
		bd.waitEvent("offer", func(e event) bool { return e.str("event") == "file_offer" && e.str("id") == id })
		bd.do("a2", map[string]any{"cmd": "file_accept", "id": id})
		// Progress events come at most every 250 ms: a small file
		// (CERTCHAT_BENCH_FILE_MIB) can arrive before one says half-way.
		var atKill float64
		for atKill < float64(size)/2 {
			e := waitLong(b, bd, "file_progress", id, "file_done")
			if e.str("event") == "file_done" {
				b.Fatalf("the file (%d MiB) arrived before a progress event past half-way: too small to kill the receiver half-way", size>>20)
			}
			atKill, _ = e["bytes"].(float64)
		}
		bd.kill9()
		restart := time.Now()
		bd = startDaemon(b, "bob", p.bHome, p.bPort, flags...)
		first := waitLong(b, bd, "file_progress", id)
		kept, _ := first["bytes"].(float64)
		waitLong(b, bd, "file_done", id)
		rest := time.Since(restart)
		b.ReportMetric(atKill/(1<<20), "acked-at-kill-MiB")
		b.ReportMetric(kept/(1<<20), "kept-after-restart-MiB")
		b.ReportMetric(rest.Seconds(), "restart-to-done-s")
		b.ReportMetric((float64(size)-kept)/(float64(size)/d.Seconds()), "rest-at-full-speed-s")
		b.ReportMetric(0, "ns/op")
		a.quit()
		bd.quit()
	}
}

// waitLong waits for a daemon's event of kind (or of a kind in also)
// about transfer id, for as long as a big file takes, but not past
// benchDeadline: a transfer that stalls fails there, naming what did not
// come, with the daemon's log. The test binary's -test.timeout does not
// cover benchmarks (testing stops its alarm before them): once, in CI,
// nothing came after the receiver's restart, and go test killed the
// binary with SIGQUIT a minute after its 10-minute -timeout, which said
// nothing of what was awaited.
func waitLong(b *testing.B, d *daemon, kind, id string, also ...string) event {
	b.Helper()
	began := time.Now()
	timeout := time.After(time.Until(benchDeadline()))
	var last event // the last event about the file, if any
	for {
		select {
		case e, ok := <-d.events:
			if !ok {
				b.Fatalf("%s exited waiting for %s; log:\n%s", d.name, kind, d.log())
			}
			if e.str("event") == "file_failed" && e.str("id") == id {
				b.Fatalf("%s: the file failed: %v", d.name, e)
			}
			if (e.str("event") == kind || slices.Contains(also, e.str("event"))) && e.str("id") == id {
				return e
			}
			if e.str("id") == id {
				last = e
			}
		case <-timeout:
			b.Fatalf("%s: no %s of file %s after %v (the test binary's deadline is near); the last event about it: %v; log:\n%s",
				d.name, kind, id, time.Since(began).Round(time.Second), last, d.log())
		}
	}
}

// testStart is about when the test binary started: its -test.timeout
// runs from a moment just after.
var testStart = time.Now()

// benchDeadline is when waitLong gives up: 30 s before -test.timeout
// ends (or at most 30 minutes from now without one), so that a stall
// fails the benchmark before go test kills the binary.
func benchDeadline() time.Time {
	far := time.Now().Add(30 * time.Minute)
	f := flag.Lookup("test.timeout")
	if f == nil {
		return far
	}
	t, ok := f.Value.(flag.Getter).Get().(time.Duration)
	if !ok || t <= 0 {
		return far
	}
	margin := min(30*time.Second, t/10)
	if d := testStart.Add(t - margin); d.Before(far) {
		return d
	}
	return far
}
