package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// A home holds the identity key, the trust store, the message database, the
// logs and the daemon's control socket. Other local users must not be able
// to change it: whoever can write the folder can rename or replace any file
// in it (a trust store of their own, a log file that is a link to one of
// ours) and create entries in it (a control socket of their own that `chat
// send` would hand its messages to). So a home that others can write, or
// that belongs to another user, is refused by every command that uses it.
//
// A home that others can only read or enter (0755) is allowed with a
// warning from the commands that keep running (the chat window, the daemon,
// the relay): every file certchat writes there is 0600 except the public
// certificate, and the control socket sits in a private folder (control.go),
// so others learn the names, sizes and times of the files (when you last
// chatted), not their contents. Refusing would break homes made with an
// ordinary mkdir for no secret kept.

// unsafeHomeError says that other users can change the home, and how to fix it.
type unsafeHomeError struct {
	dir    string
	reason string
	fix    string
}

func (e *unsafeHomeError) Error() string {
	return fmt.Sprintf("home %s %s: other users could replace its files or plant a control socket; %s", e.dir, e.reason, e.fix)
}

// errUnsafeHome is the unsafeHomeError to errors.Is.
var errUnsafeHome = errors.New("home not private")

func (e *unsafeHomeError) Is(target error) bool { return target == errUnsafeHome }

// checkHome refuses a home that other users can write or that belongs to
// another user. A home that does not exist yet passes: it is created 0700.
func checkHome(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("home %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("home %s is not a folder", dir)
	}
	uid, ok := fileOwner(fi)
	if !ok {
		return nil // no unix owners and modes to check
	}
	if uid != os.Geteuid() {
		return &unsafeHomeError{dir: dir,
			reason: fmt.Sprintf("belongs to another user (uid %d, you are uid %d)", uid, os.Geteuid()),
			fix:    fmt.Sprintf("use a home of your own (--home), or make it yours: `chown %d %s && chmod 700 %s`", os.Geteuid(), shellQuote(dir), shellQuote(dir)),
		}
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		who := "other users"
		if perm&0o002 == 0 {
			who = "its group"
		}
		return &unsafeHomeError{dir: dir,
			reason: fmt.Sprintf("can be written by %s (mode %04o)", who, perm),
			fix:    fmt.Sprintf("run `chmod 700 %s`", shellQuote(dir)),
		}
	}
	return nil
}

// homeReadableWarning is the warning for a home that others can read or
// enter, "" for a private one.
func homeReadableWarning(dir string) string {
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm()&0o077 == 0 {
		return ""
	}
	if _, ok := fileOwner(fi); !ok {
		return ""
	}
	return fmt.Sprintf("warning: home %s can be read by other users (mode %04o): they see which files it holds, their sizes and when they change, not what they hold; run `chmod 700 %s`",
		dir, fi.Mode().Perm(), shellQuote(dir))
}

// warnReadableHome prints homeReadableWarning on stderr, if any, and
// returns it.
func (c *ctx) warnReadableHome(dir string) string {
	w := homeReadableWarning(dir)
	if w != "" {
		fmt.Fprintf(c.io.err, "chat: %s\n", w)
	}
	return w
}
