//go:build linux

package relay_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/internal/testproc"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// TestRelayScale measures one `chat relay` process holding many
// reservations and relayed end-to-end encrypted chats
// (docs/BENCHMARKS.md, "Relay"). It is a measurement, not a pass/fail timing
// test: it fails only if reservations or chats cannot be established or a
// message is lost.
//
// The relay is its own process; the clients are lightweight libp2p hosts
// in this process (TCP only, no listener, relay client on, no resource
// manager), each with its own certchat identity as host key. A chat is
// the real e2e handshake (TLS 1.3 with certificates) on a stream through
// the relay, then text frames answered with receipts; latency is the round
// trip send → receipt back at the sender, through the relay both ways.
//
// Settings (environment):
//
//	CERTCHAT_SCALE=1                  run at all
//	CERTCHAT_SCALE_RESERVATIONS=1000  client hosts that reserve a slot
//	CERTCHAT_SCALE_CHATS=200          relayed chats among them (2 hosts each)
//	CERTCHAT_SCALE_RATE=10            messages/s per chat, steady phase
//	CERTCHAT_SCALE_STEADY=30s         steady phase length
//	CERTCHAT_SCALE_MAX=15s            closed-loop maximum phase (0 skips)
//	CERTCHAT_SCALE_WINDOW=4           messages in flight per chat, maximum phase
//	CERTCHAT_SCALE_BODY=100           bytes of text per message
//	CERTCHAT_SCALE_PARALLEL=32        concurrent reservation / chat set-ups
//	CERTCHAT_SCALE_CAP=               relay --max-reservations (default: RESERVATIONS)
//	CERTCHAT_SCALE_EXTRA=10           reservations tried beyond a full relay, which must be refused
//	CERTCHAT_SCALE_IP=127.0.0.1       address the relay listens on and clients dial
//	CERTCHAT_SCALE_RELAY_CPUS=        run the relay under `taskset -c CPUS`
//	CERTCHAT_SCALE_RELAY_ARGS=        extra `chat relay` flags, space-separated
//	CERTCHAT_SCALE_RELAY_ENV=         extra environment of the relay, e.g. GOMAXPROCS=1
func TestRelayScale(t *testing.T) {
	if os.Getenv("CERTCHAT_SCALE") == "" {
		t.Skip("relay scale measurement: run with CERTCHAT_SCALE=1 go test -count=1 -run TestRelayScale -v -timeout 30m ./relay/ (docs/BENCHMARKS.md, Relay)")
	}
	cfg := scaleSettings(t)
	if 2*cfg.chats > cfg.reservations {
		t.Fatalf("%d chats need %d reserved hosts, only %d", cfg.chats, 2*cfg.chats, cfg.reservations)
	}
	nofile := raiseNoFile(t, 2*(cfg.reservations+cfg.extra)+1024)
	t.Logf("machine: %d CPUs (%s), RLIMIT_NOFILE %d, %s", numCPU(), cpuModel(), nofile, memTotal())

	rp := startRelayProcess(t, cfg)
	rep := &scaleReport{cfg: cfg}
	defer func() { t.Log("\n" + rep.String()) }() // also when a step fails
	rep.relayStart = rp.sample()
	rep.heapStart = rp.liveHeap()
	self := newProc(os.Getpid())
	rep.clientStart = self.sample()
	mon := startMonitor(rp)
	defer mon.stop()
	t.Logf("relay pid %d at %s (%s): %s %s", rp.pid, rp.info, rp.openFiles(), strings.Join(cfg.relayEnv, " "), strings.Join(rp.args, " "))

	trust, err := identity.OpenTrustStore(filepath.Join(t.TempDir(), "trust.json"))
	if err != nil {
		t.Fatal(err)
	}
	sw := &scaleSwarm{trust: trust, chats: map[peer.ID]*scaleChat{}}
	t.Cleanup(sw.close)

	// Reservations.
	began := time.Now()
	u0 := measureUsage(rp, self)
	peers, fails, lat := sw.reserveAll(rp.info, cfg.reservations, cfg.parallel)
	rep.reserveWall = time.Since(began)
	rep.reserveUse = measureUsage(rp, self).since(u0)
	rep.reserveLat = lat
	rep.reserved = len(peers)
	rep.reserveFails = fails
	if len(peers) < cfg.reservations {
		t.Errorf("%d of %d reservations failed: %s", cfg.reservations-len(peers), cfg.reservations, failures(fails))
	}
	if len(peers) < 2*cfg.chats {
		t.Fatalf("%d reserved hosts are too few for %d chats", len(peers), cfg.chats)
	}
	t.Logf("%d reservations in %v", len(peers), rep.reserveWall.Round(time.Millisecond))

	// A full relay refuses more.
	if cfg.extra > 0 && cfg.cap == cfg.reservations && len(peers) == cfg.reservations {
		extra, efails, _ := sw.reserveAll(rp.info, cfg.extra, cfg.parallel)
		rep.extraFails = efails
		if len(extra) > 0 {
			t.Errorf("a relay capped at %d reservations accepted %d more", cfg.cap, len(extra))
		}
		for _, p := range extra {
			p.h.Close()
		}
	}
	time.Sleep(3 * time.Second) // identify and the like settle
	rep.relayReserved = rp.sample()
	rep.heapReserved = rp.liveHeap()
	rep.clientReserved = self.sample()

	// Chats.
	for i := range cfg.chats {
		sw.addChat(peers[2*i], peers[2*i+1])
	}
	u0 = measureUsage(rp, self)
	began = time.Now()
	setupFails := sw.openChats(rp.info, cfg.parallel)
	rep.chatWall = time.Since(began)
	rep.chatUse = measureUsage(rp, self).since(u0)
	rep.chatSetup = sw.setupTimes()
	rep.chatFails = setupFails
	rep.chats = cfg.chats - countFails(setupFails)
	if len(setupFails) > 0 {
		t.Fatalf("%d of %d chats failed: %s", countFails(setupFails), cfg.chats, failures(setupFails))
	}
	t.Logf("%d chats in %v", rep.chats, rep.chatWall.Round(time.Millisecond))
	rep.relayChats = rp.sample()
	rep.heapChats = rp.liveHeap()

	// Steady rate.
	rep.steady = sw.runPhase(t, rp, self, mon, phaseSteady, cfg)
	// Maximum.
	if cfg.max > 0 {
		rep.max = sw.runPhase(t, rp, self, mon, phaseMax, cfg)
	}
	rep.relayEnd = rp.sample()
	rep.heapEnd = rp.liveHeap()
	rep.clientEnd = self.sample()
	rep.relayPeak = mon.overall()

	// Everything must still be in place: each reserved host connected to
	// the relay, the relay process alive, no message lost.
	lost := 0
	for _, p := range peers {
		if p.h.Network().Connectedness(rp.info.ID) != network.Connected {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d reserved hosts lost their connection to the relay", lost)
	}
	rep.heldAtEnd = len(peers) - lost
	if err := rp.alive(); err != nil {
		t.Errorf("relay: %v", err)
	}
	for _, ph := range []*phaseResult{rep.steady, rep.max} {
		if ph != nil && (ph.lost > 0 || ph.dups > 0 || ph.unknown > 0 || ph.errs > 0) {
			t.Errorf("%s phase: %d messages lost, %d duplicated, %d unknown receipts, %d send/receive errors",
				ph.name, ph.lost, ph.dups, ph.unknown, ph.errs)
		}
	}
}

// scaleConfig are the settings of a run.
type scaleConfig struct {
	reservations, chats, window, body, parallel, cap, extra int
	rate                                                    float64
	steady, max                                             time.Duration
	ip, relayCPUs                                           string
	relayArgs, relayEnv                                     []string
}

func scaleSettings(t *testing.T) scaleConfig {
	t.Helper()
	num := func(name string, def int) int {
		s := os.Getenv("CERTCHAT_SCALE_" + name)
		if s == "" {
			return def
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			t.Fatalf("CERTCHAT_SCALE_%s=%q: want a count", name, s)
		}
		return n
	}
	dur := func(name string, def time.Duration) time.Duration {
		s := os.Getenv("CERTCHAT_SCALE_" + name)
		if s == "" {
			return def
		}
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			t.Fatalf("CERTCHAT_SCALE_%s=%q: want a duration", name, s)
		}
		return d
	}
	c := scaleConfig{
		reservations: num("RESERVATIONS", 1000),
		chats:        num("CHATS", 200),
		window:       max(1, num("WINDOW", 4)),
		body:         max(1, num("BODY", 100)),
		parallel:     max(1, num("PARALLEL", 32)),
		extra:        num("EXTRA", 10),
		steady:       dur("STEADY", 30*time.Second),
		max:          dur("MAX", 15*time.Second),
		ip:           os.Getenv("CERTCHAT_SCALE_IP"),
		relayCPUs:    os.Getenv("CERTCHAT_SCALE_RELAY_CPUS"),
		relayArgs:    strings.Fields(os.Getenv("CERTCHAT_SCALE_RELAY_ARGS")),
		relayEnv:     strings.Fields(os.Getenv("CERTCHAT_SCALE_RELAY_ENV")),
	}
	c.cap = num("CAP", c.reservations)
	c.rate = 10
	if s := os.Getenv("CERTCHAT_SCALE_RATE"); s != "" {
		r, err := strconv.ParseFloat(s, 64)
		if err != nil || r <= 0 {
			t.Fatalf("CERTCHAT_SCALE_RATE=%q: want messages per second", s)
		}
		c.rate = r
	}
	if c.ip == "" {
		c.ip = "127.0.0.1"
	}
	return c
}

