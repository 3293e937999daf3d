//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/certchat/certchat/store"
)

// chat send and chat history say that a chat window holds the home
// before asking for the passphrase: the key is encrypted here and no
// passphrase is given, so asking first would fail with a passphrase
// error instead.
func TestSendHistoryBusyBeforePassphrase(t *testing.T) {
	noPassphraseEnv(t)
	base := t.TempDir()
	dir := filepath.Join(base, "alice")
	t.Setenv(envPassphrase, "correct horse battery staple")
	mustRun(t, "--home", dir, "init", "--name", "alice")
	_, bob := newHome(t, filepath.Join(base, "bob"), "bob")
	mustRun(t, "--home", dir, "contacts", "add", bob, "--name", "bob")
	os.Unsetenv(envPassphrase)

	// A chat window holds the database: bbolt's flock on chat.db.
	f, err := os.OpenFile(filepath.Join(dir, store.FileName), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"send", "--to", "bob", "--no-mdns", "hi"},
		{"history", "bob"},
	} {
		code, _, errOut := runIn(t, append([]string{"--home", dir}, args...)...)
		if code != 1 || !strings.Contains(errOut, store.ErrBusy.Error()) || strings.Contains(strings.ToLower(errOut), "passphrase") {
			t.Errorf("chat %s while a window holds the home: exit %d, %q", args[0], code, errOut)
		}
	}
}
