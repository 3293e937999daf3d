//go:build linux

package node_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestLAN's daemons: `chat daemon --json` processes in the host
// namespaces, driven through stdin and read through their events and logs.

// ---- the daemons ----

type lanMessage struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// lanEvent is one JSON line from a daemon.
type lanEvent struct {
	Event      string       `json:"event"`
	Ref        string       `json:"ref"`
	PeerID     string       `json:"peer_id"`
	Name       string       `json:"name"`
	Trust      string       `json:"trust"`
	Path       string       `json:"path"`
	Online     bool         `json:"online"`
	Discovered bool         `json:"discovered"`
	ID         string       `json:"id"`
	From       string       `json:"from"`
	To         string       `json:"to"`
	Text       string       `json:"text"`
	Error      string       `json:"error"`
	Addrs      []string     `json:"addrs"`
	Messages   []lanMessage `json:"messages"`

	raw string
	run int           // which start of the daemon
	at  time.Duration // since the test began
}

type lanDaemon struct {
	name, ns, ip, home, bin, id string
	began                       time.Time

	mu       sync.Mutex
	events   []lanEvent
	logs     []string // stderr lines of every run, each prefixed with its run
	wake     chan struct{}
	run      int
	runEvent int // index of the first event of the current run
	runLog   int
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	exited   chan struct{}
	exitErr  error
	refs     atomic.Int64
}

func lanNewDaemon(t *testing.T, bin, name, ns, ip string, began time.Time) *lanDaemon {
	t.Helper()
	d := &lanDaemon{name: name, ns: ns, ip: ip, bin: bin, began: began, home: filepath.Join(t.TempDir(), name), wake: make(chan struct{})}
	// A race-enabled binary sleeps a second at exit unless told not to.
	quick := append(lanEnv(), "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	cmd := exec.Command(bin, "init", "--home", d.home, "--name", name, "--no-passphrase")
	cmd.Env = quick
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chat init %s: %v\n%s", name, err, out)
	}
	cmd = exec.Command(bin, "id", "--home", d.home, "--json")
	cmd.Env = quick
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chat id %s: %v", name, err)
	}
	var id struct {
		PeerID string `json:"peer_id"`
	}
	if err := json.Unmarshal(out, &id); err != nil || id.PeerID == "" {
		t.Fatalf("chat id %s: %v: %s", name, err, out)
	}
	d.id = id.PeerID
	t.Cleanup(func() { d.kill() })
	return d
}

// start runs the daemon in its namespace: ip netns exec NS chat daemon --json.
func (d *lanDaemon) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", d.ns, d.bin, "daemon", "--json", "--home", d.home)
	cmd.Env = lanEnv()
	cmd.WaitDelay = 5 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	d.run++
	run := d.run
	d.runEvent, d.runLog = len(d.events), len(d.logs)
	d.mu.Unlock()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", d.name, err)
	}
	exited := make(chan struct{})
	var readers sync.WaitGroup
	readers.Add(2)
	go func() {
		defer readers.Done()
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			e := lanEvent{raw: sc.Text(), run: run, at: time.Since(d.began)}
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				e.Event = "unparsable"
			}
			d.mu.Lock()
			d.events = append(d.events, e)
			d.signalLocked()
			d.mu.Unlock()
		}
	}()
	go func() {
		defer readers.Done()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			d.mu.Lock()
			d.logs = append(d.logs, fmt.Sprintf("[run %d] %s", run, sc.Text()))
			d.signalLocked()
			d.mu.Unlock()
		}
	}()
	go func() {
		readers.Wait()
		err := cmd.Wait()
		d.mu.Lock()
		d.exitErr = err
		d.signalLocked()
		d.mu.Unlock()
		close(exited)
	}()
	d.mu.Lock()
	d.cmd, d.stdin, d.exited, d.exitErr = cmd, stdin, exited, nil
	d.mu.Unlock()
}

func (d *lanDaemon) signalLocked() {
	close(d.wake)
	d.wake = make(chan struct{})
}

// wait waits for the current run to exit and returns its exit error.
func (d *lanDaemon) wait(timeout time.Duration) error {
	d.mu.Lock()
	exited := d.exited
	d.mu.Unlock()
	if exited == nil {
		return nil
	}
	select {
	case <-exited:
	case <-time.After(timeout):
		return fmt.Errorf("still running after %v", timeout)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.exitErr
}

// stop ends the daemon with SIGTERM, as a user or init system would.
func (d *lanDaemon) stop(t *testing.T) {
	t.Helper()
	d.mu.Lock()
	cmd := d.cmd
	d.mu.Unlock()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM %s: %v", d.name, err)
	}
	if err := d.wait(10 * time.Second); err != nil {
		t.Fatalf("%s after SIGTERM: %v", d.name, err)
	}
}

// kill stops whatever still runs: SIGTERM, then SIGKILL.
func (d *lanDaemon) kill() {
	d.mu.Lock()
	cmd, exited := d.cmd, d.exited
	d.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
}

func (d *lanDaemon) send(t *testing.T, cmd map[string]any) {
	t.Helper()
	b, _ := json.Marshal(cmd)
	d.mu.Lock()
	stdin := d.stdin
	d.mu.Unlock()
	if _, err := stdin.Write(append(b, '\n')); err != nil {
		t.Fatalf("%s: write command %s: %v", d.name, b, err)
	}
}

