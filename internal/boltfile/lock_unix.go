//go:build unix

package boltfile

import (
	"os"
	"syscall"
	"time"
)

// lockShared takes a shared flock on f, as bbolt takes an exclusive one
// while a process has the database open for writing.
func lockShared(f *os.File, timeout time.Duration) error {
	start := time.Now()
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if err != syscall.EWOULDBLOCK {
			return err
		}
		if timeout > 0 && time.Since(start) > timeout {
			return errTimeout
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func unlock(f *os.File) { syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }
