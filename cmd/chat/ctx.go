package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/certchat/certchat/identity"
	"golang.org/x/term"
)

// options are the flags every command understands, plus each command's own.
type options struct {
	home           string
	passphraseFile string

	// command flags
	name             string
	noPassphrase     bool
	json             bool
	out              string
	caDir            string
	intermediate     bool
	caPassphraseFile string
	days             int
	fingerprint      string
	yes              bool
	notify           string
	invite           bool

	node  nodeOptions
	relay relayOptions
}

// ctx is what a command runs with.
type ctx struct {
	cmd  *command
	opts options
	args []string
	io   stdio
	now  func() time.Time

	// tty asks a person at a terminal; nil when stdin is not one.
	tty prompter
	id  *identity.Identity // loaded once: each load runs Argon2id
}

// Environment variables that give passphrases to scripts.
const (
	envPassphrase   = "CERTCHAT_PASSPHRASE"
	envCAPassphrase = "CERTCHAT_CA_PASSPHRASE"
)

// discard is io.Discard, for where a parameter named io hides the package.
var discard = io.Discard

func newCtx(cmd *command, args []string, io stdio) (*ctx, error) {
	c := &ctx{cmd: cmd, io: io, now: time.Now}
	if isTerminalInput(io.in) {
		c.tty = &terminal{in: bufio.NewReader(io.in), out: io.err}
	}
	fs := flag.NewFlagSet(commandLine(cmd.name), flag.ContinueOnError)
	// The flag package would print its error and the whole usage to
	// stderr; errors are one line, from report, and help goes to stdout.
	fs.SetOutput(discard)
	fs.Usage = func() {}
	fs.StringVar(&c.opts.home, "home", "", "home folder ($CERTCHAT_HOME)")
	fs.StringVar(&c.opts.passphraseFile, "passphrase-file", "", "read the identity key's passphrase from this file's first line")
	if cmd.flags != nil {
		cmd.flags(fs, &c.opts)
	}
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		if cmd.name == "" {
			printOverview(io.out, commands()) // the chat's flags are in it
		} else {
			printCommandHelp(io.out, cmd, fs)
		}
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v (see `%s --help`)", errUsage, err, commandLine(cmd.name))
	}
	c.args = pos
	return c, nil
}

// parseInterspersed allows flags after positional arguments, as in
// `chat contacts add PEERID --name bob`. "--" ends flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		// Parse consumes a "--" that ends the flags: the rest is positional.
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func printCommandHelp(w io.Writer, cmd *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: %s %s\n\n%s\n", commandLine(cmd.name), cmd.args, cmd.summary)
	if cmd.help != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(cmd.help))
	}
	fmt.Fprintln(w, "\nFlags:")
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// home resolves --home, $CERTCHAT_HOME, then the default. For a command
// that needs an identity, a home without one is an error (noIdentityError):
// such commands never create the folder, so a mistyped --home fails
// instead of becoming a new, empty home. A home that other users can write
// is refused (checkHome).
func (c *ctx) home() (identity.Home, error) {
	d := c.opts.home
	if d == "" {
		var err error
		if d, err = identity.DefaultHomeDir(); err != nil {
			return identity.Home{}, err
		}
	}
	abs, err := filepath.Abs(d)
	if err != nil {
		return identity.Home{}, fmt.Errorf("home %s: %w", d, err)
	}
	h := identity.Home{Dir: abs}
	if err := checkHome(abs); err != nil {
		return h, err
	}
	if c.cmd != nil && !c.cmd.withoutIdentity && !h.HasIdentity() {
		return h, c.noIdentity(h)
	}
	return h, nil
}

// noIdentityError says that a home holds no identity, and how to make one.
// It is identity.ErrNoIdentity to errors.Is.
type noIdentityError struct {
	dir, how string
}

func (e *noIdentityError) Error() string {
	return fmt.Sprintf("no identity in %s: %s", e.dir, e.how)
}

func (e *noIdentityError) Unwrap() error { return identity.ErrNoIdentity }

// noIdentity says that h holds no identity and how to create one there.
func (c *ctx) noIdentity(h identity.Home) error {
	e := &noIdentityError{dir: h.Dir}
	switch {
	case c.opts.home != "":
		e.how = fmt.Sprintf("check --home, or create one with `chat --home %s init`", shellQuote(c.opts.home))
	case os.Getenv(identity.EnvHome) != "":
		e.how = "check $" + identity.EnvHome + ", or create one with `chat init`"
	default:
		e.how = "create one with `chat init`, or run `chat` to create one and open the chat"
	}
	return e
}