// call sends a command with a fresh ref and returns the events answering
// it, up to and including the final one (ok, accepted, history).
func (d *lanDaemon) call(t *testing.T, cmd map[string]any) []lanEvent {
	t.Helper()
	ref := fmt.Sprintf("%s-%d", d.name, d.refs.Add(1))
	cmd["ref"] = ref
	from := d.mark()
	d.send(t, cmd)
	last := d.waitEvent(t, from, fmt.Sprintf("the answer to %v", cmd), lanWait, func(e lanEvent) bool {
		return e.Ref == ref && e.Event != "peer"
	})
	if last.Event == "error" {
		t.Fatalf("%s: %v: %s", d.name, cmd, last.Error)
	}
	var out []lanEvent
	for _, e := range d.eventsSince(from) {
		if e.Ref == ref {
			out = append(out, e)
		}
	}
	return out
}

// peers asks the daemon for its peer list.
func (d *lanDaemon) peers(t *testing.T) map[string]lanEvent {
	t.Helper()
	out := map[string]lanEvent{}
	for _, e := range d.call(t, map[string]any{"cmd": "peers"}) {
		if e.Event == "peer" {
			out[e.PeerID] = e
		}
	}
	return out
}

// listenAddrs are the daemon's full addresses from its latest listening event.
func (d *lanDaemon) listenAddrs() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := len(d.events) - 1; i >= d.runEvent; i-- {
		if d.events[i].Event == "listening" {
			return d.events[i].Addrs
		}
	}
	return nil
}

func (d *lanDaemon) mark() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.events)
}

func (d *lanDaemon) logMark() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.logs)
}

// runStart and logMarkRun are where the current run's events and logs begin.
func (d *lanDaemon) runStart() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.runEvent
}

func (d *lanDaemon) logMarkRun() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.runLog
}

func (d *lanDaemon) eventsSince(from int) []lanEvent {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.events[from:])
}

// waitEvent waits until an event at index from or later matches.
func (d *lanDaemon) waitEvent(t *testing.T, from int, what string, timeout time.Duration, match func(lanEvent) bool) lanEvent {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		d.mu.Lock()
		for i := from; i < len(d.events); i++ {
			if match(d.events[i]) {
				e := d.events[i]
				d.mu.Unlock()
				return e
			}
		}
		from = len(d.events)
		wake, exited := d.wake, d.exited
		d.mu.Unlock()
		select {
		case <-wake:
		case <-exited:
			t.Fatalf("%s exited (%v) while the test waited for %s", d.name, d.wait(0), what)
		case <-deadline.C:
			t.Fatalf("%s: no %s within %v", d.name, what, timeout)
		}
	}
}

// waitLog waits until a stderr line at index from or later matches.
func (d *lanDaemon) waitLog(t *testing.T, from int, what string, timeout time.Duration, match func(string) bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		d.mu.Lock()
		for i := from; i < len(d.logs); i++ {
			if match(d.logs[i]) {
				d.mu.Unlock()
				return
			}
		}
		from = len(d.logs)
		wake := d.wake
		d.mu.Unlock()
		select {
		case <-wake:
		case <-deadline.C:
			t.Fatalf("%s: no log of %s within %v", d.name, what, timeout)
		}
	}
}

func (d *lanDaemon) countLogs(from int, match func(string) bool) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, l := range d.logs[from:] {
		if match(l) {
			n++
		}
	}
	return n
}

// sessions are the daemon's "session" log lines (one per verified chat
// session it registered) about peer id, from stderr line from on.
func (d *lanDaemon) sessions(from int, id string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, l := range d.logs[from:] {
		if strings.Contains(l, " msg=session ") && strings.Contains(l, " peer="+id+" ") {
			out = append(out, l)
		}
	}
	return out
}

// onlineTransitions counts how often peer events about id went from
// offline to online in the daemon's first run.
func (d *lanDaemon) onlineTransitions(from int, id string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, online := 0, false
	for _, e := range d.events[from:] {
		if e.Event == "peer" && e.PeerID == id && e.Ref == "" {
			if e.Online && !online {
				n++
			}
			online = e.Online
		}
	}
	return n
}

// peerEvents counts unsolicited peer events about id from event from on.
func (d *lanDaemon) peerEvents(from int, id string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, e := range d.events[from:] {
		if e.Event == "peer" && e.PeerID == id && e.Ref == "" {
			n++
		}
	}
	return n
}

// dump logs the daemon's last stderr lines and events, for a failure.
func (d *lanDaemon) dump(t *testing.T) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var b bytes.Buffer
	fmt.Fprintf(&b, "==== %s (%s, %s, peer %s): last stderr lines:\n", d.name, d.ns, d.ip, d.id)
	for _, l := range d.logs[max(0, len(d.logs)-40):] {
		fmt.Fprintf(&b, "  %s\n", l)
	}
	fmt.Fprintf(&b, "==== %s: last events (of %d):\n", d.name, len(d.events))
	for _, e := range d.events[max(0, len(d.events)-40):] {
		fmt.Fprintf(&b, "  %7.3fs [run %d] %s\n", e.at.Seconds(), e.run, e.raw)
	}
	t.Log(b.String())
}