// raiseNoFile makes sure this process, and the relay it starts, may open
// want files. An explicit Setrlimit is inherited by child processes (Go
// otherwise restores the soft limit it raised at start-up for them).
func raiseNoFile(t *testing.T, want int) uint64 {
	t.Helper()
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Max < uint64(want) {
		t.Fatalf("RLIMIT_NOFILE hard limit %d < %d needed; raise it (ulimit -Hn)", rl.Max, want)
	}
	rl.Cur = rl.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	return rl.Cur
}

// relayProc is the `chat relay` process.
type relayProc struct {
	*proc
	relay *testproc.Relay
	info  peer.AddrInfo
	args  []string
	log   *tailBuffer
}

func startRelayProcess(t *testing.T, cfg scaleConfig) *relayProc {
	t.Helper()
	rp := &relayProc{log: &tailBuffer{max: 1 << 20}}
	opts := testproc.RelayOptions{
		Listen: "/ip4/" + cfg.ip + "/tcp/0",
		Args: append([]string{
			"--max-reservations", strconv.Itoa(cfg.cap),
			"--max-per-ip", strconv.Itoa(cfg.cap + cfg.extra),
			"--max-per-asn", strconv.Itoa(cfg.cap + cfg.extra)}, cfg.relayArgs...),
		// gctrace: the relay logs its live heap after each collection, which
		// the report shows next to the RSS (which includes garbage).
		Env:    append([]string{"GODEBUG=gctrace=1"}, cfg.relayEnv...),
		Stderr: rp.log,
		Grace:  30 * time.Second, // SIGTERM at cleanup, then kill
	}
	if cfg.relayCPUs != "" {
		opts.Wrap = []string{"taskset", "-c", cfg.relayCPUs}
	}
	// Registered first, so it runs after the relay's stop.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("relay log (tail):\n%s", rp.logTail())
		}
	})
	rp.relay = testproc.StartRelay(t, opts)
	rp.args = rp.relay.Cmd.Args[1:]
	rp.info = rp.relay.Info
	rp.proc = newProc(rp.relay.Cmd.Process.Pid)
	return rp
}

