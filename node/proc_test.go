package node_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/certchat/certchat/internal/testproc"
)

// Process-level tests run the real chat binary: `chat daemon --json`
// driven through stdin and stdout, and one-shot commands. The binary is
// built on first use by testproc (with -race when the tests run with
// -race, so races in the daemon fail the tests too); TestMain removes it
// at the end.

func TestMain(m *testing.M) {
	if os.Getenv(peerFarmEnv) != "" {
		os.Exit(runPeerFarm())
	}
	if os.Getenv(groupSenderEnv) != "" {
		os.Exit(runGroupSender())
	}
	if dir := os.Getenv(fileBenchPeerEnv); dir != "" {
		os.Exit(runFileBenchPeer(dir))
	}
	os.Exit(testproc.Run(m))
}

// shortDir is a temporary folder with a short path: the control socket's
// path must fit a unix socket address (about 100 bytes).
func shortDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "cc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// procEnv is a clean environment: nothing of the user's certchat settings.
func procEnv(home string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CERTCHAT_") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	return append(env, "HOME="+home, "GORACE=halt_on_error=0 exitcode=66")
}

// result of a one-shot command.
type result struct {
	code           int
	stdout, stderr string
}

// chat runs a one-shot command and returns its exit code and output.
func chat(t testing.TB, args ...string) result {
	t.Helper()
	cmd := exec.Command(testproc.ChatBinary(t), args...)
	cmd.Env = procEnv(os.TempDir())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("chat %v: %v", args, err)
	}
	checkStderr(t, "chat "+strings.Join(args, " "), r.stderr)
	return r
}

// checkStderr fails on what must never appear in a process's output.
func checkStderr(t testing.TB, what, stderr string) {
	t.Helper()
	for _, bad := range []string{"WARNING: DATA RACE", "panic:", "goroutine ", "fatal error:"} {
		if strings.Contains(stderr, bad) {
			t.Errorf("%s: %q in its output:\n%s", what, bad, stderr)
		}
	}
}

