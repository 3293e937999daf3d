package transfer

import (
	"os"
	"syscall"
)

// openDirect opens path for writes that bypass the page cache
// (O_DIRECT), and reserves size bytes for it (fallocate, best effort:
// a full disk is found by the writes). Nil where the file system does
// not allow it.
func openDirect(path string, size int64) *os.File {
	f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_DIRECT, 0)
	if err != nil {
		return nil
	}
	syscall.Fallocate(int(f.Fd()), 0, 0, size) // best effort
	return f
}
