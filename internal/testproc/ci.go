package testproc

import (
	"os"
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
