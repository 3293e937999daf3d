//go:build linux

// The relay process under measurement for TestRelayScale: starting
// `chat relay`, and reading its log, open files and live heap.

package relay_test

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certchat/certchat/internal/testproc"
	"github.com/libp2p/go-libp2p/core/peer"
)

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