// openFiles is the relay's RLIMIT_NOFILE line from /proc/PID/limits.
func (rp *relayProc) openFiles() string {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/limits", rp.pid))
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "Max open files") {
			return strings.Join(strings.Fields(line), " ")
		}
	}
	return "open files limit unknown"
}

// logTail is the end of the relay's log without its gctrace lines.
func (rp *relayProc) logTail() string {
	var keep []string
	for _, line := range strings.Split(rp.log.String(), "\n") {
		if !strings.HasPrefix(line, "gc ") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep[max(0, len(keep)-40):], "\n")
}

// liveHeap is the relay's heap after its last garbage collection (from
// its gctrace lines), or -1.
func (rp *relayProc) liveHeap() int64 {
	m := gcLine.FindAllStringSubmatch(rp.log.String(), -1)
	if len(m) == 0 {
		return -1
	}
	n, _ := strconv.ParseInt(m[len(m)-1][1], 10, 64)
	return n << 20
}

// gcLine matches a gctrace line's heap sizes: before -> after -> live MB.
var gcLine = regexp.MustCompile(`(?m)^gc \d+ @.*?\d+->\d+->(\d+) MB`)

func (rp *relayProc) alive() error {
	if exited, err := rp.relay.Exited(); exited {
		return fmt.Errorf("exited: %v\n%s", err, rp.logTail())
	}
	return nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (w *tailBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b = append(w.b, p...)
	if len(w.b) > w.max {
		w.b = slices.Clone(w.b[len(w.b)-w.max:])
	}
	return len(p), nil
}

func (w *tailBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.b)
}

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