// shellQuote quotes s for a command line the user may copy.
func shellQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"\\$`!*?[]{}()<>|&;#~") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// wantArgs checks the number of positional arguments.
func (c *ctx) wantArgs(n int) error {
	if len(c.args) != n {
		return usageErr("%s takes %d argument(s): %s", commandLine(c.cmd.name), n, c.cmd.args)
	}
	return nil
}

// maxPassphraseAttempts is how many times a person at a terminal may type
// a passphrase before the command gives up, as ssh and sudo allow.
const maxPassphraseAttempts = 3

// secretSource says where a key's passphrase comes from: a file given by
// a flag, an environment variable, else a prompt on a terminal.
type secretSource struct {
	key      string // what it protects, for messages: "the identity key"
	file     string // the flag's value
	fileFlag string // "--passphrase-file"
	env      string // "CERTCHAT_PASSPHRASE"
}

func (c *ctx) identitySecret() secretSource {
	return secretSource{key: "the identity key", file: c.opts.passphraseFile, fileFlag: "--passphrase-file", env: envPassphrase}
}

func (c *ctx) caSecret() secretSource {
	return secretSource{key: "the CA key", file: c.opts.caPassphraseFile, fileFlag: "--ca-passphrase-file", env: envCAPassphrase}
}

// given returns the passphrase from the file or the environment; ok is
// false when neither gives one.
func (s secretSource) given() (p []byte, ok bool, err error) {
	if s.file != "" {
		data, err := os.ReadFile(s.file)
		if err != nil {
			return nil, false, fmt.Errorf("passphrase file: %w", err)
		}
		line, _, _ := strings.Cut(string(data), "\n")
		return []byte(strings.TrimSuffix(line, "\r")), true, nil
	}
	if p, ok := os.LookupEnv(s.env); ok {
		return []byte(p), true, nil
	}
	return nil, false, nil
}

// unlock calls open with a PassphraseFunc for src: the file's or the
// environment's passphrase, tried once, else one typed at the terminal
// after prompt. A typed passphrase that is wrong or empty may be typed
// again, up to maxPassphraseAttempts times in all.
func (c *ctx) unlock(src secretSource, prompt func() string, open func(identity.PassphraseFunc) error) error {
	p, ok, err := src.given()
	if err != nil {
		return err
	}
	if ok {
		return open(func() ([]byte, error) { return p, nil })
	}
	if c.tty == nil {
		return open(func() ([]byte, error) { return nil, identity.ErrPassphraseRequired })
	}
	for attempt := 1; ; attempt++ {
		typed := false
		err := open(func() ([]byte, error) {
			p, err := c.tty.secret(prompt())
			typed = err == nil
			return p, err
		})
		if err == nil || !typed || attempt == maxPassphraseAttempts {
			return err
		}
		switch {
		case errors.Is(err, identity.ErrWrongPassphrase):
			fmt.Fprintln(c.io.err, "wrong passphrase, try again")
		case errors.Is(err, identity.ErrPassphraseRequired):
			fmt.Fprintln(c.io.err, "the key is encrypted: type its passphrase")
		default:
			return err
		}
	}
}

// newSecret gets the passphrase for a new key from src; nil means store
// the key unencrypted, which only --no-passphrase or a confirmed empty
// passphrase at the terminal asks for. At a terminal it is typed twice,
// and may be chosen again, up to maxPassphraseAttempts times, when the two
// differ or an empty one is not confirmed; from a file or the environment
// an empty one fails at once.
func (c *ctx) newSecret(src secretSource, noPassphrase bool) ([]byte, error) {
	if noPassphrase {
		return nil, nil
	}
	errEmpty := errors.New("the passphrase is empty: choose one, or pass --no-passphrase")
	p, ok, err := src.given()
	if err != nil {
		return nil, err
	}
	if ok {
		if len(p) == 0 {
			return nil, errEmpty
		}
		return p, nil
	}
	if c.tty == nil {
		return nil, fmt.Errorf("a passphrase is needed to protect %s: use %s, $%s, a terminal, or --no-passphrase to store it unencrypted", src.key, src.fileFlag, src.env)
	}
	var last error
	for attempt := 1; attempt <= maxPassphraseAttempts; attempt++ {
		switch {
		case last == errEmpty:
			fmt.Fprintln(c.io.err, "then choose a passphrase")
		case last != nil:
			fmt.Fprintf(c.io.err, "%s, try again\n", last)
		}
		p, err := c.tty.secret(fmt.Sprintf("Choose a passphrase to protect %s: ", src.key))
		if err != nil {
			return nil, err
		}
		if len(p) == 0 {
			ans, err := c.tty.line("Empty passphrase: store the key unencrypted? [y/N] ")
			if err == nil && strings.EqualFold(ans, "y") {
				return nil, nil
			}
			last = errEmpty
			continue
		}
		again, err := c.tty.secret("Type it again: ")
		if err != nil {
			return nil, err
		}
		if string(again) == string(p) {
			return p, nil
		}
		last = errors.New("the passphrases do not match")
	}
	return nil, fmt.Errorf("%w; nothing was created", last)
}

