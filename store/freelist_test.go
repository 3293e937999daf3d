package store

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestSmallWriteAfterFreedPages: a database that freed many pages (a
// group's history deleted, delivery records settled, a long queue
// drained) still commits a small change in a few pages. bbolt rewrites
// its whole freelist at every commit unless told not to keep it
// (NoFreelistSync, as etcd and containerd open theirs): 5,000 free pages
// made each commit write 10 more pages of freelist; the list is rebuilt
// at Open instead.
func TestSmallWriteAfterFreedPages(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	key := make([]byte, 32)
	s := openAt(t, path, key)
	defer func() { s.Close() }()
	big := bytes.Repeat([]byte{7}, 2000)
	if err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("scratch"))
		if err != nil {
			return err
		}
		for i := range 10000 {
			if err := b.Put(fmt.Appendf(nil, "%08d", i), big); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte("scratch")) }); err != nil {
		t.Fatal(err)
	}
	small := func() int64 {
		t.Helper()
		w0 := writtenBytes(t)
		if err := s.PutListenPorts(map[string]int{"tcp": 4001}); err != nil {
			t.Fatal(err)
		}
		return writtenBytes(t) - w0
	}
	small() // the first commit after the delete may still move pages
	if n := small(); n > 6*4096 {
		t.Fatalf("a small change wrote %d bytes beside %d free pages, want at most 6 pages", n, s.db.Stats().FreePageN)
	}
	// Opened again, the list is rebuilt and the pages are used again.
	s.Close()
	s = openAt(t, path, key)
	if free := s.db.Stats().FreePageN; free < 5000 {
		t.Fatalf("opened again: %d free pages, want the 5,000 freed", free)
	}
}

// writtenBytes is what this process has passed to write calls so far
// (wchar in /proc/self/io).
func writtenBytes(t *testing.T) int64 {
	t.Helper()
	raw, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Skipf("no /proc/self/io: %v", err)
	}
	for line := range strings.Lines(string(raw)) {
		if v, ok := strings.CutPrefix(line, "wchar: "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no wchar in /proc/self/io: %q", raw)
	return 0
}
