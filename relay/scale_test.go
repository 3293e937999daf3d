//go:build linux

// The relay scale measurement: TestRelayScale and its settings. Its parts
// are in scale_relay_test.go (the relay process), scale_usage_test.go
// (CPU and memory figures), scale_swarm_test.go (the client hosts),
// scale_chat_test.go (the relayed chats) and scale_report_test.go.

package relay_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
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
//	CERTCHAT_SCALE_DHT=               1: each client also joins the DHT (publishing its record)
//	                                  and registers a mailbox at the relay
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
	sw := &scaleSwarm{trust: trust, chats: map[peer.ID]*scaleChat{}, dht: os.Getenv("CERTCHAT_SCALE_DHT") != ""}
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
