package logcap

import (
	"fmt"
	"os"
	"sync"
)

// DefaultMaxSize is the size at which a log file rotates.
const DefaultMaxSize = 10 << 20

// File is an append-only log file of at most max bytes: a write that would
// take it past moves it to PATH.1, replacing the previous one, and starts
// PATH afresh. PATH and PATH.1 together never hold more than 2×max. Safe
// for concurrent use.
type File struct {
	mu   sync.Mutex
	path string
	max  int64
	f    *os.File // nil after a failed rotation: writes are dropped
	size int64
}

// OpenFile opens (creating it 0600) the log file path, rotating at max
// bytes (DefaultMaxSize if max <= 0).
func OpenFile(path string, max int64) (*File, error) {
	if max <= 0 {
		max = DefaultMaxSize
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("log file: %w", err)
	}
	return &File{path: path, max: max, f: f, size: fi.Size()}, nil
}

// Write appends p, rotating first if p would take the file past its size.
// A p longer than the size itself is cut to it.
func (f *File) Write(p []byte) (int, error) {
	n := len(p)
	if int64(len(p)) > f.max {
		p = p[:f.max]
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.size+int64(len(p)) > f.max {
		if err := f.rotate(); err != nil {
			return 0, err
		}
	}
	if f.f == nil {
		return 0, fmt.Errorf("log file %s is closed", f.path)
	}
	w, err := f.f.Write(p)
	f.size += int64(w)
	if err != nil {
		return w, err
	}
	return n, nil
}

// rotate moves the file to PATH.1 and opens a new one. If the move fails
// the file is emptied instead, so the bound holds. f.mu is held.
func (f *File) rotate() error {
	if f.f == nil {
		return fmt.Errorf("log file %s is closed", f.path)
	}
	if err := os.Rename(f.path, f.path+".1"); err != nil {
		if err := f.f.Truncate(0); err != nil {
			return fmt.Errorf("log file: %w", err)
		}
		f.size = 0
		return nil
	}
	f.f.Close()
	nf, err := os.OpenFile(f.path, os.O_APPEND|os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		f.f = nil
		return fmt.Errorf("log file: %w", err)
	}
	f.f, f.size = nf, 0
	return nil
}

// Close closes the file; later writes fail.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.f == nil {
		return nil
	}
	err := f.f.Close()
	f.f = nil
	return err
}
