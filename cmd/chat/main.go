// Command chat is certchat: a peer-to-peer, end-to-end encrypted messenger
// for the terminal. Run without arguments it opens the chat (creating an
// identity on first run); its subcommands manage identities, certificates,
// trust, a headless daemon and a relay. `chat help` lists them.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

func main() {
	os.Exit(run(os.Args[1:], stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr}))
}

type stdio struct {
	in       io.Reader
	out, err io.Writer
}

// command is one subcommand. Names with a space ("ca sign") are groups.
type command struct {
	name    string
	args    string // usage after the name, e.g. "[--name NAME]"
	summary string // one line for `chat help`
	help    string // more paragraphs for `chat NAME --help`
	flags   func(fs *flag.FlagSet, o *options)
	run     func(c *ctx) error
}

// errUsage marks errors in how a command was called (exit code 2).
var errUsage = errors.New("usage")

func usageErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}

func commands() []*command {
	var cs []*command
	cs = append(cs, startCommand())
	cs = append(cs, identityCommands()...)
	cs = append(cs, caCommands()...)
	cs = append(cs, contactCommands()...)
	cs = append(cs, nodeCommands()...)
	cs = append(cs, relayCommand())
	return cs
}

// run is main without os.Exit, for tests.
func run(args []string, io stdio) int {
	cs := commands()
	globals, afterGlobals := splitGlobals(args)
	if len(afterGlobals) > 0 && (afterGlobals[0] == "help" || afterGlobals[0] == "-h" || afterGlobals[0] == "--help") {
		if len(afterGlobals) > 1 {
			return run(append(append(globals, afterGlobals[1:]...), "--help"), io)
		}
		printOverview(io.out, cs)
		return 0
	}
	cmd, rest := findCommand(cs, args)
	if cmd == nil {
		fmt.Fprintf(io.err, "chat: unknown command %q; run `chat help`\n", strings.Join(leadingWords(afterGlobals), " "))
		return 2
	}
	c, err := newCtx(cmd, rest, io)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err == nil {
		err = cmd.run(c)
	}
	return report(io.err, err)
}

func report(w io.Writer, err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(w, "chat: %s\n", strings.TrimPrefix(err.Error(), "usage: "))
		return 2
	}
	fmt.Fprintf(w, "chat: %s\n", oneLine(err.Error()))
	return 1
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// findCommand matches the longest command name at the start of args. Global
// flags may come before it (`chat --home DIR id`); they are passed on.
func findCommand(cs []*command, args []string) (*command, []string) {
	globals, args := splitGlobals(args)
	words := leadingWords(args)
	for n := len(words); n >= 0; n-- {
		if n == 0 && len(words) > 0 {
			break // an unknown word is not the chat command's argument
		}
		name := strings.Join(words[:n], " ")
		for _, c := range cs {
			if c.name == name {
				return c, append(globals, args[n:]...)
			}
		}
	}
	return nil, nil
}

// globalFlags take a value and may precede the command name.
var globalFlags = map[string]bool{"home": true, "passphrase-file": true}

// splitGlobals takes leading global flags off args.
func splitGlobals(args []string) (globals, rest []string) {
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		name, _, hasValue := strings.Cut(strings.TrimLeft(args[0], "-"), "=")
		if !globalFlags[name] {
			break
		}
		n := 2
		if hasValue {
			n = 1
		}
		n = min(n, len(args))
		globals, args = append(globals, args[:n]...), args[n:]
	}
	return globals, args
}

// leadingWords are the (at most two) arguments before the first flag.
func leadingWords(args []string) []string {
	var w []string
	for _, a := range args {
		if strings.HasPrefix(a, "-") || len(w) == 2 {
			break
		}
		w = append(w, a)
	}
	return w
}

func printOverview(w io.Writer, cs []*command) {
	fmt.Fprint(w, `chat is certchat: a peer-to-peer, end-to-end encrypted messenger for the terminal.

Usage:
  chat [--home DIR]              open the chat (creates an identity on first run)
  chat COMMAND [flags] [args]

Commands:
`)
	sorted := append([]*command(nil), cs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].name < sorted[j].name })
	for _, c := range sorted {
		if c.name == "" {
			continue
		}
		fmt.Fprintf(w, "  %-18s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Global flags (every command):
  --home DIR             where the identity and data live ($CERTCHAT_HOME;
                         default ~/.config/certchat)
  --passphrase-file F    read the key passphrase from F's first line
                         ($CERTCHAT_PASSPHRASE gives it directly)

Run `+"`chat COMMAND --help`"+` for a command's flags.
`)
}
