//go:build unix

package boltfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// A read of a mapping past the end of its file (SIGBUS, as bbolt meets
// on a truncated file) becomes a *DamagedError too.
func TestGuardFault(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "short"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ps := os.Getpagesize()
	if err := f.Truncate(int64(ps)); err != nil {
		t.Fatal(err)
	}
	m, err := syscall.Mmap(int(f.Fd()), 0, 4*ps, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(m)
	err = Guard("short", func() error { return fmt.Errorf("read %d", m[3*ps]) })
	var de *DamagedError
	if !errors.As(err, &de) {
		t.Fatalf("got %v", err)
	}
	t.Log(err)
}
