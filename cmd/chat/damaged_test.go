package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/internal/boltfile/bolttest"
	"github.com/certchat/certchat/internal/testproc"
	"github.com/certchat/certchat/store"
)

// A damaged chat.db: every command that opens it (history without a
// daemon, the daemon, send) exits 1 with one line naming the file and the
// remedy, never a panic or a fault, and leaves the file as it was.

// damagedHome is a home with an identity (no passphrase) and a chat.db
// holding n messages with one peer; it returns the home and the peer.
func damagedHome(t *testing.T, n int) (identity.Home, string) {
	t.Helper()
	h := identity.Home{Dir: filepath.Join(t.TempDir(), "home")}
	id, err := h.Init("Alice", nil, identity.DefaultKDF, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	bob, err := identity.Generate("Bob", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	s, err := store.OpenIdentity(h.Path(store.FileName), id)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-time.Hour)
	var ms []*store.Message
	for i := range n {
		ms = append(ms, &store.Message{ID: e2e.NewMessageID(), Peer: bob.PeerID(), Direction: store.Incoming,
			SentAt: at, StoredAt: at, Body: fmt.Sprintf("message %d %s", i, strings.Repeat("x", 100))})
	}
	if err := s.Import(ms); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return h, bob.PeerID().String()
}

// runChat runs the real chat binary and returns its stderr and exit error;
// a process still running after a minute fails the test.
func runChat(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "CERTCHAT_LOG=", "CERTCHAT_HOME=", "GORACE=atexit_sleep_ms=0")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return stderr.String(), err
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("chat %s still runs on a damaged chat.db; stdout:\n%s\nstderr:\n%s", strings.Join(args, " "), stdout.Bytes(), stderr.Bytes())
		return "", nil
	}
}

func TestDamagedChatDB(t *testing.T) {
	bin := testproc.ChatBinary(t)
	src, bob := damagedHome(t, 400)
	srcDB := src.Path(store.FileName)
	t.Log(bolttest.Inspect(t, srcDB))
	for _, c := range bolttest.Damages(t, srcDB) {
		if !c.Damaged {
			continue
		}
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			home := filepath.Join(t.TempDir(), "home")
			if err := os.CopyFS(home, os.DirFS(src.Dir)); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(home, 0o700); err != nil { // CopyFS makes it 0755: a warning on stderr
				t.Fatal(err)
			}
			path := filepath.Join(home, store.FileName)
			bolttest.Write(t, path, c)
			for _, args := range [][]string{
				{"--home", home, "history", bob},
				{"--home", home, "daemon", "--json", "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"},
				{"--home", home, "send", "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0", "--wait", "1s", "--to", bob, "hi"},
			} {
				stderr, err := runChat(t, bin, args...)
				wantDamagedExit(t, strings.Join(args[2:4], " "), err, stderr, path)
				if got, _ := os.ReadFile(path); !bytes.Equal(got, c.Data) {
					t.Fatalf("chat %s changed the damaged file (%d bytes, was %d)", args[2], len(got), len(c.Data))
				}
			}
		})
	}
}

// wantDamagedExit checks a chat process's end on a damaged database file:
// exit status 1, one line "chat: ..." naming the file and the remedy, no
// stack trace.
func wantDamagedExit(t *testing.T, what string, err error, stderr, path string) {
	t.Helper()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("%s: exit %v, want exit status 1; stderr:\n%s", what, err, stderr)
	}
	for _, bad := range []string{"goroutine ", "panic:", "SIGSEGV", "SIGBUS", "fatal error"} {
		if strings.Contains(stderr, bad) {
			t.Fatalf("%s: stderr has %q:\n%s", what, bad, stderr)
		}
	}
	line := strings.TrimSuffix(stderr, "\n")
	if strings.Contains(line, "\n") || !strings.HasPrefix(line, "chat: ") {
		t.Errorf("%s: stderr is not one line \"chat: ...\":\n%s", what, stderr)
	}
	for _, want := range []string{path, "is damaged", "restore it from a backup", "move it away to start with an empty history"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("%s: stderr does not say %q:\n%s", what, want, stderr)
		}
	}
}
