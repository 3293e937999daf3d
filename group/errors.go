package group

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Why a change is refused. Log.Add wraps them with the change and the
// reason; callers branch with errors.Is.
var (
	// ErrMalformed: the bytes are not a change this version reads.
	ErrMalformed = errors.New("malformed group change")
	// ErrBadSignature: the author's key did not sign the change.
	ErrBadSignature = errors.New("group change not signed by its author")
	// ErrWrongGroup: the change belongs to another group.
	ErrWrongGroup = errors.New("group change for another group")
	// ErrNotAdmin: the author was not an admin of the version it changed.
	ErrNotAdmin = errors.New("only an admin can change the group")
	// ErrNotMember: the author, or the peer it names, is not a member
	// where it must be one (a removed member, a kick of a stranger).
	ErrNotMember = errors.New("not a member of the group")
	// ErrAlreadyMember: an add of a member, or an admin made twice.
	ErrAlreadyMember = errors.New("already a member of the group")
	// ErrStale: the change builds on a version too old to change.
	ErrStale = errors.New("group change for an old version")
	// ErrMissingParents: the change builds on changes this member has
	// not seen yet; it is held until they arrive (Log.Missing).
	ErrMissingParents = errors.New("group change waits for earlier changes")
	// ErrFull: the group or its log is at its limit.
	ErrFull = errors.New("group is full")
	// ErrLogFull: the log holds MaxChanges changes, and takes no more:
	// nobody can change the group's members, admins or name any more
	// (its messages still go), and it must be made anew. An ErrFull.
	ErrLogFull = fmt.Errorf("%w: its log holds the most changes a group keeps", ErrFull)
	// ErrJuniorAdmin: an admin's removal of an admin senior to it (the
	// creator first, then the admins in the order they were made). Without
	// this line, two admins could remove each other, and a removed admin
	// could undo its removal by a counter-removal signed late (PROTOCOL
	// §14.4).
	ErrJuniorAdmin = errors.New("only a more senior admin can remove an admin")
	// ErrBesideLeave marks a change (its error wraps ErrNotMember too)
	// that takes no effect because its author's key signed a leave
	// beside it, concurrent with it: something an honest client never
	// does (UndoneRemovals).
	ErrBesideLeave = errors.New("signed beside its author's leave")
)

// RefusedChange is a change that Log.Refused reports, by its hash, and
// why it was refused.
type RefusedChange struct {
	Hash Hash
	Err  error
}

func (e *RefusedChange) Error() string { return e.Err.Error() }

// Unwrap is why the change was refused.
func (e *RefusedChange) Unwrap() error { return e.Err }

// refusedError is why a change is refused or takes no effect: a
// sentinel and its details, formatted only when read. A fold meets such
// a reason for every change that does not take effect, and most are
// never read.
type refusedError struct {
	sentinel error
	format   string
	args     []any
	mark     error // a second sentinel it is (errors.Is), or nil
}

// refused makes a refusedError: its message is sentinel's, then the
// details (format and args, as fmt.Sprintf takes them).
func refused(sentinel error, format string, args ...any) error {
	return &refusedError{sentinel, format, args, nil}
}

// besideLeave is why c takes no effect, or was kept out of the log
// (how, as "was signed" or "was kept out of the log, signed"): it was
// signed beside its author's leave (ErrNotMember, marked
// ErrBesideLeave).
func besideLeave(c *Change, how string) error {
	return &refusedError{ErrNotMember, "%s by %s " + how + " beside its author's leave", []any{c.Op, short(c.Author)}, ErrBesideLeave}
}

func (e *refusedError) Error() string {
	return e.sentinel.Error() + ": " + fmt.Sprintf(e.format, e.args...)
}

func (e *refusedError) Unwrap() error { return e.sentinel }

// Is matches the error's mark.
func (e *refusedError) Is(target error) bool { return e.mark != nil && target == e.mark }

// Named is err's message with the peers a refusal names given as name
// says (a contact's label, "you") rather than as short peer IDs: for
// the user who made the change, who knows them by name. The error's
// other text, and any error without such a refusal in its chain, is as
// Error says.
func Named(err error, name func(peer.ID) string) string {
	var r *refusedError
	if !errors.As(err, &r) {
		return err.Error()
	}
	args := slices.Clone(r.args)
	for i, a := range args {
		if p, ok := a.(short); ok {
			args[i] = name(peer.ID(p))
		}
	}
	named := r.sentinel.Error() + ": " + fmt.Sprintf(r.format, args...)
	return strings.Replace(err.Error(), r.Error(), named, 1)
}

// short prints a peer ID shortened (identity.ShortID), when printed.
type short peer.ID

func (p short) String() string { return identity.ShortID(peer.ID(p)) }