// scalePeer is one client host with a reservation.
type scalePeer struct {
	id *identity.Identity
	h  host.Host
	ep *e2e.Endpoint
}

// scaleSwarm is every client host and chat.
type scaleSwarm struct {
	trust *identity.TrustStore
	n     atomic.Int64

	mu    sync.Mutex
	all   []*scalePeer
	chats map[peer.ID]*scaleChat // by responder
	list  []*scaleChat
}

func (sw *scaleSwarm) close() {
	sw.mu.Lock()
	all, list := sw.all, sw.list
	sw.mu.Unlock()
	for _, c := range list {
		c.closing.Store(true)
		if c.sess != nil {
			c.sess.Close()
		}
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, p := range all {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			p.h.Close()
		}()
	}
	wg.Wait()
}

// newPeer makes a host whose key is a fresh certchat identity's.
func (sw *scaleSwarm) newPeer() (*scalePeer, error) {
	id, err := identity.Generate(fmt.Sprintf("scale-%d", sw.n.Add(1)), time.Now().Add(-time.Minute), 24*time.Hour)
	if err != nil {
		return nil, err
	}
	key, err := id.Libp2pKey()
	if err != nil {
		return nil, err
	}
	h, err := libp2p.New(
		libp2p.Identity(key),
		libp2p.NoListenAddrs,
		libp2p.EnableRelay(),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.ResourceManager(&network.NullResourceManager{}),
		libp2p.DisableMetrics(),
	)
	if err != nil {
		return nil, err
	}
	ep, err := e2e.NewEndpoint(e2e.Config{Identity: id, Trust: sw.trust, Policy: e2e.Policy{AllowUnknown: true}})
	if err != nil {
		h.Close()
		return nil, err
	}
	p := &scalePeer{id: id, h: h, ep: ep}
	h.SetStreamHandler(e2e.ProtocolChat, func(s network.Stream) { sw.respond(p, s) })
	sw.mu.Lock()
	sw.all = append(sw.all, p)
	sw.mu.Unlock()
	return p, nil
}

