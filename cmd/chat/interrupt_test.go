package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/internal/testproc"
)

// Ctrl+C at a passphrase prompt, on a real terminal (tmux): the prompt
// reads with echo off, and the signal used to end the process there, so
// the terminal stayed without echo (a shell that does not restore it typed
// blind). Now the command turns echo back on, says it was interrupted,
// exits with status 130 and creates nothing. A bash wrapper records the
// terminal's settings after the command, from its trap too (bash runs
// it once the command ends, whichever way).
func TestInterruptAtPassphrasePrompt(t *testing.T) {
	t.Parallel()
	tmux := testproc.Command(t, "tmux")
	bash := testproc.Command(t, "bash")
	bin := testproc.ChatBinary(t)
	dir := t.TempDir()
	socket := filepath.Join(dir, "tmux.sock")
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(tmux, append([]string{"-S", socket}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	t.Cleanup(func() { exec.Command(tmux, "-S", socket, "kill-server").Run() })
	after, home := filepath.Join(dir, "after"), filepath.Join(dir, "home")
	// Each record is written aside and renamed, and the status is shown
	// after the last: a file read once "status" shows is whole.
	script := fmt.Sprintf(`trap 'stty -a > %[1]s.tmp; mv %[1]s.tmp %[1]s' INT; stty -a > %[1]s.before; %[2]s --home %[3]s init --name alice; s=$?; stty -a > %[1]s.tmp; mv %[1]s.tmp %[1]s; echo "status $s"; sleep 60`, after, bin, home)
	run("new-session", "-d", "-s", "t", "-x", "100", "-y", "20", bash+" -c "+shellQuote(script))
	waitScreen(t, run, "Choose a passphrase")
	if before, err := os.ReadFile(after + ".before"); err != nil || !strings.Contains(" "+string(before), " echo ") {
		t.Fatalf("the terminal had no echo to begin with (%v):\n%s", err, before)
	}
	run("send-keys", "-t", "t", "sec")
	run("send-keys", "-t", "t", "C-c")
	screen := waitScreen(t, run, "status ")
	if !strings.Contains(screen, "chat: interrupted") || !strings.Contains(screen, "status 130") {
		t.Errorf("after Ctrl+C the screen shows:\n%s", screen)
	}
	settings, err := os.ReadFile(after)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(settings), "-echo ") || !strings.Contains(" "+string(settings), " echo ") {
		t.Errorf("echo is off after Ctrl+C at the passphrase prompt:\n%s", settings)
	}
	if _, err := os.Stat(filepath.Join(home, "identity.key")); !os.IsNotExist(err) {
		t.Errorf("an interrupted init left a key: %v", err)
	}
}

// waitScreen waits until the pane shows text, and returns it.
func waitScreen(t *testing.T, run func(...string) string, text string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		screen := run("capture-pane", "-p", "-t", "t")
		if strings.Contains(screen, text) {
			return screen
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %q; the pane shows:\n%s", text, screen)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
