package transfer

import "errors"

var (
	// ErrMalformed: an offer or chunk that is not what this version reads.
	ErrMalformed = errors.New("malformed file transfer data")
	// ErrTampered: a chunk that does not open with the file's key at its
	// place: changed, moved or from another file. It is not written.
	ErrTampered = errors.New("a file chunk failed its check")
	// ErrHashMismatch: every chunk arrived but the file's SHA-256 is not
	// the offer's. The partial file is discarded.
	ErrHashMismatch = errors.New("the received file does not match its SHA-256")
	// ErrDiskFull: the downloads folder's disk has no room. What arrived
	// is kept for a later resume.
	ErrDiskFull = errors.New("the disk is full")
	// ErrIncomplete: Finish before every chunk arrived.
	ErrIncomplete = errors.New("the file has not fully arrived")
	// ErrTooLarge: a file larger than MaxFileSize.
	ErrTooLarge = errors.New("file too large")
)