// reserveAll makes n hosts that each connect to the relay and reserve a
// slot, par at a time. It returns the hosts that hold a reservation, the
// failures by reason, and the time each successful connect + reserve took.
func (sw *scaleSwarm) reserveAll(relay peer.AddrInfo, n, par int) ([]*scalePeer, map[string]int, []time.Duration) {
	var (
		mu    sync.Mutex
		ok    []*scalePeer
		lat   []time.Duration
		fails = map[string]int{}
		wg    sync.WaitGroup
		next  atomic.Int64
	)
	for range min(par, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				p, d, err := sw.reserve(relay)
				mu.Lock()
				if err != nil {
					fails[reason(err)]++
				} else {
					ok = append(ok, p)
					lat = append(lat, d)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return ok, fails, lat
}

func (sw *scaleSwarm) reserve(relay peer.AddrInfo) (*scalePeer, time.Duration, error) {
	p, err := sw.newPeer()
	if err != nil {
		return nil, 0, fmt.Errorf("host: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	began := time.Now()
	if err := p.h.Connect(ctx, relay); err != nil {
		p.h.Close()
		return nil, 0, fmt.Errorf("connect: %w", err)
	}
	if _, err := client.Reserve(ctx, p.h, relay); err != nil {
		p.h.Close()
		return nil, 0, err
	}
	return p, time.Since(began), nil
}

// reason names a failure for counting.
func reason(err error) string {
	var re client.ReservationError
	if errors.As(err, &re) {
		return "reserve: " + re.Status.String()
	}
	s := peerIDs.ReplaceAllString(err.Error(), "<peer>")
	s = ports.ReplaceAllString(s, "/tcp/<port>")
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}

var (
	peerIDs = regexp.MustCompile(`12D3KooW[1-9A-HJ-NP-Za-km-z]+`)
	ports   = regexp.MustCompile(`/tcp/[0-9]+`)
)

func countFails(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// Phases of the message exchange.
const (
	phaseSteady = iota
	phaseMax
	phases
)

var phaseNames = [phases]string{"steady", "maximum"}

// scaleChat is one relayed chat: a (initiator) sends texts, b answers
// each with a receipt.
type scaleChat struct {
	a, b    *scalePeer
	sess    *e2e.Session // a's end
	setup   time.Duration
	closing atomic.Bool
	window  chan struct{}

	mu      sync.Mutex
	pending map[e2e.MessageID]pendingText
	lat     [phases][]time.Duration
	sent    [phases]int
	acked   [phases]int
	unknown int
	errs    int
	readErr error

	// b's end, touched only by its receive loop until the run ends.
	recvd   map[e2e.MessageID]bool
	dups    int
	respErr error
}

type pendingText struct {
	at    time.Time
	phase int
}

func (sw *scaleSwarm) addChat(a, b *scalePeer) {
	c := &scaleChat{a: a, b: b, pending: map[e2e.MessageID]pendingText{}, recvd: map[e2e.MessageID]bool{}}
	sw.mu.Lock()
	sw.chats[b.id.PeerID()] = c
	sw.list = append(sw.list, c)
	sw.mu.Unlock()
}

// respond is b's side: the e2e responder handshake, then a receipt for
// every text.
func (sw *scaleSwarm) respond(p *scalePeer, s network.Stream) {
	sw.mu.Lock()
	c := sw.chats[p.id.PeerID()]
	sw.mu.Unlock()
	if c == nil || c.a.id.PeerID() != s.Conn().RemotePeer() {
		s.Reset()
		return
	}
	sess, err := p.ep.Server(context.Background(), s, s.Conn().RemotePeer())
	if err != nil {
		c.mu.Lock()
		c.respErr = err
		c.mu.Unlock()
		return
	}
	defer sess.Close()
	for {
		f, err := sess.Receive()
		if err != nil {
			if !c.closing.Load() {
				c.mu.Lock()
				c.respErr = err
				c.mu.Unlock()
			}
			return
		}
		if f.Type != e2e.FrameText {
			continue
		}
		txt, err := e2e.ParseText(f.Payload)
		if err != nil {
			c.mu.Lock()
			c.respErr = err
			c.mu.Unlock()
			return
		}
		c.mu.Lock()
		if c.recvd[txt.ID] {
			c.dups++
		}
		c.recvd[txt.ID] = true
		c.mu.Unlock()
		if err := sess.SendReceipt(e2e.Receipt{ID: txt.ID, Status: e2e.ReceiptStored}); err != nil {
			if !c.closing.Load() {
				c.mu.Lock()
				c.respErr = err
				c.mu.Unlock()
			}
			return
		}
	}
}

// openChats dials every chat through the relay, par at a time.
func (sw *scaleSwarm) openChats(relay peer.AddrInfo, par int) map[string]int {
	var (
		mu    sync.Mutex
		fails = map[string]int{}
		wg    sync.WaitGroup
		sem   = make(chan struct{}, par)
	)
	for _, c := range sw.list {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := sw.open(relay, c); err != nil {
				mu.Lock()
				fails[reason(err)]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return fails
}

func (sw *scaleSwarm) open(relay peer.AddrInfo, c *scaleChat) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	circuit, err := ma.NewMultiaddr(fmt.Sprintf("%s/p2p/%s/p2p-circuit", relay.Addrs[0], relay.ID))
	if err != nil {
		return err
	}
	began := time.Now()
	b := c.b.id.PeerID()
	if err := c.a.h.Connect(ctx, peer.AddrInfo{ID: b, Addrs: []ma.Multiaddr{circuit}}); err != nil {
		return fmt.Errorf("connect through the relay: %w", err)
	}
	s, err := c.a.h.NewStream(network.WithAllowLimitedConn(ctx, "certchat scale"), b, e2e.ProtocolChat)
	if err != nil {
		return fmt.Errorf("open stream: %w", err)
	}
	if !s.Conn().Stat().Limited || !strings.Contains(s.Conn().RemoteMultiaddr().String(), "/p2p-circuit") {
		s.Reset()
		return fmt.Errorf("the chat stream is not relayed (%s)", s.Conn().RemoteMultiaddr())
	}
	sess, err := c.a.ep.Client(ctx, s, s.Conn().RemotePeer(), b)
	if err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	c.sess = sess
	c.setup = time.Since(began)
	go c.readReceipts()
	return nil
}

func (sw *scaleSwarm) setupTimes() []time.Duration {
	var out []time.Duration
	for _, c := range sw.list {
		if c.sess != nil {
			out = append(out, c.setup)
		}
	}
	return out
}

// readReceipts is a's receive loop: each receipt completes a round trip.
func (c *scaleChat) readReceipts() {
	for {
		f, err := c.sess.Receive()
		if err != nil {
			if !c.closing.Load() {
				c.mu.Lock()
				c.readErr = err
				c.mu.Unlock()
			}
			return
		}
		now := time.Now()
		if f.Type != e2e.FrameReceipt {
			continue
		}
		r, err := e2e.ParseReceipt(f.Payload)
		c.mu.Lock()
		p, ok := c.pending[r.ID]
		if err != nil || !ok {
			c.unknown++
			c.mu.Unlock()
			continue
		}
		delete(c.pending, r.ID)
		c.lat[p.phase] = append(c.lat[p.phase], now.Sub(p.at))
		c.acked[p.phase]++
		c.mu.Unlock()
		if p.phase == phaseMax {
			<-c.window
		}
	}
}

// send writes one text and notes when.
func (c *scaleChat) send(phase int, body string) {
	id := e2e.NewMessageID()
	now := time.Now()
	c.mu.Lock()
	c.pending[id] = pendingText{at: now, phase: phase}
	c.sent[phase]++
	c.mu.Unlock()
	if err := c.sess.SendText(e2e.Text{ID: id, SentAt: now, Body: body}); err != nil {
		c.mu.Lock()
		c.errs++
		c.mu.Unlock()
	}
}

// phaseResult is what one phase measured.
type phaseResult struct {
	name                             string
	wall                             time.Duration
	sent, acked, lost, dups, unknown int
	errs                             int
	lat                              []time.Duration // sorted
	use                              usage
	relayRSS, relayPeak, clientRSS   int64
	drain                            time.Duration
}

// runPhase sends texts on every chat: in the steady phase at cfg.rate per
// chat (starts spread over one interval), in the maximum phase as fast as
// the receipts come back with cfg.window texts in flight per chat. Then it
// waits for the outstanding receipts.
func (sw *scaleSwarm) runPhase(t *testing.T, rp *relayProc, self *proc, mon *monitor, phase int, cfg scaleConfig) *phaseResult {
	t.Helper()
	body := strings.Repeat("x", cfg.body)
	length := cfg.steady
	if phase == phaseMax {
		length = cfg.max
	}
	mon.reset()
	u0 := measureUsage(rp, self)
	began := time.Now()
	end := began.Add(length)
	stop := make(chan struct{})
	timer := time.AfterFunc(length, func() { close(stop) })
	defer timer.Stop()
	var wg sync.WaitGroup
	for _, c := range sw.list {
		wg.Add(1)
		if phase == phaseMax {
			c.window = make(chan struct{}, cfg.window)
		}
		go func() {
			defer wg.Done()
			if phase == phaseMax {
				for {
					select {
					case c.window <- struct{}{}:
						c.send(phase, body)
					case <-stop:
						return
					}
				}
			}
			interval := time.Duration(float64(time.Second) / cfg.rate)
			time.Sleep(rand.N(interval))
			tk := time.NewTicker(interval)
			defer tk.Stop()
			for now := time.Now(); now.Before(end); now = <-tk.C {
				c.send(phase, body)
			}
		}()
	}
	wg.Wait()
	wall := time.Since(began)
	// Drain: wait for the receipts still on their way.
	drainStart := time.Now()
	for time.Since(drainStart) < 30*time.Second {
		left := 0
		for _, c := range sw.list {
			c.mu.Lock()
			left += c.sent[phase] - c.acked[phase]
			c.mu.Unlock()
		}
		if left == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	res := &phaseResult{name: phaseNames[phase], wall: wall, drain: time.Since(drainStart)}
	res.use = measureUsage(rp, self).since(u0)
	rs := rp.sample()
	res.relayRSS, res.relayPeak = rs.rss, mon.peak()
	res.clientRSS = self.sample().rss
	for _, c := range sw.list {
		c.mu.Lock()
		res.sent += c.sent[phase]
		res.acked += c.acked[phase]
		res.unknown += c.unknown
		res.errs += c.errs
		res.lat = append(res.lat, c.lat[phase]...)
		if c.readErr != nil || c.respErr != nil {
			res.errs++
			t.Logf("chat %s → %s: initiator %v, responder %v", identity.ShortID(c.a.id.PeerID()),
				identity.ShortID(c.b.id.PeerID()), c.readErr, c.respErr)
		}
		c.mu.Unlock()
	}
	res.lost = res.sent - res.acked
	// Every text the initiators sent, in every phase so far, reached the
	// responders exactly once.
	for _, c := range sw.list {
		c.mu.Lock()
		want := 0
		for p := range phase + 1 {
			want += c.sent[p]
		}
		if len(c.recvd) != want {
			res.lost += want - len(c.recvd)
		}
		res.dups += c.dups
		c.mu.Unlock()
	}
	slices.Sort(res.lat)
	t.Logf("%s phase: %d sent, %d acknowledged in %v (%.0f msg/s); round trip p50 %v p99 %v max %v; CPU: %s",
		res.name, res.sent, res.acked, wall.Round(time.Millisecond), res.rate(),
		pct(res.lat, 0.50), pct(res.lat, 0.99), pct(res.lat, 1), res.use.describe(wall+res.drain))
	return res
}

// rate is acknowledged messages per second over the phase.
func (r *phaseResult) rate() float64 { return float64(r.acked) / r.wall.Seconds() }

// pct is the q-quantile of sorted durations (nearest rank).
func pct(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))].Round(10 * time.Microsecond)
}

// scaleReport collects the figures for docs/BENCHMARKS.md, "Relay".
type scaleReport struct {
	cfg                                         scaleConfig
	relayStart, relayReserved, relayChats       procSample
	relayEnd                                    procSample
	clientStart, clientReserved, clientEnd      procSample
	relayPeak                                   int64
	heapStart, heapReserved, heapChats, heapEnd int64
	reserved, chats, heldAtEnd                  int
	reserveFails, extraFails, chatFails         map[string]int
	reserveWall, chatWall                       time.Duration
	reserveUse, chatUse                         usage
	reserveLat, chatSetup                       []time.Duration
	steady, max                                 *phaseResult
}

// failures lists failure counts by reason.
func failures(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var out []string
	for k, n := range m {
		out = append(out, fmt.Sprintf("%d × %s", n, k))
	}
	slices.Sort(out)
	return strings.Join(out, "; ")
}

// mibOr is mib, or "n/a" for a negative size.
func mibOr(b int64) string {
	if b < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%d MiB", b>>20)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func (r *scaleReport) String() string {
	var b strings.Builder
	row := func(k, v string) { fmt.Fprintf(&b, "| %s | %s |\n", k, v) }
	slices.Sort(r.reserveLat)
	slices.Sort(r.chatSetup)
	perRsv := "n/a"
	if r.reserved > 0 {
		perRsv = fmt.Sprintf("%.1f KiB", float64(r.relayReserved.rss-r.relayStart.rss)/1024/float64(r.reserved))
	}
	fmt.Fprintf(&b, "| measure | value |\n|---|---|\n")
	row("reservations held (asked)", fmt.Sprintf("%d (%d), still held at the end: %d", r.reserved, r.cfg.reservations, r.heldAtEnd))
	row("reservation failures", failures(r.reserveFails))
	if r.extraFails != nil {
		row(fmt.Sprintf("%d more on the full relay", r.cfg.extra), failures(r.extraFails))
	}
	row("time to reserve all", fmt.Sprintf("%v (%d parallel); relay CPU %v", r.reserveWall.Round(time.Millisecond), r.cfg.parallel, r.reserveUse.relayCPU))
	row("  CPU while reserving", r.reserveUse.describe(r.reserveWall))
	row("connect + reserve, p50 / p99 / max", fmt.Sprintf("%v / %v / %v", pct(r.reserveLat, .5), pct(r.reserveLat, .99), pct(r.reserveLat, 1)))
	row("relayed chats held (asked)", fmt.Sprintf("%d (%d)", r.chats, r.cfg.chats))
	row("chat set-up (circuit + e2e handshake), p50 / p99 / max", fmt.Sprintf("%v / %v / %v; all in %v; relay CPU %v",
		pct(r.chatSetup, .5), pct(r.chatSetup, .99), pct(r.chatSetup, 1), r.chatWall.Round(time.Millisecond), r.chatUse.relayCPU))
	row("relay RSS: idle / reserved / chats open / end", fmt.Sprintf("%s / %s / %s / %s", mib(r.relayStart.rss), mib(r.relayReserved.rss), mib(r.relayChats.rss), mib(r.relayEnd.rss)))
	row("relay live heap at the last GC: idle / reserved / chats open / end", fmt.Sprintf("%s / %s / %s / %s",
		mibOr(r.heapStart), mibOr(r.heapReserved), mibOr(r.heapChats), mibOr(r.heapEnd)))
	row("relay RSS peak (sampled 4/s) / VmHWM", fmt.Sprintf("%s / %s", mib(r.relayPeak), mib(r.relayEnd.hwm)))
	row("relay memory per reservation", perRsv+" (RSS reserved − idle) / reservations")
	if r.chats > 0 {
		row("relay memory per relayed chat", fmt.Sprintf("%.1f KiB (RSS chats open − reserved) / chats", float64(r.relayChats.rss-r.relayReserved.rss)/1024/float64(r.chats)))
	}
	row("relay threads / fds (reserved)", fmt.Sprintf("%d / %d", r.relayReserved.threads, r.relayReserved.fds))
	row("client process RSS: start / reserved / end", fmt.Sprintf("%s / %s / %s", mib(r.clientStart.rss), mib(r.clientReserved.rss), mib(r.clientEnd.rss)))
	for _, ph := range []*phaseResult{r.steady, r.max} {
		if ph == nil {
			continue
		}
		what := fmt.Sprintf("%.0f msg/s per chat (%.0f msg/s offered)", r.cfg.rate, r.cfg.rate*float64(r.chats))
		if ph.name == "maximum" {
			what = fmt.Sprintf("closed loop, %d in flight per chat", r.cfg.window)
		}
		row(ph.name+" phase", fmt.Sprintf("%s, %v, %d-byte texts", what, ph.wall.Round(time.Millisecond), r.cfg.body))
		row("  messages sent / acknowledged / lost", fmt.Sprintf("%d / %d / %d (drained in %v)", ph.sent, ph.acked, ph.lost, ph.drain.Round(time.Millisecond)))
		row("  messages per second (all chats)", fmt.Sprintf("%.0f", ph.rate()))
		row("  round trip p50 / p90 / p99 / p99.9 / max", fmt.Sprintf("%v / %v / %v / %v / %v",
			pct(ph.lat, .5), pct(ph.lat, .9), pct(ph.lat, .99), pct(ph.lat, .999), pct(ph.lat, 1)))
		row("  CPU", ph.use.describe(ph.wall+ph.drain))
		row("  relay RSS end / peak", fmt.Sprintf("%s / %s", mib(ph.relayRSS), mib(ph.relayPeak)))
		row("  client RSS", mib(ph.clientRSS))
	}
	return b.String()
}

// numCPU counts the machine's CPUs (runtime.NumCPU would count only those
// this process may run on).
func numCPU() int {
	data, _ := os.ReadFile("/proc/cpuinfo")
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		if k, _, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "processor" {
			n++
		}
	}
	return n
}

func cpuModel() string {
	data, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func memTotal() string {
	data, _ := os.ReadFile("/proc/meminfo")
	line, _, _ := strings.Cut(string(data), "\n")
	return strings.Join(strings.Fields(line), " ")
}
