package relay_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/internal/boltfile/bolttest"
	"github.com/certchat/certchat/internal/testproc"
	"github.com/certchat/certchat/relay"
	bolt "go.etcd.io/bbolt"
)

// A damaged mailbox.db (truncated, or bytes flipped in the pages bbolt
// reads) stops the relay at start with an error naming the file and the
// remedy: no fault, no panic, no silent fresh mailbox, the file unchanged.

// mailboxSource is a healthy mailbox.db with mail for a few recipients:
// enough records for branch pages.
func mailboxSource(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mailbox.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range []string{"bundles", "usage", "otec", "otkem", "pairs", "seen"} {
			if _, err := tx.CreateBucket([]byte(name)); err != nil {
				return err
			}
		}
		mail, err := tx.CreateBucket([]byte("mail"))
		if err != nil {
			return err
		}
		for r := range 3 {
			b, err := mail.CreateBucket([]byte(fmt.Sprintf("recipient-%d", r)))
			if err != nil {
				return err
			}
			for i := range 300 {
				if err := b.Put(fmt.Appendf(nil, "%08d", i), bytes.Repeat([]byte{byte(i)}, 120)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestNewServerDamagedMailbox(t *testing.T) {
	src := mailboxSource(t)
	t.Log(bolttest.Inspect(t, src))
	for _, c := range bolttest.Damages(t, src) {
		t.Run(c.Name, func(t *testing.T) {
			home := identity.Home{Dir: t.TempDir()}
			path := home.Path("mailbox.db")
			bolttest.Write(t, path, c)
			var srv *relay.Server
			err := func() (err error) {
				defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
				defer func() {
					if r := recover(); r != nil {
						err = fmt.Errorf("panic: %v", r)
					}
				}()
				srv, err = relay.NewServer(relay.Config{Home: home, Listen: []string{"/ip4/127.0.0.1/tcp/0"}})
				return err
			}()
			if srv != nil {
				srv.Close()
			}
			if !c.Damaged {
				if err != nil {
					t.Fatalf("a consistent file is refused: %v", err)
				}
				return
			}
			var de *relay.DamagedError
			if !errors.As(err, &de) || de.Path != path {
				t.Fatalf("NewServer: got %v, want a *relay.DamagedError naming %s", err, path)
			}
			for _, want := range []string{path, "damaged", "restore it from a backup", "move it away"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the error %q does not say %q", err, want)
				}
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, c.Data) {
				t.Errorf("the damaged file was changed (%d bytes, was %d)", len(got), len(c.Data))
			}
		})
	}
}

// The real `chat relay` process on each damaged mailbox.db: it exits 1
// at once with one line naming the file and the remedy, no stack trace.
func TestRelayProcessDamagedMailbox(t *testing.T) {
	bin := testproc.ChatBinary(t)
	src := mailboxSource(t)
	for _, c := range bolttest.Damages(t, src) {
		if !c.Damaged {
			continue
		}
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			home := t.TempDir()
			path := filepath.Join(home, "mailbox.db")
			bolttest.Write(t, path, c)
			cmd := exec.Command(bin, "relay", "--home", home, "--listen", "/ip4/127.0.0.1/tcp/0")
			cmd.Env = append(os.Environ(), "CERTCHAT_LOG=", "GORACE=atexit_sleep_ms=0")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			var err error
			select {
			case err = <-done:
			case <-time.After(60 * time.Second):
				cmd.Process.Kill()
				<-done
				t.Fatalf("the relay still runs on a damaged mailbox.db; stdout:\n%s\nstderr:\n%s", stdout.Bytes(), stderr.Bytes())
			}
			wantDamagedExit(t, err, stderr.String(), path)
			if got, _ := os.ReadFile(path); !bytes.Equal(got, c.Data) {
				t.Errorf("the damaged file was changed (%d bytes, was %d)", len(got), len(c.Data))
			}
		})
	}
}

// wantDamagedExit checks a process's end on a damaged database file.
func wantDamagedExit(t *testing.T, err error, stderr, path string) {
	t.Helper()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("exit: %v, want exit status 1", err)
	}
	for _, bad := range []string{"goroutine ", "panic:", "SIGSEGV", "SIGBUS", "fatal error"} {
		if strings.Contains(stderr, bad) {
			t.Fatalf("stderr has %q:\n%s", bad, stderr)
		}
	}
	for _, want := range []string{path, "is damaged", "restore it from a backup", "move it away"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not say %q:\n%s", want, stderr)
		}
	}
}
