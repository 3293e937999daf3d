// Package boltfile opens bbolt database files that may be damaged
// (truncated by a full disk or a careless copy, or with flipped bytes)
// without letting bbolt panic or fault on them, and without writing to
// them. It is shared by store (chat.db) and relay (mailbox.db).
//
// bbolt trusts its file: it maps it into memory and follows page numbers
// it reads there. A file shorter than its header says makes it read past
// the end of the file (SIGBUS or SIGSEGV, which end the process), and a
// flipped byte in a page makes it panic (a freelist page of the wrong
// type, a page that names another page) or loop. [Open] therefore first
// reads the file itself, under the same lock bbolt takes, and checks what
// bbolt would rely on: the meta pages, the file's size against the pages
// in use, the freelist, and every page reachable from the root bucket
// (type, page number, elements within the page, children within the
// file, no page reached twice, none both reachable and free). Only then
// does it call bolt.Open, with panics and faults turned into a
// *[DamagedError] should anything slip through.
//
// The check reads every page in use once; docs/BENCHMARKS.md has its cost.
package boltfile

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// DamagedError is a database file that is not a whole bbolt database.
type DamagedError struct {
	Path   string
	Reason string // what is wrong, e.g. "truncated: 8192 of 421888 bytes"
}

func (e *DamagedError) Error() string {
	return fmt.Sprintf("%s is damaged (%s)", e.Path, e.Reason)
}

// Damage says what is wrong with the file, when err (from Open, Guard,
// or a transaction right after) is the file's fault: a *DamagedError, or
// what bbolt itself says of its header pages should the check let one by.
func Damage(err error) (reason string, ok bool) {
	var de *DamagedError
	switch {
	case errors.As(err, &de):
		return de.Reason, true
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrChecksum):
		return err.Error(), true
	}
	return "", false
}

// Open opens the bbolt database at path as bolt.Open does (creating it if
// it does not exist), after checking the file. A damaged file is refused
// with a *DamagedError and left as it is, an empty one included: bbolt
// never leaves a file empty (it writes its first pages before Open
// returns), so an empty file has lost what it held. A file locked by
// another process past opts.Timeout gives berrors.ErrTimeout, as bolt.Open
// would.
func Open(path string, mode os.FileMode, opts *bolt.Options) (*bolt.DB, error) {
	if opts == nil {
		opts = bolt.DefaultOptions
	}
	if err := checkPath(path, opts.Timeout); err != nil {
		return nil, err
	}
	o := *opts
	var file *os.File
	open := o.OpenFile
	if open == nil {
		open = os.OpenFile
	}
	o.OpenFile = func(name string, flag int, perm os.FileMode) (*os.File, error) {
		f, err := open(name, flag, perm)
		file = f
		return f, err
	}
	var db *bolt.DB
	err := Guard(path, func() error {
		var err error
		db, err = bolt.Open(path, mode, &o)
		return err
	})
	var de *DamagedError
	if errors.As(err, &de) && file != nil {
		// bolt.Open panicked with the file open and locked.
		file.Close()
	}
	return db, err
}

// Guard runs f, which reads or writes the database at path, and turns a
// panic or a memory fault in it into a *DamagedError. It is the backstop
// behind Open's check, for the transaction a caller runs right after
// opening (creating its buckets).
func Guard(path string, f func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = &DamagedError{Path: path, Reason: fmt.Sprintf("bbolt: %v", r)}
		}
	}()
	return f()
}

// Check checks the database file at path as Open does, without opening it
// with bbolt: nil for a whole database or a missing file. It takes a shared
// lock on the file while it reads, so a process writing it (which holds
// bbolt's exclusive lock) makes it wait up to timeout (0: for ever) and
// then fail with berrors.ErrTimeout.
func Check(path string, timeout time.Duration) error { return checkPath(path, timeout) }

func checkPath(path string, timeout time.Duration) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil // bolt.Open creates it
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if err := lockShared(f, timeout); err != nil {
		return err
	}
	defer unlock(f)
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if reason := check(f, st.Size()); reason != "" {
		return &DamagedError{Path: path, Reason: reason}
	}
	return nil
}

// errTimeout is bbolt's: callers already tell "in use" by it.
var errTimeout = berrors.ErrTimeout
