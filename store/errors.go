package store

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"

	"github.com/certchat/certchat/internal/boltfile"
	berrors "go.etcd.io/bbolt/errors"
)

// ErrBusy means another process has the database open.
var ErrBusy = errors.New("the message database is in use by another certchat process using this home (a daemon or a chat window); stop it or use another --home")

// ErrWrongKey means the database belongs to another identity.
var ErrWrongKey = errors.New("the message database was written by another identity: its messages cannot be read with this key")

// ErrIDTaken means an incoming message carries the ID of a message
// already stored from another peer: it can never be stored.
var ErrIDTaken = errors.New("the message id is already taken by a message from another peer")

// ErrTransferOver: the file transfer has ended already (its state is
// final); EndTransfer stores nothing then.
var ErrTransferOver = errors.New("the file transfer is over")

// ErrNotFound means no record exists under the key asked for.
var ErrNotFound = errors.New("not found")

// CorruptError is a stored record that cannot be read: its JSON does not
// parse, its sealed part does not decrypt, or an index points to nothing.
type CorruptError struct {
	Record string // bucket and key, e.g. "convs/12D3KooW…" or "msgs/12D3KooW…/42"
	Err    error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("corrupt record %s in the message database: %v", e.Record, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

func corrupt(record string, err error) error { return &CorruptError{Record: record, Err: err} }

// errBadKey: a key of the wrong shape for its bucket.
var errBadKey = errors.New("a key of the wrong length")

// Transient reports whether err is an I/O-type failure of the database (a
// full or failing disk, the database closed under the caller) that may
// not happen again: worth retrying later. Every other error of the store
// comes from what is stored or asked for, and repeats.
func Transient(err error) bool {
	var pathErr *fs.PathError
	var errno syscall.Errno
	return errors.As(err, &pathErr) || errors.As(err, &errno) ||
		errors.Is(err, berrors.ErrDatabaseNotOpen) || errors.Is(err, berrors.ErrTimeout)
}

// DamagedError is a message database file that is not a whole bbolt
// database (truncated, or bytes flipped in its structure): Open refuses it
// without writing to it. Its message says what to do.
type DamagedError struct {
	Path   string
	Reason string // e.g. "truncated: 12288 of 40960 bytes"
	Err    error
}

func (e *DamagedError) Error() string {
	return fmt.Sprintf("the message database %s is damaged (%s): restore it from a backup, or move it away to start with an empty history", e.Path, e.Reason)
}

func (e *DamagedError) Unwrap() error { return e.Err }

// damaged is err, from opening the file at path, as a *DamagedError when
// the file is at fault; other errors (permissions, a full disk, the
// store's own) are returned as they are.
func damaged(path string, err error) error {
	if reason, ok := boltfile.Damage(err); ok {
		return &DamagedError{Path: path, Reason: reason, Err: err}
	}
	return err
}
