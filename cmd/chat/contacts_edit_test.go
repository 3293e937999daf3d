package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// contacts rename and contacts add --name refuse a name that reads like
// another contact's, as the window's /rename does; contacts unblock undoes
// contacts block.
func TestContactsRenameAndUnblock(t *testing.T) {
	noPassphraseEnv(t)
	base := t.TempDir()
	dir := filepath.Join(base, "alice")
	newHome(t, dir, "Alice")
	_, bob := newHome(t, filepath.Join(base, "bob"), "Bob")
	_, carol := newHome(t, filepath.Join(base, "carol"), "Carol")
	mustRun(t, "--home", dir, "contacts", "add", bob, "--name", "bob")
	mustRun(t, "--home", dir, "contacts", "add", carol, "--name", "carol")

	out, _ := mustRun(t, "--home", dir, "contacts", "rename", "bob", "Robert")
	if !strings.Contains(out, "Renamed bob") || !strings.Contains(out, "to Robert.") {
		t.Errorf("rename: %q", out)
	}
	for _, name := range []string{"ROBERT", "Rоbert" /* Cyrillic о */, "robert."} {
		code, _, errOut := runIn(t, "--home", dir, "contacts", "rename", "carol", name)
		if code != 1 || !strings.Contains(errOut, "reads the same as your contact") {
			t.Errorf("rename carol to %q: exit %d, %q", name, code, errOut)
		}
	}
	_, dave := newHome(t, filepath.Join(base, "dave"), "Dave")
	if code, _, errOut := runIn(t, "--home", dir, "contacts", "add", dave, "--name", "robert"); code != 1 || !strings.Contains(errOut, "reads the same as your contact") {
		t.Errorf("add with another contact's name: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runIn(t, "--home", dir, "contacts", "rename", "nobody", "x"); code != 1 || !strings.Contains(errOut, "no such contact") {
		t.Errorf("rename of nobody: exit %d, %q", code, errOut)
	}

	if code, _, errOut := runIn(t, "--home", dir, "contacts", "unblock", "carol"); code != 1 || !strings.Contains(errOut, "not blocked") {
		t.Errorf("unblock of a contact not blocked: exit %d, %q", code, errOut)
	}
	mustRun(t, "--home", dir, "contacts", "block", "carol")
	out, _ = mustRun(t, "--home", dir, "contacts", "unblock", "carol")
	if !strings.Contains(out, "Unblocked carol") {
		t.Errorf("unblock: %q", out)
	}
	list, _ := mustRun(t, "--home", dir, "contacts", "list")
	if !strings.Contains(list, "Robert") || strings.Contains(list, "untrusted") {
		t.Errorf("list:\n%s", list)
	}
}
