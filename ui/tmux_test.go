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

// tmuxServer is a tmux server on its own socket, killed at cleanup. The
// socket is in the test's temporary folder (tmux -S), not in
// /tmp/tmux-UID, so nothing of it is left behind.
type tmuxServer struct {
	t      *testing.T
	socket string // path
	dir    string // exit status files
}

func newTmux(t *testing.T) *tmuxServer {
	if _, err := exec.LookPath("tmux"); err != nil {
		testproc.SkipUnlessCI(t, "tmux is not installed: "+err.Error())
	}
	// One server per test: parallel tests must not share sessions.
	dir := t.TempDir()
	s := &tmuxServer{t: t, socket: filepath.Join(dir, "tmux.sock"), dir: dir}
	t.Cleanup(func() {
		exec.Command("tmux", "-S", s.socket, "kill-server").Run()
		os.Remove(s.socket)
	})
	return s
}

func (s *tmuxServer) run(args ...string) string {
	s.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", s.socket}, args...)...).CombinedOutput()
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
	s.run("set-option", "-s", "set-clipboard", "on") // OSC 52 from the window lands in a paste buffer
	s.run("set-option", "-t", name, "remain-on-exit", "on")
	s.run("set-option", "-t", name, "history-limit", "20000")
}

func (s *tmuxServer) capture(name string) string { return s.run("capture-pane", "-p", "-t", name) }

