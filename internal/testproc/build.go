package testproc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// ChatPackage is the package ChatBinary builds.
const ChatPackage = "github.com/certchat/certchat/cmd/chat"

// dirPrefix names the build folders: dirPrefix<pid>-<random>.
const dirPrefix = "certchat-testproc-"

// staleAge is how old a dead process's build folder must be before another
// process removes it: a process that is not in /proc may be in another PID
// namespace sharing this temporary folder, still running.
const staleAge = time.Hour

var (
	buildMu  sync.Mutex
	buildDir string // the folder of this process's build, removed by Run
	chatBin  string
	buildErr error
)

// ChatBinary returns the path of the chat binary, building it on first use
// in this process (tests that do not run it do not pay for the build): with
// -race when this binary has the race detector. A failed build fails t with
// the build's output, and every later call fails the same way.
//
// The test that builds it logs how long the build took: it is part of that
// test's time (a race-enabled link takes 2–4 s on a quiet 2-core machine,
// 7–10 s or more when other builds and tests share the CPU), so a slow first
// relay test shows why in -v output rather than looking like a slow
// delivery.
func ChatBinary(t testing.TB) string {
	t.Helper()
	path, took, err := chatBinary()
	if err != nil {
		t.Fatal(err)
	}
	if took > 0 {
		t.Logf("testproc: built the chat binary in %v (once per test process, counted in this test's time)", took.Round(time.Millisecond))
	}
	return path
}

// chatBinary builds the chat binary unless it is built already; took is
// how long this call spent building, zero if it did not.
func chatBinary() (path string, took time.Duration, err error) {
	buildMu.Lock()
	defer buildMu.Unlock()
	if chatBin != "" || buildErr != nil {
		return chatBin, 0, buildErr
	}
	start := time.Now()
	removeStale()
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", dirPrefix, os.Getpid()))
	if err != nil {
		buildErr = err
		return "", 0, err
	}
	buildDir = dir
	out := filepath.Join(dir, "chat")
	args := buildArgs(out)
	// `go test` puts its own GOROOT/bin first in PATH: this is its go.
	if msg, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		buildErr = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, msg)
		return "", 0, buildErr
	}
	chatBin = out
	return chatBin, time.Since(start), nil
}

// buildArgs are the arguments of `go` that build the chat binary to out.
func buildArgs(out string) []string {
	args := []string{"build", "-o", out}
	if RaceEnabled {
		args = append(args, "-race")
	}
	return append(args, ChatPackage)
}

// removeStale removes the build folders of test processes that are gone.
func removeStale() {
	old, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, dir := range old {
		f := strings.SplitN(strings.TrimPrefix(filepath.Base(dir), dirPrefix), "-", 2)
		pid, err := strconv.Atoi(f[0])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); !errors.Is(err, os.ErrNotExist) {
			continue // alive, or no /proc to tell
		}
		if fi, err := os.Stat(dir); err == nil && time.Since(fi.ModTime()) > staleAge {
			os.RemoveAll(dir)
		}
	}
}

// Cleanup removes the chat binary built by this process, if any. Run calls
// it; a later ChatBinary builds again.
func Cleanup() {
	buildMu.Lock()
	defer buildMu.Unlock()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	buildDir, chatBin, buildErr = "", "", nil
}

// Run runs the tests and then removes the chat binary they built; it
// returns m.Run's exit code. Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testproc.Run(m)) }
func Run(m *testing.M) int {
	defer Cleanup()
	return m.Run()
}
