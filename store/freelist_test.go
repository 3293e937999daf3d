package store

import (
	"path/filepath"
	"testing"

	"github.com/certchat/certchat/internal/boltfile/bolttest"
)

// TestSmallWriteAfterFreedPages: a database that freed many pages (a
// group's history deleted, delivery records settled, a long queue
// drained) still commits a small change in a few pages. bbolt rewrites
// its whole freelist at every commit unless told not to keep it
// (NoFreelistSync, as etcd and containerd open theirs): 5,000 free pages
// made a one-key commit write 48 KiB; the list is rebuilt at Open
// instead.
func TestSmallWriteAfterFreedPages(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	key := make([]byte, 32)
	s := openAt(t, path, key)
	defer func() { s.Close() }()
	bolttest.FreePages(t, s.db)
	n := bolttest.CommitBytes(t, func() error { return s.PutListenPorts(map[string]int{"tcp": 4001}) })
	if n > 6*4096 {
		t.Fatalf("a small change wrote %d bytes beside %d free pages, want at most 6 pages", n, s.db.Stats().FreePageN)
	}
	// Opened again, the list is rebuilt and the pages are used again.
	s.Close()
	s = openAt(t, path, key)
	if free := s.db.Stats().FreePageN; free < bolttest.FreedPages {
		t.Fatalf("opened again: %d free pages, want the 5,000 freed", free)
	}
}
