package node_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/transfer"
	"github.com/libp2p/go-libp2p/core/network"
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

// BenchmarkFileVsRawStream sends the file between two nodes in this
// process on loopback TCP, and the same number of bytes on a raw libp2p
// stream on the same connection, interleaved: throughput of each, their
// ratio, the resident set's growth during the transfer, and the CPU per
// MiB of both sides together.
func BenchmarkFileVsRawStream(b *testing.B) {
	size := benchFileSize(b)
	downloads := b.TempDir()
	alice := startNode(b, newHome(b, "alice"), "/ip4/127.0.0.1/tcp/0")
	bob := startNodeWith(b, newHome(b, "bob"), func(c *node.Config) {
		c.Downloads = downloads
		c.AutoAcceptFiles = 1 << 40
	}, "/ip4/127.0.0.1/tcp/0")
	trustEachOther(b, alice, bob)
	for _, p := range [][2]*testNode{{alice, bob}, {bob, alice}} {
		if err := p[0].Contacts().Trust(p[1].ID(), true); err != nil { // verified: no question
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	if _, err := alice.Connect(ctx, bob.tcpAddr()); err != nil {
		b.Fatal(err)
	}
	path := benchFile(b, b.TempDir(), size)
	got := make(chan int64, 1)
	bob.Host().SetStreamHandler(rawBenchProto, func(s network.Stream) {
		n, _ := io.Copy(io.Discard, s)
		s.Close()
		got <- n
	})
	// The same bytes written to a file on the receiver's disk, made
	// durable every 16 MiB as the transfer does: what the disk allows.
	bob.Host().SetStreamHandler(rawBenchProto+"/disk", func(s network.Stream) {
		f, err := os.Create(filepath.Join(downloads, "raw.bin"))
		if err != nil {
			b.Error(err)
			s.Reset()
			got <- 0
			return
		}
		var n int64
		for {
			k, err := io.CopyN(f, s, transfer.SyncEvery*transfer.ChunkSize)
			n += k
			f.Sync()
			if err != nil {
				break
			}
		}
		f.Close()
		os.Remove(f.Name())
		s.Close()
		got <- n
	})
	raw := func(proto string) time.Duration {
		s, err := alice.Host().NewStream(ctx, bob.ID(), protocol.ID(proto))
		if err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, transfer.ChunkSize)
		began := time.Now()
		for left := size; left > 0; left -= int64(len(buf)) {
			if _, err := s.Write(buf[:min(left, int64(len(buf)))]); err != nil {
				b.Fatal(err)
			}
		}
		s.CloseWrite()
		if n := <-got; n != size {
			b.Fatalf("raw: %d bytes arrived", n)
		}
		d := time.Since(began)
		s.Close()
		return d
	}
	var offerT time.Duration // the sender's SHA-256 of the file, before the offer goes
	file := func() (time.Duration, int64) {
		rss0 := procStatus(b, "self", "VmRSS")
		resetPeak("self")
		began := time.Now()
		fi, err := alice.Files().Send(bob.ID(), path)
		if err != nil {
			b.Fatal(err)
		}
		offerT += time.Since(began)
		done := bob.waitFile(node.EventFileDone, fi.ID, 30*time.Minute)
		d := time.Since(began)
		if err := os.Remove(done.Path); err != nil {
			b.Fatal(err)
		}
		return d, procStatus(b, "self", "VmHWM") - rss0
	}
	// CERTCHAT_BENCH_FILE_ONLY=1 runs the file alone: for a profile.
	fileOnly := os.Getenv("CERTCHAT_BENCH_FILE_ONLY") != ""
	var rawT, diskT, fileT, rawCPU, fileCPU time.Duration
	var growth int64
	for range b.N {
		c0 := cpuSelf()
		if !fileOnly {
			rawT += raw(rawBenchProto)
		}
		c1 := cpuSelf()
		if !fileOnly {
			diskT += raw(rawBenchProto + "/disk")
		}
		c2 := cpuSelf()
		ft, g := file()
		fileT += ft
		fileCPU += cpuSelf() - c2
		rawCPU += c1 - c0
		growth = max(growth, g)
	}
	mib := float64(size) / (1 << 20) * float64(b.N)
	b.ReportMetric(mib*(1<<20)/1e6/rawT.Seconds(), "raw-MB/s")
	b.ReportMetric(mib*(1<<20)/1e6/diskT.Seconds(), "raw-disk-MB/s")
	b.ReportMetric(mib*(1<<20)/1e6/fileT.Seconds(), "file-MB/s")
	b.ReportMetric(rawT.Seconds()/fileT.Seconds(), "file/raw")
	b.ReportMetric(float64(offerT.Milliseconds())/float64(b.N), "offer-ms")
	b.ReportMetric(rawT.Seconds()/(fileT-offerT).Seconds(), "chunks/raw")
	b.ReportMetric(diskT.Seconds()/fileT.Seconds(), "file/raw-disk")
	b.ReportMetric(float64(rawCPU.Microseconds())/mib, "raw-cpu-µs/MiB")
	b.ReportMetric(float64(fileCPU.Microseconds())/mib, "file-cpu-µs/MiB")
	b.ReportMetric(float64(growth)/1024, "rss-growth-MiB")
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
		aHome, aID := procHome(b, dir, "alice")
		bHome, bID := procHome(b, dir, "bob")
		path := benchFile(b, dir, size)
		bPort := freePort(b)
		flags := []string{"--downloads", filepath.Join(dir, "dl")}
		a := startDaemon(b, "alice", aHome, 0)
		bd := startDaemon(b, "bob", bHome, bPort, flags...)
		a.do("t1", map[string]any{"cmd": "trust", "peer": bID, "verified": true})
		bd.do("t2", map[string]any{"cmd": "trust", "peer": aID, "verified": true})
		a.do("c1", map[string]any{"cmd": "connect", "addr": bd.addr()})

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
		var atKill float64
		for atKill < float64(size)/2 {
			e := waitLong(b, bd, "file_progress", id)
			atKill, _ = e["bytes"].(float64)
		}
		bd.kill9()
		restart := time.Now()
		bd = startDaemon(b, "bob", bHome, bPort, flags...)
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

// waitLong waits for a daemon's event of kind about transfer id, for as
// long as a big file takes.
func waitLong(b *testing.B, d *daemon, kind, id string) event {
	b.Helper()
	timeout := time.After(30 * time.Minute)
	for {
		select {
		case e, ok := <-d.events:
			if !ok {
				b.Fatalf("%s exited waiting for %s", d.name, kind)
			}
			if e.str("event") == "file_failed" && e.str("id") == id {
				b.Fatalf("%s: the file failed: %v", d.name, e)
			}
			if e.str("event") == kind && e.str("id") == id {
				return e
			}
		case <-timeout:
			b.Fatalf("%s: no %s", d.name, kind)
		}
	}
}
