//go:build linux

// CPU and memory figures for TestRelayScale: /proc samples of a process
// and of the machine, and the monitor of the relay's resident memory.

package relay_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// proc reads a process's figures from /proc.
type proc struct{ pid int }

func newProc(pid int) *proc { return &proc{pid: pid} }

// procSample is a process's memory and CPU at one moment.
type procSample struct {
	rss, hwm     int64 // bytes
	threads, fds int
	cpu          time.Duration // user + system
}

func (p *proc) sample() procSample {
	var s procSample
	if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid)); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			n, _ := strconv.ParseInt(f[1], 10, 64)
			switch f[0] {
			case "VmRSS:":
				s.rss = n << 10
			case "VmHWM:":
				s.hwm = n << 10
			case "Threads:":
				s.threads = int(n)
			}
		}
	}
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.pid)); err == nil {
		s.fds = len(ents)
	}
	s.cpu = p.cpu()
	return s
}

// cpu is the process's user + system time (/proc/PID/stat, clock ticks
// of 10 ms: CLK_TCK is 100 on Linux).
func (p *proc) cpu() time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64) // field 14
	st, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// runWait is how long the process's threads have waited for a CPU while
// runnable (/proc/PID/task/*/schedstat, second field): the time lost to
// other processes on a shared machine.
func (p *proc) runWait() time.Duration {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", p.pid))
	var sum int64
	for _, f := range tasks {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if fs := strings.Fields(string(data)); len(fs) >= 2 {
			n, _ := strconv.ParseInt(fs[1], 10, 64)
			sum += n
		}
	}
	return time.Duration(sum)
}

// machineCPU is the CPU time all processes used and the time there was
// (/proc/stat, all CPUs).
func machineCPU() (busy, total time.Duration) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	for i := 1; i < len(f) && i <= 8; i++ {
		n, _ := strconv.ParseInt(f[i], 10, 64)
		d := time.Duration(n) * 10 * time.Millisecond
		total += d
		if i != 4 && i != 5 { // idle, iowait
			busy += d
		}
	}
	return busy, total
}

// usage is what the relay, this process and the whole machine did over an
// interval.
type usage struct {
	relayCPU, clientCPU, relayWait, clientWait, machineBusy, machineTotal time.Duration
}

func measureUsage(rp *relayProc, self *proc) usage {
	b, t := machineCPU()
	return usage{rp.cpu(), self.cpu(), rp.runWait(), self.runWait(), b, t}
}

func (u usage) since(u0 usage) usage {
	return usage{u.relayCPU - u0.relayCPU, u.clientCPU - u0.clientCPU, u.relayWait - u0.relayWait,
		u.clientWait - u0.clientWait, u.machineBusy - u0.machineBusy, u.machineTotal - u0.machineTotal}
}

// describe reports the usage over wall as fractions of one core.
func (u usage) describe(wall time.Duration) string {
	core := func(d time.Duration) float64 { return 100 * d.Seconds() / wall.Seconds() }
	others := u.machineBusy - u.relayCPU - u.clientCPU
	return fmt.Sprintf("relay %.0f%%, clients %.0f%%, other processes %.0f%% of one core (machine %.0f%% busy); "+
		"waiting for a CPU: relay %.0f%%, clients %.0f%%",
		core(u.relayCPU), core(u.clientCPU), core(max(0, others)),
		100*u.machineBusy.Seconds()/max(1e-9, u.machineTotal.Seconds()), core(u.relayWait), core(u.clientWait))
}

// monitor samples the relay's resident memory while the chats run.
type monitor struct {
	p    *relayProc
	mu   sync.Mutex
	max  int64 // since reset
	all  int64 // since start
	quit chan struct{}
	wg   sync.WaitGroup
}

func startMonitor(p *relayProc) *monitor {
	m := &monitor{p: p, quit: make(chan struct{})}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		tk := time.NewTicker(250 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-tk.C:
				s := p.sample()
				m.mu.Lock()
				m.max = max(m.max, s.rss)
				m.all = max(m.all, s.rss)
				m.mu.Unlock()
			case <-m.quit:
				return
			}
		}
	}()
	return m
}

// reset starts a new peak.
func (m *monitor) reset() {
	m.mu.Lock()
	m.max = 0
	m.mu.Unlock()
}

// peak is the highest RSS since reset; overall since the start.
func (m *monitor) peak() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.max
}

func (m *monitor) overall() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.all
}

func (m *monitor) stop() {
	select {
	case <-m.quit:
	default:
		close(m.quit)
	}
	m.wg.Wait()
}
