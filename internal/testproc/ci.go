package testproc

import (
	"os"
	"os/exec"
	"testing"
)

// SkipUnlessCI skips t for reason (what the machine lacks), unless
// CERTCHAT_CI is set: then it fails t, since CI must not pass by skipping.
func SkipUnlessCI(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv("CERTCHAT_CI") != "" {
		t.Fatal(reason + " (CERTCHAT_CI is set: CI must run it)")
	}
	t.Skip(reason)
}

// Command returns the path of the program name (openssl, tmux, ip), or
// skips t without it, unless CERTCHAT_CI is set (SkipUnlessCI).
func Command(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		SkipUnlessCI(t, name+" is not installed: "+err.Error())
	}
	return p
}
