//go:build linux

// The relay process under measurement for TestRelayScale: starting
// `chat relay`, and reading its log, open files and live heap.

package relay_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// relayProc is the `chat relay` process.
type relayProc struct {
	*proc
	cmd  *exec.Cmd
	info peer.AddrInfo
	args []string
	done chan error
	log  *tailBuffer
}

func startRelayProcess(t *testing.T, cfg scaleConfig) *relayProc {
	t.Helper()
	bin := chatBinary(t)
	args := []string{"relay", "--home", t.TempDir(), "--listen", "/ip4/" + cfg.ip + "/tcp/0",
		"--max-reservations", strconv.Itoa(cfg.cap),
		"--max-per-ip", strconv.Itoa(cfg.cap + cfg.extra),
		"--max-per-asn", strconv.Itoa(cfg.cap + cfg.extra)}
	args = append(args, cfg.relayArgs...)
	name := bin
	if cfg.relayCPUs != "" {
		args = append([]string{"-c", cfg.relayCPUs, bin}, args...)
		name = "taskset"
	}
	cmd := exec.Command(name, args...)
	// gctrace: the relay logs its live heap after each collection, which
	// the report shows next to the RSS (which includes garbage).
	cmd.Env = append(append(os.Environ(), "GODEBUG=gctrace=1"), cfg.relayEnv...)
	stdout := &firstLine{line: make(chan string, 1)}
	rp := &relayProc{cmd: cmd, args: args, done: make(chan error, 1), log: &tailBuffer{max: 1 << 20}}
	cmd.Stdout, cmd.Stderr = stdout, rp.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { rp.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-rp.done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-rp.done
		}
		if t.Failed() {
			t.Logf("relay log (tail):\n%s", rp.logTail())
		}
	})
	var line string
	select {
	case line = <-stdout.line:
	case err := <-rp.done:
		rp.done <- err
		t.Fatalf("relay exited: %v\n%s", err, rp.logTail())
	case <-time.After(30 * time.Second):
		t.Fatalf("relay printed no address\n%s", rp.logTail())
	}
	addr, err := ma.NewMultiaddr(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	info, err := peer.AddrInfoFromP2pAddr(addr)
	if err != nil {
		t.Fatal(err)
	}
	rp.info = *info
	rp.proc = newProc(cmd.Process.Pid)
	return rp
}

// firstLine passes on the first line written to it and discards the rest.
type firstLine struct {
	mu   sync.Mutex
	buf  []byte
	line chan string
	done bool
}

func (w *firstLine) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.buf = append(w.buf, p...)
		if i := bytes.IndexByte(w.buf, '\n'); i >= 0 {
			w.line <- string(w.buf[:i])
			w.done, w.buf = true, nil
		}
	}
	return len(p), nil
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
	select {
	case err := <-rp.done:
		rp.done <- err
		return fmt.Errorf("exited: %v\n%s", err, rp.logTail())
	default:
		return nil
	}
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