// prompter asks a person at a terminal.
type prompter interface {
	// secret asks for a passphrase, not echoed.
	secret(prompt string) ([]byte, error)
	// line asks a question and returns the answer, trimmed.
	line(prompt string) (string, error)
}

// terminal is the prompter for a terminal on stdin: questions go to
// stderr, passphrases are read from /dev/tty with echo off.
type terminal struct {
	in  *bufio.Reader
	out io.Writer
}

// errInterrupted ends a command interrupted at a prompt: exit status 130,
// as a shell reports Ctrl+C.
var errInterrupted = exitStatus{code: 130, msg: "interrupted"}

// secret reads a passphrase with echo off. Ctrl+C (or SIGTERM, SIGHUP)
// while it waits turns echo back on before the command ends: killed by
// the signal, it left the terminal typing blind, in a shell that does not
// restore it.
func (t *terminal) secret(prompt string) ([]byte, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open the terminal to ask for the passphrase: %w (give it with a passphrase file or the environment instead)", err)
	}
	fd := int(tty.Fd())
	state, err := term.GetState(fd)
	if err != nil {
		tty.Close()
		return nil, fmt.Errorf("read the terminal's settings: %w", err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sig)
	type read struct {
		p   []byte
		err error
	}
	done := make(chan read, 1)
	fmt.Fprint(tty, prompt)
	go func() {
		p, err := term.ReadPassword(fd)
		done <- read{p, err}
	}()
	select {
	case r := <-done:
		fmt.Fprintln(tty)
		tty.Close()
		if r.err != nil {
			return nil, fmt.Errorf("read passphrase: %w", r.err)
		}
		return r.p, nil
	case <-sig:
		// The reader still holds tty: it stays open until the command ends.
		if err := term.Restore(fd, state); err != nil {
			return nil, fmt.Errorf("%w; turning the terminal's echo back on failed (run `stty sane`): %w", errInterrupted, err)
		}
		fmt.Fprintln(tty)
		return nil, errInterrupted
	}
}

func (t *terminal) line(prompt string) (string, error) {
	fmt.Fprint(t.out, prompt)
	line, err := t.in.ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("read answer: %w", err)
	}
	return strings.TrimSpace(line), nil
}

func isTerminalInput(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// promptLine asks a question on the terminal and reads a line from stdin.
func (c *ctx) promptLine(question string) (string, error) {
	if c.tty == nil {
		return "", errors.New("not a terminal")
	}
	return c.tty.line(question)
}

// loadIdentity opens the identity with its private key, asking for the
// passphrase if the key is encrypted.
func (c *ctx) loadIdentity() (*identity.Identity, identity.Home, error) {
	h, err := c.home()
	if err != nil {
		return nil, h, err
	}
	if c.id != nil {
		return c.id, h, nil
	}
	prompt := func() string {
		if chain, err := h.LoadChain(); err == nil {
			return fmt.Sprintf("Passphrase for %s's key (%s): ", identity.DisplayName(chain[0]), h.Dir)
		}
		return fmt.Sprintf("Passphrase for the key in %s: ", h.Dir)
	}
	err = c.unlock(c.identitySecret(), prompt, func(pass identity.PassphraseFunc) error {
		id, err := h.Load(pass)
		if err == nil {
			c.id = id
		}
		return err
	})
	return c.id, h, err
}

func (c *ctx) printf(format string, a ...any) { fmt.Fprintf(c.io.out, format, a...) }
