package ui

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/internal/testproc"
)

// The end-to-end test: two real `chat` processes in tmux on loopback,
// driven with send-keys and read with capture-pane, talk both ways.

// tmuxServer is a tmux server on its own socket, killed at cleanup.
type tmuxServer struct {
	t      *testing.T
	socket string
	dir    string // exit status files
}

func newTmux(t *testing.T) *tmuxServer {
	if _, err := exec.LookPath("tmux"); err != nil {
		testproc.SkipUnlessCI(t, "tmux is not installed: "+err.Error())
	}
	// One server per test: parallel tests must not share sessions.
	s := &tmuxServer{t: t, socket: fmt.Sprintf("certchat-test-%d-%s", os.Getpid(), t.Name()), dir: t.TempDir()}
	t.Cleanup(func() { exec.Command("tmux", "-L", s.socket, "kill-server").Run() })
	return s
}

func (s *tmuxServer) run(args ...string) string {
	s.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-L", s.socket}, args...)...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// start opens a 100x30 session running command; the pane stays after
// the command exits, so its last screen can be read. The command's exit
// status goes to a file: tmux 3.3 sometimes leaves an exited pane process
// unreaped, so the pane never reads as dead.
func (s *tmuxServer) start(name, command string) {
	status := filepath.Join(s.dir, name+".status")
	wrapped := fmt.Sprintf("%s; echo $? > %s.tmp && mv %s.tmp %s", command, status, status, status)
	s.run("new-session", "-d", "-s", name, "-x", "100", "-y", "30", wrapped)
	s.run("set-option", "-t", name, "remain-on-exit", "on")
	s.run("set-option", "-t", name, "history-limit", "20000")
}

func (s *tmuxServer) capture(name string) string { return s.run("capture-pane", "-p", "-t", name) }

// typeLine types text literally, then Enter.
func (s *tmuxServer) typeLine(name, text string) {
	s.run("send-keys", "-t", name, "-l", text)
	s.run("send-keys", "-t", name, "Enter")
}

// waitFor polls the pane until it shows every text.
func (s *tmuxServer) waitFor(name string, texts ...string) string {
	s.t.Helper()
	deadline := time.Now().Add(waitLimit * 3)
	for {
		screen := s.capture(name)
		ok := true
		for _, t := range texts {
			ok = ok && strings.Contains(screen, t)
		}
		if ok {
			return screen
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: timed out waiting for %q; the pane shows:\n%s", name, texts, screen)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitExit waits for the pane's command to exit and returns its status.
func (s *tmuxServer) waitExit(name string) string {
	s.t.Helper()
	deadline := time.Now().Add(waitLimit * 3)
	for {
		if status, err := os.ReadFile(filepath.Join(s.dir, name+".status")); err == nil {
			return strings.TrimSpace(string(status))
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s did not exit; the pane shows:\n%s\ngoroutines:\n%s", name, s.capture(name), s.dumpGoroutines(name))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dumpGoroutines makes a hung chat print its goroutines (SIGQUIT) and
// returns what the pane then shows, scrollback included.
func (s *tmuxServer) dumpGoroutines(name string) string {
	pid := strings.TrimSpace(s.run("display-message", "-p", "-t", name, "#{pane_pid}"))
	ps, _ := exec.Command("ps", "-o", "pid,ppid,stat,wchan:30,etime,args", "--pid", pid, "--ppid", pid).CombinedOutput()
	exec.Command("pkill", "-QUIT", "-P", pid).Run() // when a shell runs chat
	exec.Command("kill", "-QUIT", pid).Run()
	time.Sleep(2 * time.Second)
	return string(ps) + s.run("capture-pane", "-p", "-S", "-5000", "-t", name)
}

// chatCmd runs the chat command and returns its output.
func chatCmd(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("chat %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newHome makes a home with an identity and returns its peer ID.
func newHome(t *testing.T, bin, name string) (string, string) {
	home := filepath.Join(t.TempDir(), name)
	chatCmd(t, bin, "--home", home, "init", "--name", name, "--no-passphrase")
	var id struct {
		PeerID string `json:"peer_id"`
	}
	if err := json.Unmarshal([]byte(chatCmd(t, bin, "--home", home, "id", "--json")), &id); err != nil {
		t.Fatal(err)
	}
	return home, id.PeerID
}

func TestTmuxTwoChats(t *testing.T) {
	t.Parallel()
	tm := newTmux(t)
	bin := testproc.ChatBinary(t)
	aliceHome, aliceID := newHome(t, bin, "alice")
	bobHome, bobID := newHome(t, bin, "bob")
	chatCmd(t, bin, "--home", aliceHome, "contacts", "add", bobID, "--name", "bob")
	chatCmd(t, bin, "--home", bobHome, "contacts", "add", aliceID, "--name", "alice")
	run := func(home string) string {
		return fmt.Sprintf("%s --home %s --listen /ip4/127.0.0.1/tcp/0 --no-mdns", bin, home)
	}
	tm.start("alice", run(aliceHome))
	tm.start("bob", run(bobHome))

	// Alice's status bar says where she listens; bob adds her there.
	screen := tm.waitFor("alice", "Welcome to certchat, alice.", "listening on 127.0.0.1:")
	port := regexp.MustCompile(`listening on 127\.0\.0\.1:(\d+)`).FindStringSubmatch(screen)[1]
	tm.waitFor("bob", "Welcome to certchat, bob.")
	tm.typeLine("bob", fmt.Sprintf("/add /ip4/127.0.0.1/tcp/%s/p2p/%s", port, aliceID))
	tm.waitFor("bob", "Connected to alice", " alice  unverified: trusted on first use")

	tm.typeLine("bob", "Hello alice, it's bob.")
	// With no chat open, the message opens alice's chat with bob, which
	// shows it: bob's message is seen. The input has the focus, so typing
	// replies.
	tm.waitFor("bob", "me: Hello alice, it's bob.  ✓ seen")
	tm.waitFor("alice", " bob  unverified: trusted on first use", "bob: Hello alice, it's bob.")
	tm.typeLine("alice", "Hi bob! Loud and clear.")
	tm.waitFor("alice", "me: Hi bob! Loud and clear.  ✓ seen")
	tm.waitFor("bob", "alice: Hi bob! Loud and clear.")

	// Alice edits her message with the keys a real terminal sends:
	// Alt+Up selects it, e puts it in the input, Enter saves.
	tm.run("send-keys", "-t", "alice", "M-Up")
	tm.waitFor("alice", "Selected: e edit")
	tm.run("send-keys", "-t", "alice", "e")
	tm.waitFor("alice", "Editing your message")
	tm.typeLine("alice", " Over.")
	tm.waitFor("bob", "alice: Hi bob! Loud and clear. Over.  (edited)")
	// Bob reacts to it.
	tm.typeLine("bob", "/react 🎉")
	aliceScreen := tm.waitFor("alice", "me: Hi bob! Loud and clear. Over.  (edited)  ✓ seen", "🎉 1")
	bobScreen := tm.waitFor("bob", "🎉 1")
	t.Logf("alice at 100x30:\n%s", aliceScreen)
	t.Logf("bob at 100x30:\n%s", bobScreen)

	tm.typeLine("alice", "/quit")
	tm.run("send-keys", "-t", "bob", "C-c")
	for _, name := range []string{"alice", "bob"} {
		if status := tm.waitExit(name); status != "0" {
			t.Fatalf("%s exited with %s:\n%s", name, status, tm.capture(name))
		}
	}
	for _, home := range []string{aliceHome, bobHome} {
		if _, err := os.Stat(filepath.Join(home, "chat.log")); err != nil {
			t.Errorf("no log file: %v", err)
		}
	}
}

// SIGTERM while a long paste arrives as keystrokes (a terminal without
// bracketed paste) ends the window: tview's Stop can deadlock with tcell's
// input loop then, and the process must not hang holding the home.
func TestTmuxTermDuringFlood(t *testing.T) {
	t.Parallel()
	tm := newTmux(t)
	bin := testproc.ChatBinary(t)
	home, _ := newHome(t, bin, "alice")
	tm.start("alice", fmt.Sprintf("%s --home %s --listen /ip4/127.0.0.1/tcp/0 --no-mdns", bin, home))
	tm.waitFor("alice", "Welcome to certchat, alice.")
	paste := filepath.Join(t.TempDir(), "paste")
	if err := os.WriteFile(paste, []byte(strings.Repeat("lorem ipsum ", 5000)), 0o600); err != nil {
		t.Fatal(err)
	}
	tm.run("load-buffer", paste)
	tm.run("paste-buffer", "-t", "alice") // not -p: it arrives as keystrokes
	time.Sleep(3 * time.Second)
	pid := strings.TrimSpace(tm.run("display-message", "-p", "-t", "alice", "#{pane_pid}"))
	if out, err := exec.Command("pkill", "-TERM", "-P", pid).CombinedOutput(); err != nil {
		t.Fatalf("pkill: %v %s", err, out)
	}
	tm.waitExit("alice")
	// The home is free again: a one-shot command can open the database.
	chatCmd(t, bin, "--home", home, "history", "--json", "12D3KooWS86RMaM6ADJiLABnWEba5MZEC7M93LUVsAWSmQjDEeh9")
}
