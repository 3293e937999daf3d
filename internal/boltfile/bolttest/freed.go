package bolttest

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// FreedPages is how many pages FreePages frees: about 5,000.
const FreedPages = 5000

// FreePages makes db free about FreedPages pages: it fills a scratch
// bucket with 20 MB and deletes it, as a long-used database that deleted
// a history or drained a queue holds free pages.
func FreePages(t testing.TB, db *bolt.DB) {
	t.Helper()
	big := bytes.Repeat([]byte{7}, 2000)
	err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("bolttest-scratch"))
		if err != nil {
			return err
		}
		for i := range 10000 {
			if err := b.Put(fmt.Appendf(nil, "%08d", i), big); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte("bolttest-scratch")) })
	}
	if err != nil {
		t.Fatal(err)
	}
}

// WrittenBytes is what this process has passed to write calls so far
// (wchar in /proc/self/io); the test is skipped where there is none.
func WrittenBytes(t testing.TB) int64 {
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

// CommitBytes is what commit, one small write transaction, passes to
// write calls, measured the second time it runs (the first after
// FreePages may still move pages).
func CommitBytes(t testing.TB, commit func() error) int64 {
	t.Helper()
	var n int64
	for range 2 {
		w0 := WrittenBytes(t)
		if err := commit(); err != nil {
			t.Fatal(err)
		}
		n = WrittenBytes(t) - w0
	}
	return n
}
