package testproc

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// RelayOptions are the settings of a `chat relay` process. The zero value
// is a relay with a fresh home listening on 127.0.0.1 on a free TCP port,
// with the default limits.
type RelayOptions struct {
	// Listen is the multiaddr to listen on; default /ip4/127.0.0.1/tcp/0.
	Listen string
	// Args are more `chat relay` flags: limits, --record-dir, ...
	Args []string
	// Env is added to the relay's environment, which is this process's
	// with CERTCHAT_LOG emptied (the relay logs to its stderr).
	Env []string
	// Wrap runs the binary under a command, e.g. {"taskset", "-c", "1"}.
	Wrap []string
	// Stderr receives the relay's log. By default the helper keeps its
	// last 64 KiB ([Relay.Log]) and logs them when the test fails; with
	// Stderr set, that is the caller's business.
	Stderr io.Writer
	// Timeout is how long the relay may take to print its address;
	// default 30s.
	Timeout time.Duration
	// Grace is how the relay is stopped at the test's cleanup: 0 kills
	// it; more sends SIGTERM and kills it only if it has not exited
	// within Grace.
	Grace time.Duration
}

// Relay is a running `chat relay` process.
type Relay struct {
	// Addr is the first address the relay printed, with /p2p/<id>.
	Addr string
	// Info is Addr parsed.
	Info peer.AddrInfo
	// Cmd is the process.
	Cmd *exec.Cmd
	// Args are the arguments of the chat binary (without Wrap).
	Args []string

	stdout *lineWriter
	log    *tailBuffer // nil with RelayOptions.Stderr
	done   chan struct{}
	err    error // of Cmd.Wait, once done is closed
}

// StartRelay starts `chat relay` with the chat binary of ChatBinary, in a
// home of its own (a t.TempDir), waits for it to print its address and
// returns it. It fails t if the relay exits or prints no address in time.
// At the test's cleanup the relay is stopped (see RelayOptions.Grace) and
// waited for.
func StartRelay(t testing.TB, opts RelayOptions) *Relay {
	t.Helper()
	bin := ChatBinary(t)
	listen := opts.Listen
	if listen == "" {
		listen = "/ip4/127.0.0.1/tcp/0"
	}
	args := append([]string{"relay", "--home", t.TempDir(), "--listen", listen}, opts.Args...)
	name, argv := bin, args
	if len(opts.Wrap) > 0 {
		name, argv = opts.Wrap[0], append(append(append([]string{}, opts.Wrap[1:]...), bin), args...)
	}
	cmd := exec.Command(name, argv...)
	cmd.Env = append(append(os.Environ(), "CERTCHAT_LOG="), opts.Env...)
	r := &Relay{Cmd: cmd, Args: args, stdout: &lineWriter{first: make(chan struct{})}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = r.stdout, opts.Stderr
	if opts.Stderr == nil {
		r.log = &tailBuffer{max: 64 << 10}
		cmd.Stderr = r.log
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		r.err = cmd.Wait()
		close(r.done)
	}()
	t.Cleanup(func() {
		if opts.Grace > 0 {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-r.done:
			case <-time.After(opts.Grace):
			}
		}
		r.Kill()
		if r.log != nil && t.Failed() {
			t.Logf("relay log (last 64 KiB):\n%s", r.Log())
		}
	})
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	select {
	case <-r.stdout.first:
	case <-r.done:
		t.Fatalf("the relay exited before printing its address: %v\n%s", r.err, r.Log())
	case <-time.After(timeout):
		t.Fatalf("the relay printed no address in %v\n%s", timeout, r.Log())
	}
	r.Addr = r.Addrs()[0]
	addr, err := ma.NewMultiaddr(r.Addr)
	if err != nil {
		t.Fatalf("the relay's address %q: %v", r.Addr, err)
	}
	info, err := peer.AddrInfoFromP2pAddr(addr)
	if err != nil {
		t.Fatalf("the relay's address %q: %v", r.Addr, err)
	}
	r.Info = *info
	return r
}

// Addrs are the addresses the relay has printed so far, one per line.
func (r *Relay) Addrs() []string {
	r.stdout.mu.Lock()
	defer r.stdout.mu.Unlock()
	return append([]string(nil), r.stdout.lines...)
}

// Stop sends SIGTERM and waits for the relay to exit; it returns what
// Cmd.Wait returned.
func (r *Relay) Stop() error {
	select {
	case <-r.done:
	default:
		r.Cmd.Process.Signal(syscall.SIGTERM)
	}
	return r.Wait()
}

// Kill kills the relay and waits for it to exit; it returns what Cmd.Wait
// returned.
func (r *Relay) Kill() error {
	select {
	case <-r.done:
	default:
		r.Cmd.Process.Kill()
	}
	return r.Wait()
}

// Wait waits for the relay to exit and returns what Cmd.Wait returned.
func (r *Relay) Wait() error {
	<-r.done
	return r.err
}

// Done is closed when the relay has exited.
func (r *Relay) Done() <-chan struct{} { return r.done }

// Exited reports whether the relay has exited, and then how.
func (r *Relay) Exited() (bool, error) {
	select {
	case <-r.done:
		return true, r.err
	default:
		return false, nil
	}
}

// Log is the end of the relay's log (its stderr), unless
// RelayOptions.Stderr took it.
func (r *Relay) Log() string {
	if r.log == nil {
		return "(the relay's log went to RelayOptions.Stderr)"
	}
	return r.log.String()
}

// lineWriter keeps the lines written to it; first is closed at the first
// complete line.
type lineWriter struct {
	mu    sync.Mutex
	buf   []byte
	lines []string
	first chan struct{}
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		if len(w.lines) == 0 {
			close(w.first)
		}
		w.lines = append(w.lines, strings.TrimSpace(string(w.buf[:i])))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	b   []byte
	max int
}

func (w *tailBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b = append(w.b, p...)
	if over := len(w.b) - w.max; over > 0 {
		w.b = append(w.b[:0], w.b[over:]...)
	}
	return len(p), nil
}

func (w *tailBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.b)
}
