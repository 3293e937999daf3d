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
	"slices"
	"sort"
	"strings"

	"github.com/certchat/certchat/node"
)

func main() {
	// The collector's target (node.SetGCPercent), for every command but
	// the relay: here, not in run, so that this package's tests keep
	// Go's default.
	if c, _ := findCommand(commands(), os.Args[1:]); c == nil || c.name != "relay" {
		node.SetGCPercent()
	}
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
	// withoutIdentity commands run without an identity in the home: they
	// create one (init, the chat), or use none (ca, relay). The others
	// refuse a home without one, rather than create the folder.
	withoutIdentity bool
}

// errUsage marks errors in how a command was called (exit code 2).
var errUsage = errors.New("usage")

func usageErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}

// commandLine is how a command is typed: "chat id", or "chat" for the chat.
func commandLine(name string) string { return strings.TrimSpace("chat " + name) }

func commands() []*command {
	var cs []*command
	cs = append(cs, startCommand())
	cs = append(cs, identityCommands()...)
	cs = append(cs, caCommands()...)
	cs = append(cs, contactCommands()...)
	cs = append(cs, contactEditCommands()...)
	cs = append(cs, nodeCommands()...)
	cs = append(cs, relayCommand())
	return cs
}

// run is main without os.Exit, for tests.
func run(args []string, io stdio) int {
	cs := commands()
	globals, afterGlobals := splitGlobals(args)
	if len(afterGlobals) > 0 && isHelpArg(afterGlobals[0]) {
		// `chat help X`, `chat -h X`: X's help. Without the help words
		// the second run cannot come back here.
		words := slices.DeleteFunc(slices.Clone(afterGlobals[1:]), isHelpArg)
		if len(words) == 0 {
			printOverview(io.out, cs)
			return 0
		}
		return run(append(append(slices.Clone(globals), words...), "--help"), io)
	}
	cmd, rest := findCommand(cs, args)
	if cmd == nil {
		return noCommand(cs, afterGlobals, io)
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

// isHelpArg reports whether a is a way to ask for help.
func isHelpArg(a string) bool {
	switch a {
	case "help", "-h", "--h", "-help", "--help":
		return true
	}
	return false
}

// noCommand answers arguments that name no command: a group's help when
// asked (`chat contacts --help`), else a usage error that lists what the
// group has (`chat contacts`) or points to `chat help`.
func noCommand(cs []*command, args []string, io stdio) int {
	words := leadingWords(args)
	var group string
	var members []*command
	if len(words) > 0 {
		group, members = words[0], groupMembers(cs, words[0])
	}
	if len(members) == 0 {
		fmt.Fprintf(io.err, "chat: unknown command %q; run `chat help`\n", strings.Join(words, " "))
		return 2
	}
	if len(words) == 1 && slices.ContainsFunc(args[1:], isHelpArg) {
		printGroupHelp(io.out, group, members)
		return 0
	}
	var subs []string
	for _, c := range members {
		subs = append(subs, strings.TrimPrefix(c.name, group+" "))
	}
	list := strings.Join(subs, ", ")
	if len(words) == 1 {
		fmt.Fprintf(io.err, "chat: %s needs a command: %s (see `chat help %s`)\n", group, list, group)
	} else {
		fmt.Fprintf(io.err, "chat: unknown command %q; %s has: %s (see `chat help %s`)\n", strings.Join(words, " "), group, list, group)
	}
	return 2
}

// groupMembers are the commands named "group ...", sorted by name.
func groupMembers(cs []*command, group string) []*command {
	var out []*command
	for _, c := range cs {
		if strings.HasPrefix(c.name, group+" ") {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func printGroupHelp(w io.Writer, group string, members []*command) {
	fmt.Fprintf(w, "Usage: chat %s COMMAND [flags] [args]\n\nCommands:\n", group)
	for _, c := range members {
		fmt.Fprintf(w, "  %-18s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun `chat %s COMMAND --help` for a command's flags.\n", group)
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
	var st exitStatus
	if errors.As(err, &st) {
		return st.code
	}
	return 1
}

// exitStatus is an error that ends the command with its own exit status
// (chat send's 3: queued, not delivered yet).
type exitStatus struct {
	code int
	msg  string
}

func (e exitStatus) Error() string { return e.msg }

// exitQueued is chat send's exit status for a message stored in the
// outbox (or deposited at a relay) but not delivered within --wait.
const exitQueued = 3

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

// printOverview is `chat help`: the commands, the chat window's flags and
// the global flags.
func printOverview(w io.Writer, cs []*command) {
	fmt.Fprint(w, `chat is certchat: a peer-to-peer, end-to-end encrypted messenger for the terminal.

Usage:
  chat [flags]                   open the chat window (creates an identity on first run)
  chat COMMAND [flags] [args]

Commands:
`)
	sorted := append([]*command(nil), cs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].name < sorted[j].name })
	var start *command
	for _, c := range sorted {
		if c.name == "" {
			start = c
			continue
		}
		fmt.Fprintf(w, "  %-18s %s\n", c.name, c.summary)
	}
	if start != nil && start.flags != nil {
		fmt.Fprint(w, "\nChat window flags (`chat [flags]`):\n")
		fs := flag.NewFlagSet("chat", flag.ContinueOnError)
		start.flags(fs, new(options))
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
	fmt.Fprint(w, `
Global flags (every command):
  --home DIR             where the identity and data live ($CERTCHAT_HOME;
                         default ~/.config/certchat)
  --passphrase-file F    read the identity key's passphrase from F's first
                         line ($CERTCHAT_PASSPHRASE gives it directly)

Run `+"`chat COMMAND --help`"+` for a command's flags.
`)
}