// procHome makes an identity with `chat init` and returns the home and
// its peer ID (from `chat id --json`).
func procHome(t testing.TB, dir, name string) (string, string) {
	t.Helper()
	home := filepath.Join(dir, name)
	if r := chat(t, "init", "--home", home, "--name", name, "--no-passphrase"); r.code != 0 {
		t.Fatalf("chat init: %d %s", r.code, r.stderr)
	}
	r := chat(t, "id", "--home", home, "--json")
	var id struct {
		PeerID string `json:"peer_id"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &id); err != nil || id.PeerID == "" {
		t.Fatalf("chat id --json: %q %v", r.stdout, err)
	}
	return home, id.PeerID
}

// freePort finds a TCP port on 127.0.0.1 that is free now, so a daemon
// can come back on the same address after a restart.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// event is one JSON line of the daemon's stdout.
type event map[string]any

func (e event) str(k string) string { s, _ := e[k].(string); return s }

// daemon is a running `chat daemon --json`.
type daemon struct {
	t      testing.TB
	name   string
	home   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	logf   string
	events chan event
	done   chan struct{}
	exit   error

	mu  sync.Mutex
	all []event // every event, in order
	bad []string
}

// startDaemon runs `chat daemon --json` on home, listening on 127.0.0.1
// (port 0 for any), with more flags if given, and waits until it listens.
func startDaemon(t testing.TB, name, home string, port int, flags ...string) *daemon {
	t.Helper()
	return startDaemonArgs(t, name, home, port, append([]string{"--no-mdns"}, flags...)...)
}

// startDaemonArgs is startDaemon with other flags.
func startDaemonArgs(t testing.TB, name, home string, port int, extra ...string) *daemon {
	t.Helper()
	d := spawnDaemon(t, name, home, port, extra...)
	d.waitListening()
	return d
}

// waitListening waits until the daemon listens.
func (d *daemon) waitListening() {
	d.t.Helper()
	d.waitEvent("listening", func(e event) bool {
		a, _ := e["addrs"].([]any)
		return e.str("event") == "listening" && len(a) > 0
	})
}

// spawnDaemon is startDaemonArgs without the wait: several daemons start
// at once, then each is waited for.
func spawnDaemon(t testing.TB, name, home string, port int, extra ...string) *daemon {
	t.Helper()
	logf := filepath.Join(home, fmt.Sprintf("daemon-%d.log", time.Now().UnixNano()))
	args := []string{"daemon", "--json", "--home", home, "--log", logf}
	if port >= 0 { // a negative port: the listen addresses are in extra
		args = append(args, "--listen", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port))
	}
	args = append(args, extra...)
	cmd := exec.Command(testproc.ChatBinary(t), args...)
	cmd.Env = procEnv(home)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := os.Create(logf + ".stderr")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, name: name, home: home, cmd: cmd, stdin: stdin, logf: logf,
		events: make(chan event, 1<<16), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 64<<20)
		for sc.Scan() {
			var e event
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.str("event") == "" {
				d.mu.Lock()
				d.bad = append(d.bad, sc.Text())
				d.mu.Unlock()
				continue
			}
			d.mu.Lock()
			d.all = append(d.all, e)
			d.mu.Unlock()
			d.events <- e
		}
		d.exit = cmd.Wait()
		stderr.Close()
		close(d.events)
		close(d.done)
	}()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			cmd.Process.Kill()
			<-d.done
		}
	})
	return d
}

// addr is the daemon's full TCP multiaddr.
func (d *daemon) addr() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := len(d.all) - 1; i >= 0; i-- {
		if a, ok := d.all[i]["addrs"].([]any); ok && len(a) > 0 {
			return a[0].(string)
		}
	}
	d.t.Fatalf("%s: no address", d.name)
	return ""
}

// send writes one command line.
func (d *daemon) send(cmd map[string]any) {
	d.t.Helper()
	b, _ := json.Marshal(cmd)
	d.sendRaw(append(b, '\n'))
}

func (d *daemon) sendRaw(b []byte) {
	d.t.Helper()
	if _, err := d.stdin.Write(b); err != nil {
		d.t.Fatalf("%s: write command: %v", d.name, err)
	}
}

// waitEvent reads events until match, failing after 20 s.
func (d *daemon) waitEvent(what string, match func(event) bool) event {
	d.t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case e, ok := <-d.events:
			if !ok {
				d.t.Fatalf("%s exited (%v) while waiting for %s; log:\n%s", d.name, d.exit, what, d.log())
			}
			if match(e) {
				return e
			}
		case <-timeout:
			d.t.Fatalf("%s: timed out waiting for %s; log:\n%s", d.name, what, d.log())
		}
	}
}

// answer waits for the answer to the command with ref.
func (d *daemon) answer(ref string) event {
	d.t.Helper()
	return d.waitEvent("answer "+ref, func(e event) bool { return e.str("ref") == ref })
}

// do sends a command with a ref and returns its answer, failing on error.
func (d *daemon) do(ref string, cmd map[string]any) event {
	d.t.Helper()
	cmd["ref"] = ref
	d.send(cmd)
	e := d.answer(ref)
	if e.str("event") == "error" {
		d.t.Fatalf("%s: %v failed: %s", d.name, cmd, e.str("error"))
	}
	return e
}

func (d *daemon) log() string {
	a, _ := os.ReadFile(d.logf)
	b, _ := os.ReadFile(d.logf + ".stderr")
	s := string(a) + string(b)
	if len(s) > 4000 {
		s = "…" + s[len(s)-4000:]
	}
	return s
}

// stop waits for the daemon to exit, checks it exited 0 and wrote only
// JSON on stdout and nothing alarming on stderr.
func (d *daemon) wait(what string) {
	d.t.Helper()
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		d.cmd.Process.Kill()
		d.t.Fatalf("%s did not exit after %s", d.name, what)
	}
	if d.exit != nil {
		d.t.Fatalf("%s after %s: %v; log:\n%s", d.name, what, d.exit, d.log())
	}
	d.checkOutput()
}

func (d *daemon) checkOutput() {
	d.t.Helper()
	d.mu.Lock()
	bad := d.bad
	d.mu.Unlock()
	if len(bad) > 0 {
		d.t.Errorf("%s wrote non-JSON lines on stdout: %q", d.name, bad)
	}
	stderr, _ := os.ReadFile(d.logf + ".stderr")
	checkStderr(d.t, d.name, string(stderr))
}

// quit stops the daemon with {"cmd":"quit"}.
func (d *daemon) quit() {
	d.t.Helper()
	d.do("quit", map[string]any{"cmd": "quit"})
	d.wait("quit")
}

// term stops the daemon with SIGTERM.
func (d *daemon) term() {
	d.t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	d.wait("SIGTERM")
}

// kill9 kills the daemon with SIGKILL and waits until it is gone.
func (d *daemon) kill9() {
	d.t.Helper()
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
}

// eventsOf returns a copy of every event so far.
func (d *daemon) eventsOf(kind string) []event {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []event
	for _, e := range d.all {
		if e.str("event") == kind {
			out = append(out, e)
		}
	}
	return out
}
