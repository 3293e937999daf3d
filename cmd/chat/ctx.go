package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/certchat/certchat/identity"
	"golang.org/x/term"
)

// options are the flags every command understands, plus each command's own.
type options struct {
	home           string
	passphraseFile string

	// command flags
	name         string
	noPassphrase bool
	json         bool
	out          string
	caDir        string
	days         int
	fingerprint  string
	yes          bool

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

	passphraseCache []byte
	id              *identity.Identity // loaded once: each load runs Argon2id
}

const (
	envPassphrase = "CERTCHAT_PASSPHRASE"
)

// discard is io.Discard, for where a parameter named io hides the package.
var discard = io.Discard

func newCtx(cmd *command, args []string, io stdio) (*ctx, error) {
	c := &ctx{cmd: cmd, io: io, now: time.Now}
	fs := flag.NewFlagSet("chat "+cmd.name, flag.ContinueOnError)
	// The flag package would print its error and the whole usage to
	// stderr; errors are one line, from report, and help goes to stdout.
	fs.SetOutput(discard)
	fs.Usage = func() {}
	fs.StringVar(&c.opts.home, "home", "", "home folder ($CERTCHAT_HOME)")
	fs.StringVar(&c.opts.passphraseFile, "passphrase-file", "", "read the key passphrase from this file's first line")
	if cmd.flags != nil {
		cmd.flags(fs, &c.opts)
	}
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		printCommandHelp(io.out, cmd, fs)
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v (see `chat %s --help`)", errUsage, err, cmd.name)
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
	name := strings.TrimSpace("chat " + cmd.name)
	fmt.Fprintf(w, "Usage: %s %s\n\n%s\n", name, cmd.args, cmd.summary)
	if cmd.help != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(cmd.help))
	}
	fmt.Fprintln(w, "\nFlags:")
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// home resolves --home, $CERTCHAT_HOME, then the default.
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
	return identity.Home{Dir: abs}, nil
}

// wantArgs checks the number of positional arguments.
func (c *ctx) wantArgs(n int) error {
	if len(c.args) != n {
		return usageErr("chat %s takes %d argument(s): %s", c.cmd.name, n, c.cmd.args)
	}
	return nil
}

// passphrase gets the key passphrase from --passphrase-file,
// $CERTCHAT_PASSPHRASE or, on a terminal, a prompt. It is a
// identity.PassphraseFunc.
func (c *ctx) passphrase() ([]byte, error) {
	if c.passphraseCache != nil {
		return c.passphraseCache, nil
	}
	p, err := c.readPassphrase("Passphrase: ", false)
	if err == nil {
		c.passphraseCache = p
	}
	return p, err
}

// newPassphrase gets a passphrase for a new key, asking twice on a terminal.
func (c *ctx) newPassphrase() ([]byte, error) {
	return c.readPassphrase("Choose a passphrase to protect your key: ", true)
}

func (c *ctx) readPassphrase(prompt string, confirm bool) ([]byte, error) {
	if c.opts.passphraseFile != "" {
		data, err := os.ReadFile(c.opts.passphraseFile)
		if err != nil {
			return nil, fmt.Errorf("passphrase file: %w", err)
		}
		line, _, _ := strings.Cut(string(data), "\n")
		return []byte(strings.TrimSuffix(line, "\r")), nil
	}
	if p, ok := os.LookupEnv(envPassphrase); ok {
		return []byte(p), nil
	}
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil || !isTerminalInput(c.io.in) {
		if tty != nil {
			tty.Close()
		}
		return nil, identity.ErrPassphraseRequired
	}
	defer tty.Close()
	p, err := promptHidden(tty, prompt)
	if err != nil || !confirm {
		return p, err
	}
	again, err := promptHidden(tty, "Type it again: ")
	if err != nil {
		return nil, err
	}
	if string(again) != string(p) {
		return nil, errors.New("the passphrases do not match")
	}
	return p, nil
}

func promptHidden(tty *os.File, prompt string) ([]byte, error) {
	fmt.Fprint(tty, prompt)
	p, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(tty)
	if err != nil {
		return nil, fmt.Errorf("read passphrase: %w", err)
	}
	return p, nil
}

func isTerminalInput(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// promptLine asks a question on the terminal and reads a line from stdin.
func (c *ctx) promptLine(question string) (string, error) {
	if !isTerminalInput(c.io.in) {
		return "", errors.New("not a terminal")
	}
	fmt.Fprint(c.io.err, question)
	line, err := bufio.NewReader(c.io.in).ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("read answer: %w", err)
	}
	return strings.TrimSpace(line), nil
}

// loadIdentity opens the identity with its private key.
func (c *ctx) loadIdentity() (*identity.Identity, identity.Home, error) {
	h, err := c.home()
	if err != nil {
		return nil, h, err
	}
	if c.id == nil {
		c.id, err = h.Load(c.passphrase)
	}
	return c.id, h, err
}

func (c *ctx) printf(format string, a ...any) { fmt.Fprintf(c.io.out, format, a...) }
