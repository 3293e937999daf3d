package testproc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestMain(m *testing.M) { os.Exit(Run(m)) }

// The binary is built once, race-aware, into this process's folder.
func TestChatBinaryOnce(t *testing.T) {
	a := ChatBinary(t)
	b := ChatBinary(t)
	if a != b {
		t.Fatalf("built twice: %s, %s", a, b)
	}
	if _, took, err := chatBinary(); err != nil || took != 0 {
		t.Fatalf("a later call reports a build of %v (err %v)", took, err)
	}
	if fi, err := os.Stat(a); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("no executable at %s: %v", a, err)
	}
	if !strings.HasPrefix(filepath.Base(filepath.Dir(a)), dirPrefix) {
		t.Errorf("built in %s, not a %s* folder", filepath.Dir(a), dirPrefix)
	}
	info, err := exec.Command("go", "version", "-m", a).CombinedOutput()
	if err != nil {
		t.Fatalf("go version -m: %v\n%s", err, info)
	}
	if got := strings.Contains(string(info), "-race=true"); got != RaceEnabled {
		t.Errorf("the chat binary has the race detector: %v; this test binary: %v\n%s", got, RaceEnabled, info)
	}
}

// A relay prints a multiaddr ending in /p2p/<its ID>; Kill ends the
// process, and a second Kill or Stop only reports how it ended.
func TestStartRelay(t *testing.T) {
	r := StartRelay(t, RelayOptions{Args: []string{"--max-reservations", "3"}})
	if !strings.HasPrefix(r.Addr, "/ip4/127.0.0.1/tcp/") || !strings.HasSuffix(r.Addr, "/p2p/"+r.Info.ID.String()) {
		t.Fatalf("address %q, ID %s", r.Addr, r.Info.ID)
	}
	if len(r.Info.Addrs) != 1 || len(r.Addrs()) != 1 {
		t.Fatalf("addresses %v, printed %q", r.Info.Addrs, r.Addrs())
	}
	if exited, err := r.Exited(); exited {
		t.Fatalf("the relay exited: %v\n%s", err, r.Log())
	}
	if !strings.Contains(r.Log(), "relay started") || !strings.Contains(r.Log(), "reservations=3") {
		t.Errorf("the log does not show the relay's start with the flags given:\n%s", r.Log())
	}
	err := r.Kill()
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("Kill: %v", err)
	}
	select {
	case <-r.Done():
	default:
		t.Fatal("Done is not closed after Kill")
	}
	if err2 := r.Stop(); err2 != err {
		t.Fatalf("Stop after Kill: %v, want %v", err2, err)
	}
}

// A relay that cannot start fails the test with its log; its cleanup does
// not hang.
func TestStartRelayFails(t *testing.T) {
	ft := &fakeT{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		StartRelay(ft, RelayOptions{Listen: "not-a-multiaddr"})
	}()
	<-done
	ft.cleanup()
	if !strings.Contains(ft.fatal, "exited before printing its address") {
		t.Fatalf("failed with %q", ft.fatal)
	}
}

// fakeT records a fatal failure instead of failing the test; its TempDir
// is the real test's.
type fakeT struct {
	testing.TB
	fatal    string
	cleanups []func()
}

func (f *fakeT) Helper()             {}
func (f *fakeT) Cleanup(fn func())   { f.cleanups = append(f.cleanups, fn) }
func (f *fakeT) Failed() bool        { return f.fatal != "" }
func (f *fakeT) Logf(string, ...any) {}
func (f *fakeT) Fatal(args ...any)   { f.fatal = fmt.Sprint(args...); runtime.Goexit() }
func (f *fakeT) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (f *fakeT) cleanup() {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}
