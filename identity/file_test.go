package identity

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// dirNames lists a folder.
func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "secret")

	if err := WriteFileAtomic(path, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	if got := readFile(t, path); string(got) != "one" {
		t.Errorf("content %q", got)
	}

	// Replacing: new content, the requested mode, nothing else left over.
	os.Chmod(path, 0o666)
	if err := WriteFileAtomic(path, []byte("two, longer"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); string(got) != "two, longer" {
		t.Errorf("content %q", got)
	}
	st, _ = os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode after replace %v", st.Mode().Perm())
	}
	if err := WriteFileAtomic(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); len(got) != 0 {
		t.Errorf("empty write left %q", got)
	}
	st, _ = os.Stat(path)
	if st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", st.Mode().Perm())
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"secret"}) {
		t.Errorf("folder holds %v: temporary files left", names)
	}
}

func TestWriteFileAtomicFailureKeepsOld(t *testing.T) {
	t.Run("missing folder", func(t *testing.T) {
		dir := t.TempDir()
		err := WriteFileAtomic(filepath.Join(dir, "nope", "f"), []byte("x"), 0o600)
		if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "nope", "f")) {
			t.Fatalf("error %v should name the file", err)
		}
		if names := dirNames(t, dir); len(names) != 0 {
			t.Errorf("left %v", names)
		}
	})
	t.Run("rename fails after the temporary file is written", func(t *testing.T) {
		// path is a non-empty folder: the rename fails, as root too.
		dir := t.TempDir()
		path := filepath.Join(dir, "target")
		os.MkdirAll(filepath.Join(path, "child"), 0o700)
		if err := WriteFileAtomic(path, []byte("x"), 0o600); err == nil {
			t.Fatal("replaced a folder")
		}
		if names := dirNames(t, dir); !slices.Equal(names, []string{"target"}) {
			t.Errorf("folder holds %v: the temporary file was not removed", names)
		}
	})
	t.Run("read-only folder", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root ignores folder permissions")
		}
		dir := t.TempDir()
		path := filepath.Join(dir, "f")
		if err := WriteFileAtomic(path, []byte("old"), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chmod(dir, 0o500)
		defer os.Chmod(dir, 0o700)
		if err := WriteFileAtomic(path, []byte("new"), 0o600); err == nil {
			t.Fatal("wrote into a read-only folder")
		}
		if got := readFile(t, path); string(got) != "old" {
			t.Errorf("old content lost: %q", got)
		}
		if names := dirNames(t, dir); !slices.Equal(names, []string{"f"}) {
			t.Errorf("left %v", names)
		}
	})
}

func TestReadLimited(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	os.WriteFile(path, bytes.Repeat([]byte("a"), 100), 0o600)
	if b, err := ReadFileLimited(path, 100); err != nil || len(b) != 100 {
		t.Errorf("at the limit: %d %v", len(b), err)
	}
	if _, err := ReadFileLimited(path, 99); err == nil {
		t.Error("over the limit accepted")
	}
	if _, err := ReadFileLimited(filepath.Join(dir, "missing"), 10); !os.IsNotExist(err) {
		t.Errorf("missing: %v", err)
	}
}