// buffer is tmux's newest paste buffer, where OSC 52 copies land; it
// waits a little for one to appear.
func (s *tmuxServer) buffer() string {
	s.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		out, err := exec.Command("tmux", "-S", s.socket, "show-buffer").CombinedOutput()
		if err == nil || time.Now().After(deadline) {
			return string(out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

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
	aliceHome, _ := newHome(t, bin, "alice")
	bobHome, bobID := newHome(t, bin, "bob")
	chatCmd(t, bin, "--home", aliceHome, "contacts", "add", bobID, "--name", "bob")
	// Loopback only, LAN discovery left on: it turns itself off.
	run := func(home string) string {
		return fmt.Sprintf("%s --home %s --listen /ip4/127.0.0.1/tcp/0", bin, home)
	}
	tm.start("alice", run(aliceHome))
	tm.start("bob", run(bobHome))

	// Alice's /id shows her invitation; bob adds her with it, read off
	// her screen as a person would copy it.
	tm.waitFor("alice", "Welcome to certchat, alice.", "127.0.0.1:", "LAN off")
	tm.typeLine("alice", "/id")
	invitation := invitationOn(t, tm.waitFor("alice", "Your invitation", "CERTCHAT:", "█████"))
	// c copies it with OSC 52, which tmux takes into its paste buffer
	// (set-clipboard on).
	tm.run("send-keys", "-t", "alice", "c")
	tm.waitFor("alice", "Your invitation: copied to the clipboard")
	if buf := tm.buffer(); buf != invitation {
		t.Errorf("tmux's paste buffer after c: %q, want the invitation %q", buf, invitation)
	}
	tm.run("send-keys", "-t", "alice", "Escape")
	tm.waitFor("bob", "Welcome to certchat, bob.")
	tm.typeLine("bob", "/add "+invitation)
	tm.waitFor("bob", "Connected to alice", " alice  unverified: trusted on first use")

	// What alice's window writes to the terminal, as bytes.
	out := filepath.Join(t.TempDir(), "alice.out")
	tm.run("pipe-pane", "-o", "-t", "alice", "cat >> "+out)
	tm.typeLine("bob", "Hello alice, it's bob.")
	// With no chat open, the message opens alice's chat with bob, which
	// shows it: bob's message is seen. The input has the focus, so typing
	// replies.
	tm.waitFor("bob", "me: Hello alice, it's bob.  ✓ seen")
	tm.waitFor("alice", " bob  unverified: trusted on first use", "bob: Hello alice, it's bob.")
	// It came to a chat that was not open: the bell rang.
	waitBytes(t, out, "\a")

	// A message with lines: Alt+Enter (ESC CR) breaks the line.
	tm.run("send-keys", "-t", "bob", "-l", "first line")
	tm.run("send-keys", "-t", "bob", "M-Enter")
	tm.run("send-keys", "-t", "bob", "-l", "second line")
	tm.run("send-keys", "-t", "bob", "Enter")
	screen := tm.waitFor("alice", "bob: first line", "second line")
	_, y, _ := findIn(screen, "bob: first line", false)
	if x2, y2, _ := findIn(screen, "second line", false); y2 != y+1 || x2 < 10 {
		t.Fatalf("the second line is not under the first:\n%s", screen)
	}
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

// invitationOn reads the invitation /id shows: the lines from the one
// that starts with CERTCHAT: to the first blank one, inside the dialog's
// borders.
func invitationOn(t *testing.T, screen string) string {
	t.Helper()
	piece := regexp.MustCompile(`[║│]([A-Z2-7:]+)\s*[║│]`)
	var b strings.Builder
	for _, line := range strings.Split(screen, "\n") {
		m := piece.FindStringSubmatch(line)
		switch {
		case m != nil && strings.HasPrefix(m[1], "CERTCHAT:"):
			b.WriteString(m[1])
		case m != nil && b.Len() > 0:
			b.WriteString(m[1])
		case b.Len() > 0:
			return b.String()
		}
	}
	t.Fatalf("no invitation on the screen:\n%s", screen)
	return ""
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

// waitBytes waits until the file holds every one of wants.
func waitBytes(t *testing.T, path string, wants ...string) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		data, _ := os.ReadFile(path)
		ok := true
		for _, w := range wants {
			ok = ok && strings.Contains(string(data), w)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pane's output never held %q; it holds %d bytes, ending %q", wants, len(data), data[max(0, len(data)-300):])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tmuxTitleUntil presses Tab in a pane until its title row (the first)
// shows text.
func (s *tmuxServer) tabUntil(name, text string) string {
	s.t.Helper()
	deadline := time.Now().Add(waitLimit * 3)
	for {
		screen := s.capture(name)
		if title, _, _ := strings.Cut(screen, "\n"); strings.Contains(title, text) {
			return screen
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: no chat has the title %q; the pane shows:\n%s", name, text, screen)
		}
		s.run("send-keys", "-t", name, "Tab")
		time.Sleep(300 * time.Millisecond)
	}
}

var listenPort = regexp.MustCompile(`127\.0\.0\.1:(\d+)`)

// A group of three in three real windows: alice makes it with bob and
// carol, each sees it in the chat list and opens it, and what two of
// them write reaches the other two, with its sender's name.
func TestTmuxGroupOfThree(t *testing.T) {
	t.Parallel()
	tm := newTmux(t)
	bin := testproc.ChatBinary(t)
	names := []string{"alice", "bob", "carol"}
	homes, ids := map[string]string{}, map[string]string{}
	for _, n := range names {
		homes[n], ids[n] = newHome(t, bin, n)
	}
	// Each knows the others' keys (as after comparing them): no first
	// contact question.
	for _, n := range names {
		for _, m := range names {
			if n != m {
				chatCmd(t, bin, "--home", homes[n], "contacts", "add", ids[m], "--name", m)
			}
		}
	}
	addrs := map[string]string{}
	for _, n := range names {
		tm.start(n, fmt.Sprintf("%s --home %s --listen /ip4/127.0.0.1/tcp/0 --no-mdns", bin, homes[n]))
		m := listenPort.FindStringSubmatch(tm.waitFor(n, "Welcome to certchat, "+n+".", "listening on 127.0.0.1:"))
		addrs[n] = fmt.Sprintf("/ip4/127.0.0.1/tcp/%s/p2p/%s", m[1], ids[n])
	}
	// Bob reaches alice and carol, carol reaches alice: every pair has a
	// session.
	tm.typeLine("bob", "/add "+addrs["alice"])
	tm.waitFor("bob", "Connected to alice")
	tm.typeLine("bob", "/add "+addrs["carol"])
	tm.waitFor("bob", "Connected to carol")
	tm.typeLine("carol", "/add "+addrs["alice"])
	tm.waitFor("carol", "Connected to alice")

	tm.typeLine("alice", "/group create team bob carol")
	tm.waitFor("alice", "Group team made with 3 members", "# team")
	tm.tabUntil("alice", " team  3 members: you, 2 unverified  you: admin")
	for _, n := range []string{"bob", "carol"} {
		tm.waitFor(n, "# team", "3 members")
		tm.tabUntil(n, " team  3 members: you, 2 unverified")
	}

	tm.typeLine("alice", "Hello team, it's alice.")
	tm.waitFor("bob", "alice: Hello team, it's alice.")
	tm.waitFor("carol", "alice: Hello team, it's alice.")
	tm.waitFor("alice", "me: Hello team, it's alice.  ✓ delivered to all 2")

	tm.typeLine("bob", "Bob here.")
	tm.waitFor("alice", "bob: Bob here.")
	tm.waitFor("carol", "bob: Bob here.")
	tm.waitFor("bob", "me: Bob here.  ✓ delivered to all 2")

	tm.typeLine("carol", "Carol too.")
	aliceScreen := tm.waitFor("alice", "bob: Bob here.", "carol: Carol too.")
	tm.waitFor("bob", "carol: Carol too.")
	t.Logf("alice at 100x30:\n%s", aliceScreen)

	for _, n := range names {
		tm.typeLine(n, "/quit")
	}
	for _, n := range names {
		if status := tm.waitExit(n); status != "0" {
			t.Fatalf("%s exited with %s:\n%s", n, status, tm.capture(n))
		}
	}
}
