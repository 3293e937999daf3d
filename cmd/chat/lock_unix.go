//go:build unix

package main

import (
	"os"
	"syscall"
)

// fileLocked reports whether another open file holds a flock on path, as
// bbolt takes on the message database while a process has it open. It
// takes no lock that lasts: a free lock is released at once.
func fileLocked(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return err == syscall.EWOULDBLOCK
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}
